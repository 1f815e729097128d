"""Readout learners (PPO, BLQ), the vectorised reservoir environments, the project's own
environments, reward shaping and novelty, and the shared optimizer factory."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from netcases import CARTPOLE_RANGES

from neuralalchemy.agent_io import window
from neuralalchemy.checkpoint import load_checkpoint
from neuralalchemy.config import ConfigError, load_config
from neuralalchemy.engine import Reservoir
from neuralalchemy.envs import EnvError, env_info, make_env
from neuralalchemy.learners import LEARNERS, make_learner
from neuralalchemy.learners.base import Context
from neuralalchemy.learners.optim import (
    OPTIMIZERS,
    Schedule,
    l2_precision,
    make_optimizer,
    readout_penalty,
    schedule_factor,
)
from neuralalchemy.train import build_context, encoder_ranges, evaluate_readout
from neuralalchemy.vecfeatures import (
    POTENTIALS,
    RandomNetworkDistillation,
    SimHashCounts,
    from_context,
    shaping_reward,
)

ROOT = Path(__file__).resolve().parents[1]


def make_context(overrides: list[str], env: str = "CartPole-v1",
                 config: Path | None = None) -> Context:
    """A learner's context built the way ``train`` builds it (from ``config``, if given)."""
    cfg = load_config(config, environ={}, overrides=[f"env={env}", *overrides])
    info = env_info(cfg.env)
    return build_context(cfg, info, encoder_ranges(cfg, info))


def best_eval(ctx: Context, steps: int, every: int, episodes: int = 20) -> tuple[float, int]:
    """Train until ``steps``; the best greedy evaluation mean seen every ``every`` env steps."""
    learner = make_learner(ctx)
    best, next_eval = -math.inf, every
    while learner.env_steps < steps:
        learner.step()
        if learner.env_steps >= next_eval:
            next_eval += every
            best = max(best, float(evaluate_readout(ctx, learner.readout(), episodes).mean()))
    return best, learner.env_steps


# ---------------------------------------------------------------- optimizer factory
@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("momentum", torch.optim.SGD),
                                       ("rmsprop", torch.optim.RMSprop),
                                       ("adam", torch.optim.Adam)])
def test_optimizer_factory_builds_each_and_descends(name, cls):
    tr = load_config(environ={}, overrides=[f"training.optimizer={name}",
                                            "training.lr=0.05"]).training
    w = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer([w], tr)
    assert isinstance(opt, cls)
    if name in ("sgd", "momentum", "rmsprop"):
        assert opt.param_groups[0]["momentum"] == (0.0 if name == "sgd" else 0.9)
    start = float((w.detach() ** 2).sum())
    for _ in range(20):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert float((w.detach() ** 2).sum()) < 0.5 * start
    assert set(OPTIMIZERS) == {"sgd", "momentum", "rmsprop", "adam"}


@pytest.mark.parametrize("kind, expected", [("constant", [1.0, 1.0, 1.0]),
                                            ("linear", [1.0, 0.5, 0.0]),
                                            ("cosine", [1.0, 0.5, 0.0])])
def test_schedules(kind, expected):
    assert [schedule_factor(kind, p) for p in (0.0, 0.5, 1.0)] == pytest.approx(expected)
    assert schedule_factor(kind, 7.0) == pytest.approx(expected[-1])  # past the horizon
    tr = load_config(environ={}, overrides=[f"training.lr_schedule={kind}", "training.lr=0.1",
                                            "training.lr_horizon=100"]).training
    opt = make_optimizer([torch.zeros(1, requires_grad=True)], tr)
    sched = Schedule(opt, tr)
    assert sched.update(50) == pytest.approx(0.1 * expected[1])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * expected[1])
    with pytest.raises(ValueError, match="unknown lr schedule"):
        schedule_factor("step", 0.1)


