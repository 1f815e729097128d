"""Bad input, everywhere: one row of docs/bad-input.md per test case. Each gets one clear line on
stderr, exit code 2, no traceback and no partial file; the config reader and the artifact and
checkpoint loaders are fuzzed."""

from __future__ import annotations

import errno
import json
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from clihelp import TINY, alchemy, assert_one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralalchemy.cli import main

BAD_ENVS = '''
import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class BrokenCartPole(CartPoleEnv):
    """CartPole whose 4th observation is corrupted: NaN or far outside the declared bounds."""

    def __init__(self, value=float("nan"), after=3, **kw):
        super().__init__(**kw)
        self.value, self.after, self.n = value, after, 0

    def reset(self, *, seed=None, options=None):
        self.n = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        self.n += 1
        if self.n >= self.after:
            obs = np.array(obs, dtype=np.float32)
            obs[0 if np.isfinite(self.value) else 3] = self.value
        return obs, r, term, trunc, info


gym.register("NaNCartPole-v0", entry_point=BrokenCartPole, max_episode_steps=500)
gym.register("FarCartPole-v0", entry_point=BrokenCartPole, max_episode_steps=500,
             kwargs={"value": 100.0})
'''


@pytest.fixture
def bad_envs(tmp_path_factory, monkeypatch) -> dict[str, str]:
    """Environment ids ``badenvs:NaNCartPole-v0`` / ``badenvs:FarCartPole-v0``, importable here
    and, through the returned PYTHONPATH, by a command in its own process."""
    import os

    root = tmp_path_factory.mktemp("envs")
    (root / "badenvs.py").write_text(BAD_ENVS)
    monkeypatch.syspath_prepend(str(root))
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def main_error(args: list[str], capsys: pytest.CaptureFixture, fragment: str) -> str:
    """Run ``alchemy ARGS`` in this process; assert exit 2 and one ``error:`` line naming
    ``fragment`` on stderr; return that line."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    return lines[0]


def no_runs(root: Path) -> bool:
    runs = root / "experiments" / "runs"
    return not runs.exists() or not any(runs.iterdir())


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]


# ---------------------------------------------------------------- configuration and ids
@pytest.mark.parametrize("args, files, fragment", [
    (["train", "--config", "bad.yaml"], {"bad.yaml": "reservoir: [1, 2\n"},
     "bad.yaml: malformed YAML at line"),
    (["train", "--config", "bad.yaml"], {"bad.yaml": "- just\n- a list\n"},
     "expected a mapping of sections"),
    (["train", "--config", "bad.ini"], {"bad.ini": "[reservoir\nsize = 3\n"},
     "bad.ini: malformed INI"),
    (["train", "--config", "missing.yaml"], {}, "not found"),
    (["train", "--set", "reservoir.bogus=1"], {}, "reservoir.bogus: unknown key"),
    (["train", "--set", "reservoir.size=abc"], {}, "reservoir.size: expected an integer"),
    (["train", "--set", "reservoir.size=-3"], {}, "reservoir.size: -3 is out of range"),
    (["train", "--set", "reservoir.du=1.5"], {}, "reservoir.du: 1.5 is out of range"),
    (["train", "--set", "reservoir"], {}, "expected section.key=value"),
    (["train", "--env", "NoSuchEnv-v0"], {}, "unknown environment id 'NoSuchEnv-v0'"),
    (["train", "--env", "CartPoleTask-v1@length=abc"], {}, "is not a number"),
    (["compile"], {}, "no trained run"),
    (["run"], {}, "no artifact"),
])
def test_bad_config_and_ids(tmp_path, monkeypatch, capsys, clean_env, args, files, fragment):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    main_error(args, capsys, fragment)
    assert no_runs(tmp_path)


def test_one_line_error_from_a_real_process(tmp_path):
    assert_one_line_error(alchemy("train", "--set", "reservoir.bogus=1", cwd=tmp_path),
                          "reservoir.bogus: unknown key")


def test_env_var_error_names_the_key(tmp_path):
    proc = alchemy("train", cwd=tmp_path, env={"RESERVOIR_SIZE": "-3"})
    assert_one_line_error(proc, "reservoir.size: -3 is out of range")


# ---------------------------------------------------------------- artifacts and checkpoints
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, fragment", [
    ("flip", "does not match its hash"),
    ("truncate", "does not match its hash"),
    ("delete", "is missing network.npz"),
    ("newer", "newer than this NeuralAlchemy reads"),
    ("manifest", "is not valid JSON"),
])
def test_damaged_artifact_is_refused(tiny_artifact, tmp_path, capsys, damage, fragment):
    art = _copy(tiny_artifact, tmp_path / "art")
    net = art / "network.npz"
    data = bytearray(net.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        net.write_bytes(bytes(data))
    elif damage == "truncate":
        net.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "delete":
        net.unlink()
    elif damage == "newer":
        manifest = json.loads((art / "manifest.json").read_text())
        manifest["format_version"] = 99
        (art / "manifest.json").write_text(json.dumps(manifest))
    else:
        (art / "manifest.json").write_text('{"format": "neuralalchemy-artifact", ')
    main_error(["run", str(art), "--backend", "torch"], capsys, fragment)


@pytest.mark.parametrize("damage, fragment", [
    ("truncate", "is not a readable checkpoint"),
    ("newer", "newer than this NeuralAlchemy reads"),
])
def test_damaged_checkpoint_is_refused(tiny_artifact, tmp_path, capsys, damage, fragment):
    run = _copy(next((tiny_artifact.parents[1] / "runs").iterdir()), tmp_path / "run")
    ckpt = run / "checkpoint.npz"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[:-500])
    else:
        with np.load(ckpt, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        meta = json.loads(str(arrays["meta"]))
        meta["format_version"] = 99
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(ckpt, **arrays)
    out = tmp_path / "out"
    main_error(["compile", str(run), "--out", str(out)], capsys, fragment)
    assert not out.exists() and no_temporaries(tmp_path)


# ---------------------------------------------------------------- observations
@pytest.mark.parametrize("env_id, fragment", [
    ("badenvs:NaNCartPole-v0", "has component 3 that is nan"),
    ("badenvs:FarCartPole-v0", "= 100 is outside the declared bounds"),
])
@pytest.mark.parametrize("backend", ["torch", pytest.param("sim", marks=pytest.mark.lava)])
def test_bad_observations_at_run_time(tiny_artifact, tmp_path, bad_envs, capsys, env_id,
                                      fragment, backend):
    args = ["run", str(tiny_artifact), "--backend", backend, "--env", env_id, "--episodes", "1",
            "--compare", "none"]
    if backend == "torch":
        line = main_error(args, capsys, fragment)
    else:  # the environment runs inside a Lava process; the error crosses back to the host
        proc = alchemy(*args, cwd=tmp_path, env=bad_envs)
        assert_one_line_error(proc, fragment)
        line = proc.stderr
    assert "after step 3" in line


def test_bad_observations_in_training(tmp_path, monkeypatch, bad_envs, capsys):
    monkeypatch.chdir(tmp_path)
    main_error(["train", "--env", "badenvs:NaNCartPole-v0", "--no-progress", *TINY], capsys,
               "the agent cannot encode it")
    assert no_runs(tmp_path)


# ---------------------------------------------------------------- targets and disks
def test_network_that_does_not_fit_names_the_limit(tiny_artifact, tmp_path, monkeypatch, capsys):
    """A chip whose cores hold 8 neurons and 4 cores: the 32-neuron agent needs 4+ cores of
    input axons and more chips; the error names the limit and the fix, nothing is written."""
    import dataclasses

    from neuralalchemy.compile import compiler
    from neuralalchemy.hardware.profiles import get_profile

    small = dataclasses.replace(get_profile("loihi2"), neurons_per_core=8, cores_per_chip=2,
                                max_chips=1)
    monkeypatch.setattr(compiler, "get_profile", lambda name: small)
    run = next((tiny_artifact.parents[1] / "runs").iterdir())
    out = tmp_path / "art"
    line = main_error(["compile", str(run), "--target", "loihi2", "--out", str(out)], capsys,
                      "error: network needs")
    assert "> 1 chips" in line
    assert not out.exists() and no_temporaries(tmp_path)


def test_disk_full_during_compile_leaves_nothing(tiny_artifact, tmp_path, monkeypatch, capsys):
    import neuralalchemy.fsio as fsio

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio.os, "fsync", full)
    run = next((tiny_artifact.parents[1] / "runs").iterdir())
    out = tmp_path / "art"
    main_error(["compile", str(run), "--out", str(out)], capsys,
               "no space left on device while writing; nothing was kept: free some space")
    assert not out.exists() and no_temporaries(tmp_path)


def test_disk_full_during_training_leaves_no_run(tmp_path, monkeypatch, capsys):
    import neuralalchemy.fsio as fsio

    monkeypatch.chdir(tmp_path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio.os, "fsync", full)
    main_error(["train", "--no-progress", *TINY], capsys, "no space left on device")
    assert no_runs(tmp_path) and no_temporaries(tmp_path)


# ---------------------------------------------------------------- fuzzing the readers
SCHEMA_KEYS = ["reservoir.size", "reservoir.du", "reservoir.precision", "reservoir.bogus",
               "encoder.kind", "encoder.ranges", "training.steps", "training.seed", "env",
               "readout", "meta.train_tasks", "exploration.epsilon"]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
    | st.text(string.printable, max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(string.ascii_lowercase, min_size=1, max_size=6), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(SCHEMA_KEYS), VALUES, max_size=4))
def test_fuzz_config_reader_raises_config_error_only(entries):
    from neuralalchemy.config import Config, ConfigError

    data: dict = {}
    for key, value in entries.items():
        section, _, name = key.partition(".")
        if name:
            node = data.setdefault(section, {})
            if isinstance(node, dict):
                node[name] = value
        else:
            data[section] = value
    try:
        Config.from_dict(data)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from(["yaml", "ini"]))
def test_fuzz_config_files(tmp_path_factory, text, kind):
    from neuralalchemy.config import ConfigError, load_config

    path = tmp_path_factory.mktemp("cfg") / f"c.{kind}"
    path.write_bytes(text)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert "\n" not in str(exc)


MANIFEST_FIELDS = ["format", "format_version", "env_id", "steps_per_obs", "files", "precision",
                   "neurons", "target"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(MANIFEST_FIELDS), value=VALUES,
       byte=st.integers(0, 10**6), flip=st.integers(0, 255))
def test_fuzz_artifact_loader_raises_artifact_error_only(tiny_artifact, tmp_path_factory, field,
                                                         value, byte, flip):
    from neuralalchemy.compile.artifact import ArtifactError, load_artifact

    art = _copy(tiny_artifact, tmp_path_factory.mktemp("fuzz") / "art")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest[field] = value
    (art / "manifest.json").write_text(json.dumps(manifest))
    net = art / "agent.npz"
    data = bytearray(net.read_bytes())
    data[byte % len(data)] ^= flip
    net.write_bytes(bytes(data))
    try:
        load_artifact(art)
    except ArtifactError as exc:
        assert "\n" not in str(exc)
    else:  # only an intact agent.npz under a valid manifest loads
        assert flip == 0


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cut=st.integers(0, 10**6), byte=st.integers(0, 10**6), flip=st.integers(0, 255))
def test_fuzz_checkpoint_loader_raises_checkpoint_error_only(tiny_artifact, tmp_path_factory,
                                                             cut, byte, flip):
    from neuralalchemy.checkpoint import CheckpointError, load_checkpoint

    src = next((tiny_artifact.parents[1] / "runs").iterdir()) / "checkpoint.npz"
    data = bytearray(src.read_bytes())
    data[byte % len(data)] ^= flip
    data = data[: len(data) - cut % 64] if cut % 3 else data
    path = tmp_path_factory.mktemp("ck") / "checkpoint.npz"
    path.write_bytes(bytes(data))
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        assert "\n" not in str(exc)
