"""Augmented Random Search (Mania, Guy & Recht 2018, "Simple random search provides a competitive
approach to reinforcement learning", algorithm V2-t) on the reservoir's linear readout.

Each update draws ``n`` directions ``δ_k`` of the readout weights ``θ`` (A × F), runs one episode
with ``θ + ν·δ_k`` and one with ``θ − ν·δ_k`` (all ``2n`` episodes step together through the batched
engine), keeps the ``b`` directions with the best ``max(r⁺, r⁻)`` and moves

    θ ← θ + α / (b·σ_R) · Σ_k (r⁺_k − r⁻_k) · δ_k

with ``σ_R`` the standard deviation of the ``2b`` kept returns. Features are normalised by running
mean and standard deviation (V2); the normalisation is folded into the readout at export.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralalchemy.learners.base import Context, Progress, Readout
from neuralalchemy.rollout import FeatureStats
from neuralalchemy.train_state import rng_state, set_rng_state

PSEUDO_COUNT = 10_000.0
"""A warm start's feature statistics count as this many samples (new data soon outweighs them)."""


class Ars:
    """ARS V2-t on the readout; one :meth:`step` is one update."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.theta = np.zeros((ctx.info.n_actions, ctx.n_features))
        self.bias = np.zeros(ctx.info.n_actions)  # fixed; non-zero only after a warm start
        self.stats = FeatureStats.empty(ctx.n_features)
        self.frozen_norm = False
        self.rng = np.random.default_rng(ctx.cfg.training.seed)
        self.iteration = 0
        self.env_steps = 0

    def step(self) -> Progress:
        """One ARS update in place."""
        tr, nu = self.ctx.cfg.training, self.ctx.cfg.exploration.noise
        n = tr.directions
        mean, std = self.stats.mean_std()
        deltas = self.rng.standard_normal((n, *self.theta.shape))
        weights = np.concatenate([self.theta + nu * deltas, self.theta - nu * deltas])
        seed = int(self.rng.integers(2**31 - 1))
        biases = np.repeat(self.bias[None], len(weights), axis=0)
        result = self.ctx.episodes(weights, biases, mean, std, seed,
                                   None if self.frozen_norm else self.stats)
        r_plus, r_minus = result.returns[:n], result.returns[n:]
        top = np.argsort(-np.maximum(r_plus, r_minus), kind="stable")[: tr.top_directions]
        sigma = np.concatenate([r_plus[top], r_minus[top]]).std()
        if sigma > 0:
            step = np.einsum("k,kaf->af", r_plus[top] - r_minus[top], deltas[top])
            self.theta += tr.step_size / (len(top) * sigma) * step
        self.iteration += 1
        self.env_steps += result.env_steps
        return Progress(result.returns, result.lengths, result.env_steps)

    def readout(self) -> Readout:
        """The current readout (deterministic: ARS explores in parameter space)."""
        mean, std = self.stats.mean_std()
        return Readout(self.theta.copy(), self.bias.copy(), mean, std)

    def warm_start(self, ro: Readout, freeze_norm: bool) -> None:
        """Start from a trained readout: its weights and bias, and its feature normalisation as
        :data:`PSEUDO_COUNT` samples that new data updates (never, with ``freeze_norm``). The
        bias stays fixed: ARS searches the weights only."""
        self.theta = ro.theta.astype(np.float64).copy()
        self.bias = ro.bias.astype(np.float64).copy()
        self.stats = FeatureStats.from_mean_std(ro.mean, ro.std, PSEUDO_COUNT)
        self.frozen_norm = freeze_norm

    def summary(self) -> dict[str, Any]:
        """Counters."""
        return {"algorithm": "ars", "iteration": self.iteration, "env_steps": self.env_steps}

    def state_dict(self) -> dict[str, Any]:
        """Readout, feature statistics, generator and counters."""
        return {"theta": self.theta.copy(), "bias": self.bias.copy(),
                "stats": self.stats.state_dict(),
                "rng": rng_state(self.rng), "iteration": self.iteration,
                "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.theta = state["theta"].copy()
        self.bias = np.asarray(state.get("bias", np.zeros(self.theta.shape[0]))).copy()
        self.stats.load_state_dict(state["stats"])
        set_rng_state(self.rng, state["rng"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