def test_readout_penalty_and_prior():
    w = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    assert float(readout_penalty([w], l1=0.5, l2=0.0)) == pytest.approx(1.5)
    assert float(readout_penalty([w], l1=0.0, l2=0.1)) == pytest.approx(0.5)
    assert float(readout_penalty([w, w], l1=1.0, l2=1.0)) == pytest.approx(16.0)
    assert l2_precision(0.25) == 0.5


# ---------------------------------------------------------------- config
def test_config_knows_the_learners():
    assert {"ars", "ppo", "blq", "mpc"} <= set(LEARNERS)
    cfg = load_config(environ={}, overrides=["training.algorithm=blq", "training.noise_var=2"])
    assert cfg.training.algorithm == "blq" and cfg.training.noise_var == 2.0
    for bad, fragment in [("training.algorithm=dqn", "training.algorithm: 'dqn' is not one of"),
                          ("training.noise_var=0", "training.noise_var: 0.0 is out of range"),
                          ("training.gamma=1.5", "training.gamma: 1.5 is out of range"),
                          ("exploration.intrinsic=icm", "exploration.intrinsic: 'icm'"),
                          ("exploration.shaping=pendulum", "exploration.shaping: 'pendulum'")]:
        with pytest.raises(ConfigError, match=fragment):
            load_config(environ={}, overrides=[bad])


# ---------------------------------------------------------------- the project's environments
def _play(env_id: str, seed: int, policy, steps: int = 1000):  # type: ignore[no-untyped-def]
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [(obs, 0.0, False, False)]
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(policy(obs, env))
        out.append((obs, r, term, trunc))
        if term or trunc:
            break
    env.close()
    return out


def _random(obs, env):  # type: ignore[no-untyped-def]
    return env.action_space.sample()


@pytest.mark.parametrize("masked, full, keep", [("MaskedCartPole-v1", "CartPole-v1", [0, 2]),
                                                ("MaskedPendulum-v1", "Pendulum-v1", [0, 1])])
def test_masked_envs_hide_velocities_and_pass_check_env(masked, full, keep):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(masked)
    assert env.observation_space.shape == (2,)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    a, b = _play(masked, 3, _random, 60), _play(full, 3, _random, 60)
    assert len(a) == len(b)
    for (oa, ra, ta, ua), (ob, rb, tb, ub) in zip(a, b):
        np.testing.assert_array_equal(oa, ob[keep])
        assert (ra, ta, ua) == (rb, tb, ub)
    assert env_info(masked).obs_dim == 2


def _balance(obs, env):  # type: ignore[no-untyped-def]
    return int(obs[2] + 0.5 * obs[3] > 0)


@pytest.mark.parametrize("policy, length", [(_random, None), (_balance, 500)])
def test_sparse_cartpole_pays_only_at_the_end(policy, length):
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("SparseCartPole-v1").unwrapped, skip_render_check=True)
    sparse, dense = _play("SparseCartPole-v1", 5, policy), _play("CartPole-v1", 5, policy)
    rewards = [r for _, r, _, _ in sparse[1:]]
    assert len(sparse) == len(dense)
    assert all(r == 0.0 for r in rewards[:-1])
    assert rewards[-1] == len(rewards) == sum(r for _, r, _, _ in dense[1:])
    assert sparse[-1][2:] == dense[-1][2:]  # same termination / truncation
    if length is not None:
        assert len(rewards) == length and sparse[-1][3]


@pytest.mark.parametrize("goal", [2, 30, 500])
def test_goal_cartpole_pays_one_on_reaching_the_goal_and_nothing_on_a_fall(goal):
    """The balancing policy is paid exactly 1, on step ``goal``, which terminates the episode
    (a goal, not a time limit); a random policy that falls first gets 0 with CartPole's
    termination."""
    from gymnasium.utils.env_checker import check_env

    spec = f"GoalCartPole-v1@goal={goal}"
    check_env(make_env(spec).unwrapped, skip_render_check=True)
    steps = _play(spec, 5, _balance)[1:]
    assert len(steps) == goal and [r for _, r, _, _ in steps] == [0.0] * (goal - 1) + [1.0]
    assert steps[-1][2] and not any(t for _, _, t, _ in steps[:-1])
    fall = _play(spec, 5, _random)[1:]
    dense = _play("CartPole-v1", 5, _random)[1:]
    if len(dense) < goal:
        assert len(fall) == len(dense) and sum(r for _, r, _, _ in fall) == 0.0
        assert fall[-1][2]
    with pytest.raises(EnvError, match="whole number of steps"):
        make_env("GoalCartPole-v1@goal=0")


