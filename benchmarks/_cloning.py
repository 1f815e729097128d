"""What the capacity benchmarks share: greedy evaluation episodes and the ridge fit that clones
a teacher onto features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from neuralalchemy.train import EVAL_SEED


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


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Weights (F + 1, …) of ``y ≈ [x, 1]·w`` minimising ``|[x, 1]·w − y|² + lam·|w|²``."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(x1.T @ x1 + lam * np.eye(x1.shape[1]), x1.T @ y)
