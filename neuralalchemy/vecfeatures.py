"""Vectorised environments seen through one batched reservoir: observations in, features out.

:class:`VecFeatures` steps ``B`` Gymnasium environments (``gymnasium.vector``, same-step
autoreset) and one :class:`~neuralalchemy.engine.Reservoir` with ``B`` copies. Each environment
step holds the encoded observation for ``K`` timesteps; the features are that step's spike counts
(or their trace). When an episode ends, its reservoir row is reset (zero state plus the warm-up
step, :meth:`Reservoir.reset`) and the new episode's first observation runs on it alone, so every
episode starts from exactly the state it starts from in deployment (:func:`rollout.run_episodes`).

Training rewards may add two switchable signals for sparse tasks (both off by default):

* potential-based shaping (Ng, Harada & Russell 1999): ``F = γ·Φ(s') − Φ(s)`` with ``Φ(s') = 0``
  at termination; it leaves the optimal policy unchanged. Potentials are declared in
  :data:`POTENTIALS` and chosen by name;
* a novelty bonus on reservoir states: random network distillation (Burda et al. 2019) on the
  normalised features, or counts of SimHash codes (Tang et al. 2017), ``β / √n``.

Returns and lengths reported for finished episodes are always the environment's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from neuralalchemy.agent_io import window
from neuralalchemy.config import Config
from neuralalchemy.engine import LifState, Reservoir, lif_step, synaptic_input
from neuralalchemy.envs import EnvInfo, make_vec
from neuralalchemy.network import NetworkParams
from neuralalchemy.rollout import FeatureStats
from neuralalchemy.train_state import (
    ResumeError,
    env_state,
    load_env_state,
    rng_state,
    set_rng_state,
)

STD_FLOOR = 0.1
"""Floor of the normalising std: a count feature moves in steps of 1, so a neuron that almost
never spikes (std below 0.1) would otherwise become an outlier feature of size > 10."""


def mean_std(stats: FeatureStats, floor: float = STD_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``stats`` with the std floored at ``floor``."""
    mean, std = stats.mean_std()
    return mean, np.maximum(std, floor)


# ---------------------------------------------------------------- shaping potentials
def _cartpole_potential(obs: np.ndarray) -> np.ndarray:
    """``Φ = −(θ/θ_max)² − (x/x_max)²`` (0 upright in the centre, −2 at the failure corners);
    reads ``(x, θ)`` from full (4-d) or masked (2-d) CartPole observations."""
    obs = np.atleast_2d(obs)
    x, theta = obs[:, 0], obs[:, 2] if obs.shape[1] == 4 else obs[:, 1]
    return -(theta / 0.2095) ** 2 - (x / 2.4) ** 2


def _mountaincar_potential(obs: np.ndarray) -> np.ndarray:
    """Mechanical energy per unit mass, normalised to 0 at rest in the valley and 1 at rest on
    the flag: ``Φ = (0.0025/3·(sin 3x + 1) + v²/2) / E_flag`` (MountainCar's gravity term)."""
    obs = np.atleast_2d(obs)
    x, v = obs[:, 0], obs[:, 1]
    flag = 0.0025 / 3 * (np.sin(3 * 0.5) + 1.0)
    return (0.0025 / 3 * (np.sin(3 * x) + 1.0) + 0.5 * v * v) / flag


def _acrobot_potential(obs: np.ndarray) -> np.ndarray:
    """Mechanical energy below the goal's, ``Φ = min(0, (E − E_goal) / (E_goal − E_rest))``:
    −1 hanging at rest, 0 from the energy of the straight links held with the tip on the goal
    line (θ1 = 120°) upward. ``E = T + V`` with Acrobot-v1's masses, lengths and inertias:
    ``V = −g·(lc1·cos θ1 + l1·cos θ1 + lc2·cos(θ1 + θ2))`` and ``T = ½·q̇ᵀ·M(θ2)·q̇`` (the
    environment's mass matrix, ``M11 = 3.5 + cos θ2``, ``M12 = 1.25 + cos θ2 / 2``,
    ``M22 = 1.25``)."""
    g = 9.8
    c1, s1, c2, s2, w1, w2 = np.atleast_2d(obs).T
    c12 = c1 * c2 - s1 * s2
    v = -g * 0.5 * c1 - g * (c1 + 0.5 * c12)
    t = 0.5 * ((3.5 + c2) * w1 * w1 + 2 * (1.25 + 0.5 * c2) * w1 * w2 + 1.25 * w2 * w2)
    e_goal, e_rest = 9.8, -19.6
    return np.minimum((t + v - e_goal) / (e_goal - e_rest), 0.0)