def test_registration_is_idempotent_and_envs_module_registers():
    import importlib
    import warnings

    import neuralalchemy.tasks as tasks

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks.register_tasks()
        importlib.reload(tasks)
    code = "import gymnasium as gym, neuralalchemy.envs; gym.make('SparseCartPole-v1').close()"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- vectorised features
@pytest.mark.parametrize("same_step", [None, False])
@pytest.mark.parametrize("trace", [False, True])
def test_vecfeatures_reset_rows_match_a_fresh_episode(same_step, trace):
    extra = ["readout.features=trace"] if trace else []
    ctx = make_context(["reservoir.size=48", "encoder.calibration_episodes=2", *extra])
    vec = from_context(ctx, 4, seed=11, same_step=same_step)
    assert vec.same_step is (same_step is None)
    feats = vec.reset()
    rng = np.random.default_rng(0)
    checked = total_steps = 0
    fresh = Reservoir(ctx.network, 1)
    for _ in range(120):
        feats, reward, term, trunc, info = vec.step(rng.integers(0, 2, 4))
        total_steps += 4
        done = term | trunc
        assert np.array_equal(info["env_reward"], reward)
        assert not info["final_features"][~done].any()
        for i in np.flatnonzero(done):
            fresh.reset()
            payload = window(vec.obs[i:i + 1], ctx.encoder, ctx.network.payload_levels,
                             ctx.cfg.reservoir.steps_per_obs, None)
            counts = fresh.run(torch.as_tensor(np.ascontiguousarray(payload)),
                               ctx.cfg.reservoir.steps_per_obs)
            np.testing.assert_array_equal(feats[i], counts.numpy()[0])
            checked += 1
    returns, lengths = vec.pop_finished()
    assert checked == len(returns) > 5
    assert np.array_equal(returns, lengths)  # CartPole pays 1 per step
    assert vec.env_steps == total_steps
    vec.close()


@pytest.mark.parametrize("changes", [False, True], ids=["plain", "change_channels"])
def test_vecfeatures_matches_deployment_rollout(changes):
    """A zero readout picks action 0 everywhere: both paths see the same features at every
    decision (run_episodes accumulates them into its statistics). With change channels both
    paths must also hand the encoder the same previous observation."""
    from neuralalchemy.rollout import FeatureStats

    ctx = make_context(["reservoir.size=40", "encoder.calibration_episodes=2",
                        f"encoder.changes={str(changes).lower()}"])
    assert ctx.encoder.changes is changes
    n, a = ctx.n_features, ctx.info.n_actions
    stats = FeatureStats.empty(n)
    ctx.episodes(np.zeros((1, a, n)), np.zeros((1, a)), np.zeros(n), np.ones(n), 21, stats)
    vec = from_context(ctx, 1, seed=21)
    seen = [vec.reset()]
    while True:
        f, _, term, trunc, info = vec.step(np.zeros(1, dtype=np.int64))
        if term[0] or trunc[0]:
            assert info["final_features"].any()
            break
        seen.append(f)
    ours = np.concatenate(seen)
    assert stats.n == len(ours)
    np.testing.assert_allclose(stats.total, ours.sum(0))


