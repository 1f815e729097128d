"""Bayesian linear Q-learning on the readout: closed-form posteriors, fitted-Q refits, Thompson
sampling (in the spirit of BDQN, Azizzadenesheli et al. 2018, with the network's last layer
replaced by the fixed reservoir and LSPI-style batch refits).

Features ``x = [(f − mean) / std, 1]`` (the 1 carries the bias). For each action ``a`` the readout
row ``w_a`` has the prior ``N(0, λ⁻¹ I)`` (``λ = prior_precision + 2·l2``) and the likelihood
``y ~ N(x·w_a, σ²)``, so given the replayed transitions ``X_a`` that took ``a`` and their targets

    P_a = λ·I + X_aᵀX_a / σ²,    μ_a = P_a⁻¹ X_aᵀ y_a / σ²,    w_a | data ~ N(μ_a, P_a⁻¹).

Each refit (every ``refit_every`` environment steps) runs ``fitted_q_iterations`` sweeps of

    y = r + γ · [not terminated] · max_a' x'·μ_a'

over the replay (the last ``replay_size`` transitions), re-solving ``μ`` with the Cholesky factor
of each ``P_a`` (computed once per refit); a truncated episode bootstraps from its last
observation. ``σ²`` is ``noise_var`` or, if None, the mean squared residual of the previous
refit. Exploration: each environment acts greedily on its own draw ``w̃ ~ N(μ, s²·P⁻¹)``
(``s = thompson_scale``), redrawn when its episode ends (or every ``thompson_every`` steps)
and after every refit;
with ``thompson`` off, ε-greedy on ``μ``. The result is the greedy readout ``θ = μ`` (weights
and bias). Discrete actions only.

An informative prior ``w ~ N(m, P0⁻¹)`` over all actions' readouts jointly (a
:class:`GaussianPrior`: a meta-learned prior, whose actions are correlated, or the posterior of an
earlier task in continual learning) replaces ``N(0, λ⁻¹ I)``. With ``w = (w_1, …, w_A)`` stacked,
the likelihood adds ``X_aᵀX_a / σ²`` to action ``a``'s diagonal block:

    P = P0 + blockdiag(X_aᵀX_a) / σ²,    μ = P⁻¹ (P0 m + (X_aᵀ y_a)_a / σ²).

Under the default isotropic prior the blocks stay independent and this is the per-action form.

Such a prior is stated on fixed feature normalisation statistics, which the learner then keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuralalchemy.learners.base import Context, Progress, Readout
from neuralalchemy.learners.optim import l2_precision
from neuralalchemy.train_state import ResumeError, rng_state, set_rng_state
from neuralalchemy.vecfeatures import from_context, mean_std

_MIN_NOISE_VAR = 1e-3


class Replay:
    """A ring buffer of transitions ``(f, a, r, f', terminated)`` with raw features."""

    def __init__(self, capacity: int, n_features: int):
        self.f = np.zeros((capacity, n_features), dtype=np.float32)
        self.f_next = np.zeros((capacity, n_features), dtype=np.float32)
        self.a = np.zeros(capacity, dtype=np.int64)
        self.r = np.zeros(capacity)
        self.term = np.zeros(capacity, dtype=bool)
        self.size, self.pos, self.capacity = 0, 0, capacity

    def add(self, f: np.ndarray, a: np.ndarray, r: np.ndarray, f_next: np.ndarray,
            term: np.ndarray) -> None:
        """Append a batch of transitions, overwriting the oldest when full."""
        for i in range(len(a)):
            p = self.pos
            self.f[p], self.a[p], self.r[p] = f[i], a[i], r[i]
            self.f_next[p], self.term[p] = f_next[i], term[i]
            self.pos = (p + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    _FIELDS = ("f", "f_next", "a", "r", "term")

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the buffer and its position."""
        n = self.size
        return {"capacity": self.capacity, "size": n, "pos": self.pos,
                **{k: getattr(self, k)[:n].copy() for k in self._FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a buffer of the same capacity and width."""
        if int(state["capacity"]) != self.capacity or state["f"].shape[1:] != self.f.shape[1:]:
            raise ResumeError("the saved replay buffer does not fit this run's")
        n = int(state["size"])
        for k in self._FIELDS:
            getattr(self, k)[:n] = state[k]
        self.size, self.pos = n, int(state["pos"])

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Replay:
        """A buffer rebuilt from :meth:`state_dict`."""
        out = cls(int(state["capacity"]), state["f"].shape[1])
        out.load_state_dict(state)
        return out


@dataclass
class GaussianPrior:
    """A Gaussian over the readout ``w`` (A actions × D = features + 1) on features
    ``[(f − f_mean)/f_std, 1]``: ``mean`` (A, D) and a precision that is diagonal (A, D), per
    action (A, D, D), or joint over all actions (A·D, A·D; row-major ``w.ravel()``)."""

    mean: np.ndarray
    precision: np.ndarray
    feat_mean: np.ndarray
    feat_std: np.ndarray

    def joint_precision(self) -> np.ndarray:
        """(A·D, A·D) precision of ``w.ravel()``."""
        a, d = self.mean.shape
        p = self.precision
        if p.shape == (a * d, a * d):
            return p
        if p.shape == (a, d):
            return np.diag(p.ravel())
        out = np.zeros((a * d, a * d))
        for i in range(a):
            out[i * d:(i + 1) * d, i * d:(i + 1) * d] = p[i]
        return out

    def check(self, n_actions: int, n_features: int) -> None:
        """A one-line error when this prior does not fit the learner's readout."""
        a, d = n_actions, n_features + 1
        ok = self.mean.shape == (a, d) and self.precision.shape in ((a, d), (a, d, d),
                                                                     (a * d, a * d))
        if not ok:
            raise ValueError(f"prior: readout shape {self.mean.shape} does not match this "
                             f"agent's {(a, d)} (actions, features + 1): use a prior fitted on "
                             "the same reservoir and environment family")


def subsample_index(replay: Replay, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``n`` transitions of ``replay``, drawn without replacement."""
    return rng.choice(replay.size, size=min(n, replay.size), replace=False)


def subsample(replay: Replay, n: int, rng: np.random.Generator,
              idx: np.ndarray | None = None) -> Replay:
    """At most ``n`` transitions of ``replay`` drawn without replacement (a new buffer); ``idx``
    gives them (from :func:`subsample_index`) instead of a fresh draw."""
    if idx is None:
        idx = subsample_index(replay, n, rng)
    out = Replay(max(len(idx), 1), replay.f.shape[1])
    out.add(replay.f[idx], replay.a[idx], replay.r[idx], replay.f_next[idx], replay.term[idx])
    return out


def merge(a: Replay | None, b: Replay) -> Replay:
    """One buffer holding the transitions of both."""
    if a is None or a.size == 0:
        return b
    out = Replay(a.size + b.size, b.f.shape[1])
    for r in (a, b):
        k = r.size
        out.add(r.f[:k], r.a[:k], r.r[:k], r.f_next[:k], r.term[:k])
    return out


class Blq:
    """Bayesian linear Q-learning; one :meth:`step` is ``refit_every`` env steps and a refit."""

    def __init__(self, ctx: Context, prior: GaussianPrior | None = None):
        tr, ex = ctx.cfg.training, ctx.cfg.exploration
        if not ctx.info.discrete:
            raise ValueError(f"training.algorithm=blq needs discrete actions; {ctx.info.env_id} "
                             "has a Box action space: use training.algorithm=ppo")
        if tr.l1 > 0:
            raise ValueError("training.l1: blq's closed-form posterior has no L1 penalty; set it "
                             "to 0 (training.l2 and prior_precision regularise blq)")
        self.ctx, self.tr, self.ex = ctx, tr, ex
        self.n_actions, dim = ctx.info.n_actions, ctx.n_features + 1
        self.precision = tr.prior_precision + l2_precision(tr.l2)
        self.noise_var = tr.noise_var if tr.noise_var is not None else 1.0
        self.vec = from_context(ctx, tr.num_envs, tr.seed)
        self.rng = np.random.default_rng([tr.seed, 0xB10])
        self.replay = Replay(tr.replay_size, ctx.n_features)
        self.kept: Replay | None = None
        # the last refit's own rows: features (noise included), actions, targets, noise variance
        self.last_fit: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.fixed_norm = prior is not None
        if prior is None:
            self.prior_precision = self.precision * np.eye(self.n_actions * dim)
            self.mu = np.zeros((self.n_actions, dim))
            self.mean, self.std = mean_std(self.vec.stats)
        else:
            prior.check(self.n_actions, ctx.n_features)
            self.prior_precision = prior.joint_precision().astype(np.float64)
            self.mu = prior.mean.astype(np.float64).copy()
            self.mean, self.std = prior.feat_mean.copy(), prior.feat_std.copy()
        self.prior_shift = self.prior_precision @ self.mu.ravel()
        # Cholesky factor of the joint posterior precision (before any data: the prior's)
        self.chol = np.linalg.cholesky(self.prior_precision)
        self.features = self.vec.reset(tr.seed)
        self.sampled = self._draw(tr.num_envs)
        self.since_draw = np.zeros(tr.num_envs, dtype=np.int64)
        self.iteration = 0
        self.env_steps = 0
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------ acting
    def _x(self, f: np.ndarray) -> np.ndarray:
        z = (f - self.mean) / self.std
        return np.concatenate([z, np.ones((*z.shape[:-1], 1))], axis=-1)

    def _draw(self, n: int) -> np.ndarray:
        """``n`` readouts ``μ + s·L⁻ᵀε`` (P = L·Lᵀ), shape (n, A, F+1)."""
        from scipy.linalg import solve_triangular

        eps = self.rng.standard_normal((self.mu.size, n))
        dev = solve_triangular(self.chol, eps, lower=True, trans="T")
        out = self.mu.ravel()[None] + self.ex.thompson_scale * dev.T
        return out.reshape(n, *self.mu.shape)

    def _act(self) -> np.ndarray:
        x = self._x(self.features)
        if self.ex.thompson:
            return np.argmax(np.einsum("baf,bf->ba", self.sampled, x), axis=1)
        greedy = np.argmax(x @ self.mu.T, axis=1)
        explore = self.rng.random(len(greedy)) < self.ex.epsilon
        return np.where(explore, self.rng.integers(self.n_actions, size=len(greedy)), greedy)

    def _redraw(self, done: np.ndarray) -> None:
        self.since_draw += 1
        every = self.ex.thompson_every
        due = done | (self.since_draw >= every) if every > 0 else done
        if self.ex.thompson and due.any():
            self.sampled[due] = self._draw(int(due.sum()))
            self.since_draw[due] = 0

    # ------------------------------------------------------------ one iteration
    def step(self) -> Progress:
        """Collect ``refit_every`` env steps with the current posterior, then refit it."""
        start = self.vec.env_steps
        while self.vec.env_steps - start < self.tr.refit_every:
            self._transition()
        return self._finish_iteration(start)

    def run_episodes(self, episodes: int) -> Progress:
        """Act until ``episodes`` more episodes have ended (refitting every ``refit_every``
        steps on the way), then refit: the adaptation loop's unit of experience."""
        start, ended = self.vec.env_steps, 0
        since = 0
        while ended < episodes:
            ended += int(self._transition().sum())
            since += self.vec.num_envs
            if since >= self.tr.refit_every and ended < episodes:
                self._refit()
                since = 0
        return self._finish_iteration(start)

    def _transition(self) -> np.ndarray:
        """One step of every environment; returns which episodes ended."""
        actions = self._act()
        f_next, r, term, trunc, info = self.vec.step(actions)
        done = term | trunc
        target_f = np.where(done[:, None], info["final_features"], f_next)
        self.replay.add(self.features, actions, r, target_f, term)
        self.features = f_next
        self._redraw(done)
        return done

    def _finish_iteration(self, start: int) -> Progress:
        self._refit()
        self.iteration += 1
        steps = self.vec.env_steps - start
        self.env_steps += steps
        returns, lengths = self.vec.pop_finished()
        return Progress(returns, lengths, steps)

    def _replayed(self) -> tuple[np.ndarray, ...]:
        """Normalised replay (plus any kept transitions of earlier tasks): x, x', a, r, keep."""
        n = self.replay.size
        f, f_next = self.replay.f[:n], self.replay.f_next[:n]
        acts, r, term = self.replay.a[:n], self.replay.r[:n], self.replay.term[:n]
        if self.kept is not None and self.kept.size:
            k = self.kept.size
            f, f_next = np.concatenate([f, self.kept.f[:k]]), np.concatenate(
                [f_next, self.kept.f_next[:k]])
            acts, r = np.concatenate([acts, self.kept.a[:k]]), np.concatenate([r, self.kept.r[:k]])
            term = np.concatenate([term, self.kept.term[:k]])
        x = self._x(f.astype(np.float64))
        x_next = self._x(f_next.astype(np.float64))
        return x, x_next, acts, r, (~term).astype(np.float64)

    def _refit(self) -> None:
        """Fitted-Q sweeps with per-action Bayesian linear regressions (see module docstring)."""
        if not self.fixed_norm:
            self.mean, self.std = mean_std(self.vec.stats)
        x, x_next, acts, r, keep = self._replayed()
        if self.tr.feature_noise > 0:
            x[:, :-1] += self.tr.feature_noise * self.rng.standard_normal(x[:, :-1].shape)
        gamma, s2 = self.tr.gamma, self.noise_var
        members = [np.flatnonzero(acts == a) for a in range(self.n_actions)]
        x_by_action = [x[m] for m in members]
        precision = _blocks(self.prior_precision, x_by_action, x_by_action, s2)
        chol = np.linalg.cholesky(precision)
        mu = self.mu.copy()
        for _ in range(self.tr.fitted_q_iterations):
            y = r + gamma * keep * (x_next @ mu.T).max(axis=1)
            rhs = _blocks(self.prior_shift, x_by_action, [y[m] for m in members], s2)
            mu = _chol_solve(chol, rhs).reshape(mu.shape)
        resid = y - np.einsum("nf,nf->n", x, mu[acts])
        n_own = self.replay.size  # the task's own rows come first (see _replayed)
        self.last_fit = (x[:n_own], acts[:n_own], y[:n_own], s2)
        if self.tr.noise_var is None:
            self.noise_var = max(float(np.mean(resid ** 2)), _MIN_NOISE_VAR)
        self.mu, self.chol = mu, chol
        self.sampled = self._draw(self.tr.num_envs)
        self.last_stats = {"noise_var": float(self.noise_var), "replay": float(len(r)),
                           "q_mean": float((x @ mu.T).max(axis=1).mean())}

    def regression_data(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The current regression problem per action: features ``x`` (n_a, D) and fitted-Q
        targets ``y = r + γ·max_a' x'·μ_a'`` under the current posterior mean."""
        x, x_next, acts, r, keep = self._replayed()
        y = r + self.tr.gamma * keep * (x_next @ self.mu.T).max(axis=1)
        members = [np.flatnonzero(acts == a) for a in range(self.n_actions)]
        return [x[m] for m in members], [y[m] for m in members]

    def keep_transitions(self, replay: Replay) -> None:
        """Transitions of earlier tasks to include in every refit (continual learning)."""
        self.kept = replay

    # ------------------------------------------------------------ results
    def posterior(self) -> GaussianPrior:
        """The current posterior ``N(μ_a, P_a⁻¹)`` (a prior for the next task)."""
        precision = self.chol @ self.chol.T
        return GaussianPrior(self.mu.copy(), precision, self.mean.copy(), self.std.copy())

    def own_posterior(self, drop: np.ndarray | None = None) -> GaussianPrior:
        """The last refit's posterior restricted to the prior and this task's own transitions:
        kept transitions of earlier tasks and the own ones at indices ``drop`` left out (same
        features, fitted-Q targets and noise variance as that refit, so with nothing left out it
        is :meth:`posterior`). Passed on as the next task's prior while those transitions are
        replayed there, it counts no transition twice (VCL with a coreset, Nguyen et al. 2018)."""
        if self.last_fit is None:
            raise ValueError("own_posterior needs a refit first: call step()")
        x, acts, y, s2 = self.last_fit
        use = np.ones(len(y), dtype=bool)
        if drop is not None:
            use[drop] = False
        x, acts, y = x[use], acts[use], y[use]
        xs = [x[acts == a] for a in range(self.n_actions)]
        precision = _blocks(self.prior_precision, xs, xs, s2)
        rhs = _blocks(self.prior_shift, xs, [y[acts == a] for a in range(self.n_actions)], s2)
        mu = _chol_solve(np.linalg.cholesky(precision), rhs).reshape(self.mu.shape)
        return GaussianPrior(mu, precision, self.mean.copy(), self.std.copy())

    def q_stats(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of every action's value for raw features ``f`` (B, N):
        ``E[Q] = x·μ_a`` and ``sd[Q] = √(x P_a⁻¹ xᵀ)`` (epistemic; add ``noise_var`` for the
        predictive spread of one return)."""
        from scipy.linalg import solve_triangular

        x = self._x(np.atleast_2d(f).astype(np.float64))
        mean = x @ self.mu.T
        sd = np.empty_like(mean)
        dim = x.shape[1]
        for a in range(self.n_actions):
            phi = np.zeros((self.mu.size, len(x)))
            phi[a * dim:(a + 1) * dim] = x.T
            half = solve_triangular(self.chol, phi, lower=True)
            sd[:, a] = np.sqrt((half ** 2).sum(axis=0))
        return mean, sd

    def readout(self) -> Readout:
        """The greedy readout: posterior means (weights and bias) on the refit's normalisation."""
        return Readout(self.mu[:, :-1].copy(), self.mu[:, -1].copy(), self.mean.copy(),
                       self.std.copy())

    def warm_start(self, ro: Readout, freeze_norm: bool = True) -> None:
        """Centre the prior on a trained readout (Bayesian transfer: the data of this task
        move the posterior away from it as far as they warrant). The source's normalisation is
        kept for the whole run, whatever ``freeze_norm`` says, so that the prior mean keeps its
        meaning."""
        self.mean, self.std = ro.mean.astype(np.float64).copy(), ro.std.astype(np.float64).copy()
        self.fixed_norm = True
        self.mu = np.concatenate([ro.theta, ro.bias[:, None]], axis=1).astype(np.float64)
        self.prior_shift = self.prior_precision @ self.mu.ravel()
        self.sampled = self._draw(self.tr.num_envs)

    def recentre(self, mean: np.ndarray) -> None:
        """Move the prior's mean to ``mean`` (A, D), keeping its precision, and refit on the
        transitions so far (a mixture prior whose component the task turned out to be another:
        the data stay, the prior they are weighed against changes)."""
        self.mu = np.asarray(mean, dtype=np.float64).copy()
        self.prior_shift = self.prior_precision @ self.mu.ravel()
        if self.replay.size:
            self._refit()
        else:
            self.sampled = self._draw(self.tr.num_envs)

    def summary(self) -> dict[str, Any]:
        """Counters and the last refit's diagnostics."""
        return {"algorithm": "blq", "iteration": self.iteration, "env_steps": self.env_steps,
                **self.last_stats}

    # ------------------------------------------------------------ resume
    _ARRAYS = ("mu", "chol", "mean", "std", "sampled", "since_draw", "features",
               "prior_precision", "prior_shift")

    def state_dict(self) -> dict[str, Any]:
        """Posterior, replay, exploration draws, generator, counters and environments."""
        return {**{k: getattr(self, k).copy() for k in self._ARRAYS},
                "noise_var": self.noise_var, "fixed_norm": self.fixed_norm,
                "rng": rng_state(self.rng), "replay": self.replay.state_dict(),
                "kept": None if self.kept is None else self.kept.state_dict(),
                "iteration": self.iteration, "env_steps": self.env_steps,
                "last_stats": dict(self.last_stats), "vec": self.vec.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (on a learner built from the same config)."""
        for k in self._ARRAYS:
            if state[k].shape != getattr(self, k).shape:
                raise ResumeError(f"the saved posterior ({k}) does not fit this run's learner")
            setattr(self, k, state[k])
        self.noise_var, self.fixed_norm = float(state["noise_var"]), bool(state["fixed_norm"])
        set_rng_state(self.rng, state["rng"])
        self.replay.load_state_dict(state["replay"])
        self.kept = None if state["kept"] is None else Replay.from_state(state["kept"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.last_stats = dict(state["last_stats"])
        self.vec.load_state_dict(state["vec"])


def _blocks(base: np.ndarray, xs: list[np.ndarray], ys: list[np.ndarray], s2: float) -> np.ndarray:
    """``base`` plus ``xᵀy / s2`` of each action in its own block: with ``ys = xs`` the joint
    posterior precision (base: the prior's), with the targets its shift (base: ``P₀·μ₀``)."""
    out = base.copy()
    dim = xs[0].shape[1]
    for a, (xa, ya) in enumerate(zip(xs, ys)):
        block = slice(a * dim, (a + 1) * dim)
        if out.ndim == 2:
            out[block, block] += xa.T @ ya / s2
        else:
            out[block] += xa.T @ ya / s2
    return out


def _chol_solve(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``P⁻¹·rhs`` given the lower Cholesky factor of ``P``."""
    from scipy.linalg import cho_solve

    return cho_solve((lower, True), rhs)

