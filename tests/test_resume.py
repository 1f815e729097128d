"""Resume: a training run killed with SIGKILL continues from its ``train_state.npz`` with
``alchemy train --resume RUN`` and ends exactly like the uninterrupted run with the same seed
(final checkpoint arrays, summary numbers, metrics records; wall-clock fields aside).

Fast tier: the state's serialisation, environment capture, and every learner continuing bit for
bit from a state that went through the file. Slow tier: real processes, killed at a random point
of an iteration and in the middle of a state write.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from clihelp import ALCHEMY, alchemy, assert_one_line_error
from netcases import CARTPOLE_RANGES

from neuralalchemy.agent_io import encoder_for
from neuralalchemy.cli import main
from neuralalchemy.config import load_config
from neuralalchemy.envs import env_info, make_vec
from neuralalchemy.learners import make_learner
from neuralalchemy.learners.base import Context
from neuralalchemy.network import build_network
from neuralalchemy.train import encoder_ranges, train
from neuralalchemy.train_state import (
    STATE_NAME,
    EnvStateError,
    env_state,
    load_env_state,
    load_train_state,
    pack,
    run_lock,
    save_train_state,
    unpack,
)
from neuralalchemy.vecfeatures import make_same_step_vec

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- serialisation
def test_pack_round_trips_every_kind_of_leaf():
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([param], lr=0.1)
    param.sum().backward()
    opt.step()
    tree = {"opt": opt.state_dict(), "gen": torch.Generator().manual_seed(3).get_state(),
            "rng": dict(np.random.default_rng(7).bit_generator.state), "best": -np.inf,
            "scalar": np.float32(1.5), "flag": np.bool_(True), "tuple": (1, (2.0, None)),
            "ints": {3: "x", 4: [np.arange(3)]}, "$odd": "key", "none": None}
    doc, arrays = pack(tree)
    back = unpack(json.loads(json.dumps(doc)), arrays)
    assert back["opt"]["state"].keys() == {0}  # int keys survive: torch matches params by them
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["gen"], tree["gen"]) and back["rng"] == tree["rng"]
    assert back["best"] == -np.inf and back["tuple"] == (1, (2.0, None))
    assert back["scalar"] == np.float32(1.5) and type(back["scalar"]) is np.float32
    assert type(back["flag"]) is np.bool_ and back["$odd"] == "key" and back["none"] is None
    assert np.array_equal(back["ints"][4][0], np.arange(3))
    with pytest.raises(TypeError, match="cannot hold a object"):
        pack({"x": object()})


def test_state_file_loads_without_pickle_and_refuses_damage(tmp_path):
    path = tmp_path / STATE_NAME
    save_train_state(path, {"config_hash": "h"}, {"a": np.ones(2), "t": torch.ones(1)})
    with np.load(path, allow_pickle=False) as data:
        assert "meta" in data.files
    meta, tree = load_train_state(path)
    assert meta["config_hash"] == "h" and np.array_equal(tree["a"], np.ones(2))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="not a readable training state"):
        load_train_state(path)


@pytest.mark.parametrize("vector", ["sync", "numpy"])
def test_env_state_continues_the_environments_exactly(vector):
    def build() -> Any:
        return make_same_step_vec("CartPole-v1", 3)[0] if vector == "sync" else \
            make_vec("CartPole-v1", 3)

    a = build()
    a.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(40):  # past several autoresets
        a.step(rng.integers(2, size=3))
    state = unpack(*pack(env_state(a)))
    b = build()
    b.reset(seed=99)
    load_env_state(b, state)
    for _ in range(60):
        act = rng.integers(2, size=3)
        out_a, out_b = a.step(act), b.step(act)
        for x, y in zip(out_a[:4], out_b[:4]):
            assert np.array_equal(x, y)


class _OpaqueEnv(gym.Env):  # type: ignore[type-arg]
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.engine = object()  # stands for a physics engine's C state


def test_env_state_names_what_it_cannot_capture():
    with pytest.raises(EnvStateError, match=r"_OpaqueEnv\.engine holds a object"):
        env_state(_OpaqueEnv())


def test_a_run_on_an_env_that_cannot_be_captured_trains_on_with_a_warning(tmp_path,
                                                                         monkeypatch):
    import neuralalchemy.vecfeatures

    def opaque(env: Any) -> Any:
        raise EnvStateError("Opaque.engine holds a object")

    monkeypatch.setattr(neuralalchemy.vecfeatures, "env_state", opaque)
    cfg = load_config(environ={}, overrides=[
        "reservoir.size=16", "encoder.calibration_episodes=1", "training.algorithm=ppo",
        "training.num_envs=2", "training.rollout_steps=8", "training.eval_episodes=2",
        "training.eval_every=1", CARTPOLE_RANGES])
    with pytest.warns(RuntimeWarning, match="Opaque.engine .* cannot be resumed"):
        result = train(cfg, out=tmp_path, steps=32, progress=False)
    assert (result.run_dir / "summary.json").is_file()
    assert not (result.run_dir / STATE_NAME).exists()


# ---------------------------------------------------------------- learners continue bit for bit
def _context(overrides: list[str], env: str) -> Context:
    cfg = load_config(environ={}, overrides=[f"env={env}", "reservoir.size=24",
                                             "encoder.calibration_episodes=2", *overrides])
    info = env_info(cfg.env)
    enc = encoder_for(cfg.encoder, encoder_ranges(cfg, info))
    network = build_network(cfg.reservoir, enc.n_channels, enc.binary)
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    return Context(cfg, info, network, enc, decay)


LEARNER_CASES = {
    "ppo": (["training.algorithm=ppo", "training.num_envs=4", "training.rollout_steps=16",
             "training.feature_noise=0.1", "exploration.intrinsic=rnd"], "CartPole-v1"),
    "ppo-box": (["training.algorithm=ppo", "training.num_envs=3", "training.rollout_steps=16",
                 "training.lr_schedule=cosine", "readout.features=trace",
                 "training.normalize_rewards=true"], "Pendulum-v1"),
    "blq": (["training.algorithm=blq", "training.num_envs=4", "training.refit_every=40",
             "training.replay_size=100", "exploration.thompson=true",
             "exploration.intrinsic=counts", "exploration.shaping=cartpole"], "CartPole-v1"),
    "blq-poisson": (["training.algorithm=blq", "training.num_envs=2", "training.refit_every=30",
                     "encoder.kind=poisson", "exploration.thompson=false"], "CartPole-v1"),
    "ars": (["training.algorithm=ars", "training.directions=3", "training.top_directions=2"],
            "CartPole-v1"),
    "mpc": (["training.algorithm=mpc", "training.num_envs=3", "training.rollout_steps=8",
             "training.random_steps=20", "training.model_every=20", "training.model_updates=5",
             "training.model_hidden=8", "training.plan_candidates=10",
             "training.plan_horizon=3", "exploration.shaping=acrobot"], "Acrobot-v1"),
}


@pytest.mark.parametrize("case", sorted(LEARNER_CASES))
def test_learner_resumes_bit_for_bit_from_a_saved_state(case, tmp_path):
    overrides, env = LEARNER_CASES[case]
    ctx = _context(overrides, env)
    torch.manual_seed(123)  # nothing may depend on torch's global generator
    first = make_learner(ctx)
    for _ in range(3):
        first.step()
    save_train_state(tmp_path / STATE_NAME, {}, first.state_dict())
    second = make_learner(_context(overrides, env))
    second.step()  # a learner that went elsewhere first: the state must override all of it
    torch.manual_seed(456)
    second.load_state_dict(load_train_state(tmp_path / STATE_NAME)[1])
    for _ in range(3):
        a, b = first.step(), second.step()
        assert np.array_equal(a.returns, b.returns) and np.array_equal(a.lengths, b.lengths)
    ra, rb = first.readout(), second.readout()
    for x, y in zip((ra.theta, ra.bias, ra.mean, ra.std), (rb.theta, rb.bias, rb.mean, rb.std)):
        assert np.array_equal(x, y)
    assert first.summary() == second.summary()


# ---------------------------------------------------------------- real processes, killed
RUNS = {  # small budgets, evaluations (and so saved states) every two or four updates
    "ppo": ("configs/cartpole_ppo.yaml", 1536, ["training.eval_every=2"]),
    "blq": ("configs/cartpole_blq.yaml", 1600, ["training.eval_every=4"]),
}
COMMON = ["reservoir.size=32", "training.eval_episodes=4", "training.target_return=1000"]


def _train_args(algorithm: str) -> list[str]:
    config, steps, sets = RUNS[algorithm]
    args = ["train", "--config", str(ROOT / config), "--steps", str(steps), "--no-progress"]
    for item in COMMON + sets:
        args += ["--set", item]
    return args


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RESERVOIR_", "ALCHEMY_", "TRAINING_", "ENCODER_", "READOUT_",
                                 "EXPLORATION_"))}


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(args, cwd=cwd, env=_env(), text=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _run_dir(cwd: Path) -> Path:
    return next((cwd / "experiments" / "runs").iterdir())


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() \
        else []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return out


def _without_wall(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def _assert_same_result(ref: Path, run: Path) -> None:
    with np.load(ref / "checkpoint.npz") as a, np.load(run / "checkpoint.npz") as b:
        assert a.files == b.files
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (ref, run))
    sa.pop("wall_s"), sb.pop("wall_s")
    assert sa == sb
    assert _without_wall(_records(ref)) == _without_wall(_records(run))
    assert not (run / STATE_NAME).exists() and not list(run.glob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted runs of both learners, started together in the background."""
    root = tmp_path_factory.mktemp("reference")
    procs = {}
    for algorithm in RUNS:
        (root / algorithm).mkdir()
        procs[algorithm] = _start([ALCHEMY, *_train_args(algorithm)], root / algorithm)
    out = {}
    for algorithm, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        out[algorithm] = _run_dir(root / algorithm)
    return out