# ---------------------------------------------------------------- shaping and novelty
def test_shaping_formula_and_telescoping():
    phi_s, phi_n = np.array([1.0, -2.0, 0.5]), np.array([3.0, 4.0, 9.0])
    term = np.array([False, False, True])
    np.testing.assert_allclose(shaping_reward(phi_s, phi_n, term, 0.9), [1.7, 5.6, -0.5])
    rng = np.random.default_rng(1)
    phi = rng.normal(size=11)  # a terminated episode s0..s10: the shaping sum is -phi(s0)
    f = shaping_reward(phi[:-1], phi[1:], np.arange(10) == 9, 0.95)
    assert np.sum(0.95 ** np.arange(10) * f) == pytest.approx(-phi[0])


def test_shaping_keeps_the_optimal_policy():
    """Value iteration on a random 6-state, 3-action MDP with and without shaping."""
    rng = np.random.default_rng(4)
    s, a, gamma = 6, 3, 0.9
    p = rng.dirichlet(np.ones(s), size=(s, a))
    r = rng.normal(size=(s, a))
    phi = 5 * rng.normal(size=s)

    def greedy(shaped: bool) -> np.ndarray:
        bonus = (gamma * p @ phi - phi[:, None]) if shaped else 0.0
        q = np.zeros((s, a))
        for _ in range(2000):
            q = r + bonus + gamma * p @ q.max(1)
        return q.argmax(1)

    assert np.array_equal(greedy(False), greedy(True))


def test_potentials():
    cart = POTENTIALS["cartpole"]
    np.testing.assert_allclose(cart(np.array([[0.0, 1.0, 0.0, 2.0], [2.4, 0, 0.2095, 0]])),
                               [0.0, -2.0])
    np.testing.assert_allclose(cart(np.array([[2.4, 0.2095]])), [-2.0])  # masked (x, θ)
    car = POTENTIALS["mountaincar"]
    low, flag = car(np.array([[-np.pi / 6, 0.0], [0.5, 0.0]]))
    assert low == pytest.approx(0.0) and flag == pytest.approx(1.0)
    acro = POTENTIALS["acrobot"]

    def acrobot_obs(t1: float, t2: float, w1: float = 0.0, w2: float = 0.0) -> np.ndarray:
        return np.array([[np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), w1, w2]])

    line = 2 * np.pi / 3  # straight links, the tip on the goal line: -cos(t1) - cos(t1) = 1
    assert acro(acrobot_obs(0.0, 0.0))[0] == pytest.approx(-1.0)
    assert acro(acrobot_obs(line, 0.0))[0] == pytest.approx(0.0, abs=1e-12)
    assert acro(acrobot_obs(np.pi, 0.0))[0] == 0.0  # above the goal's energy: capped
    # straight links swinging through the bottom: T = M11/2·ω1² with M11 = 4.5, and the climb
    # to the line takes E_goal − E_rest = 9.8 + 19.6
    climb = np.sqrt(2 * 29.4 / 4.5)
    assert acro(acrobot_obs(0.0, 0.0, w1=climb))[0] == pytest.approx(0.0, abs=1e-12)
    assert acro(acrobot_obs(0.0, 0.0, w1=climb / 2))[0] == pytest.approx(-0.75)


def test_novelty_bonuses_decay_with_visits():
    z = np.random.default_rng(0).normal(size=(1, 30))
    counts = SimHashCounts(30, 12, seed=0)
    assert [float(counts(z)[0]) for _ in range(4)] == pytest.approx([1, 2 ** -0.5, 3 ** -0.5,
                                                                      0.5])
    assert counts(-z)[0] == 1.0  # the opposite state has the opposite code
    rnd = RandomNetworkDistillation(30, seed=0)
    batch = np.repeat(z, 8, axis=0)
    first = rnd(batch).mean()
    for _ in range(300):
        later = rnd(batch).mean()
    assert later < 0.2 * first


