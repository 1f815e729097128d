"""Proximal policy optimisation (Schulman et al. 2017, clipped objective, GAE) on the readout.

The actor is the deployable readout: on normalised features ``z = (f − mean) / std``,

* discrete actions: ``π(a | z) = softmax(θ·z + b)``; greedy = first argmax;
* Box actions: ``u ~ N(θ·z + b, diag(σ²))`` with a state-independent ``log σ``, executed as
  ``low + (tanh u + 1)/2 · (high − low)``; greedy = ``tanh(θ·z + b)`` rescaled, exactly
  :func:`~neuralalchemy.agent_io.select_action`. The ratio uses the Gaussian density of ``u``
  (the tanh Jacobian does not depend on the parameters and cancels).

The critic is a second linear head ``V(z) = w·z + c``. Each :meth:`Ppo.step` collects
``rollout_steps`` steps from ``num_envs`` environments (:class:`~neuralalchemy.vecfeatures.
VecFeatures`), refreshes the normalisation from every feature seen so far (rescaling both heads
so that neither changes as a function of the raw features), computes advantages by GAE(λ),

    δ_t = r_t + γ·V(s_{t+1})·[not terminated] − V(s_t),   A_t = δ_t + γλ·[not done]·A_{t+1}

(a truncated episode bootstraps from its last observation's features), and runs ``epochs``
passes of ``minibatches`` Adam (or configured) steps on

    L = −E[min(ρ·Â, clip(ρ, 1 ± ε)·Â)] + c_v·E[(V − R)²]/2 − c_H·H + l1·‖θ‖₁ + l2·‖θ‖₂²

with ``ρ = π_new / π_old``. ``feature_noise`` adds ``N(0, σ²)`` to ``z``
in the updates. With ``normalize_rewards`` the rewards the critic and GAE see are divided by
the running standard deviation of each environment's discounted return ``G ← γ·G + r`` (reset at
episode ends) and clipped to ±``reward_clip`` (10 by default, as SB3's VecNormalize; 0 leaves
them unclipped); reported episode returns stay in the environment's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neuralalchemy.learners.base import Context, Progress, Readout
from neuralalchemy.learners.optim import (
    Schedule,
    gaussian_noise,
    make_optimizer,
    readout_penalty,
)
from neuralalchemy.train_state import copy_into
from neuralalchemy.vecfeatures import from_context, mean_std

_DT = torch.float64
_PARAMS = ("theta", "bias", "w_value", "b_value", "log_std")


@dataclass
class Rollout:
    """One rollout, time-major: raw features (T, B, N), actions, rewards, flags, final features
    of episodes that ended (T, B, N), and the features after the last step (B, N)."""

    feats: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final: np.ndarray
    last: np.ndarray


class Ppo:
    """PPO on the linear readout; one :meth:`step` is one rollout and one update."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        tr = ctx.cfg.training
        info, n = ctx.info, ctx.n_features
        self.discrete = info.discrete
        self.vec = from_context(ctx, tr.num_envs, tr.seed)
        self.gen = torch.Generator().manual_seed(tr.seed)
        self.theta = torch.zeros(info.n_actions, n, dtype=_DT, requires_grad=True)
        self.bias = torch.zeros(info.n_actions, dtype=_DT, requires_grad=True)
        self.w_value = torch.zeros(n, dtype=_DT, requires_grad=True)
        self.b_value = torch.zeros((), dtype=_DT, requires_grad=True)
        params = [self.theta, self.bias, self.w_value, self.b_value]
        self.log_std = torch.full((info.n_actions,), tr.init_log_std, dtype=_DT,
                                  requires_grad=not self.discrete)
        if not self.discrete:
            params.append(self.log_std)
        self.opt = make_optimizer(params, tr)
        self.schedule = Schedule(self.opt, tr)
        self.low = torch.as_tensor(info.action_low, dtype=_DT)
        self.high = torch.as_tensor(info.action_high, dtype=_DT)
        self.features = self.vec.reset(tr.seed)
        self.mean, self.std = mean_std(self.vec.stats)
        self.frozen_norm = False
        # reward scaling: discounted return per env and running (count, mean, M2) of it
        self.ret_acc = np.zeros(tr.num_envs)
        self.ret_stats = np.array([0.0, 0.0, 0.0])
        self.iteration = 0
        self.env_steps = 0
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------ policy
    def _dist(self, z: torch.Tensor) -> torch.distributions.Distribution:
        logits = z @ self.theta.T + self.bias
        if self.discrete:
            return torch.distributions.Categorical(logits=logits)
        return torch.distributions.Normal(logits, self.log_std.exp().expand_as(logits))

    def _log_prob(self, dist: torch.distributions.Distribution, a: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(a)
        return lp if self.discrete else lp.sum(-1)

    def _value(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.w_value + self.b_value

    def _norm(self, f: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((f - self.mean) / self.std, dtype=_DT)

    def _sample(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        """A draw from the learner's own generator (categorical index or pre-tanh ``u``)."""
        if self.discrete:
            probs = dist.probs  # type: ignore[attr-defined]
            return torch.multinomial(probs, 1, generator=self.gen).squeeze(-1)
        mean = dist.mean
        return mean + dist.stddev * torch.randn(mean.shape, generator=self.gen, dtype=_DT)

    def _env_action(self, sample: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return sample.numpy()
        return (self.low + (torch.tanh(sample) + 1.0) * 0.5 * (self.high - self.low)).numpy()

    # ------------------------------------------------------------ one iteration
    def step(self) -> Progress:
        """Collect one rollout, then one PPO update in place."""
        tr = self.ctx.cfg.training
        roll = self._collect(tr.rollout_steps)
        if not self.frozen_norm:
            self._renormalise(*mean_std(self.vec.stats))
        self.schedule.update(self.env_steps)
        self._update(*self._advantages(roll))
        self.iteration += 1
        returns, lengths = self.vec.pop_finished()
        steps = tr.rollout_steps * tr.num_envs
        self.env_steps += steps
        return Progress(returns, lengths, steps)

    def _renormalise(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Adopt new feature statistics without changing either head's function of the raw
        features: ``θ' = θ·std'/std``, ``b' = b + θ·(mean' − mean)/std``."""
        scale = torch.as_tensor(std / self.std, dtype=_DT)
        shift = torch.as_tensor((mean - self.mean) / self.std, dtype=_DT)
        with torch.no_grad():
            for w, b in ((self.theta, self.bias), (self.w_value, self.b_value)):
                b += w @ shift
                w *= scale
        self.mean, self.std = mean, std

    def _collect(self, horizon: int) -> Rollout:
        feats, actions, rewards, terms, truncs, finals = [], [], [], [], [], []
        for _ in range(horizon):
            with torch.no_grad():
                sample = self._sample(self._dist(self._norm(self.features)))
            feats.append(self.features)
            actions.append(sample.numpy())
            self.features, r, term, trunc, info = self.vec.step(self._env_action(sample))
            rewards.append(self._scale_rewards(r, term | trunc))
            terms.append(term)
            truncs.append(trunc)
            finals.append(info["final_features"])
        return Rollout(np.stack(feats), np.stack(actions), np.stack(rewards), np.stack(terms),
                       np.stack(truncs), np.stack(finals), self.features.copy())

    def _scale_rewards(self, r: np.ndarray, done: np.ndarray) -> np.ndarray:
        """``r`` divided by the running std of the discounted return (identity when off)."""
        tr = self.ctx.cfg.training
        if not tr.normalize_rewards:
            return r
        self.ret_acc = self.ret_acc * tr.gamma + r
        # Chan et al.'s parallel update of (count, mean, M2) with this step's returns
        n, mean, m2 = self.ret_stats
        k, bmean = len(r), float(self.ret_acc.mean())
        bm2 = float(((self.ret_acc - bmean) ** 2).sum())
        tot = n + k
        delta = bmean - mean
        self.ret_stats = np.array([tot, mean + delta * k / tot,
                                   m2 + bm2 + delta ** 2 * n * k / tot])
        self.ret_acc = np.where(done, 0.0, self.ret_acc)
        var = self.ret_stats[2] / self.ret_stats[0]
        # clipped as SB3's VecNormalize does: while every environment has earned the same
        # return (CartPole's first steps) the variance is ~0 and the quotient meaningless. A
        # sparse payment at the episode's end is many stds of the running return by nature,
        # and clipping it flattens the difference between short and long episodes.
        scaled = r / np.sqrt(var + 1e-8)
        return np.clip(scaled, -tr.reward_clip, tr.reward_clip) if tr.reward_clip > 0 else scaled

    def _advantages(self, roll: Rollout) -> tuple[torch.Tensor, ...]:
        """Normalised features, actions, old log-probs, advantages and returns, flattened."""
        gamma, lam = self.ctx.cfg.training.gamma, self.ctx.cfg.training.gae_lambda
        z = self._norm(roll.feats)
        acts = torch.as_tensor(roll.actions)
        with torch.no_grad():
            values = self._value(z).numpy()
            v_last = self._value(self._norm(roll.last)).numpy()
            v_final = self._value(self._norm(roll.final)).numpy()
            old_logp = self._log_prob(self._dist(z), acts)
        horizon = len(roll.rewards)
        next_v = np.concatenate([values[1:], v_last[None]])
        done = roll.terminated | roll.truncated
        next_v = np.where(roll.truncated, v_final, np.where(roll.terminated, 0.0, next_v))
        delta = roll.rewards + gamma * next_v - values
        adv = np.zeros_like(delta)
        running = np.zeros(delta.shape[1])
        for t in reversed(range(horizon)):
            running = delta[t] + gamma * lam * np.where(done[t], 0.0, running)
            adv[t] = running
        ret = adv + values
        return (_flat(z), _flat(acts), _flat(old_logp), torch.as_tensor(_flat(adv)),
                torch.as_tensor(_flat(ret)))

    def _update(self, z: torch.Tensor, acts: torch.Tensor, old_logp: torch.Tensor,
                adv: torch.Tensor, ret: torch.Tensor) -> None:
        tr = self.ctx.cfg.training
        n = z.shape[0]
        size = max(n // tr.minibatches, 1)
        heads = [[self.theta, self.bias, self.log_std], [self.w_value, self.b_value]]
        kls, clipped = [], []
        for _ in range(tr.epochs):
            order = torch.randperm(n, generator=self.gen)
            for start in range(0, n - size + 1, size):
                idx = order[start:start + size]
                zb = z[idx]
                zb = gaussian_noise(zb, tr.feature_noise, self.gen)
                dist = self._dist(zb)
                logp = self._log_prob(dist, acts[idx])
                ratio = (logp - old_logp[idx]).exp()
                a = adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8) if a.numel() > 1 else a
                policy = -torch.min(ratio * a, ratio.clamp(1 - tr.clip, 1 + tr.clip) * a).mean()
                value = 0.5 * ((self._value(zb) - ret[idx]) ** 2).mean()
                entropy = self._entropy(dist)
                loss = policy + tr.value_coef * value - tr.entropy_coef * entropy \
                    + readout_penalty([self.theta, self.w_value], tr.l1, tr.l2)
                self.opt.zero_grad()
                loss.backward()
                if tr.max_grad_norm > 0:  # per head: the critic's large early gradients
                    for head in heads:      # must not shrink the actor's step
                        torch.nn.utils.clip_grad_norm_(head, tr.max_grad_norm)
                self.opt.step()
                with torch.no_grad():
                    kls.append(float((old_logp[idx] - logp).mean()))
                    clipped.append(float(((ratio - 1).abs() > tr.clip).double().mean()))
        self.last_stats = {"approx_kl": float(np.mean(kls)), "clip_fraction": float(np.mean(
            clipped)), "lr": float(self.opt.param_groups[0]["lr"]),
            "value_loss": float(value.detach()), "entropy": float(entropy.detach())}

    def _entropy(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        h = dist.entropy()
        return (h if self.discrete else h.sum(-1)).mean()

    # ------------------------------------------------------------ results
    def readout(self) -> Readout:
        """The greedy policy: the actor's mean on the normalisation of the last update."""
        return Readout(self.theta.detach().numpy().copy(), self.bias.detach().numpy().copy(),
                       self.mean.copy(), self.std.copy())

    def warm_start(self, ro: Readout, freeze_norm: bool) -> None:
        """Start the actor from a trained readout (the critic starts at zero): the same function
        of the raw features, re-expressed in this learner's normalisation, or with
        ``freeze_norm`` the source's normalisation kept for the whole run."""
        with torch.no_grad():
            self.theta.copy_(torch.as_tensor(ro.theta, dtype=_DT))
            self.bias.copy_(torch.as_tensor(ro.bias, dtype=_DT))
        self.mean, self.std = ro.mean.astype(np.float64).copy(), ro.std.astype(np.float64).copy()
        self.frozen_norm = freeze_norm
        if not freeze_norm:
            self._renormalise(*mean_std(self.vec.stats))

    def summary(self) -> dict[str, Any]:
        """Counters and the last update's diagnostics."""
        return {"algorithm": "ppo", "iteration": self.iteration, "env_steps": self.env_steps,
                **self.last_stats}

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Both heads, the optimizer, the generator, the normalisation, the environments."""
        return {"params": {k: getattr(self, k).detach().clone() for k in _PARAMS},
                "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(),
                "features": self.features.copy(), "mean": self.mean.copy(),
                "std": self.std.copy(), "ret_acc": self.ret_acc.copy(),
                "ret_stats": self.ret_stats.copy(),
                "iteration": self.iteration, "env_steps": self.env_steps,
                "last_stats": dict(self.last_stats), "vec": self.vec.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (on a learner built from the same config)."""
        for k in _PARAMS:
            copy_into(getattr(self, k), state["params"][k])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self.features, self.mean, self.std = state["features"], state["mean"], state["std"]
        if "ret_acc" in state:  # states written before reward scaling existed lack it
            self.ret_acc, self.ret_stats = state["ret_acc"], state["ret_stats"]
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.last_stats = dict(state["last_stats"])
        self.vec.load_state_dict(state["vec"])


def _flat(x: Any) -> Any:
    """Merge the time and environment axes: (T, B, ...) -> (T·B, ...)."""
    return x.reshape(-1, *x.shape[2:])
