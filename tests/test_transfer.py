"""Transfer learning (``--init RUN``) and curricula: what moves, what is fine-tuned, and the head
start a transferred agent has over one trained from scratch."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from clihelp import alchemy
from test_bad_input import main_error

from neuralalchemy.checkpoint import load_checkpoint
from neuralalchemy.config import Config, ConfigError, load_config
from neuralalchemy.envs import env_info
from neuralalchemy.learners import make_learner
from neuralalchemy.learners.base import Readout
from neuralalchemy.train import _start, build_context, evaluate_readout, train
from neuralalchemy.transfer import source_readout

RANGES = "encoder.ranges=[[-2.4,2.4],[-3,3],[-0.21,0.21],[-3.5,3.5]]"
SMALL = ["reservoir.size=64", "training.eval_episodes=10", RANGES]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A 64-neuron CartPole ARS agent after a few thousand env steps."""
    root = tmp_path_factory.mktemp("source")
    cfg = load_config(None, overrides=[*SMALL, f"out={root}", "training.target_return=200"])
    return train(cfg, steps=6000, progress=False).run_dir


def _learner_readout(cfg: Config, algorithm: str):
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training,
                                                                algorithm=algorithm))
    info = env_info(cfg.env)
    return _start(cfg, info)


@pytest.mark.parametrize("algorithm", ["ars", "ppo", "blq"])
def test_warm_start_acts_as_the_source(source_run, algorithm):
    """Before any update, every learner's greedy readout computes the source's function of the
    raw features (re-expressed in its own normalisation where it has one)."""
    src = source_readout(load_checkpoint(source_run))
    cfg = load_config(None, overrides=[*SMALL, f"training.init={source_run}"])
    _, _, _, learner = _learner_readout(cfg, algorithm)
    ro = learner.readout()
    f = np.random.default_rng(0).poisson(3.0, size=(50, src.theta.shape[1])).astype(float)

    def logits(r: Readout) -> np.ndarray:
        return ((f - r.mean) / r.std) @ r.theta.T + r.bias

    np.testing.assert_allclose(logits(ro), logits(src), rtol=1e-9, atol=1e-9)


def test_transferred_agent_starts_where_the_source_ended(source_run):
    """The head start is real: on a new pole length, the transferred readout before any update
    plays like the source, far above an untrained readout on the same features."""
    cfg = load_config(None, overrides=[*SMALL, f"training.init={source_run}",
                                       "env=CartPoleTask-v1@length=0.4"])
    torch.manual_seed(0)
    _, _, ctx, learner = _learner_readout(cfg, "ars")
    warm = evaluate_readout(ctx, learner.readout(), 10).mean()
    scratch_cfg = load_config(None, overrides=[*SMALL, "env=CartPoleTask-v1@length=0.4"])
    info = env_info(scratch_cfg.env)
    sctx = build_context(scratch_cfg, info, np.asarray(scratch_cfg.encoder.ranges))
    cold = evaluate_readout(sctx, make_learner(sctx).readout(), 10).mean()
    source_eval = json.loads((source_run / "summary.json").read_text())["eval_mean"]
    assert warm > 3 * cold and warm > 0.5 * source_eval, (warm, cold, source_eval)


