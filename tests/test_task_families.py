"""Task families: registered envs, task setting, Packer et al. (2018) splits, flip families."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralalchemy.task_families import (
    FAMILIES,
    SPLITS,
    CartPoleTaskEnv,
    ParamRange,
    TaskFamily,
    family_for_env,
    register_families,
)

# Packer et al. 2018, Table 1: key -> (default D, range R, outer bounds of E)
UNIT = (1.0, (0.75, 1.25), (0.5, 1.5))
CARTPOLE = {"force_mag": (10.0, (5.0, 15.0), (1.0, 20.0)),
            "length": (0.5, (0.25, 0.75), (0.05, 1.0)),
            "masspole": (0.1, (0.05, 0.5), (0.01, 1.0))}
PACKER: dict[str, dict[str, tuple[float, tuple[float, float], tuple[float, float]]]] = {
    "cartpole": CARTPOLE,
    "cartpole_flip": CARTPOLE,
    "acrobot": {"length": UNIT, "mass": UNIT, "inertia": UNIT},
    "pendulum": {"length": UNIT, "mass": UNIT},
    "pendulum_flip": {"length": UNIT, "mass": UNIT},
}
# env id -> (base id, reward threshold, time limit)
BASES = {"CartPoleTask-v1": ("CartPole-v1", 475.0, 500),
         "CartPoleFlip-v1": ("CartPole-v1", 475.0, 500),
         "AcrobotTask-v1": ("Acrobot-v1", -100.0, 500),
         "PendulumTask-v1": ("Pendulum-v1", None, 200),
         "PendulumFlip-v1": ("Pendulum-v1", None, 200)}
FLIPS = ("CartPoleFlip-v1", "PendulumFlip-v1")
FAST = settings(max_examples=25, deadline=None)


def _rollout(env: gym.Env, seed: int, steps: int,
             state: np.ndarray | None = None) -> np.ndarray:
    """Observations after each of ``steps`` seeded random actions, up to termination.

    ``state`` replaces the state drawn by the seeded reset.
    """
    env.reset(seed=seed)
    if state is not None:
        env.unwrapped.state = state  # type: ignore[attr-defined]
    env.action_space.seed(seed)
    out = []
    for _ in range(steps):
        obs, _, terminated, _, _ = env.step(env.action_space.sample())
        out.append(obs)
        if terminated:
            break
    return np.array(out)


def _make(env_id: str, task: Mapping[str, float] | None = None) -> gym.Env:
    return gym.make(env_id, task=task).unwrapped


def test_every_family_is_registered_once_with_its_base_limits():
    assert {f.env_id for f in FAMILIES.values()} == set(BASES)
    register_families()  # idempotent
    for env_id, (_, threshold, steps) in BASES.items():
        spec = gym.spec(env_id)
        assert (spec.reward_threshold, spec.max_episode_steps) == (threshold, steps)
        assert family_for_env(env_id).env_id == env_id


def test_project_env_module_registers_the_families():
    code = ("import gymnasium as gym, neuralalchemy.envs as e; "
            "print(e.env_info('CartPoleFlip-v1').n_actions, 'PendulumFlip-v1' in gym.registry)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "True"]


@pytest.mark.parametrize("env_id", sorted(BASES))
@pytest.mark.parametrize("split", [None, "train", "extrapolation"])
def test_envs_pass_check_env(env_id, split):
    family = family_for_env(env_id)
    task = None if split is None else family.tasks(split, 1, seed=3)[0]
    check_env(_make(env_id, task), skip_render_check=True)


@pytest.mark.parametrize("env_id", sorted(BASES))
def test_default_task_reproduces_the_base_env(env_id):
    base = _rollout(gym.make(BASES[env_id][0]).unwrapped, 7, 60)
    np.testing.assert_array_equal(_rollout(_make(env_id), 7, 60), base)
    np.testing.assert_array_equal(_rollout(_make(env_id, {}), 7, 60), base)


@pytest.mark.parametrize("env_id", sorted(BASES))
def test_every_task_key_changes_the_dynamics(env_id):
    family = family_for_env(env_id)
    default = _rollout(_make(env_id), 1, 10)
    for key, value in family.default_task.items():
        changed = -value if key == "direction" else 1.5 * value
        assert not np.array_equal(_rollout(_make(env_id, {key: changed}), 1, 10), default), key


def test_pole_length_changes_cartpole_trajectory():
    short = _rollout(_make("CartPoleTask-v1", {"length": 0.25}), 0, 8)
    long = _rollout(_make("CartPoleTask-v1", {"length": 0.75}), 0, 8)
    # same start, same pushes: a shorter pole falls faster: larger |θ̇| after the same pushes
    assert abs(short[-1][3]) > abs(long[-1][3])


@pytest.mark.parametrize("env_id", sorted(BASES))
def test_set_task_in_place_equals_making_with_the_task(env_id):
    task = family_for_env(env_id).tasks("within", 1, seed=11)[0]
    env = _make(env_id)
    env.set_task(task)  # type: ignore[attr-defined]
    assert env.task == task  # type: ignore[attr-defined]
    np.testing.assert_array_equal(_rollout(env, 2, 40), _rollout(_make(env_id, task), 2, 40))


def test_set_task_sets_the_whole_task_and_recomputes_derived_masses():
    env = _make("CartPoleTask-v1", {"length": 0.7, "masspole": 0.2, "force_mag": 12.0})
    assert isinstance(env, CartPoleTaskEnv)
    assert (env.length, env.masspole, env.force_mag) == (0.7, 0.2, 12.0)
    assert env.total_mass == pytest.approx(1.2) and env.polemass_length == pytest.approx(0.14)
    env.set_task({"masspole": 0.3})
    assert env.task == {"force_mag": 10.0, "length": 0.5, "masspole": 0.3}
    assert env.total_mass == pytest.approx(1.3) and env.polemass_length == pytest.approx(0.15)
    env.task["length"] = 9.0  # a copy
    assert env.length == 0.5


@pytest.mark.parametrize("task, match", [
    ({"pole_length": 0.5}, r"unknown task key 'pole_length'; allowed keys: force_mag, length, "
                           r"masspole, direction"),
    ({"length": 0.0}, r"'length' must be a finite positive number, got 0\.0"),
    ({"masspole": -0.1}, r"'masspole' must be a finite positive"),
    ({"force_mag": math.nan}, r"'force_mag' must be a finite positive"),
    ({"force_mag": math.inf}, r"'force_mag' must be a finite positive"),
    ({"length": "long"}, r"'length' must be a number"),
    ({"length": True}, r"'length' must be a number"),
    ({"direction": 0.5}, r"'direction' must be one of \(1\.0, -1\.0\)"),
    ([("length", 0.5)], r"task must be a mapping"),
])
def test_bad_tasks_raise_one_line_value_errors_and_change_nothing(task, match):
    with pytest.raises(ValueError, match=match) as info:
        gym.make("CartPoleFlip-v1", task=task)
    assert "\n" not in str(info.value) and "allowed keys" in str(info.value)
    env = _make("CartPoleFlip-v1", {"length": 0.3})
    with pytest.raises(ValueError, match=match):
        env.set_task(task)  # type: ignore[attr-defined]
    assert env.task["length"] == 0.3  # type: ignore[attr-defined]


# --- splits ------------------------------------------------------------------------------------

@FAST
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(FAMILIES)))
def test_splits_respect_packer_ranges(seed, name):
    family, packer = FAMILIES[name], PACKER[name]
    assert {k: v for k, v in family.default_task.items() if k != "direction"} == \
        {k: d for k, (d, _, _) in packer.items()}
    for split in SPLITS:
        for task in family.tasks(split, 10, seed):
            assert family.split_of(task) == split
            assert task.get("direction", 1.0) in (1.0, -1.0)
            for key, (_, (lo, hi), (outer_lo, outer_hi)) in packer.items():
                inside = lo <= task[key] < hi
                assert inside if split != "extrapolation" else not inside, (split, key)
                assert outer_lo <= task[key] < outer_hi


@FAST
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(FAMILIES)))
def test_splits_are_deterministic_prefix_stable_and_disjoint(seed, name):
    family = FAMILIES[name]
    train = family.tasks("train", 30, seed)
    assert family.tasks("train", 30, seed) == train
    assert family.tasks("train", 5, seed) == train[:5]
    assert family.tasks("train", 30, seed + 1) != train
    keys = [k for k in family.param_names if k != "direction"]
    train_points = {tuple(t[k] for k in keys) for t in train}
    within_points = {tuple(t[k] for k in keys) for t in family.tasks("within", 30, seed)}
    assert not train_points & within_points


def test_checkerboard_cells_interleave_and_cover_every_bin():
    family = FAMILIES["pendulum"]
    # bins of [0.75, 1.25) are 0.125 wide: (1.0, 1.0) is cell (2, 2), even: train;
    # (1.13, 1.0) is cell (3, 2), odd: within
    assert family.split_of({"length": 1.0, "mass": 1.0}) == "train"
    assert family.split_of({"length": 1.13, "mass": 1.0}) == "within"
    assert family.split_of({"length": 1.13, "mass": 0.9}) == "train"  # cell (3, 1)
    assert family.split_of({"length": 1.4, "mass": 1.4}) == "extrapolation"
    assert family.split_of({"length": 1.4, "mass": 1.0}) is None  # partly extreme
    assert family.split_of({"length": 3.0, "mass": 3.0}) is None  # beyond Packer's E
    for split in ("train", "within"):
        tasks = family.tasks(split, 200, seed=0)
        for r in family.ranges:
            assert {r.bin(t[r.name], family.bins) for t in tasks} == set(range(family.bins))


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 41))
def test_flip_families_balance_the_directions_in_blocks(seed, n):
    """Every pair of consecutive tasks (0–1, 2–3, …) holds both directions, so any set of tasks
    is balanced to within one; which comes first varies."""
    for env_id in FLIPS:
        for split in SPLITS:
            tasks = family_for_env(env_id).tasks(split, n, seed)
            dirs = [t["direction"] for t in tasks]
            assert all(sorted(dirs[i:i + 2]) == [-1.0, 1.0] for i in range(0, n - 1, 2))
            assert abs(sum(dirs)) <= 1
    firsts = {family_for_env(FLIPS[0]).tasks("train", 40, seed)[i]["direction"]
              for i in range(0, 40, 2)}
    assert firsts == {1.0, -1.0}


@pytest.mark.parametrize("env_id", sorted(BASES))
def test_extrapolation_tasks_stay_finite(env_id):
    for task in family_for_env(env_id).tasks("extrapolation", 3, seed=5):
        assert np.isfinite(_rollout(_make(env_id, task), 0, 50)).all()


def test_family_and_range_validation():
    with pytest.raises(ValueError, match="no task family for env 'CartPole-v1'"):
        family_for_env("CartPole-v1")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        FAMILIES["cartpole"].tasks("test", 1, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be >= 0"):
        FAMILIES["cartpole"].tasks("train", -1, 0)
    with pytest.raises(ValueError, match="need 0 < outer_lo < lo < hi < outer_hi"):
        ParamRange("length", 0.5, 0.25, 0.05, 1.0)
    ranges = FAMILIES["cartpole"].ranges
    with pytest.raises(ValueError, match="must cover exactly"):
        TaskFamily("x", "X-v1", "CartPole-v1", CartPoleTaskEnv, ranges[:2])
    with pytest.raises(ValueError, match="bins must be even"):
        TaskFamily("x", "X-v1", "CartPole-v1", CartPoleTaskEnv, ranges, bins=3)
    with pytest.raises(ValueError, match="default of 'length' is outside"):
        TaskFamily("x", "X-v1", "CartPole-v1", CartPoleTaskEnv,
                   (ranges[0], ParamRange("length", 0.6, 0.75, 0.05, 1.0), ranges[2]))


# --- flip families -----------------------------------------------------------------------------

@pytest.mark.parametrize("env_id, start, mirror", [
    ("CartPoleFlip-v1", np.array([0.03, -0.02, 0.04, 0.01]), lambda o: -o),
    ("PendulumFlip-v1", np.array([0.4, -0.3]), lambda o: o * np.array([1, -1, -1])),
])
def test_flipped_direction_mirrors_the_motion(env_id, start, mirror):
    task = {"length": 0.6}
    up = _rollout(_make(env_id, {**task, "direction": 1.0}), 4, 30, state=start.copy())
    down = _rollout(_make(env_id, {**task, "direction": -1.0}), 4, 30, state=-start)
    assert len(up) == len(down) > 5
    np.testing.assert_allclose(down, mirror(up), rtol=0, atol=1e-12)


def _episode(env_id: str, task: Mapping[str, float], seed: int,
             policy: Callable[[np.ndarray], Any]) -> int:
    env = gym.make(env_id, task=task)
    obs, _ = env.reset(seed=seed)
    for steps in range(1, 1000):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        if terminated or truncated:
            return steps
    raise AssertionError("no time limit")


def test_a_balancing_policy_succeeds_on_one_direction_and_fails_on_the_other():
    def lean(obs: np.ndarray) -> int:  # push toward where the pole is falling
        return int(obs[2] + 0.5 * obs[3] > 0)

    def mirrored(obs: np.ndarray) -> int:
        return 1 - lean(obs)

    for seed in range(3):
        assert _episode("CartPoleFlip-v1", {"direction": 1.0}, seed, lean) == 500
        assert _episode("CartPoleFlip-v1", {"direction": -1.0}, seed, lean) < 20
        assert _episode("CartPoleFlip-v1", {"direction": -1.0}, seed, mirrored) == 500
        assert _episode("CartPoleFlip-v1", {"direction": 1.0}, seed, mirrored) < 20
