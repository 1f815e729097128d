"""Supervised-task runs through `alchemy compile` and `alchemy run`: the compiled reservoir runs
the task's test part on Lava bit-exactly like torch and reaches the training-time metric; a learned
attention run compiles with its gains in the input connection; digits features from the artifact
equal the training features; bad uses fail in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from netcases import BRIAN2_PYPARSING

from neuralalchemy.cli import main
from neuralalchemy.compile.task_artifact import load_task_artifact, run_task_artifact, task_outputs
from neuralalchemy.config import Config
from neuralalchemy.supervised import load_task_checkpoint, make_task, task_features

SMALL = ["--set", "task.train_length=300", "--set", "task.test_length=120", "--set",
         "task.washout=30", "--set", "reservoir.size=40", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _train_compile(tmp_path, *args: str, target: str = "loihi"):
    assert main(["train", *args, "--out", str(tmp_path)]) == 0
    run = max((tmp_path / "runs").iterdir())
    out = tmp_path / "artifacts" / f"{run.name}-{target}"
    assert main(["compile", str(run), "--target", target, "--out", str(out)]) == 0
    return run, out


def test_attention_run_compiles_and_runs_on_lava_like_torch(tmp_path, capsys):
    """Backprop with learned input gains: `alchemy compile` places it on Loihi 2 cores with the
    gains inside the input weights; on Lava the test NRMSE equals torch's (identical features) and
    the training-time figure."""
    run, art = _train_compile(tmp_path, "--task", "narma10", *SMALL, "--set",
                              "task.method=backprop", "--set", "task.attention=true", "--set",
                              "task.epochs=2", "--set", "task.train_input=false")
    _, trained_net, _ = load_task_checkpoint(run / "checkpoint.npz")
    manifest, net, _, _ = load_task_artifact(art)
    assert manifest["kind"] == "task" and manifest["precision"] == "fixed"
    np.testing.assert_array_equal(net.w_in, trained_net.w_in)  # gains live in W_in
    cfg = Config.from_dict(manifest["config"])
    from neuralalchemy.network import build_network
    from neuralalchemy.supervised import series_encoder
    drawn = build_network(cfg.reservoir, series_encoder(cfg, make_task(cfg)).n_channels)
    assert not np.array_equal(net.w_in, drawn.w_in)  # ...and they changed them
    res = json.loads((art / "resources.json").read_text())
    assert res["placement"]["totals"]["neurons"] == 40
    capsys.readouterr()
    assert main(["run", str(art), "--backend", "sim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "nrmse" and out["rows"] == 120
    assert out["compare"]["backend"] == "torch" and out["compare"]["identical_features"]
    assert out["value"] == out["compare"]["value"]
    summary = json.loads((run / "summary.json").read_text())
    assert abs(out["value"] - summary["value"]) < 0.02, (out["value"], summary["value"])
    assert out["value"] < 0.95  # better than predicting the mean


def test_float_run_is_quantized_and_its_readout_refit(tmp_path):
    """A float-precision task run compiled for Loihi: the network is quantized and the readout
    re-fitted on the fixed network's features; the artifact's metric is the re-fitted one."""
    _, art = _train_compile(tmp_path, "--task", "narma10", *SMALL, "--set",
                            "reservoir.precision=float")
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["precision"] == "fixed" and manifest["refit"]["metric"] == "nrmse"
    result = run_task_artifact(art, "torch", 1)
    assert abs(result["value"] - manifest["refit"]["value"]) < 0.02


@pytest.mark.brian2
@BRIAN2_PYPARSING
def test_digits_artifact_features_equal_the_training_features(tmp_path):
    """Each test sequence runs from rest as in training: the artifact's torch features equal the
    training features of those sequences exactly, and so does its Brian2 run."""
    _, art = _train_compile(tmp_path, "--task", "digits", "--set", "reservoir.size=30",
                            "--no-progress")
    manifest, net, ro, enc = load_task_artifact(art)
    cfg = Config.from_dict(manifest["config"])
    task = make_task(cfg)
    want = task_features(cfg, task, net, enc)[task.train:task.train + 3]
    got = task_outputs("torch", manifest, net, enc, 3)
    np.testing.assert_array_equal(got["features"], want)
    b2 = run_task_artifact(art, "brian2", 3, compare="torch")
    assert b2["compare"]["identical_features"] and b2["rows"] == 3


def test_bad_uses_of_a_task_artifact_fail_in_one_line(tmp_path, capsys):
    from test_bad_input import main_error

    _, art = _train_compile(tmp_path, "--task", "narma10", *SMALL)
    main_error(["run", str(art), "--env", "CartPole-v1"], capsys, "has no environment")
    main_error(["crosscheck", str(art)], capsys, "holds a supervised task (narma10)")
    run = max((tmp_path / "runs").iterdir())
    main_error(["compile", str(run), "--target", "loihi1", "--out", str(tmp_path / "l1")],
               capsys, "only Loihi 2 supports")
    assert not (tmp_path / "l1").exists()
    (art / "task.npz").write_bytes(b"damaged")
    main_error(["run", str(art), "--backend", "torch"], capsys, "does not match its hash")
