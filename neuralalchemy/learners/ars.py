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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neuralalchemy.config import Config
from neuralalchemy.rollout import FeatureStats, RolloutResult


@dataclass
class ArsState:
    """Everything needed to continue learning: weights, normaliser, counters, RNG."""

    theta: np.ndarray
    stats: FeatureStats
    rng: np.random.Generator
    iteration: int = 0
    env_steps: int = 0
    history: list[dict] = field(default_factory=list)


Rollout = Callable[[np.ndarray, np.ndarray, np.ndarray, int, FeatureStats | None], RolloutResult]
"""(weights (B, A, F), mean, std, seed, stats-to-update) -> one episode per row."""


def init_state(n_actions: int, n_features: int, seed: int) -> ArsState:
    """Zero readout, empty normaliser."""
    return ArsState(theta=np.zeros((n_actions, n_features)), stats=FeatureStats.empty(n_features),
                    rng=np.random.default_rng(seed))


def update(state: ArsState, cfg: Config, rollout: Rollout) -> RolloutResult:
    """One ARS update in place; returns the rollouts of the perturbed readouts."""
    tr, n = cfg.training, cfg.training.directions
    mean, std = state.stats.mean_std()
    deltas = state.rng.standard_normal((n, *state.theta.shape))
    nu = cfg.exploration.noise
    weights = np.concatenate([state.theta + nu * deltas, state.theta - nu * deltas])
    seed = int(state.rng.integers(2**31 - 1))
    result = rollout(weights, mean, std, seed, state.stats)
    r_plus, r_minus = result.returns[:n], result.returns[n:]
    top = np.argsort(-np.maximum(r_plus, r_minus), kind="stable")[: tr.top_directions]
    sigma = np.concatenate([r_plus[top], r_minus[top]]).std()
    if sigma > 0:
        step = np.einsum("k,kaf->af", r_plus[top] - r_minus[top], deltas[top])
        state.theta += tr.step_size / (len(top) * sigma) * step
    state.iteration += 1
    state.env_steps += result.env_steps
    return result
