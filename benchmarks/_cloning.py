"""What the capacity benchmarks share: a learner's context from a shipped config, greedy
evaluation episodes, and the ridge fit that clones a teacher onto features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from neuralalchemy.config import load_config
from neuralalchemy.envs import env_info
from neuralalchemy.learners.base import Context
from neuralalchemy.train import EVAL_SEED, build_context, encoder_ranges


def context(config: str, overrides: list[str], seed: int) -> Context:
    """The context ``train`` would build from the shipped ``config`` with ``overrides``, its
    reservoir and learner seeded with ``seed``."""
    cfg = load_config(config, overrides=[f"reservoir.seed={seed}", f"training.seed={seed}",
                                         *overrides], environ={})
    info = env_info(cfg.env)
    return build_context(cfg, info, encoder_ranges(cfg, info))


def play(env_id: str, act: Callable[[np.ndarray], Any], episodes: int) -> np.ndarray:
    """Returns of ``act(obs) -> env action`` on the evaluation episodes training uses
    (seeds ``EVAL_SEED + i``)."""
    env = gym.make(env_id)
    out = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        done = False
        while not done:
            obs, reward, term, trunc, _ = env.step(act(obs))
            out[i] += reward
            done = term or trunc
    env.close()
    return out


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Weights (F + 1, …) of ``y ≈ [x, 1]·w`` minimising ``|[x, 1]·w − y|² + lam·|w|²``."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(x1.T @ x1 + lam * np.eye(x1.shape[1]), x1.T @ y)