def _kill_after_a_saved_state(proc: subprocess.Popen[str], cwd: Path) -> Path:
    """SIGKILL once an evaluation (and so a state) is saved and a later update is underway."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        runs = cwd / "experiments" / "runs"
        records = _records(_run_dir(cwd)) if runs.is_dir() and any(runs.iterdir()) else []
        evals = [i for i, r in enumerate(records) if r["kind"] == "eval"]
        if evals and len(records) > evals[0] + 1:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return _run_dir(cwd)
        time.sleep(0.02)
    raise AssertionError("no state was saved in time")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(RUNS))
def test_killed_run_resumes_to_the_uninterrupted_result(algorithm, reference, tmp_path):
    proc = _start([ALCHEMY, *_train_args(algorithm)], tmp_path)
    run = _kill_after_a_saved_state(proc, tmp_path)
    assert proc.returncode == -signal.SIGKILL
    assert (run / STATE_NAME).is_file() and not (run / "summary.json").exists()
    meta, _ = load_train_state(run / STATE_NAME)
    assert meta["iteration"] > 0
    assert len(_records(run)) > _offset_records(run, meta["metrics_offset"])  # work to undo
    done = alchemy("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_same_result(reference[algorithm], run)
    assert json.loads((run / "provenance.json").read_text())["resumed"] == [
        {"iteration": meta["iteration"], "env_steps": meta["env_steps"]}]


def _offset_records(run: Path, offset: int) -> int:
    return (run / "metrics.jsonl").read_bytes()[:offset].count(b"\n")


KILL_IN_WRITE = """
import os, signal, sys
import neuralalchemy.train_state as ts
from neuralalchemy.cli import main
real, calls = ts.atomic_write_bytes, []
def write(path, data):
    calls.append(path)
    if len(calls) == int(sys.argv[1]):  # this state write dies half-way
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".cut.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
ts.atomic_write_bytes = write
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_kill_during_a_state_write_resumes_from_the_last_complete_state(reference, tmp_path):
    # state writes: 1 at the start, 2 after the evaluation at update 2, 3 after update 4
    proc = _start([sys.executable, "-c", KILL_IN_WRITE, "3", *_train_args("ppo")], tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, err
    run = _run_dir(tmp_path)
    assert list(run.glob(f".{STATE_NAME}.*.tmp"))
    meta, _ = load_train_state(run / STATE_NAME)
    assert meta["iteration"] == 2
    _check_refusals(run, tmp_path, reference["ppo"])
    done = alchemy("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_same_result(reference["ppo"], run)
    finished = alchemy("train", "--resume", str(run), cwd=tmp_path)
    assert_one_line_error(finished, "has finished")


def _check_refusals(run: Path, tmp: Path, finished: Path) -> None:
    """One-line errors (exit 2) for what cannot be resumed, checked in process."""
    other = tmp / "other"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["training"]["seed"] += 1
    (other / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (tmp / "empty").mkdir()
    cases = [(["--resume", str(other)], "different config"),
             (["--resume", str(tmp / "empty")], f"no {STATE_NAME}"),
             (["--resume", str(finished)], "has finished"),
             (["--resume", str(tmp / "missing")], "is not a run folder"),
             (["--resume", str(run), "--steps", "10"], "drop --env")]
    for args, fragment in cases:
        code, err = _main(["train", *args])
        assert code == 2 and err.count("\n") == 1 and fragment in err, err
    with run_lock(run):  # as if its first process still ran
        code, err = _main(["train", "--resume", str(run)])
    assert code == 2 and "being trained by another process" in err, err


def _main(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code = main(argv)
    return code, buf.getvalue()