def test_intrinsic_and_shaping_change_training_rewards_only():
    ctx = make_context(["reservoir.size=32", "encoder.calibration_episodes=2",
                        "exploration.intrinsic=counts", "exploration.shaping=cartpole"])
    vec = from_context(ctx, 3, seed=2)
    vec.reset()
    rewards = []
    for _ in range(40):
        _, r, _, _, info = vec.step(np.ones(3, dtype=np.int64))
        rewards.append(r - info["env_reward"])
    assert np.abs(np.concatenate(rewards)).max() > 0.01
    returns, lengths = vec.pop_finished()
    assert np.array_equal(returns, lengths)  # reported returns stay the environment's


# ---------------------------------------------------------------- learners
def test_learners_are_deterministic_under_a_seed():
    for algo in ("ppo", "blq"):
        readouts = []
        for _ in range(2):
            ctx = make_context(["reservoir.size=32", "encoder.calibration_episodes=2",
                                f"training.algorithm={algo}", "training.num_envs=4",
                                "training.rollout_steps=16", "training.refit_every=40"])
            learner = make_learner(ctx)
            learner.step()
            learner.step()
            readouts.append(learner.readout())
        a, b = readouts
        assert np.array_equal(a.theta, b.theta) and np.array_equal(a.bias, b.bias)
        assert np.abs(a.theta).sum() > 0


@pytest.mark.parametrize("algorithm", ["blq", "mpc"])
def test_discrete_action_learners_refuse_box_actions(algorithm):
    """BLQ and MPC choose among discrete actions; a Box env is refused (MPC with a ConfigError,
    so the CLI prints one line and exits 2)."""
    ctx = make_context(["reservoir.size=16", "encoder.calibration_episodes=1",
                        f"training.algorithm={algorithm}"], env="Pendulum-v1")
    with pytest.raises(ConfigError if algorithm == "mpc" else ValueError,
                       match="discrete actions"):
        make_learner(ctx)


def test_ppo_gaussian_policy_on_a_box_env():
    ctx = make_context(["reservoir.size=32", "encoder.calibration_episodes=2",
                        "training.algorithm=ppo", "training.num_envs=2",
                        "training.rollout_steps=50"], env="MaskedPendulum-v1")
    learner = make_learner(ctx)
    progress = learner.step()
    assert progress.env_steps == 100 and learner.env_steps == 100
    ro = learner.readout()
    assert ro.theta.shape == (1, 32) and np.isfinite(ro.theta).all()
    assert learner.summary()["algorithm"] == "ppo"
    returns = evaluate_readout(ctx, ro, 2)
    assert returns.shape == (2,) and (returns < 0).all()


@pytest.mark.parametrize("units", [1.0, 1000.0])
def test_ppo_reward_scaling_gives_unit_scale_returns(units):
    """With normalize_rewards the discounted return of the scaled rewards has std ≈ 1 whatever
    the reward's units; without it, rewards pass unchanged."""
    ctx = make_context(["reservoir.size=16", "encoder.calibration_episodes=1",
                        "training.algorithm=ppo", "training.num_envs=4",
                        "training.normalize_rewards=true", "training.gamma=0.9"],
                       env="Pendulum-v1")
    learner = make_learner(ctx)
    rng = np.random.default_rng(0)
    acc, scaled_returns = np.zeros(4), []
    for t in range(3000):
        r = units * (rng.normal(-5.0, 2.0, 4))
        done = np.full(4, (t + 1) % 200 == 0)
        out = learner._scale_rewards(r, done)
        acc = 0.9 * acc + out
        if t >= 1000:
            scaled_returns.append(acc.copy())
        acc = np.where(done, 0.0, acc)
    std = np.concatenate(scaled_returns).std()
    assert 0.8 < std < 1.25, std
    first = make_learner(ctx)  # identical first rewards: no spread yet, so the clip bounds them
    assert np.array_equal(first._scale_rewards(np.ones(4), np.zeros(4, bool)), np.full(4, 10.0))
    plain = make_learner(make_context(["reservoir.size=16", "encoder.calibration_episodes=1",
                                       "training.algorithm=ppo"], env="Pendulum-v1"))
    r = np.array([-3.0, -7.5])
    assert np.array_equal(plain._scale_rewards(r, np.zeros(2, bool)), r)


