"""Gymnasium environments: creation with clear errors, vectorisation and encoder calibration.

An environment is named by an *env spec*: a Gymnasium id, optionally followed by ``@`` and the
parameters of one task of a task family (:mod:`neuralalchemy.task_families`), e.g.
``CartPoleTask-v1@length=0.7,masspole=0.2``. The spec travels as one string through configs,
checkpoints and artifacts, so every backend rebuilds exactly the task the agent was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import neuralalchemy.tasks  # noqa: F401  registers the project's environments


class EnvError(ValueError):
    """The environment id is unknown or the environment unsuitable; the message says which."""


class ObservationError(EnvError):
    """An environment produced an observation the agent cannot encode (NaN, infinite, or
    outside the observation space it declares)."""


OBS_TOLERANCE = 1e-5
"""Relative slack on the declared bounds (float32 rounding of the environment's own clipping)."""


def check_observation(obs: Any, space: gym.spaces.Box, env_id: str, when: str) -> None:
    """Raise :class:`ObservationError` naming the first bad component of ``obs`` (any leading
    batch axes allowed) when it is not finite or lies outside ``space``'s bounds."""
    x = np.asarray(obs, dtype=np.float64)
    finite = np.isfinite(x)
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    slack = OBS_TOLERANCE * np.maximum(1.0, np.abs(np.where(np.isfinite(low), low, 0.0)))
    below = x < low - slack
    above = x > high + OBS_TOLERANCE * np.maximum(1.0, np.abs(np.where(np.isfinite(high), high,
                                                                         0.0)))
    bad = ~finite | below | above
    if not bad.any():
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    i, value = idx[-1], float(x[idx])
    what = (f"is {value}" if not np.isfinite(value) else
            f"= {value:.6g} is outside the declared bounds [{low[i]:.6g}, {high[i]:.6g}]")
    raise ObservationError(
        f"{env_id}: the observation {when} has component {i} that {what}; the agent cannot "
        "encode it: fix the environment (or widen its observation_space)")


class CheckedObservations(gym.Wrapper):  # type: ignore[type-arg]
    """Raises :class:`ObservationError` on an observation that is not finite or out of the
    declared Box (every reset and step)."""

    def __init__(self, env: gym.Env, env_id: str) -> None:
        super().__init__(env)
        self._env_id = env_id
        self._steps = 0

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self._steps = 0
        if isinstance(self.observation_space, gym.spaces.Box):
            check_observation(obs, self.observation_space, self._env_id, "after reset")
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        if isinstance(self.observation_space, gym.spaces.Box):
            check_observation(obs, self.observation_space, self._env_id,
                              f"after step {self._steps}")
        return obs, reward, terminated, truncated, info


class CheckedVectorObservations(gym.vector.VectorWrapper):
    """:class:`CheckedObservations` for a vector environment (all copies at once)."""

    def __init__(self, env: gym.vector.VectorEnv, env_id: str) -> None:
        super().__init__(env)
        self._env_id = env_id
        self._space = env.single_observation_space

    def _check(self, obs: Any, when: str) -> None:
        if isinstance(self._space, gym.spaces.Box):
            check_observation(obs, self._space, self._env_id, when)

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self._check(obs, "after reset")
        return obs, info

    def step(self, actions: Any) -> Any:
        out = self.env.step(actions)
        self._check(out[0], "after a step")
        return out


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


TASK_SEP = "@"


def parse_env_spec(spec: str) -> tuple[str, dict[str, float] | None]:
    """``"Id@k=v,k2=v2"`` → ``("Id", {"k": v, "k2": v2})``; a plain id → ``("Id", None)``."""
    env_id, sep, rest = spec.partition(TASK_SEP)
    if not env_id.strip():
        raise EnvError(f"env {spec!r}: the Gymnasium id before {TASK_SEP!r} is missing")
    if not sep:
        return env_id, None
    task: dict[str, float] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise EnvError(f"env {spec!r}: task parameters are written key=value,key=value "
                           f"(got {item!r})")
        if key in task:
            raise EnvError(f"env {spec!r}: task parameter {key!r} is given twice")
        try:
            task[key] = float(value)
        except ValueError:
            raise EnvError(f"env {spec!r}: task parameter {key}={value!r} is not a number") \
                from None
    return env_id, task


def format_env_spec(env_id: str, task: dict[str, float] | None) -> str:
    """The env spec of ``env_id`` with ``task`` (inverse of :func:`parse_env_spec`)."""
    if task is None:
        return env_id
    return env_id + TASK_SEP + ",".join(f"{k}={float(v)!r}" for k, v in task.items())


def _env_kwargs(spec: str) -> tuple[str, dict[str, Any]]:
    env_id, task = parse_env_spec(spec)
    return env_id, ({} if task is None else {"task": task})


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` of an env spec with a one-line error for an unknown id or a bad task."""
    spec = env_id
    env_id, task_kwargs = _env_kwargs(spec)
    try:
        return CheckedObservations(gym.make(env_id, **task_kwargs, **kwargs), spec)
    except (TypeError, ValueError) as exc:
        if not task_kwargs:
            raise
        raise EnvError(f"env {spec!r}: {str(exc).splitlines()[0]}") from None
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


def make_vec(env_id: str, n: int, **vector_kwargs: Any) -> gym.vector.VectorEnv:
    """``n`` copies of an env spec stepping together, numpy-vectorised where the environment
    offers it (and no ``vector_kwargs`` or task parameters are asked for)."""
    spec = env_id
    env_id, task_kwargs = _env_kwargs(spec)
    if not task_kwargs and not vector_kwargs:
        try:
            return CheckedVectorObservations(
                gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point"), spec)
        except (gym.error.Error, ValueError, TypeError, AttributeError):
            pass
    return CheckedVectorObservations(
        gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", vector_kwargs=vector_kwargs,
                     **task_kwargs), spec)


def calibrate_ranges(env_id: str, episodes: int, seed: int, changes: bool = False
                     ) -> np.ndarray:
    """Range ``[low, high]`` per observation dimension for the encoder.

    Random-policy episodes give the 1st and 99th percentile of each dimension; the range is
    doubled about its centre (a trained agent visits states a random one rarely reaches) and then
    limited to the observation space's finite bounds. With ``changes``, D more rows follow: the
    same for each dimension's change between consecutive steps of an episode (not limited).
    """
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    seen, deltas = [], []
    for _ in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        seen.append(obs)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            deltas.append(np.asarray(obs, dtype=np.float64) - seen[-1])
            seen.append(obs)
            done = term or trunc
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box)  # env_info admits flat Box observations only
    env.close()
    lo, hi = _doubled_percentiles(np.asarray(seen, dtype=np.float64))
    low = np.where(np.isfinite(space.low), space.low, -np.inf)
    high = np.where(np.isfinite(space.high), space.high, np.inf)
    ranges = np.stack([np.maximum(lo, low), np.minimum(hi, high)], axis=1)
    if not changes:
        return ranges
    dims = ranges.shape[0]
    change = np.stack(_doubled_percentiles(np.asarray(deltas, dtype=np.float64).reshape(-1, dims)),
                      axis=1)
    return np.vstack([ranges, change])


def _doubled_percentiles(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1st-99th percentile range of each column, doubled about its centre (half ≥ 1e-3)."""
    lo, hi = np.percentile(data, 1, axis=0), np.percentile(data, 99, axis=0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3)
    return mid - 2 * half, mid + 2 * half
