r"""Task families for meta-learning: classic-control environments with a ``task`` parameter.

A *task* is a dict of physical parameters; a *family* is a distribution over tasks with three
splits, so that a prior learned on some tasks can be tested on tasks it never saw.

Environments
------------
Each env is a plain subclass of the Gymnasium classic-control env (no wrappers), built with
``gym.make(env_id, task={...})`` (``task=None`` gives the base env's defaults, and then the
trajectories of the base env exactly) and re-tasked in place with ``env.unwrapped.set_task(d)``.
``set_task`` sets the *whole* task: keys missing from ``d`` take their defaults, so the task is
``{**defaults, **d}``; ``env.unwrapped.task`` returns it. Time limits and reward thresholds are the
base env's (CartPole 500 steps / 475, Acrobot 500 / -100, Pendulum 200 / none).

* ``CartPoleTask-v1`` (``force_mag``, ``length``, ``masspole``). With ``M = m_c + m_p``,
  ``l`` the *half* pole length (Gymnasium's ``length``) and ``F = ±force_mag``:
  ``θ̈ = (g sin θ − cos θ (F + m_p l θ̇² sin θ)/M) / (l (4/3 − m_p cos² θ / M))`` and
  ``ẍ = (F + m_p l θ̇² sin θ)/M − m_p l θ̈ cos θ / M``; ``M`` and ``m_p l`` are recomputed.
* ``AcrobotTask-v1`` (``length``, ``mass``, ``inertia``): Spong's two-link equations with both
  links of length ``l1 = l2 = length``, centres of mass at mid-link ``lc1 = lc2 = length/2``,
  masses ``m1 = m2 = mass`` and moments of inertia ``I1 = I2 = inertia`` (Packer et al.'s code
  changes the lengths only, leaving the centres at 0.5 m; here the geometry scales together).
  The goal, tip above one link length, is scale-free.
* ``PendulumTask-v1`` (``length``, ``mass``):
  ``θ̇ ← θ̇ + (3g/(2l) sin θ + 3u/(m l²)) dt``.
* ``CartPoleFlip-v1`` and ``PendulumFlip-v1``: the above plus ``direction`` ∈ {+1, −1}, which
  multiplies the applied force (``F = direction · force_mag · (2a − 1)``) or torque
  (``u ← direction · u``). The direction is not in the observation.

Why the flip families defeat a pooled policy
--------------------------------------------
Linearised about the upright equilibrium both systems read ``ṡ = A s + d B u`` with
``tr A = 0`` (each position's derivative is its velocity, and no acceleration depends on a
velocity at first order). A memoryless linear policy ``u = K s`` gives closed-loop matrices
``A + d B K`` whose eigenvalues sum to ``d · tr(BK)``; for ``d = +1`` and ``d = −1`` the two sums
have opposite signs (or are both zero), so at least one closed loop has an eigenvalue with
non-negative real part: no observation-to-action map stabilises both directions. Concretely, the
same observation calls for opposite actions, and a policy that balances on ``+1`` (push toward the
falling pole) pushes it over on ``−1``. Only an agent that infers ``d`` from its experience (how
the state answered its last actions) can solve the mixture.

Splits
------
Ranges are those of Packer et al. (2018), "Assessing Generalization in Deep Reinforcement
Learning", Table 1: each parameter has a *within* range ``R = [lo, hi)`` holding the default
and an outer range ``[outer_lo, outer_hi)``; the *extreme* shell is
``E = [outer_lo, lo) ∪ [hi, outer_hi)``.

==============================  =======  ============  ==========================
family / parameter              default  R             E
==============================  =======  ============  ==========================
CartPole force_mag              10       [5, 15)       [1, 5) ∪ [15, 20)
CartPole length                 0.5      [0.25, 0.75)  [0.05, 0.25) ∪ [0.75, 1.0)
CartPole masspole               0.1      [0.05, 0.5)   [0.01, 0.05) ∪ [0.5, 1.0)
Acrobot l, m, I; Pendulum l, m  1        [0.75, 1.25)  [0.5, 0.75) ∪ [1.25, 1.5)
==============================  =======  ============  ==========================

* ``"train"`` and ``"within"`` partition the within box ``R₁ × … × R_k`` as a checkerboard: each
  ``R_i`` is cut into ``bins`` (even) equal bins, and a point whose bin indices sum to an even
  number is a training task, to an odd number a held-out within-range task. The two sets are
  disjoint by construction, each is uniform on its cells with uniform marginals on every
  ``R_i``, and every held-out cell is surrounded by training cells (interpolation).
* ``"extrapolation"`` draws every parameter uniformly from its shell ``E_i`` (Packer et al.'s
  RandomExtreme setting), so every coordinate lies outside the within box.
* Discrete parameters (``direction``) are drawn uniformly from their values in every split.
  ``TaskFamily.tasks`` balances them in blocks: each run of ``len(values)`` consecutive tasks
  holds every value once, in random order (blocked randomisation), so a set of 8 tasks of a
  two-valued parameter has 4 of each, not 7 and 1 by chance, and the family's conflict between
  kinds is measured on every set.

``TaskFamily.split_of(task)`` applies the same rule to any task; ``TaskFamily.tasks(split, n,
seed)`` is deterministic and each call's first ``m`` tasks are those of ``tasks(split, m, seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

Split = Literal["train", "within", "extrapolation"]
SPLITS: tuple[Split, ...] = get_args(Split)
Task = dict[str, float]


def validate_task(owner: str, defaults: Mapping[str, float],
                  choices: Mapping[str, tuple[float, ...]],
                  task: Mapping[str, Any] | None) -> Task:
    """The full task ``{**defaults, **task}``, or a one-line ``ValueError`` naming the bad key.

    Keys in ``choices`` must take one of their listed values; every other value must be a finite
    positive number.
    """
    allowed = ", ".join(defaults)
    if task is not None and not isinstance(task, Mapping):
        raise ValueError(f"{owner}: task must be a mapping, got {task!r}; allowed keys: {allowed}")
    full = dict(defaults)
    for key, value in (task or {}).items():
        if key not in defaults:
            raise ValueError(f"{owner}: unknown task key {key!r}; allowed keys: {allowed}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"{owner}: task key {key!r} must be a number, got {value!r}; "
                             f"allowed keys: {allowed}")
        number = float(value)
        if key in choices and number not in choices[key]:
            raise ValueError(f"{owner}: task key {key!r} must be one of {choices[key]}, "
                             f"got {value!r}; allowed keys: {allowed}")
        if key not in choices and not (math.isfinite(number) and number > 0):
            raise ValueError(f"{owner}: task key {key!r} must be a finite positive number, "
                             f"got {value!r}; allowed keys: {allowed}")
        full[key] = number
    return full


class TaskEnvMixin:
    """Gives a Gymnasium env a task: ``__init__(task=None, **env_kwargs)``, ``set_task``, ``task``.

    Subclasses list their keys and defaults in ``TASK_DEFAULTS`` (discrete keys and their values
    in ``TASK_CHOICES``) and write the validated task into the physics in ``_apply_task``.
    """

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {}
    TASK_CHOICES: ClassVar[dict[str, tuple[float, ...]]] = {}

    def __init__(self, task: Mapping[str, float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._task: Task = {}
        self.set_task(task)

    @property
    def task(self) -> Task:
        """The current task (a copy: change it with ``set_task``)."""
        return dict(self._task)

    def set_task(self, task: Mapping[str, float] | None) -> None:
        """Set every task parameter: given keys from ``task``, the others to their defaults.

        Takes effect from the next step; raises ``ValueError`` (and changes nothing) on an unknown
        key or a bad value.
        """
        self._task = validate_task(type(self).__name__, self.TASK_DEFAULTS, self.TASK_CHOICES,
                                   task)
        self._apply_task()

    def _apply_task(self) -> None:
        raise NotImplementedError


class CartPoleTaskEnv(TaskEnvMixin, CartPoleEnv):
    """CartPole with pole half-length, pole mass and push force set by the task."""

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {"force_mag": 10.0, "length": 0.5,
                                                 "masspole": 0.1}

    def _apply_task(self) -> None:
        self.force_mag = self._task["force_mag"]
        self.length = self._task["length"]
        self.masspole = self._task["masspole"]
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class CartPoleFlipEnv(CartPoleTaskEnv):
    """CartPoleTask whose push is reversed when ``direction = −1`` (action 1 pushes left)."""

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {**CartPoleTaskEnv.TASK_DEFAULTS,
                                                 "direction": 1.0}
    TASK_CHOICES: ClassVar[dict[str, tuple[float, ...]]] = {"direction": (1.0, -1.0)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """CartPole's step with the action mirrored (``a → 1 − a``) on ``direction = −1``."""
        if self._task["direction"] < 0 and self.action_space.contains(action):
            action = 1 - action
        return super().step(action)


