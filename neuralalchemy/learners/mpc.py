"""Model-based readout learning: plan on a learned model, distil the plans into the readout.

The environment's dynamics are learned, the learned model plans, and the deployable readout
imitates the planner on the states it actually visits:

* **Model.** An ensemble of ``model_ensemble`` MLPs (two hidden SiLU layers of ``model_hidden``)
  maps a normalised observation and a one-hot action to the normalised change of the
  observation and the reward, ``(s, a) ↦ (s' − s, r)``; a second MLP classifies whether the
  reached observation ends the episode (``terminated``; class-weighted cross-entropy). Both are
  refitted every ``model_every`` env steps on every transition seen (Adam, warm-started), as in
  PETS (Chua et al. 2018) and MBPO (Janner et al. 2019).
* **Planner.** Model-predictive control by the cross-entropy method over action sequences
  (discrete actions: one categorical distribution per step of the ``plan_horizon``): each
  environment draws ``plan_candidates`` sequences, each rolled out on one ensemble member
  (the members split the candidates), and a sequence's value is its shaped return on the model,

      Σ_t γ^t·(r̂_t + γ·Φ(ŝ_{t+1}) − Φ(ŝ_t))  =  Σ_t γ^t·r̂_t + γ^H·Φ(ŝ_H) − Φ(s_0)

  up to the predicted termination (``Φ = 0`` there), with ``Φ`` the potential named by
  ``exploration.shaping`` (× ``shaping_scale``): potential-based shaping, which leaves the
  optimal policy unchanged, is the planner's estimate of what lies beyond the horizon. The
  best tenth of the sequences refits the distributions ``plan_iterations`` times; the first
  step's distribution is the plan.
* **Readout (DAgger, Ross et al. 2011).** Every visited step is labelled with the plan's
  first-step distribution; the readout is the ridge regression (``ridge`` on the normalised
  features) of the centred labels on every labelled step so far, computed from running sums,
  so the aggregated data set costs ``O(N²)`` memory whatever its length. After
  ``random_steps`` uniformly random steps the planner acts; once the readout is fitted each
  environment step executes the planner's choice with probability ``dagger_beta`` and the
  readout's greedy action otherwise, so the labelled states are the readout's own.

The planner needs observations that determine the next one (fully observed environments) and
discrete actions; the readout is an ordinary linear readout and deploys like any other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neuralalchemy.config import ConfigError
from neuralalchemy.learners.base import Context, Progress, Readout
from neuralalchemy.vecfeatures import from_context, mean_std

_F = torch.float32
ELITE_SHARE = 0.1
SMOOTHING = 0.2      # weight of the previous CEM distribution in each refit
BATCH = 256


class Ensemble(torch.nn.Module):
    """``members`` MLPs with two hidden SiLU layers, evaluated together: input (E, rows, i)."""

    def __init__(self, members: int, inputs: int, hidden: int, outputs: int,
                 gen: torch.Generator):
        super().__init__()
        sizes = [(inputs, hidden), (hidden, hidden), (hidden, outputs)]
        self.w = torch.nn.ParameterList([
            torch.nn.Parameter(torch.randn(members, a, b, generator=gen, dtype=_F) / a ** 0.5)
            for a, b in sizes])
        self.b = torch.nn.ParameterList([
            torch.nn.Parameter(torch.zeros(members, 1, b, dtype=_F)) for _, b in sizes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs (E, rows, o)."""
        for k, (w, b) in enumerate(zip(self.w, self.b)):
            x = torch.baddbmm(b, x, w)
            if k < len(self.w) - 1:
                x = torch.nn.functional.silu(x)
        return x


