"""Bistable memory units: weights only, identical networks without them, latching in fixed point,
and delayed recall beyond the plain reservoir's fading memory.

``python tests/test_memory.py`` prints the accuracy-versus-delay table of ``docs/guide/memory.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralalchemy import network
from neuralalchemy.config import ReservoirConfig
from neuralalchemy.engine import Reservoir
from neuralalchemy.memory import cluster_slices, memory_neurons
from neuralalchemy.network import (
    NetworkParams,
    build_network,
    draw_float_network,
    quantize_network,
)

NOISE = 0.5
"""Distractor input between cues: uniform in ±NOISE (a cue is ±1)."""

# the networks drawn before memory units existed (4 input channels): a digest of every
# array's name, dtype, shape and non-zero pattern with the integer arrays' values, the float
# arrays' sums, sums of squares and sin-weighted sums (compared to 1e-9, since eigvals, which
# sets the spectral radius, rounds its last bits differently across BLAS builds), and a
# digest of the quantized network, bit for bit
# bias, du, dv, vth: the same in every case
_SHARED_SUMS = [0.0, 0.0, 0.0, 0.5, 0.25, 0.0, 0.25, 0.0625, 0.0, 1.0, 1.0, 0.0]
PINNED = {
    "default": ({}, "abeefcc875455def",
                [-10.4833794316, 47.8452212071, 6.67485658229,
                 -2.60433325199, 183.088443622, -5.84450592397], "f2d8ccd19b9a90ba"),
    "small_delay": ({"size": 60, "delay_max": 3, "seed": 7}, "fb0f91a72cf71fe8",
                    [-2.48691034328, 10.3057462638, 0.309639297077,
                     3.73699097802, 50.2628099619, 6.28345339456], "c13d347e1a3ebf46"),
    "layers": ({"size": 50, "layers": 3, "feedback_scale": 0.5, "seed": 3}, "149dc55e979c4264",
               [-2.73494041721, 10.7137085426, 1.01690117005,
                317.081709757, 293.299027273, -18.7374047802], "7c8f36f586b1e9d2"),
    "lateral": ({"size": 80, "lateral_inhibition": 0.5, "seed": 11}, "d4b9d2419aab20ee",
                [-0.128718917153, 17.5273637026, 3.3592308991,
                 -23.0661016113, 51.6816669836, 0.869619961132], "bb1a347562f4a318"),
}


def _digest(p: NetworkParams, float_pattern: bool = False) -> str:
    """Digest of every array's name, dtype, shape and bytes; with ``float_pattern``, a float
    array's non-zero pattern stands for its bytes (the quantized network is all integers)."""
    h = hashlib.sha256()
    for key, value in sorted(p.to_arrays().items()):
        a = np.ascontiguousarray(np.asarray(value))
        for part in (key, str(a.dtype), str(a.shape)):
            h.update(part.encode())
        h.update((a != 0).tobytes() if float_pattern and a.dtype.kind == "f" else a.tobytes())
    return h.hexdigest()[:16]


def _float_sums(p: NetworkParams) -> list[float]:
    out = []
    for _, value in sorted(p.to_arrays().items()):
        a = np.asarray(value)
        if a.dtype.kind == "f":
            w = np.sin(np.arange(a.size)).reshape(a.shape)
            out += [float(a.sum()), float((a * a).sum()), float((a * w).sum())]
    return out


