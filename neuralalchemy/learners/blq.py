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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralalchemy.learners.base import Context, Progress, Readout
from neuralalchemy.learners.optim import l2_precision
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


class Blq:
    """Bayesian linear Q-learning; one :meth:`step` is ``refit_every`` env steps and a refit."""

    def __init__(self, ctx: Context):
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
        self.mu = np.zeros((self.n_actions, dim))
        # Cholesky factors of the posterior precisions (prior: sqrt(λ)·I)
        self.chol = np.repeat(np.sqrt(self.precision) * np.eye(dim)[None], self.n_actions, 0)
        self.mean, self.std = mean_std(self.vec.stats)
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

        dim = self.mu.shape[1]
        out = np.empty((n, self.n_actions, dim))
        for a in range(self.n_actions):
            eps = self.rng.standard_normal((dim, n))
            dev = solve_triangular(self.chol[a], eps, lower=True, trans="T")
            out[:, a] = self.mu[a] + self.ex.thompson_scale * dev.T
        return out

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
            actions = self._act()
            f_next, r, term, trunc, info = self.vec.step(actions)
            done = term | trunc
            target_f = np.where(done[:, None], info["final_features"], f_next)
            self.replay.add(self.features, actions, r, target_f, term)
            self.features = f_next
            self._redraw(done)
        self._refit()
        self.iteration += 1
        steps = self.vec.env_steps - start
        self.env_steps += steps
        returns, lengths = self.vec.pop_finished()
        return Progress(returns, lengths, steps)

    def _refit(self) -> None:
        """Fitted-Q sweeps with per-action Bayesian linear regressions (see module docstring)."""
        n = self.replay.size
        self.mean, self.std = mean_std(self.vec.stats)
        x = self._x(self.replay.f[:n].astype(np.float64))
        x_next = self._x(self.replay.f_next[:n].astype(np.float64))
        if self.tr.feature_noise > 0:
            x[:, :-1] += self.tr.feature_noise * self.rng.standard_normal(x[:, :-1].shape)
        acts, r = self.replay.a[:n], self.replay.r[:n]
        keep = (~self.replay.term[:n]).astype(np.float64)
        gamma, s2 = self.tr.gamma, self.noise_var
        dim = x.shape[1]
        chol = np.empty((self.n_actions, dim, dim))
        members = [np.flatnonzero(acts == a) for a in range(self.n_actions)]
        x_by_action = [x[m] for m in members]
        for a, xa in enumerate(x_by_action):
            chol[a] = np.linalg.cholesky(self.precision * np.eye(dim) + xa.T @ xa / s2)
        mu = self.mu.copy()
        for _ in range(self.tr.fitted_q_iterations):
            y = r + gamma * keep * (x_next @ mu.T).max(axis=1)
            for a, (m, xa) in enumerate(zip(members, x_by_action)):
                mu[a] = _chol_solve(chol[a], xa.T @ y[m] / s2)
        resid = y - np.einsum("nf,nf->n", x, mu[acts])
        if self.tr.noise_var is None:
            self.noise_var = max(float(np.mean(resid ** 2)), _MIN_NOISE_VAR)
        self.mu, self.chol = mu, chol
        self.sampled = self._draw(self.tr.num_envs)
        self.last_stats = {"noise_var": float(self.noise_var), "replay": float(n),
                           "q_mean": float((x @ mu.T).max(axis=1).mean())}

    # ------------------------------------------------------------ results
    def readout(self) -> Readout:
        """The greedy readout: posterior means (weights and bias) on the refit's normalisation."""
        return Readout(self.mu[:, :-1].copy(), self.mu[:, -1].copy(), self.mean.copy(),
                       self.std.copy())

    def summary(self) -> dict[str, Any]:
        """Counters and the last refit's diagnostics."""
        return {"algorithm": "blq", "iteration": self.iteration, "env_steps": self.env_steps,
                **self.last_stats}


def _chol_solve(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``P⁻¹·rhs`` given the lower Cholesky factor of ``P``."""
    from scipy.linalg import cho_solve

    return cho_solve((lower, True), rhs)

