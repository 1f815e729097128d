"""Gymnasium environments: creation with clear errors, vectorisation and encoder calibration."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import neuralalchemy.tasks  # noqa: F401  registers the project's environments


class EnvError(ValueError):
    """The environment id is unknown or the environment unsuitable; the message says which."""


@dataclass(frozen=True)
class EnvInfo:
    """What the agent needs to know about an environment."""

    env_id: str
    obs_dim: int
    n_actions: int  # discrete actions, or action dimensions for a Box
    discrete: bool
    action_low: np.ndarray
    action_high: np.ndarray
    reward_threshold: float | None
    max_episode_steps: int | None


def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """``gym.make`` with a one-line error for an unknown id."""
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        close = [k for k in gym.registry if k.split("-")[0].lower() == env_id.split("-")[0].lower()]
        hint = f" (did you mean {close[0]}?)" if close else " (see `alchemy info --envs`)"
        raise EnvError(f"unknown environment id {env_id!r}{hint}: {str(exc).splitlines()[0]}") \
            from None


def env_info(env_id: str) -> EnvInfo:
    """Spaces and thresholds of an environment (checked to be supported)."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise EnvError(f"{env_id}: observations must be a flat Box, got {obs_space}")
        spec = env.spec
        if isinstance(act_space, gym.spaces.Discrete):
            return EnvInfo(env_id, int(obs_space.shape[0]), int(act_space.n), True,
                           np.zeros(0), np.zeros(0), spec.reward_threshold if spec else None,
                           spec.max_episode_steps if spec else None)
        if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            return EnvInfo(env_id, int(obs_space.shape[0]), int(act_space.shape[0]), False,
                           act_space.low.astype(np.float64), act_space.high.astype(np.float64),
                           spec.reward_threshold if spec else None,
                           spec.max_episode_steps if spec else None)
        raise EnvError(f"{env_id}: actions must be Discrete or a flat Box, got {act_space}")
    finally:
        env.close()


def make_vec(env_id: str, n: int) -> gym.vector.VectorEnv:
    """``n`` copies stepping together, numpy-vectorised where the environment offers it."""
    try:
        return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    except (gym.error.Error, ValueError, TypeError, AttributeError):
        return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")


def calibrate_ranges(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Range ``[low, high]`` per observation dimension for the encoder.

    Random-policy episodes give the 1st and 99th percentile of each dimension; the range is
    doubled about its centre (a trained agent visits states a random one rarely reaches) and then
    limited to the observation space's finite bounds.
    """
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    seen = []
    for _ in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        seen.append(obs)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            seen.append(obs)
            done = term or trunc
    space = env.observation_space
    env.close()
    data = np.asarray(seen, dtype=np.float64)
    lo, hi = np.percentile(data, 1, axis=0), np.percentile(data, 99, axis=0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3)
    lo, hi = mid - 2 * half, mid + 2 * half
    low = np.where(np.isfinite(space.low), space.low, -np.inf)
    high = np.where(np.isfinite(space.high), space.high, np.inf)
    lo, hi = np.maximum(lo, low), np.minimum(hi, high)
    return np.stack([lo, hi], axis=1)