POTENTIALS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "cartpole": _cartpole_potential,
    "mountaincar": _mountaincar_potential,
    "acrobot": _acrobot_potential,
}


def shaping_reward(phi_s: np.ndarray, phi_next: np.ndarray, terminated: np.ndarray,
                   gamma: float) -> np.ndarray:
    """``F = γ·Φ(s')·(1 − terminated) − Φ(s)`` (a terminal state has potential 0)."""
    return gamma * np.where(terminated, 0.0, phi_next) - phi_s


# ---------------------------------------------------------------- novelty of reservoir states
class Novelty(Protocol):
    """A novelty bonus: ``bonus = novelty(z)`` for normalised features ``z`` (B, N)."""

    def __call__(self, z: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]:
        """Its state (for a training state)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        ...


class SimHashCounts:
    """``β / √n(code)`` with ``code = sign(A·z)`` of the normalised features ``z`` (A Gaussian,
    ``bits × N``); counts include the current visit."""

    def __init__(self, n_features: int, bits: int, seed: int):
        rng = np.random.default_rng([seed, 0xC0DE])
        self.proj = rng.standard_normal((bits, n_features))
        self.weights = 1 << np.arange(bits, dtype=np.int64)
        self.counts: dict[int, int] = {}

    def __call__(self, z: np.ndarray) -> np.ndarray:
        codes = ((z @ self.proj.T) > 0).astype(np.int64) @ self.weights
        out = np.empty(len(codes))
        for i, code in enumerate(codes.tolist()):
            n = self.counts.get(code, 0) + 1
            self.counts[code] = n
            out[i] = 1.0 / np.sqrt(n)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The visit counts (the projection is drawn from the seed)."""
        return {"codes": np.fromiter(self.counts, dtype=np.int64, count=len(self.counts)),
                "counts": np.fromiter(self.counts.values(), dtype=np.int64,
                                      count=len(self.counts))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the visit counts of :meth:`state_dict`."""
        self.counts = dict(zip(state["codes"].tolist(), state["counts"].tolist()))


class RandomNetworkDistillation:
    """Prediction error of a trained MLP against a fixed random one, on normalised features
    (clipped to ±5), divided by the running std of the errors; one Adam step per call."""

    def __init__(self, n_features: int, seed: int, hidden: int = 64, out: int = 16):
        gen = torch.Generator().manual_seed(seed)

        def mlp() -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Linear(n_features, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, out)).double()

        self.target, self.predictor = mlp(), mlp()
        with torch.no_grad():
            for p in [*self.target.parameters(), *self.predictor.parameters()]:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / np.sqrt(p.shape[-1]))
        self.target.requires_grad_(False)
        self.opt = torch.optim.Adam(self.predictor.parameters(), lr=1e-3)
        self.stats = FeatureStats.empty(1)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.clip(z, -5.0, 5.0), dtype=torch.float64)
        err = ((self.predictor(x) - self.target(x)) ** 2).mean(1)
        self.opt.zero_grad()
        err.mean().backward()
        self.opt.step()
        e = err.detach().numpy()
        self.stats.add(e[:, None])
        return e / max(float(self.stats.mean_std()[1][0]), 1e-8)

    def state_dict(self) -> dict[str, Any]:
        """Both networks, the optimizer and the error statistics."""
        return {"target": self.target.state_dict(), "predictor": self.predictor.state_dict(),
                "opt": self.opt.state_dict(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.opt.load_state_dict(state["opt"])
        self.stats.load_state_dict(state["stats"])


def make_novelty(kind: str, n_features: int, bits: int, seed: int) -> Novelty | None:
    """The configured novelty bonus (None for ``"none"``)."""
    table: dict[str, Callable[[], Novelty]] = {
        "rnd": lambda: RandomNetworkDistillation(n_features, seed),
        "counts": lambda: SimHashCounts(n_features, bits, seed),
    }
    if kind == "none":
        return None
    if kind not in table:
        raise ValueError(f"unknown intrinsic bonus {kind!r}: choose none, {', '.join(table)}")
    return table[kind]()


# ---------------------------------------------------------------- the vectorised environment
def make_same_step_vec(env_id: str, n: int) -> tuple[gym.vector.VectorEnv, bool]:
    """``n`` synchronous copies with same-step autoreset if this gymnasium offers it; returns the
    env and whether it resets on the same step (else it autoresets on the next one)."""
    mode = getattr(gym.vector, "AutoresetMode", None)
    if mode is not None and hasattr(mode, "SAME_STEP"):
        return make_vec(env_id, n, autoreset_mode=mode.SAME_STEP), True
    return make_vec(env_id, n), False


class VecFeatures:
    """``B`` environments and one ``B``-copy reservoir; see the module docstring.

    :meth:`step` returns ``(features, rewards, terminated, truncated, infos)``: features (B, N) of
    the observation each environment now shows (a new episode's first one where an episode ended),
    training rewards (environment reward plus shaping and novelty, when on), and ``infos`` with
    ``"env_reward"`` (B,), ``"final_features"`` (B, N): the features of the last observation of
    each episode that ended (zeros in other rows), for bootstrapping truncated episodes, and
    ``"last_obs"`` (B, D): the observation each step reached (an episode's last one where it
    ended, before the reset), for learning the environment's dynamics.
    """

    def __init__(self, cfg: Config, info: EnvInfo, network: NetworkParams, encoder: Any,
                 trace_decay: float, num_envs: int, seed: int, same_step: bool | None = None):
        self.cfg, self.info, self.encoder = cfg, info, encoder
        self.num_envs, self.seed, self.decay = num_envs, seed, trace_decay
        self.steps_per_obs = cfg.reservoir.steps_per_obs
        self.levels = network.payload_levels
        self.envs, self.same_step = make_same_step_vec(cfg.env, num_envs)
        if same_step is False:  # tests exercise the next-step path on a new gymnasium too
            self.envs.close()
            mode = gym.vector.AutoresetMode.NEXT_STEP  # type: ignore[attr-defined]
            self.envs = make_vec(cfg.env, num_envs, autoreset_mode=mode)
            self.same_step = False
        self.reservoir = Reservoir(network, num_envs)
        self.rng = np.random.default_rng([seed, 0x5EED]) if encoder.binary else None
        self.stats = FeatureStats.empty(network.size)
        ex = cfg.exploration
        self.potential = POTENTIALS[ex.shaping] if ex.shaping != "none" else None
        self.novelty = make_novelty(ex.intrinsic, network.size, ex.hash_bits, seed)
        self.gamma = cfg.training.gamma
        self.features = np.zeros((num_envs, network.size))
        self.obs = np.zeros((num_envs, info.obs_dim))
        self.ep_return, self.ep_length = np.zeros(num_envs), np.zeros(num_envs, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []
        self.env_steps = 0

    # ------------------------------------------------------------ reservoir
    def _payload(self, obs: np.ndarray, prev: np.ndarray | None = None) -> torch.Tensor:
        """``prev``: each row's previous observation (change channels), None on a first step."""
        return torch.as_tensor(np.ascontiguousarray(
            window(obs, self.encoder, self.levels, self.steps_per_obs, self.rng, prev)))

    def _counts_rows(self, rows: torch.Tensor, obs: np.ndarray) -> np.ndarray:
        """Run only ``rows`` of the reservoir for one environment step on ``obs`` (len(rows), D)."""
        res = self.reservoir
        payload = self._payload(obs)
        state = LifState(*(t.index_select(0, rows) for t in res.state))
        counts = torch.zeros(rows.numel(), res.size, dtype=torch.int64)
        for k in range(self.steps_per_obs):
            state = lif_step(synaptic_input(payload[k], state, res.ep), state, res.ep)
            counts += state.s
        res.state = LifState(*(old.index_copy(0, rows, new) for old, new in zip(res.state, state)))
        return counts.numpy().astype(np.float64)

    def _features(self, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
        return counts if self.decay == 0 else previous * self.decay + counts

    # ------------------------------------------------------------ API
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every environment (seeds ``seed + i``) and reservoir copy; first features."""
        obs, _ = self.envs.reset(seed=self.seed if seed is None else seed)
        self.obs = np.asarray(obs, dtype=np.float64)
        self.reservoir.reset()
        counts = self.reservoir.run(self._payload(self.obs), self.steps_per_obs)
        self.features = counts.numpy().astype(np.float64)
        self.stats.add(self.features)
        self.ep_return[:], self.ep_length[:] = 0.0, 0
        return self.features.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        """Step every environment with ``actions``; see the class docstring."""
        obs, reward, term, trunc, infos = self.envs.step(actions)
        obs = np.asarray(obs, dtype=np.float64)
        reward = np.asarray(reward, dtype=np.float64)
        term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
        done = term | trunc
        last = obs.copy()  # each environment's last observation of the step just taken
        if self.same_step and done.any():
            for i in np.flatnonzero(done):
                last[i] = infos["final_obs"][i]
        elif done.any():  # next-step autoreset: reset the finished copies now, by mask
            reset_obs, _ = self.envs.reset(options={"reset_mask": done})
            obs[done] = np.asarray(reset_obs, dtype=np.float64)[done]
        counts = self.reservoir.run(self._payload(last, self.obs), self.steps_per_obs).numpy()
        feats = self._features(counts.astype(np.float64), self.features)
        final = np.where(done[:, None], feats, 0.0)
        if done.any():
            rows = torch.as_tensor(np.flatnonzero(done))
            self.reservoir.reset(rows)
            feats[done] = self._counts_rows(rows, obs[done])  # a fresh trace starts at the counts
        train_reward = reward + self._bonus(last, term, np.where(done[:, None], final, feats))
        self._track(reward, done)
        self.obs, self.features = obs, feats
        self.stats.add(feats)
        return feats.copy(), train_reward, term, trunc, {"env_reward": reward,
                                                        "final_features": final,
                                                        "last_obs": last}

    def _bonus(self, last: np.ndarray, term: np.ndarray, reached: np.ndarray) -> np.ndarray:
        """Shaping for the transition ``self.obs -> last`` plus novelty of the reached state."""
        bonus = np.zeros(self.num_envs)
        ex = self.cfg.exploration
        if self.potential is not None:
            phi_s = ex.shaping_scale * self.potential(self.obs)
            phi_next = ex.shaping_scale * self.potential(last)
            bonus += shaping_reward(phi_s, phi_next, term, self.gamma)
        if self.novelty is not None:
            mean, std = mean_std(self.stats)
            bonus += ex.intrinsic_coef * self.novelty((reached - mean) / std)
        return bonus

    def _track(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.ep_return += reward
        self.ep_length += 1
        self.env_steps += self.num_envs
        for i in np.flatnonzero(done):
            self.finished_returns.append(float(self.ep_return[i]))
            self.finished_lengths.append(int(self.ep_length[i]))
        self.ep_return[done], self.ep_length[done] = 0.0, 0

    def pop_finished(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths of the episodes finished since the last call."""
        out = (np.asarray(self.finished_returns, dtype=np.float64),
               np.asarray(self.finished_lengths, dtype=np.int64))
        self.finished_returns, self.finished_lengths = [], []
        return out

    def close(self) -> None:
        """Close the environments."""
        self.envs.close()

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`step` reads or changes: environments (:func:`~neuralalchemy.
        train_state.env_state`), reservoir rows, encoder generator, statistics, novelty bonus,
        episode bookkeeping."""
        novelty = self.novelty.state_dict() if self.novelty is not None else None
        return {"envs": env_state(self.envs), "reservoir": self.reservoir.state._asdict(),
                "rng": rng_state(self.rng), "stats": self.stats.state_dict(),
                "novelty": novelty, "features": self.features.copy(), "obs": self.obs.copy(),
                "ep_return": self.ep_return.copy(), "ep_length": self.ep_length.copy(),
                "finished_returns": list(self.finished_returns),
                "finished_lengths": list(self.finished_lengths), "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (on copies built from the same config)."""
        load_env_state(self.envs, state["envs"])
        saved = LifState(**state["reservoir"])
        if any(a.shape != b.shape or a.dtype != b.dtype
               for a, b in zip(self.reservoir.state, saved)):
            raise ResumeError("the saved reservoir state does not fit this run's reservoir")
        self.reservoir.state = saved
        set_rng_state(self.rng, state["rng"])
        self.stats.load_state_dict(state["stats"])
        if self.novelty is not None:
            self.novelty.load_state_dict(state["novelty"])
        self.features, self.obs = state["features"], state["obs"]
        self.ep_return, self.ep_length = state["ep_return"], state["ep_length"]
        self.finished_returns = [float(r) for r in state["finished_returns"]]
        self.finished_lengths = [int(n) for n in state["finished_lengths"]]
        self.env_steps = int(state["env_steps"])


def from_context(ctx: Any, num_envs: int, seed: int, same_step: bool | None = None) -> VecFeatures:
    """:class:`VecFeatures` for a learner's :class:`~neuralalchemy.learners.base.Context`."""
    return VecFeatures(ctx.cfg, ctx.info, ctx.network, ctx.encoder, ctx.trace_decay, num_envs,
                       seed, same_step)
