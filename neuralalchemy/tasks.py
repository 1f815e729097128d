"""The project's own Gymnasium environments, registered on import (idempotently).

* ``MaskedCartPole-v1``: CartPole-v1 observing only cart position ``x`` and pole angle ``θ``
  (the velocities ``ẋ``, ``θ̇`` are removed), so the agent must infer them from its memory.
* ``MaskedPendulum-v1``: Pendulum-v1 observing ``(cos θ, sin θ)`` without ``θ̇``.
* ``SparseCartPole-v1``: CartPole-v1 whose reward is 0 on every step except the last one of the
  episode (termination, or truncation at 500 steps), which pays the episode's length. Returns,
  and so the optimal policy, are CartPole-v1's; only the credit is delayed.
* ``GoalCartPole-v1`` (``@goal=T``, default 500): CartPole paying 1 on the step the pole has been
  balanced for ``T`` steps (the episode then ends, a success) and 0 otherwise: the return is
  success or nothing, the sparsest reward. Lowering ``T`` makes the reward easier to find, which
  is what a sparse-reward curriculum steps through (``configs/curriculum_goal_cartpole.yaml``).

Each is a plain ``gymnasium.Env`` subclass (no wrappers), so ``check_env(env.unwrapped)`` checks
exactly what the agent sees. ``neuralalchemy.envs`` imports this module, so ``gym.make`` finds
these ids wherever the project makes environments.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

CARTPOLE_STEPS = 500
PENDULUM_STEPS = 200


def _masked_box(space: gym.spaces.Space, keep: np.ndarray) -> gym.spaces.Box:
    assert isinstance(space, gym.spaces.Box)  # both parents have flat Box observations
    return gym.spaces.Box(space.low[keep], space.high[keep], dtype=np.float32)


class MaskedCartPoleEnv(CartPoleEnv):
    """CartPole observing ``(x, θ)``: the velocities are hidden."""

    KEEP = np.array([0, 2])

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.observation_space = _masked_box(self.observation_space, self.KEEP)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """CartPole's reset, masked."""
        obs, info = super().reset(seed=seed, options=options)
        return obs[self.KEEP], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """CartPole's step, masked."""
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[self.KEEP], reward, terminated, truncated, info


class MaskedPendulumEnv(PendulumEnv):
    """Pendulum observing ``(cos θ, sin θ)``: the angular velocity is hidden."""

    KEEP = np.array([0, 1])

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.observation_space = _masked_box(self.observation_space, self.KEEP)

    def reset(self, *, seed: int | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Pendulum's reset, masked."""
        obs, info = super().reset(seed=seed, options=options)
        return obs[self.KEEP], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pendulum's step, masked."""
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[self.KEEP], reward, terminated, truncated, info


class _CountingCartPole(CartPoleEnv):
    """CartPole that counts the steps of its episode (``elapsed``)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.elapsed = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """CartPole's reset; the step counter restarts."""
        self.elapsed = 0
        return super().reset(seed=seed, options=options)

    def _dynamics(self, action: Any) -> tuple[np.ndarray, bool, dict[str, Any]]:
        """CartPole's step without its reward: observation, termination, info."""
        obs, _, terminated, _, info = super().step(action)
        self.elapsed += 1
        return obs, terminated, info


class SparseCartPoleEnv(_CountingCartPole):
    """CartPole paying its return at the end: reward = episode length on the last step, else 0.

    The env counts its own steps and truncates at ``max_steps`` (the registered time limit, which
    would otherwise end the episode outside it, where it could not pay).
    """

    def __init__(self, max_steps: int = CARTPOLE_STEPS, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_steps = int(max_steps)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """CartPole's step with the reward held back until the episode ends."""
        obs, terminated, info = self._dynamics(action)
        truncated = self.elapsed >= self.max_steps and not terminated
        reward = float(self.elapsed) if (terminated or truncated) else 0.0
        return obs, reward, terminated, truncated, info


class GoalCartPoleEnv(_CountingCartPole):
    """CartPole paying 1 when the pole has stayed up for ``goal`` steps (then the episode
    terminates, a success), 0 on every other step; a fall terminates the episode unpaid."""

    TASK_DEFAULTS = {"goal": float(CARTPOLE_STEPS)}

    def __init__(self, task: dict[str, float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        task = dict(task or {})
        unknown = sorted(set(task) - set(self.TASK_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown task parameter {unknown[0]!r}; GoalCartPole-v1 takes goal")
        goal = task.get("goal", self.TASK_DEFAULTS["goal"])
        if not (1 <= goal <= CARTPOLE_STEPS and float(goal).is_integer()):
            raise ValueError(f"goal must be a whole number of steps in 1..{CARTPOLE_STEPS}, "
                             f"got {goal}")
        self.goal = int(goal)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """CartPole's dynamics; 1 on reaching the goal, else 0. Reaching the goal terminates
        the episode like a fall (nothing follows it, so a value learner must not bootstrap)."""
        obs, terminated, info = self._dynamics(action)
        reached = self.elapsed >= self.goal and not terminated
        return obs, float(reached), terminated or reached, False, info


# id -> (entry point, reward threshold, registered time limit)
_TASKS: dict[str, tuple[str, float | None, int]] = {
    "MaskedCartPole-v1": (f"{__name__}:MaskedCartPoleEnv", 475.0, CARTPOLE_STEPS),
    "MaskedPendulum-v1": (f"{__name__}:MaskedPendulumEnv", None, PENDULUM_STEPS),
    "SparseCartPole-v1": (f"{__name__}:SparseCartPoleEnv", 475.0, CARTPOLE_STEPS),
    "GoalCartPole-v1": (f"{__name__}:GoalCartPoleEnv", 0.95, CARTPOLE_STEPS),
}


def register_tasks() -> None:
    """Register every environment above that is not registered yet (safe to call repeatedly)."""
    for env_id, (entry, threshold, steps) in _TASKS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry, reward_threshold=threshold,
                         max_episode_steps=steps)


register_tasks()

from neuralalchemy.task_families import register_families  # noqa: E402  (the meta-learning families)

register_families()
