"""Surrogate-gradient BPTT and attention: the differentiable LIF equals the engine, training
beats the readout-only ridge on the same reservoir, attention suppresses distractor channels,
every optimizer runs, and the trained network keeps its accuracy in Loihi fixed point."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from neuralalchemy.attention import fold_gains, realised_gains
from neuralalchemy.config import ReservoirConfig, TaskConfig, TrainingConfig
from neuralalchemy.engine import Reservoir
from neuralalchemy.learners.optim import OPTIMIZERS, dropout, gaussian_noise, weight_noise
from neuralalchemy.learners.surrogate import (
    _Reservoir,
    fit_backprop,
    predict,
    ridge_result,
    score,
    spike,
)
from neuralalchemy.network import draw_float_network, quantize_network

K = 5  # timesteps per input step in the learning tests
WASHOUT = 10


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(n_inputs: int, **kw: object) -> object:
    return draw_float_network(ReservoirConfig(size=40, seed=2, precision="float", **kw), n_inputs)


# ---------------------------------------------------------------- forward pass and surrogate
def test_forward_equals_engine_spike_for_spike():
    cfg = ReservoirConfig(size=60, seed=3, delay_max=3, refractory=2, bias=0.05,
                          spectral_radius=1.2, input_scale=1.5, precision="float")
    net = draw_float_network(cfg, 4)
    x = torch.as_tensor(np.random.default_rng(0).random((2, 300, 4)))
    model = _Reservoir(net, TaskConfig(train_input=True, train_recurrent=True, attention=True))
    w = model.weights(0.0, None)
    state = model.warm_state(2, w[1])
    counts, _ = model.run(x, state, w, 1)  # one timestep per input: counts are the spikes
    res = Reservoir(net, 2)
    res.reset()
    ref = torch.stack([res.run(x[:, t], 1) for t in range(300)], dim=1)
    assert ref.sum() > 500, "the network should be active"
    assert torch.equal(counts.detach().to(torch.int64), ref)


def test_fast_sigmoid_surrogate_derivative():
    v = torch.tensor([0.0, 0.9, 1.0, 1.2, 3.0], dtype=torch.float64, requires_grad=True)
    s = spike(v, 1.0, 5.0)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    s.sum().backward()
    expect = 1.0 / (1.0 + 5.0 * (v.detach() - 1.0).abs()) ** 2
    assert torch.allclose(v.grad, expect)


# ---------------------------------------------------------------- learning
def _split(x: np.ndarray, y: np.ndarray, train: int) -> tuple[np.ndarray, ...]:
    return x[:train], y[:train], x[train:], y[train:]


def test_backprop_on_input_weights_beats_ridge_readout():
    rng = np.random.default_rng(0)
    x = rng.random((600, 2))
    y = x[:, 0] * x[:, 1]
    xtr, ytr, xte, yte = _split(x, y, 400)
    net = _net(2, input_connectivity=1.0)  # every neuron hears both channels
    base = score(ridge_result(net, xtr, ytr, K, WASHOUT, 1e-4), xte, yte)
    task = TaskConfig(epochs=10, batch_size=8, sequence_length=20, train_input=True)
    res = fit_backprop(net, xtr, ytr, "regression", task, TrainingConfig(lr=0.05), K, WASHOUT, 0)
    trained = score(res, xte, yte)
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])
    assert trained < base - 0.04, (trained, base)
    assert not np.array_equal(res.network.w_in, net.w_in)
    assert np.array_equal(res.network.w_rec, net.w_rec)  # recurrent weights were not trained


def test_attention_suppresses_distractors_and_survives_fixed_point():
    rng = np.random.default_rng(0)
    x = rng.random((600, 8))  # channels 0, 1 carry the signal, 2..7 are noise
    y = x[:, 0] - x[:, 1]
    xtr, ytr, xte, yte = _split(x, y, 400)
    net = _net(8)
    base = score(ridge_result(net, xtr, ytr, K, WASHOUT, 1e-4), xte, yte)
    task = TaskConfig(epochs=10, batch_size=8, sequence_length=20, train_input=False,
                      attention=True)
    train = TrainingConfig(lr=0.1, l1=0.02)  # l1 also pulls every gain toward 0
    res = fit_backprop(net, xtr, ytr, "regression", task, train, K, WASHOUT, 0)
    informative, distractors = res.gains[:2], res.gains[2:]
    assert distractors.mean() < 0.5 * informative.mean(), res.gains
    trained = score(res, xte, yte)
    assert trained < base - 0.08, (trained, base)
    # the gains are folded into W_in, which compiles to 8-bit mantissas under one exponent
    np.testing.assert_allclose(res.network.w_in, net.w_in * res.gains, rtol=1e-12)
    fixed = quantize_network(res.network)
    realised = realised_gains(fixed, net)
    np.testing.assert_allclose(realised, res.gains, rtol=0.05)
    gap = abs(score(res, xte, yte, "fixed") - score(res, xte, yte))
    assert gap < 0.05, gap


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_and_regulariser_runs(optimizer):
    rng = np.random.default_rng(1)
    x = rng.random((80, 3))
    y = np.roll(x[:, 0], 1)
    net = draw_float_network(ReservoirConfig(size=20, seed=1, precision="float", delay_max=2), 3)
    task = TaskConfig(epochs=2, batch_size=4, sequence_length=10, train_input=True,
                      train_recurrent=True, attention=True, dropout=0.1, input_noise=0.05,
                      weight_noise=0.05)
    train = TrainingConfig(optimizer=optimizer, lr=0.01, lr_schedule="cosine", l1=1e-4,
                           l2=1e-3)
    res = fit_backprop(net, x, y, "regression", task, train, 2, 5, seed=0)
    assert len(res.losses) == 2 * 2 and np.all(np.isfinite(res.losses))
    # sparsity and Dale's law: every synapse keeps its place and sign
    before, after = net.w_rec, res.network.w_rec
    assert np.all(after[before == 0] == 0)
    assert np.all(after * before >= 0)
    # input_connectivity holds too: only the existing input synapses were trained
    assert (net.w_in == 0).mean() > 0.5
    assert np.all(res.network.w_in[net.w_in == 0] == 0)
    assert not np.array_equal(res.network.w_in, net.w_in)
    assert predict(res, x).shape == (75, 1)


def test_deterministic_under_a_seed():
    rng = np.random.default_rng(2)
    x = rng.random((60, 2))
    y = x[:, 0]
    net = draw_float_network(ReservoirConfig(size=16, seed=4, precision="float"), 2)
    task = TaskConfig(epochs=2, batch_size=2, sequence_length=10, dropout=0.2, attention=True)
    a, b = (fit_backprop(net, x, y, "regression", task, TrainingConfig(), 2, 5, seed=7)
            for _ in range(2))
    assert a.losses == b.losses
    np.testing.assert_array_equal(a.network.w_in, b.network.w_in)


def test_sequence_classification_learns():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 64)
    x = rng.random((64, 6, 2)) * 0.3
    x[np.arange(64), :, labels] += 0.6  # the class is the louder channel
    net = draw_float_network(ReservoirConfig(size=24, seed=5, precision="float"), 2)
    task = TaskConfig(epochs=8, batch_size=16, sequence_length=6, train_input=True)
    res = fit_backprop(net, x, labels, "classification", task, TrainingConfig(lr=0.05), 3, 1,
                       seed=0, concat=True)  # the readout sees the 5 steps' counts side by side
    assert res.per_sequence and res.readout_w.shape == (2, 5 * 24)
    assert np.mean(res.losses[-4:]) < np.mean(res.losses[:4])
    assert score(res, x, labels) >= 0.9
    assert score(res, x, labels, "fixed") >= 0.85


# ---------------------------------------------------------------- shared pieces and input checks
def test_noise_and_dropout_helpers():
    gen = torch.Generator().manual_seed(0)
    x = torch.ones(20000, dtype=torch.float64)
    assert gaussian_noise(x, 0.0, gen) is x and weight_noise(x, 0.0, gen) is x
    assert dropout(x, 0.0, gen) is x
    kept = dropout(x, 0.25, gen)
    assert set(kept.unique().tolist()) == {0.0, 4.0 / 3.0}
    assert abs(float(kept.mean()) - 1.0) < 0.03
    assert abs(float(weight_noise(x, 0.1, gen).std()) - 0.1) < 0.01
    with pytest.raises(ValueError):
        dropout(x, 1.0, gen)


def test_fold_gains_checks_its_input():
    net = _net(3)
    assert np.array_equal(fold_gains(net, np.ones(3)).w_in, net.w_in)
    for bad in (np.ones(2), np.array([1.0, 0.0, 1.0]), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(ValueError):
            fold_gains(net, bad)
    with pytest.raises(ValueError):
        fold_gains(quantize_network(net), np.ones(3))


def test_fit_backprop_rejects_bad_arguments():
    net = _net(2)
    x, y = np.random.default_rng(0).random((30, 2)), np.zeros(30)
    task, train = TaskConfig(epochs=1), TrainingConfig()
    with pytest.raises(ValueError, match="kind"):
        fit_backprop(net, x, y, "ranking", task, train, 1, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="washout"):
        fit_backprop(net, x, y, "regression", task, train, 1, 30, 0)
    with pytest.raises(ValueError, match="targets"):
        fit_backprop(net, x, np.zeros(29), "regression", task, train, 1, 0, 0)
    with pytest.raises(ValueError, match="optimizer"):
        fit_backprop(net, x, y, "regression", task,
                     dataclasses.replace(train, optimizer="lbfgs"), 1, 0, 0)