def test_ppo_reward_clip_off_keeps_a_sparse_payment_whole():
    """A payment of the episode's length on its last step is many stds of the running return:
    the default clip (10) flattens it, ``reward_clip=0`` keeps its ratio to the other payments."""
    def scaled(clip):
        learner = make_learner(make_context(
            ["reservoir.size=16", "encoder.calibration_episodes=1", "training.algorithm=ppo",
             "training.num_envs=2", "training.normalize_rewards=true",
             f"training.reward_clip={clip}"], env="SparseCartPole-v1"))
        out = []
        for t in range(1, 401):  # episodes of 100 and 200 steps, paid at their end
            done = np.array([t % 100 == 0, t % 200 == 0])
            out.append(learner._scale_rewards(np.where(done, [100.0, 200.0], 0.0), done))
        return np.array(out)[-1]

    clipped, whole = scaled(10.0), scaled(0)  # the 100-step payment scales to about 8
    assert clipped[1] == 10.0 and clipped[1] / clipped[0] < 1.5
    assert whole[1] > 10.0 and whole[1] / whole[0] == pytest.approx(2.0)


def test_mpc_readout_from_running_sums_is_the_ridge_regression():
    """The readout fitted from the running sums is the ridge regression (free bias) of the
    centred labels on the features standardised by the pipeline's statistics, computed
    directly on the stacked rows."""
    ctx = make_context(["reservoir.size=16", "encoder.calibration_episodes=1",
                        "training.algorithm=mpc", "training.ridge=3.0"], env="Acrobot-v1")
    learner = make_learner(ctx)
    rng = np.random.default_rng(5)
    feats = [rng.poisson(2.0, (40, 16)).astype(float) for _ in range(3)]
    labels = [rng.dirichlet(np.ones(3), 40) for _ in range(3)]
    for f, y in zip(feats, labels):
        learner._label(f, y)
    learner._fit_readout()
    ro = learner.readout()
    z = (np.concatenate(feats) - ro.mean) / ro.std
    y = np.concatenate(labels)
    y = y - y.mean(1, keepdims=True)
    zc, yc = z - z.mean(0), y - y.mean(0)
    w = np.linalg.solve(zc.T @ zc + 3.0 * np.eye(16), zc.T @ yc)
    np.testing.assert_allclose(ro.theta, w.T, atol=1e-9)
    np.testing.assert_allclose(ro.bias, y.mean(0) - z.mean(0) @ w, atol=1e-9)


@pytest.mark.slow
def test_mpc_learns_acrobot():
    """Seeded: the model-based learner with a shorter horizon than configs/acrobot_mpc.yaml
    (10 steps ahead) clears -100 with its distilled readout within 6k env steps (-80.7 when
    written; the untrained readout, all zeros, plays action 0 and never ends an episode: -500;
    SB3 PPO and DQN with the zoo's settings first reach -100 after about 25k)."""
    from neuralalchemy.config import shipped_config

    ctx = make_context(["training.plan_horizon=10"], config=shipped_config("acrobot_mpc"),
                       env="Acrobot-v1")
    best, steps = best_eval(ctx, 6_144, 1024)
    assert best >= -100, f"MPC's readout reached only {best:.1f} in {steps} env steps"


def test_ppo_learns_cartpole():
    """Seeded: PPO as configs/cartpole_ppo.yaml ships it solves CartPole: its greedy readout
    reaches 475 within 12k env steps (the untrained readout: 9.6; random play: ~22). The greedy
    readout is scale-free, so the direction of the gradients is most of it: the same run with
    lr 1e-9, Adam's steps tiny but along that direction, reaches 494.8 (with 256 neurons: 259)."""
    from neuralalchemy.config import shipped_config

    ctx = make_context([], config=shipped_config("cartpole_ppo"))
    assert ctx.cfg.training.algorithm == "ppo"
    best, steps = best_eval(ctx, 12_288, 1024)
    assert best >= 475, f"PPO reached only {best:.1f} in {steps} env steps"


