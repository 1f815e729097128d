"""Supervised reservoir tasks: generator gold values, readouts, metrics, a tiny run, bad configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuralalchemy.config import Config, ConfigError, load_config
from neuralalchemy.supervised import (
    capacity_curve,
    evaluate_sequences,
    fit_ridge,
    fit_softmax,
    load_task_checkpoint,
    make_task,
    memory_capacity,
    nrmse,
    sequence_states,
    series_states,
    task_network,
    train_task,
)
from neuralalchemy.supervised_tasks import (
    SequenceTask,
    delayed,
    digits,
    mackey_glass,
    narma,
    narma10,
    recall_stream,
    series_task,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _cfg(*sets: str) -> Config:
    return load_config(None, overrides=list(sets), environ={})


# ---------------------------------------------------------------- generators
def test_narma_gold_values_and_recurrence():
    u = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.25])
    y = narma(u)
    assert y[0] == pytest.approx(0.1)  # 0.3·0 + 0 + 1.5·0·u + 0.1
    assert y[1] == pytest.approx(0.3 * 0.1 + 0.05 * 0.1 * 0.1 + 0.1)
    # from t = 9 on the input term is 1.5·u(t−9)·u(t); check the full recurrence there
    s = np.concatenate([[0.0], y])  # s[t] = y(t), s[t+1] predicted at step t
    for t in range(9, len(u)):
        want = 0.3 * s[t] + 0.05 * s[t] * s[t - 9:t + 1].sum() + 1.5 * u[t - 9] * u[t] + 0.1
        assert s[t + 1] == pytest.approx(want)


def test_narma10_input_range_and_determinism():
    u, y = narma10(2000, seed=3)
    assert u.min() >= 0.0 and u.max() <= 0.5
    assert np.all(np.isfinite(y)) and 0.1 <= y.min() and y.max() < 1.5
    u2, y2 = narma10(2000, seed=3)
    assert np.array_equal(u, u2) and np.array_equal(y, y2)
    assert not np.array_equal(u, narma10(2000, seed=4)[0])


def test_mackey_glass_shape_range_and_determinism():
    x = mackey_glass(600, seed=0)
    assert x.shape == (600,)
    assert 0.2 < x.min() < 0.6 and 1.1 < x.max() < 1.45  # the tau = 17 attractor
    assert np.array_equal(x, mackey_glass(600, seed=0))
    assert np.std(np.diff(x)) < 0.1  # smooth: sampled every time unit of a slow system
    task = series_task("mackey_glass", 300, 200, 50, seed=0, horizon=1)
    assert task.u.min() == pytest.approx(-1.0) and task.u[:350].max() == pytest.approx(1.0)
    assert np.array_equal(task.y[:-1, 0], task.u[1:, 0])  # target = next value


def test_delayed_targets_and_recall_stream():
    u = np.arange(1.0, 6.0)
    d = delayed(u, 2)
    assert d[:, 0].tolist() == [0, 1, 2, 3, 4] and d[:, 1].tolist() == [0, 0, 1, 2, 3]
    cues, target, recall = recall_stream(400, delay=10, seed=1)
    times = np.flatnonzero(cues)
    assert set(np.unique(cues[times])) <= {-1.0, 1.0}
    assert np.all(np.diff(times) >= 11) and np.all(np.diff(times) <= 21)
    assert np.array_equal(target[recall], cues[recall - 10])  # the cue `delay` steps before


def test_digits_split_is_deterministic():
    a, b = digits(0), digits(0)
    assert a.x.shape == (1797, 8, 8) and a.train == 1438 and a.classes == 10
    assert np.array_equal(a.labels, b.labels) and 0.0 <= a.x.min() and a.x.max() <= 1.0


# ---------------------------------------------------------------- readouts and metrics
def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * [1, 2, 3, 4, 5] + 7.0
    a = rng.normal(size=(5, 2))
    y = x @ a + [1.5, -2.0]
    ro = fit_ridge(x, y, ridge=0.0)
    np.testing.assert_allclose((ro.w / ro.std).T, a, atol=1e-8)
    np.testing.assert_allclose(ro(x), y, atol=1e-8)
    shrunk = fit_ridge(x, y, ridge=10.0)
    assert np.abs(shrunk.w).sum() < np.abs(ro.w).sum()


def test_memory_capacity_of_a_delay_line():
    u = np.random.default_rng(1).uniform(-1, 1, 3000)
    states = delayed(u, 12)  # a perfect delay line of 12 steps as the "reservoir"
    targets = delayed(u, 20)
    tr, te = slice(20, 2000), slice(2000, 3000)
    ro = fit_ridge(states[tr], targets[tr], ridge=1e-9)
    curve = capacity_curve(targets[te], ro(states[te]))
    np.testing.assert_allclose(curve[:12], 1.0, atol=1e-9)
    assert curve[12:].max() < 0.02
    assert memory_capacity(targets[te], ro(states[te])) == pytest.approx(12.0, abs=0.2)
    assert nrmse(u, u) == 0.0 and nrmse(u, np.full_like(u, u.mean())) == pytest.approx(1.0)


def test_softmax_readout_separates_classes():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 4)) + 3.0 * np.eye(3, 4)[labels]
    ro = fit_softmax(x, labels, classes=3, l2=1e-3)
    assert ro.kind == "softmax" and np.mean(ro(x).argmax(axis=1) == labels) > 0.95


# ---------------------------------------------------------------- reservoir states
def test_lanes_match_the_continuous_run_on_the_first_piece():
    cfg = _cfg("reservoir.size=20", "reservoir.input_scale=2.0")
    net = task_network(cfg, 2)
    x = np.random.default_rng(0).integers(0, 256, (120, 2))
    one = series_states(net, x, steps=2, lanes=1)
    four = series_states(net, x, steps=2, lanes=4, warmup=10)
    assert one.shape == four.shape == (120, 20) and one.sum() > 0
    np.testing.assert_array_equal(one[:30], four[:30])  # lane 0 starts where the stream does


def test_digits_readout_learns_on_spikes():
    cfg = _cfg("reservoir.size=40", "reservoir.input_scale=1.5",
               "reservoir.input_connectivity=0.5", "reservoir.steps_per_obs=3")
    full = digits(0)
    task = SequenceTask("digits", full.x[:400], full.labels[:400], 300, 10)
    net = task_network(cfg, 8)
    feats = sequence_states(net, np.floor(task.x * 255 + 0.5).astype(np.int64), 3)
    metrics, _ = evaluate_sequences(task, feats, l2=1e-3)
    assert metrics["accuracy"] > 0.6  # chance is 0.1


# ---------------------------------------------------------------- the run
def test_train_task_writes_a_run_that_beats_the_mean_predictor(tmp_path):
    cfg = _cfg("task.name=mackey_glass", "task.train_length=600", "task.test_length=200",
               "task.washout=50", "reservoir.size=40", "reservoir.steps_per_obs=4",
               "reservoir.bias=0.3", "reservoir.du=0.3", "reservoir.dv=0.5",
               "reservoir.refractory=0", "reservoir.spectral_radius=0.6",
               "reservoir.input_scale=2.0", "reservoir.input_connectivity=0.5",
               "reservoir.inhibitory_gain=1.0", "encoder.kind=current",
               "task.select_ridge=true", f"out={tmp_path}")
    result = train_task(cfg, progress=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["metric"] == "nrmse" and summary["value"] == result.summary["value"]
    assert summary["value"] < 0.4  # the mean predictor scores 1
    records = [json.loads(line) for line in
               (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["states", "eval"]
    assert (result.run_dir / "config.yaml").is_file()
    assert (result.run_dir / "provenance.json").is_file()
    meta, net, ro = load_task_checkpoint(result.run_dir / "checkpoint.npz")
    assert meta["config"]["task"]["name"] == "mackey_glass"
    assert net.precision == "fixed" and net.size == 40 and ro.w.shape == (1, 40)


def test_delayed_recall_needs_a_memory_mechanism(tmp_path):
    base = ["task.name=delayed_recall", "task.delay=12", "task.train_length=600",
            "task.test_length=300", "task.washout=30", "reservoir.size=20",
            "reservoir.steps_per_obs=5", "encoder.kind=current", f"out={tmp_path}"]
    plain = train_task(_cfg(*base), progress=False).summary
    held = train_task(_cfg(*base, "reservoir.memory_units=1"), progress=False).summary
    assert plain["metric"] == "accuracy" and plain["value"] < 0.8
    assert held["value"] > 0.95  # the flip-flop keeps the sign of the last cue


@pytest.mark.parametrize("sets, key", [
    ([], "task.name"),
    (["task.name=narma10", "task.washout=500", "task.train_length=400"], "task.washout"),
    (["task.name=memory_capacity", "task.train_length=300", "reservoir.size=100"],
     "task.max_delay"),
    (["task.name=narma10", "encoder.kind=poisson"], "encoder.kind"),
])
def test_bad_task_config_is_a_config_error(tmp_path, sets, key):
    cfg = _cfg(*sets, f"out={tmp_path}")
    with pytest.raises(ConfigError, match=key):
        train_task(cfg, progress=False)


def test_unknown_task_and_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="task.name"):
        _cfg("task.name=narma30")
    with pytest.raises(ConfigError, match="task.lanes"):
        _cfg("task.lanes=0")
    assert make_task(_cfg("task.name=memory_capacity", "reservoir.size=10")).y.shape[1] == 20


def test_backprop_with_nothing_trained_equals_the_ridge_path(tmp_path):
    """``task.method=backprop`` evaluates exactly as the closed-form path (same features,
    trace, lanes, rows, ridge selection, fixed point after re-quantisation): training only the
    readout, which is refitted in closed form, gives the ridge result to the last bit."""
    small = ["task.name=narma10", "reservoir.size=10", "task.train_length=120",
             "task.test_length=50", "task.washout=20", "task.lanes=2", "task.select_ridge=true",
             "readout.features=trace", "task.epochs=1", "task.sequence_length=30",
             f"out={tmp_path}"]
    ridge = train_task(_cfg(*small), progress=False)
    bp = train_task(_cfg(*small, "task.method=backprop", "task.train_input=false"),
                    progress=False)
    assert bp.summary["method"] == "backprop" and bp.summary["precision"] == "fixed"
    assert bp.summary["value"] == ridge.summary["value"]
    assert bp.summary["ridge"] == ridge.summary["ridge"]
    assert (bp.run_dir / "checkpoint.npz").is_file()


def test_cli_trains_a_task_with_plasticity(tmp_path, capsys):
    """`alchemy train --task narma10 --plasticity stdp` pre-adapts the reservoir on the task's
    inputs (the network differs from the drawn one) and prints the test metric; commands that
    need an agent name the run as a supervised task in one line."""
    from test_bad_input import main_error

    from neuralalchemy.cli import main

    small = ["--set", "task.train_length=300", "--set", "task.test_length=100", "--set",
             "task.washout=20", "--set", "reservoir.size=30", "--set", "task.lanes=2",
             "--out", str(tmp_path), "--no-progress"]
    assert main(["train", "--task", "narma10", *small]) == 0
    assert main(["train", "--task", "narma10", "--plasticity", "stdp", *small]) == 0
    plain, adapted = sorted((tmp_path / "runs").iterdir())
    out = capsys.readouterr().out
    assert "nrmse" in out and "stdp" in out
    _, net0, _ = load_task_checkpoint(plain / "checkpoint.npz")
    _, net1, _ = load_task_checkpoint(adapted / "checkpoint.npz")
    assert not np.array_equal(net0.w_rec, net1.w_rec)
    assert np.all(np.sign(net0.w_rec) * np.sign(net1.w_rec) >= 0)  # no sign flips (Dale)
    assert not np.any((net1.w_rec != 0) & (net0.w_rec == 0))  # no new synapses
    summary = json.loads((adapted / "summary.json").read_text())
    assert summary["plasticity"] == "stdp" and summary["metric"] == "nrmse"
    main_error(["train", "--init", str(adapted), "--out", str(tmp_path)], capsys,
               "is a supervised-task run (narma10)")