def test_init_run_keeps_the_source_network_and_writes_its_own_run(source_run, tmp_path):
    proc = alchemy("train", "--no-progress", "--init", str(source_run), "--env",
                   "CartPoleTask-v1@length=0.4", "--steps", "300", "--freeze", "normalisation",
                   "--set", "training.eval_episodes=3",
                   "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = next((tmp_path / "runs").iterdir())
    src, new = load_checkpoint(source_run), load_checkpoint(run)
    for key, value in src.network.to_arrays().items():
        np.testing.assert_array_equal(new.network.to_arrays()[key], value)
    assert new.config.reservoir == src.config.reservoir
    assert new.config.training.init == str(source_run)
    assert new.config.training.init_freeze == "normalisation"
    # the frozen normalisation is the source's
    np.testing.assert_allclose(new.feat_mean, src.feat_mean, rtol=1e-12)


def test_init_from_an_incompatible_env_is_one_line(source_run, tmp_path, capsys):
    base = ["train", "--no-progress", "--steps", "100", "--out", str(tmp_path)]
    main_error([*base, "--init", str(source_run), "--env", "Pendulum-v1"], capsys,
               "cannot act in Pendulum-v1")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    main_error([*base, "--init", str(tmp_path / "nothing")], capsys,
               "training.init: no checkpoint")


def test_curriculum_chains_stages(tmp_path):
    stages = [{"env": "CartPoleTask-v1@length=0.5", "steps": 300},
              {"env": "CartPoleTask-v1@length=0.3", "steps": 300}]
    cfg = Config.from_dict({"out": str(tmp_path), "curriculum": {"stages": stages},
                            "reservoir": {"size": 32},
                            "encoder": {"ranges": [[-2.4, 2.4], [-3, 3], [-0.21, 0.21],
                                                   [-3.5, 3.5]]},
                            "training": {"eval_episodes": 4}})
    result = train(cfg, progress=False)
    # in the order written (both stages may start within one second, so not by name)
    runs = sorted((tmp_path / "runs").iterdir(),
                  key=lambda p: (p / "checkpoint.npz").stat().st_mtime_ns)
    assert len(runs) == 2 and result.run_dir == runs[-1]
    assert runs[0].name.endswith("length_0.5") and runs[1].name.endswith("length_0.3")
    assert load_checkpoint(runs[1]).config.training.init == str(runs[0])
    assert [s["env"] for s in result.summary["curriculum"]] == [s["env"] for s in stages]
    saved = json.loads((runs[1] / "summary.json").read_text())
    assert saved["curriculum_env_steps"] == sum(s["env_steps"] for s in saved["curriculum"])
    # the steps stage 1 left unused (it stops after the update that crosses its budget: none
    # here) go to stage 2's budget
    first = load_checkpoint(runs[0]).config.training.steps
    assert first == 300
    second = load_checkpoint(runs[1]).config.training.steps
    assert second == 300 + max(0, 300 - saved["curriculum"][0]["env_steps"])


def test_curriculum_stage_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"curriculum.stages\[1\]: steps is missing"):
        Config.from_dict({"curriculum": {"stages": [{"env": "CartPole-v1", "steps": 5},
                                                    {"env": "CartPole-v1"}]}})


@pytest.mark.slow
def test_sparse_reward_curriculum_solves_what_scratch_does_not(tmp_path):
    """GoalCartPole pays only for balancing `goal` steps. Under one 30k-step budget (64 neurons,
    seed 1), the curriculum goal 25 → 100 → 250 → 500 reaches a 95 % success rate on goal 500;
    training on goal 500 from scratch finds no reward to learn from (benchmarks/
    transfer_curriculum.py measures this over seeds with the shipped 256-neuron config)."""
    base = {"out": str(tmp_path), "reservoir": {"size": 64, "seed": 1},
            "encoder": {"ranges": [[-2.4, 2.4], [-3, 3], [-0.21, 0.21], [-3.5, 3.5]]},
            "training": {"eval_episodes": 10, "eval_every": 1, "target_return": 0.95,
                         "seed": 1}}
    stages = [{"env": f"GoalCartPole-v1@goal={g}", "steps": s}
              for g, s in ((25, 5000), (100, 5000), (250, 5000), (500, 15000))]
    cur = train(Config.from_dict({**base, "curriculum": {"stages": stages}}), progress=False)
    assert cur.summary["solved"] and cur.summary["curriculum_env_steps"] <= 30_000
    scratch = train(Config.from_dict({**base, "env": "GoalCartPole-v1@goal=500"}),
                    steps=30_000, progress=False)
    assert not scratch.summary["solved"] and scratch.summary["eval_mean"] < 0.5


@pytest.mark.parametrize("name", ["curriculum_cartpole", "curriculum_goal_cartpole",
                                  "curriculum_dense_to_sparse", "transfer_cartpole"])
def test_shipped_transfer_and_curriculum_configs_load_and_their_envs_exist(name):
    """Every stage of a shipped curriculum names an environment that exists, with the
    observation and action spaces of the final one (a stage hands its agent to the next)."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    cfg = load_config(path, environ={})
    final = env_info(cfg.env)
    for stage in cfg.curriculum.stages:
        info = env_info(stage["env"])
        assert (info.obs_dim, info.n_actions) == (final.obs_dim, final.n_actions)
    if cfg.curriculum.stages:
        assert cfg.curriculum.stages[-1]["env"] == cfg.env