class AcrobotTaskEnv(TaskEnvMixin, AcrobotEnv):
    """Acrobot with both links' length, mass and moment of inertia set by the task."""

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {"length": 1.0, "mass": 1.0, "inertia": 1.0}

    def _apply_task(self) -> None:
        length, mass = self._task["length"], self._task["mass"]
        self.LINK_LENGTH_1 = self.LINK_LENGTH_2 = length
        self.LINK_COM_POS_1 = self.LINK_COM_POS_2 = length / 2
        self.LINK_MASS_1 = self.LINK_MASS_2 = mass
        self.LINK_MOI = self._task["inertia"]


class PendulumTaskEnv(TaskEnvMixin, PendulumEnv):
    """Pendulum with rod length and mass set by the task."""

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {"length": 1.0, "mass": 1.0}

    def _apply_task(self) -> None:
        self.l = self._task["length"]
        self.m = self._task["mass"]


class PendulumFlipEnv(PendulumTaskEnv):
    """PendulumTask whose torque is reversed when ``direction = −1``."""

    TASK_DEFAULTS: ClassVar[dict[str, float]] = {**PendulumTaskEnv.TASK_DEFAULTS,
                                                 "direction": 1.0}
    TASK_CHOICES: ClassVar[dict[str, tuple[float, ...]]] = {"direction": (1.0, -1.0)}

    def step(self, u: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pendulum's step with torque ``direction · u``."""
        if self._task["direction"] < 0:
            u = -np.asarray(u)
        return super().step(u)


Region = Literal["within", "extreme"]


@dataclass(frozen=True)
class ParamRange:
    """A continuous task parameter's within range ``[lo, hi)`` inside ``[outer_lo, outer_hi)``."""

    name: str
    lo: float
    hi: float
    outer_lo: float
    outer_hi: float

    def __post_init__(self) -> None:
        if not 0 < self.outer_lo < self.lo < self.hi < self.outer_hi < math.inf:
            raise ValueError(f"parameter {self.name!r}: need 0 < outer_lo < lo < hi < outer_hi, "
                             f"got {self.outer_lo}, {self.lo}, {self.hi}, {self.outer_hi}")

    def region(self, value: float) -> Region | None:
        """``"within"`` in ``[lo, hi)``, ``"extreme"`` in the shell, else ``None``."""
        if self.lo <= value < self.hi:
            return "within"
        return "extreme" if self.outer_lo <= value < self.outer_hi else None

    def bin(self, value: float, bins: int) -> int:
        """Index of ``value``'s bin when ``[lo, hi)`` is cut into ``bins`` equal bins."""
        return min(int((value - self.lo) / (self.hi - self.lo) * bins), bins - 1)

    def draw(self, rng: np.random.Generator, region: Region) -> float:
        """Uniform on the region (rejection keeps the half-open bounds exact)."""
        lo, hi = (self.lo, self.hi) if region == "within" else (self.outer_lo, self.outer_hi)
        while True:
            value = float(rng.uniform(lo, hi))
            if self.region(value) == region:
                return value


@dataclass(frozen=True)
class TaskFamily:
    """A distribution over tasks of one registered env, with train/within/extrapolation splits.

    ``ranges`` covers the env's continuous task keys; its discrete keys (``TASK_CHOICES``) are
    drawn uniformly (by :meth:`tasks`, balanced in blocks). See the module docstring for the
    split rule.
    """

    name: str
    env_id: str
    base_id: str
    env_class: type[TaskEnvMixin]
    ranges: tuple[ParamRange, ...]
    bins: int = 4

    def __post_init__(self) -> None:
        keys = set(self.env_class.TASK_DEFAULTS) - set(self.env_class.TASK_CHOICES)
        names = [r.name for r in self.ranges]
        if sorted(names) != sorted(keys):
            raise ValueError(f"family {self.name!r}: ranges {names} must cover exactly the "
                             f"continuous task keys {sorted(keys)}")
        for r in self.ranges:
            if r.region(self.env_class.TASK_DEFAULTS[r.name]) != "within":
                raise ValueError(f"family {self.name!r}: default of {r.name!r} is outside "
                                 f"[{r.lo}, {r.hi})")
        if self.bins < 2 or self.bins % 2:
            raise ValueError(f"family {self.name!r}: bins must be even and >= 2, got {self.bins}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """Every task key, in the env's order."""
        return tuple(self.env_class.TASK_DEFAULTS)

    @property
    def default_task(self) -> Task:
        """The base env's parameters (Packer et al.'s deterministic setting D)."""
        return dict(self.env_class.TASK_DEFAULTS)

    def sample(self, rng: np.random.Generator, split: Split) -> Task:
        """One task of ``split``, drawn from ``rng``."""
        self._check_split(split)
        region: Region = "extreme" if split == "extrapolation" else "within"
        while True:
            values = {r.name: r.draw(rng, region) for r in self.ranges}
            if split == "extrapolation" or self._parity(values) == SPLITS.index(split):
                break
        for key, options in self.env_class.TASK_CHOICES.items():
            values[key] = float(options[int(rng.integers(len(options)))])
        return {key: values[key] for key in self.param_names}

    def tasks(self, split: Split, n: int, seed: int) -> list[Task]:
        """``n`` tasks of ``split``, a deterministic function of ``seed`` (one stream per split).
        Each discrete parameter is balanced in blocks of its values' count (a random permutation
        per block, from a stream of its own), so prefixes stay prefixes."""
        if n < 0:
            raise ValueError(f"family {self.name!r}: n must be >= 0, got {n}")
        self._check_split(split)
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        out = [self.sample(rng, split) for _ in range(n)]
        for j, (key, options) in enumerate(self.env_class.TASK_CHOICES.items()):
            blocks = np.random.default_rng([seed, SPLITS.index(split), 1 + j])
            values = [options[int(i)] for _ in range(-(-n // len(options)))
                      for i in blocks.permutation(len(options))]
            for task, value in zip(out, values):
                task[key] = float(value)
        return out

    def split_of(self, task: Mapping[str, float]) -> Split | None:
        """The split ``task`` belongs to, or ``None`` when it is in none (e.g. partly extreme)."""
        full = validate_task(self.name, self.env_class.TASK_DEFAULTS,
                             self.env_class.TASK_CHOICES, task)
        regions = {r.region(full[r.name]) for r in self.ranges}
        if regions == {"extreme"}:
            return "extrapolation"
        if regions == {"within"}:
            return SPLITS[self._parity(full)]
        return None

    def make(self, task: Mapping[str, float] | None = None, **kwargs: Any) -> gym.Env:
        """``gym.make(env_id, task=task, **kwargs)``."""
        return gym.make(self.env_id, task=task, **kwargs)

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"family {self.name!r}: unknown split {split!r}; "
                             f"allowed: {', '.join(SPLITS)}")

    def _parity(self, values: Mapping[str, float]) -> int:
        """0 for a training cell, 1 for a held-out one (``SPLITS[parity]``)."""
        return sum(r.bin(values[r.name], self.bins) for r in self.ranges) % 2


def _packer_unit(*names: str) -> tuple[ParamRange, ...]:
    """Packer et al.'s Acrobot/Pendulum ranges: R = [0.75, 1.25), E = [0.5, 0.75) ∪ [1.25, 1.5)."""
    return tuple(ParamRange(name, 0.75, 1.25, 0.5, 1.5) for name in names)


_CARTPOLE_RANGES = (
    ParamRange("force_mag", 5.0, 15.0, 1.0, 20.0),
    ParamRange("length", 0.25, 0.75, 0.05, 1.0),
    ParamRange("masspole", 0.05, 0.5, 0.01, 1.0),
)

FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (
    TaskFamily("cartpole", "CartPoleTask-v1", "CartPole-v1", CartPoleTaskEnv, _CARTPOLE_RANGES),
    TaskFamily("acrobot", "AcrobotTask-v1", "Acrobot-v1", AcrobotTaskEnv,
               _packer_unit("length", "mass", "inertia")),
    TaskFamily("pendulum", "PendulumTask-v1", "Pendulum-v1", PendulumTaskEnv,
               _packer_unit("length", "mass")),
    TaskFamily("cartpole_flip", "CartPoleFlip-v1", "CartPole-v1", CartPoleFlipEnv,
               _CARTPOLE_RANGES),
    TaskFamily("pendulum_flip", "PendulumFlip-v1", "Pendulum-v1", PendulumFlipEnv,
               _packer_unit("length", "mass")),
)}


def family_for_env(env_id: str) -> TaskFamily:
    """The family whose registered env is ``env_id``, or a ``ValueError`` listing them."""
    for family in FAMILIES.values():
        if family.env_id == env_id:
            return family
    known = ", ".join(f.env_id for f in FAMILIES.values())
    raise ValueError(f"no task family for env {env_id!r}; families exist for: {known}")


def register_families() -> None:
    """Register every family's env not registered yet, with its base env's limits (idempotent)."""
    for family in FAMILIES.values():
        if family.env_id not in gym.registry:
            base = gym.spec(family.base_id)
            cls = family.env_class
            gym.register(id=family.env_id, entry_point=f"{cls.__module__}:{cls.__name__}",
                         reward_threshold=base.reward_threshold,
                         max_episode_steps=base.max_episode_steps)


register_families()