class Mpc:
    """A learned model, a CEM planner on it, and the readout distilled from the planner; one
    :meth:`step` is ``rollout_steps`` steps of every environment."""

    def __init__(self, ctx: Context):
        info, tr = ctx.info, ctx.cfg.training
        if not info.discrete:
            raise ConfigError(f"training.algorithm: 'mpc' plans over discrete actions and "
                              f"{ctx.cfg.env} has continuous ones; choose 'ppo' for it")
        if tr.plan_candidates < tr.model_ensemble:
            raise ConfigError(f"training.plan_candidates: {tr.plan_candidates} is fewer than "
                              f"the {tr.model_ensemble} ensemble members; set at least that many")
        self.ctx = ctx
        self.n_actions, self.obs_dim = info.n_actions, info.obs_dim
        self.vec = from_context(ctx, tr.num_envs, tr.seed)
        self.gen = torch.Generator().manual_seed(tr.seed)
        self.rng = np.random.default_rng([tr.seed, 0x3BC])
        d, a, h = self.obs_dim, self.n_actions, tr.model_hidden
        self.model = Ensemble(tr.model_ensemble, d + a, h, d + 1, self.gen)
        self.done_model = Ensemble(1, d, h, 1, self.gen)
        self.features = self.vec.reset(tr.seed)
        n = ctx.n_features
        # transitions for the model
        self.obs: list[np.ndarray] = []
        self.act: list[np.ndarray] = []
        self.nxt: list[np.ndarray] = []
        self.rew: list[np.ndarray] = []
        self.term: list[np.ndarray] = []
        # running sums for the readout's ridge regression
        self.sum_ff = np.zeros((n, n))
        self.sum_f = np.zeros(n)
        self.sum_fy = np.zeros((n, a))
        self.sum_y = np.zeros(a)
        self.count = 0
        self.norm: dict[str, torch.Tensor] = {}
        self.theta = np.zeros((a, n))
        self.bias = np.zeros(a)
        self.mean, self.std = mean_std(self.vec.stats)
        self.fitted = False
        self.next_model_fit = tr.random_steps
        self.iteration = 0
        self.env_steps = 0
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------ model
    def _data(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(x) for x in (self.obs, self.act, self.nxt, self.rew,
                                                  self.term))

    def _fit_models(self) -> None:
        """Refit the dynamics ensemble and the termination classifier on every transition."""
        tr = self.ctx.cfg.training
        obs, act, nxt, rew, term = self._data()
        target = np.hstack([nxt - obs, rew[:, None]])
        mu, sd = obs.mean(0), obs.std(0) + 1e-6
        tmu, tsd = target.mean(0), target.std(0) + 1e-6
        self.norm = {k: torch.as_tensor(v, dtype=_F) for k, v in
                     (("mu", mu), ("sd", sd), ("tmu", tmu), ("tsd", tsd))}
        x = torch.as_tensor(np.hstack([(obs - mu) / sd, np.eye(self.n_actions)[act]]), dtype=_F)
        y = torch.as_tensor((target - tmu) / tsd, dtype=_F)
        xn = torch.as_tensor((nxt - mu) / sd, dtype=_F)
        yt = torch.as_tensor(term, dtype=_F)
        rows = len(x)
        updates = int(min(tr.model_updates, max(500, 20 * rows / BATCH)))
        members = tr.model_ensemble
        opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        for _ in range(updates):
            idx = torch.randint(0, rows, (members, BATCH), generator=self.gen)
            loss = ((self.model(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        share = float(term.mean())
        weight = torch.tensor(max(1.0, (1.0 - share) / max(share, 1e-3)))
        opt_d = torch.optim.Adam(self.done_model.parameters(), lr=1e-3)
        for _ in range(updates):
            idx = torch.randint(0, rows, (1, BATCH), generator=self.gen)
            loss_d = torch.nn.functional.binary_cross_entropy_with_logits(
                self.done_model(xn[idx])[..., 0], yt[idx], pos_weight=weight)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        self.last_stats.update(model_loss=float(loss.detach()),
                               done_loss=float(loss_d.detach()), model_updates=updates,
                               transitions=rows)

    # ------------------------------------------------------------ planner
    @torch.no_grad()
    def plan(self, obs: np.ndarray) -> np.ndarray:
        """The CEM plan's first-step action distribution for each row of ``obs`` (B, A)."""
        tr = self.ctx.cfg.training
        ex = self.ctx.cfg.exploration
        b, a, h, e = len(obs), self.n_actions, tr.plan_horizon, tr.model_ensemble
        p = tr.plan_candidates // e * e
        n = self.norm
        probs = torch.full((b, h, a), 1.0 / a, dtype=_F)
        start = torch.as_tensor(obs, dtype=_F)
        discount = tr.gamma ** torch.arange(h + 1, dtype=_F)
        for _ in range(tr.plan_iterations):
            u = torch.rand(b, p, h, 1, generator=self.gen, dtype=_F)
            acts = (u > probs.cumsum(-1)[:, None]).sum(-1).clamp(max=a - 1)   # (B, P, H)
            # member k rolls out candidates k, k + E, ...: (E, B·P/E)
            ac = acts.view(b, p // e, e, h).permute(2, 0, 1, 3).reshape(e, -1, h)
            s = start[None, :, None].expand(e, b, p // e, -1).reshape(e, -1, self.obs_dim)
            value = torch.zeros(s.shape[:2], dtype=_F)
            alive = torch.ones(s.shape[:2], dtype=_F)
            for t in range(h):
                x = torch.cat([(s - n["mu"]) / n["sd"],
                               torch.nn.functional.one_hot(ac[..., t], a).to(_F)], -1)
                out = self.model(x) * n["tsd"] + n["tmu"]
                s = s + out[..., :-1]
                value += alive * discount[t] * out[..., -1]
                ended = (self.done_model(((s - n["mu"]) / n["sd"]).reshape(1, -1, self.obs_dim))
                         .view(e, -1) > 0).to(_F)
                alive = alive * (1.0 - ended)
            if self.vec.potential is not None:  # exploration.shaping's potential
                phi = torch.as_tensor(self.vec.potential(s.reshape(-1, self.obs_dim).numpy()),
                                      dtype=_F).view(e, -1)
                value += alive * discount[h] * ex.shaping_scale * phi
            value = value.view(e, b, p // e).permute(1, 2, 0).reshape(b, p)
            elite = value.topk(max(int(p * ELITE_SHARE), 2), dim=1).indices
            chosen = torch.gather(acts, 1, elite[..., None].expand(-1, -1, h))
            freq = torch.nn.functional.one_hot(chosen, a).to(_F).mean(1)
            probs = SMOOTHING * probs + (1.0 - SMOOTHING) * freq
        return probs[:, 0].numpy().astype(np.float64)

    # ------------------------------------------------------------ readout
    def _label(self, feats: np.ndarray, target: np.ndarray) -> None:
        y = target - target.mean(1, keepdims=True)
        self.sum_ff += feats.T @ feats
        self.sum_f += feats.sum(0)
        self.sum_fy += feats.T @ y
        self.sum_y += y.sum(0)
        self.count += len(feats)

    def _fit_readout(self) -> None:
        """Ridge regression of the centred labels on the normalised features (with a free bias),
        from the running sums."""
        mean, std = mean_std(self.vec.stats)
        n = self.count
        fm = self.sum_f / n
        cov = (self.sum_ff / n - np.outer(fm, fm)) / np.outer(std, std)
        cross = (self.sum_fy / n - np.outer(fm, self.sum_y / n)) / std[:, None]
        lam = self.ctx.cfg.training.ridge / n
        w = np.linalg.solve(cov + lam * np.eye(len(cov)), cross)        # (N, A)
        self.theta = w.T.copy()
        self.bias = self.sum_y / n - ((fm - mean) / std) @ w
        self.mean, self.std = mean, std
        self.fitted = True

    def _greedy(self, feats: np.ndarray) -> np.ndarray:
        return np.argmax(((feats - self.mean) / self.std) @ self.theta.T + self.bias, axis=1)

    # ------------------------------------------------------------ one iteration
    def step(self) -> Progress:
        """``rollout_steps`` steps of every environment, each labelled by the planner once the
        model exists; the model and the readout are refitted on schedule."""
        tr = self.ctx.cfg.training
        b = tr.num_envs
        for _ in range(tr.rollout_steps):
            obs = self.vec.obs.copy()
            if self.norm:
                target = self.plan(obs)
                self._label(self.features, target)
                planned = np.argmax(target, axis=1)
                if self.fitted:
                    own = self._greedy(self.features)
                    planned = np.where(self.rng.random(b) < tr.dagger_beta, planned, own)
                actions = planned
            else:
                actions = self.rng.integers(0, self.n_actions, b)
            self.features, _, term, _, info = self.vec.step(actions)
            self.obs.append(obs)
            self.act.append(actions)
            self.nxt.append(info["last_obs"].copy())
            self.rew.append(info["env_reward"].copy())
            self.term.append(term.astype(np.float64))
            self.env_steps += b
            if self.env_steps >= self.next_model_fit:
                self._fit_models()
                self.next_model_fit = self.env_steps + tr.model_every
        if self.count:
            self._fit_readout()
        self.iteration += 1
        returns, lengths = self.vec.pop_finished()
        return Progress(returns, lengths, tr.rollout_steps * b)

    # ------------------------------------------------------------ results
    def readout(self) -> Readout:
        """The distilled readout (zeros before the first fit)."""
        return Readout(self.theta.copy(), self.bias.copy(), self.mean.copy(), self.std.copy())

    def warm_start(self, ro: Readout, freeze_norm: bool) -> None:
        """Act with a trained readout until the first fit replaces it."""
        self.theta, self.bias = ro.theta.astype(np.float64).copy(), ro.bias.copy()
        self.mean, self.std = ro.mean.astype(np.float64).copy(), ro.std.copy()
        self.fitted = True

    def summary(self) -> dict[str, Any]:
        """Counters and the last model fit's diagnostics."""
        return {"algorithm": "mpc", "iteration": self.iteration, "env_steps": self.env_steps,
                "labelled": self.count, **self.last_stats}

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Models, data, running sums, readout, generators, environments."""
        return {"model": {k: v.clone() for k, v in self.model.state_dict().items()},
                "done_model": {k: v.clone() for k, v in self.done_model.state_dict().items()},
                "norm": {k: v.clone() for k, v in self.norm.items()},
                "data": [np.concatenate(x) if x else np.zeros(0) for x in
                         (self.obs, self.act, self.nxt, self.rew, self.term)],
                "sums": [self.sum_ff.copy(), self.sum_f.copy(), self.sum_fy.copy(),
                         self.sum_y.copy()], "count": self.count,
                "readout": [self.theta.copy(), self.bias.copy(), self.mean.copy(),
                            self.std.copy()], "fitted": self.fitted,
                "generator": self.gen.get_state(), "rng": self.rng.bit_generator.state,
                "features": self.features.copy(), "next_model_fit": self.next_model_fit,
                "iteration": self.iteration, "env_steps": self.env_steps,
                "last_stats": dict(self.last_stats), "vec": self.vec.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (on a learner built from the same config)."""
        self.model.load_state_dict(state["model"])
        self.done_model.load_state_dict(state["done_model"])
        self.norm = dict(state["norm"])
        data = state["data"]
        for name, arr in zip(("obs", "act", "nxt", "rew", "term"), data):
            setattr(self, name, [arr] if len(arr) else [])
        self.sum_ff, self.sum_f, self.sum_fy, self.sum_y = state["sums"]
        self.count = int(state["count"])
        self.theta, self.bias, self.mean, self.std = state["readout"]
        self.fitted = bool(state["fitted"])
        self.gen.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.features = state["features"]
        self.next_model_fit = int(state["next_model_fit"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.last_stats = dict(state["last_stats"])
        self.vec.load_state_dict(state["vec"])