@pytest.mark.parametrize("name, env, steps, every, bar, blind_bar", [
    ("masked_cartpole", "MaskedCartPole-v1", 12_288, 1_024, 475.0, 200.0),
    ("masked_pendulum", "MaskedPendulum-v1", 51_200, 5_120, -450.0, -800.0)])
def test_ppo_learns_a_masked_task_through_change_channels(name, env, steps, every, bar,
                                                          blind_bar):
    """Seeded: the shipped config of a velocity-masked task (change channels on) clears ``bar``
    within ``steps`` env steps; the same run without change channels, the reservoir's memory
    alone, stays below ``blind_bar``. Measured in training, this seed: MaskedCartPole-v1 reaches
    475 at 10,240 steps; MaskedPendulum-v1 ((cos θ, sin θ) only) −316 at 51,200, and −1,086
    without change channels."""
    from neuralalchemy.config import shipped_config

    ctx = make_context([], env=env, config=shipped_config(name))
    assert ctx.encoder.changes
    best, at = best_eval(ctx, steps, every)
    assert best >= bar, f"PPO reached only {best:.1f} in {at} env steps"
    blind = make_context(["encoder.changes=false", "encoder.change_ranges=[]"], env=env,
                         config=shipped_config(name))
    best, at = best_eval(blind, steps, every)
    assert best < blind_bar, f"without change channels PPO reached {best:.1f} in {at} env steps"


def test_ars_learns_mountaincar_through_a_slow_trace():
    """Seeded: configs/mountaincar.yaml (ARS, readout on a trace of decay 0.95) reaches −110 on
    MountainCar-v0 within 32k env steps; the same run reading each step's spike counts alone
    stays below −120."""
    from neuralalchemy.config import shipped_config

    ctx = make_context([], env="MountainCar-v0", config=shipped_config("mountaincar"))
    assert ctx.trace_decay == 0.95
    best, steps = best_eval(ctx, 32_000, 2_000)
    assert best >= -110, f"ARS reached only {best:.1f} in {steps} env steps"
    counts = make_context(["readout.features=counts"], env="MountainCar-v0",
                          config=shipped_config("mountaincar"))
    best, steps = best_eval(counts, 32_000, 2_000)
    assert best < -120, f"on spike counts ARS reached {best:.1f} in {steps} env steps"


def test_ppo_learns_to_swing_up_pendulum():
    """Seeded: configs/pendulum.yaml (PPO's Gaussian readout, 512 neurons) lifts Pendulum-v1's
    greedy return from about −1,100 (the untrained readout lets it hang) past −400 within 36k env
    steps, where most evaluation episodes must swing the pendulum up and hold it."""
    from neuralalchemy.config import shipped_config

    ctx = make_context([], env="Pendulum-v1", config=shipped_config("pendulum"))
    assert ctx.network.size == 512 and not ctx.info.discrete
    best, steps = best_eval(ctx, 36_864, 5_120)
    assert best >= -400, f"PPO reached only {best:.1f} in {steps} env steps"


def test_blq_learns_cartpole():
    """Seeded: BLQ's greedy readout clears 150 within 5k env steps."""
    ctx = make_context([CARTPOLE_RANGES, "training.algorithm=blq",
                        "training.fitted_q_iterations=30", "exploration.thompson=false",
                        "exploration.shaping=cartpole"])
    best, steps = best_eval(ctx, 5000, 1000)
    assert best >= 150, f"BLQ reached only {best:.1f} in {steps} env steps"


# ---------------------------------------------------------------- shipped configs, CLI smoke
CONFIGS = {
    "acrobot": "Acrobot-v1", "mountaincar": "MountainCar-v0", "pendulum": "Pendulum-v1",
    "masked_cartpole": "MaskedCartPole-v1", "masked_pendulum": "MaskedPendulum-v1",
    "sparse_cartpole": "SparseCartPole-v1", "cartpole_ppo": "CartPole-v1",
    "cartpole_blq": "CartPole-v1", "acrobot_ppo": "Acrobot-v1",
    "mountaincar_blq": "MountainCar-v0", "acrobot_mpc": "Acrobot-v1",
}