# ---------------------------------------------------------------- task and readout
def recall_stream(rng: np.random.Generator, batch: int, max_delay: int, cues: int,
                  noise: float = NOISE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input ``x`` (steps, batch) in [-1, 1]: cues ±1 more than ``max_delay`` steps apart,
    uniform distractor noise elsewhere; the cue times (batch, cues) and signs."""
    gaps = rng.integers(max_delay + 1, max_delay + 11, size=(batch, cues))
    times = np.cumsum(gaps, axis=1) - gaps[:, :1] + 5
    x = rng.uniform(-noise, noise, (int(times.max()) + max_delay + 2, batch))
    sign = rng.choice([-1.0, 1.0], size=(batch, cues))
    np.put_along_axis(x.T, times, sign, axis=1)
    return x, times, sign


def run_counts(cfg: ReservoirConfig, x: np.ndarray) -> np.ndarray:
    """Spike counts (steps, batch, N) with ``x`` on two channels (above / below 0, as the
    ``current`` encoder gives), each value held for ``steps_per_obs`` timesteps."""
    p = build_network(cfg, 2)
    res = Reservoir(p, x.shape[1])
    res.reset()
    out = np.zeros((*x.shape, p.size), dtype=np.float32)
    for t in range(x.shape[0]):
        ch = np.stack([np.clip(x[t], 0, None), np.clip(-x[t], 0, None)], axis=1)
        if p.payload_levels > 1:
            ch = np.floor(ch * p.payload_levels + 0.5).astype(np.int64)
        out[t] = res.run(torch.as_tensor(ch), cfg.steps_per_obs).numpy()
    return out


def recall_accuracy(counts: np.ndarray, times: np.ndarray, sign: np.ndarray, delay: int,
                    ridge: float = 1.0) -> float:
    """Sign accuracy of a ridge readout of the cue ``delay`` steps after it: trained on the
    first half of the streams, tested on the second."""
    batch = counts.shape[1]
    b = np.repeat(np.arange(batch), times.shape[1])
    t, y = times.ravel() + delay, sign.ravel()
    x = np.concatenate([counts[t, b], np.ones((t.size, 1))], axis=1)
    train = b < batch // 2
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    mu[-1], sd[-1] = 0.0, 1.0
    z = (x - mu) / sd
    a = z[train]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[train])
    return float(np.mean(np.sign(z[~train] @ w) == y[~train]))


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("case", sorted(PINNED))
def test_no_memory_units_leave_every_network_unchanged(case):
    kw, layout, sums, fixed_digest = PINNED[case]
    f = draw_float_network(ReservoirConfig(**kw), 4)
    assert _digest(f, float_pattern=True) == layout
    np.testing.assert_allclose(_float_sums(f), _SHARED_SUMS + sums, rtol=1e-9, atol=1e-12)
    assert _digest(quantize_network(f)) == fixed_digest


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kw", [{"size": 40}, {"size": 30, "layers": 2, "delay_max": 3}])
def test_memory_appends_after_the_reservoir_and_keeps_it(kw, sparse, monkeypatch):
    if sparse:
        monkeypatch.setattr(network, "SPARSE_FROM", 8)
    plain = draw_float_network(ReservoirConfig(**kw), 3)
    cfg = ReservoirConfig(**kw, memory_units=2, memory_size=5)
    mem = draw_float_network(cfg, 3)
    n = plain.size
    assert mem.size == n + memory_neurons(cfg) == n + 40

    def dense(w):
        return w.toarray() if sp.issparse(w) else w

    assert np.array_equal(dense(mem.w_rec)[:n, :n], dense(plain.w_rec))
    assert not dense(mem.w_rec)[:n, n:].any() and not dense(mem.w_rec)[n:, :n].any()
    assert np.array_equal(mem.w_in[:n], plain.w_in) and np.array_equal(mem.bias[:n], plain.bias)
    if plain.delays is not None:
        assert np.array_equal(dense(mem.delays)[:n, :n], dense(plain.delays))
        assert not dense(mem.delays)[n:].any()
        if sp.issparse(mem.w_rec):  # delays store exactly w_rec's entries
            assert np.array_equal(mem.delays.indices, mem.w_rec.indices)
    arrays = quantize_network(mem).to_arrays()  # the artifact: only the usual array kinds
    usual = {f.name for f in dataclasses.fields(NetworkParams)} | {
        "w_rec_data", "w_rec_indices", "w_rec_indptr", "w_rec_shape", "delays_data"}
    assert set(arrays) <= usual and set(arrays) >= set(quantize_network(plain).to_arrays()) - {
        "w_rec", "delays"}
    assert NetworkParams.from_arrays(arrays).size == mem.size


def test_memory_keeps_the_reservoirs_fixed_point_exponents():
    plain = build_network(ReservoirConfig(), 2)
    mem = build_network(ReservoirConfig(memory_units=2), 2)
    assert (mem.w_rec_exp, mem.w_in_exp) == (plain.w_rec_exp, plain.w_in_exp)
    n = plain.size
    assert np.array_equal(mem.w_rec[:n, :n], plain.w_rec)
    assert np.array_equal(mem.w_in[:n], plain.w_in)


def test_memory_needs_two_input_channels():
    with pytest.raises(ValueError, match="2 input channels"):
        draw_float_network(ReservoirConfig(size=20, memory_units=1), 1)


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_flip_flop_latches_and_flips_under_cues(precision):
    cfg = ReservoirConfig(size=64, memory_units=1, precision=precision)
    rng = np.random.default_rng(3)
    x = rng.uniform(-NOISE, NOISE, (60, 1))
    cues = {5: 1.0, 20: -1.0, 32: -1.0, 40: 1.0, 52: -1.0}
    for t, c in cues.items():
        x[t] = c
    counts = run_counts(cfg, x)[:, 0]
    plus, minus = cluster_slices(cfg, 0)
    on_plus, on_minus = counts[:, plus].sum(1) > 0, counts[:, minus].sum(1) > 0
    assert not (on_plus[:5].any() or on_minus[:5].any()), "noise alone set the memory"
    last = 0.0
    for t in range(5, 60):
        last = cues.get(t, last)
        if t not in cues and t - 1 not in cues:  # the flip completes within a step after a cue
            assert (on_plus[t], on_minus[t]) == (last > 0, last < 0), f"step {t}"


def test_delayed_recall_beats_the_plain_reservoir():
    torch.set_num_threads(1)
    delay = 30
    x, times, sign = recall_stream(np.random.default_rng(0), 24, delay, cues=4)
    plain = ReservoirConfig(size=96 + 48)  # the same neuron count as 96 + 1 memory unit
    acc_plain = recall_accuracy(run_counts(plain, x), times, sign, delay)
    acc_mem = recall_accuracy(run_counts(ReservoirConfig(size=96, memory_units=1), x), times,
                              sign, delay)
    assert acc_plain < 0.7, acc_plain  # near chance
    assert acc_mem > 0.95 and acc_mem - acc_plain > 0.3, (acc_mem, acc_plain)


if __name__ == "__main__":  # the table of docs/guide/memory.md (about a minute)
    torch.set_num_threads(1)
    delays = [1, 2, 3, 5, 10, 20, 30, 50, 100]
    x, times, sign = recall_stream(np.random.default_rng(0), 64, max(delays), cues=6)
    for name, cfg in [("plain, 304 neurons", ReservoirConfig(size=304)),
                      ("256 + 1 memory unit (48)", ReservoirConfig(size=256, memory_units=1))]:
        counts = run_counts(cfg, x)
        row = [recall_accuracy(counts, times, sign, d) for d in delays]
        print(f"{name:26s}", " ".join(f"{d}:{a:.2f}" for d, a in zip(delays, row)))


# ---------------------------------------------------------------- delay-line reservoir
def _delay_line_cfg(**kw: object) -> ReservoirConfig:
    base = dict(topology="delay_line", size=12, steps_per_obs=4, input_scale=0.9, du=1.0,
                dv=0.0, refractory=0, precision="fixed")
    return ReservoirConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("inputs", [2, 4])
def test_delay_line_relays_every_input_step_exactly(inputs):
    """Neuron i of a chain counts in input step t exactly what its head counted in step t − i
    (fixed point), and the head's count grows with the input value."""
    from neuralalchemy.agent_io import encode, make_encoder
    from neuralalchemy.supervised import series_states

    cfg = _delay_line_cfg()
    net = build_network(cfg, inputs)
    enc = make_encoder(np.array([[-1.0, 1.0]] * (inputs // 2)), 2, 1.0, "current")
    u = np.random.default_rng(3).uniform(-1, 1, (80, inputs // 2))
    counts = series_states(net, encode(u, enc, 255), cfg.steps_per_obs)
    bounds = np.linspace(0, cfg.size, inputs // 2 + 1).round().astype(int)
    for c, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        head = counts[:, a]
        assert np.corrcoef(head[1:], u[1:, c])[0, 1] > 0.8  # a rate code (K + 1 levels)
        for i in range(1, b - a):
            np.testing.assert_array_equal(counts[i:, a + i], head[:-i])
    assert np.all(net.w_rec[net.w_rec != 0] > 0)  # Dale: every relay is excitatory
    assert set(np.unique(net.delays[net.w_rec != 0])) == {cfg.steps_per_obs - 1}


def test_delay_line_config_errors_name_the_fix():
    from neuralalchemy.config import ConfigError

    with pytest.raises(ConfigError, match="reservoir.layers to 1"):
        build_network(_delay_line_cfg(layers=2), 2)
    with pytest.raises(ConfigError, match="lower reservoir.steps_per_obs"):
        build_network(_delay_line_cfg(steps_per_obs=80), 2)
    with pytest.raises(ConfigError, match="raise reservoir.size"):
        build_network(_delay_line_cfg(size=2), 8)


def test_shipped_delay_line_reaches_half_n_memory_capacity(tmp_path):
    """configs/memory_capacity_delay_line.yaml (N = 100): MC ≥ 0.5·N with a linear readout."""
    from pathlib import Path

    from neuralalchemy.config import load_config
    from neuralalchemy.supervised import train_task

    torch.set_num_threads(1)
    path = Path(__file__).resolve().parent.parent / "configs" / "memory_capacity_delay_line.yaml"
    cfg = load_config(path, [f"out={tmp_path}"], environ={})
    result = train_task(cfg, progress=False)
    assert result.summary["neurons"] == 100
    assert result.summary["value"] >= 50, result.summary["value"]