def test_sparse_cartpole_config_discounts_so_that_surviving_is_optimal():
    """SparseCartPole pays t at the episode's end: discounted from the start that is t·γ^t, which
    peaks at t = −1/ln γ. Below the episode limit the discounted optimum is to fall early."""
    from neuralalchemy.tasks import CARTPOLE_STEPS

    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" /
                          "sparse_cartpole.yaml"), environ={})
    t = np.arange(1, CARTPOLE_STEPS + 1)
    assert np.argmax(t * cfg.training.gamma ** t) + 1 == CARTPOLE_STEPS
    assert np.argmax(t * 0.99 ** t) + 1 < CARTPOLE_STEPS  # the old setting's trap


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_configs_are_valid(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", environ={})
    assert cfg.env == CONFIGS[name]
    assert cfg.training.algorithm in ("ppo", "blq", "ars", "mpc")


def test_every_issue_env_has_its_shipped_config():
    """``alchemy train --env ID`` picks these; each is packaged and names its own env."""
    from neuralalchemy.config import SHIPPED_FOR_ENV, shipped_configs

    assert set(SHIPPED_FOR_ENV) == set(CONFIGS.values()) - {"CartPole-v1"}
    shipped = shipped_configs()
    for env_id, name in SHIPPED_FOR_ENV.items():
        assert shipped[name].read_bytes() == (ROOT / "configs" / f"{name}.yaml").read_bytes()
        assert load_config(name, environ={}).env == env_id


def test_which_runs_take_the_shipped_config(capsys, tmp_path):
    """The env decides (from --env, ALCHEMY_ENV or --set env=), announced on stdout; transfer
    and supervised tasks keep the built-in defaults; only a bare name reads a shipped file."""
    from neuralalchemy.cli import _shipped_for

    def pick(overrides, environ=None):
        return _shipped_for(load_config(None, overrides=overrides, environ=environ or {}))

    assert pick(["env=MountainCar-v0"]) == "mountaincar"
    assert "shipped mountaincar.yaml for MountainCar-v0" in capsys.readouterr().out
    assert pick([], {"ALCHEMY_ENV": "Pendulum-v1"}) == "pendulum"
    assert pick([]) is None and pick(["env=CartPoleTask-v1@length=0.3"]) is None
    assert pick(["env=Acrobot-v1", f"training.init={tmp_path}"]) is None
    assert pick(["env=Acrobot-v1", "task.name=narma10"]) is None
    with pytest.raises(ConfigError, match="shipped config name"):
        load_config("mountaincar.yaml", environ={})   # a file name is a path, never shipped


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_alchemy_train_runs_every_shipped_config(name, tmp_path):
    """``--env ID`` alone runs ID's shipped config; the CartPole variants are named by --config."""
    from neuralalchemy.config import SHIPPED_FOR_ENV

    alchemy = str(Path(sys.executable).parent / "alchemy")
    by_env = SHIPPED_FOR_ENV.get(CONFIGS[name]) == name
    pick = [] if by_env else ["--config", name]
    args = [alchemy, "train", "--env", CONFIGS[name], *pick, "--steps", "600", "--no-progress",
            "--out", str(tmp_path), "--set", "reservoir.size=32",
            "--set", "training.eval_episodes=2", "--set", "encoder.calibration_episodes=2"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (f"shipped {name}.yaml" in proc.stdout) == by_env, proc.stdout
    run = next((tmp_path / "runs").iterdir())
    assert (run / "summary.json").is_file() and (run / "checkpoint.npz").is_file()
    ran = load_checkpoint(run).config.training
    assert ran.algorithm == load_config(name, environ={}).training.algorithm
