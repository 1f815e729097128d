"""Brian2 (exact mode) against the torch reference engine: spike for spike, action for action.

Tiers: open loop on small random networks (both precisions, refractory periods, synaptic delays,
dense and sparse, u wrapping at 24 bits) on Brian2's numpy target; the same on the compiled
targets (cython, cpp_standalone: ``slow``, they compile C++); closed loop on CartPole
(identical records to ``sim.torch_backend.play``); argument errors. The detailed (continuous-time)
modes: hand-derived solutions of one neuron, spike-count agreement with the exact mode on a random
reservoir, refractory periods, and the crosscheck's measured-not-thresholded entry.

Compiled code is cached in ``.pytest_cache/brian2`` (Cython extensions and the standalone
project), so only the first run compiles from scratch (minutes on 2 cores).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from netcases import BRIAN2_PYPARSING, as_sparse, random_payloads, reservoir_specs

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, make_encoder
from neuralalchemy.config import ReservoirConfig
from neuralalchemy.envs import calibrate_ranges
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.sim import brian2_backend, brian2_detailed, torch_backend
from neuralalchemy.sim import crosscheck as xc

pytestmark = [
    pytest.mark.brian2,
    BRIAN2_PYPARSING,
]


@pytest.fixture(scope="module", autouse=True)
def brian2_caches(request, tmp_path_factory):
    """Cython extensions in pytest's cache folder (kept between runs), restored afterwards."""
    import brian2

    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("brian2")) if cache is not None \
        else tmp_path_factory.mktemp("brian2")
    old = brian2.prefs.codegen.runtime.cython.cache_dir
    brian2.prefs.codegen.runtime.cython.cache_dir = str(folder / "cython")
    yield folder
    brian2.prefs.codegen.runtime.cython.cache_dir = old


# ---------------------------------------------------------------- reference


def assert_open_loop_equal(net: NetworkParams, payloads: np.ndarray, target: str = "numpy",
                           **kw) -> None:
    ref = torch_backend.record_spikes(net, payloads)
    got = brian2_backend.record_spikes(net, payloads, target, **kw)
    mismatch = np.argwhere(got != ref)
    assert mismatch.size == 0, f"{len(mismatch)} spike mismatches, first (t, n) {mismatch[0]}"


# ---------------------------------------------------------------- 1. open loop, numpy target
reservoirs = reservoir_specs(40, refractory=st.sampled_from([0, 0, 1, 3]))


@pytest.mark.parametrize("precision", ["fixed", "float"])
@settings(max_examples=6, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(cfg=reservoirs, channels=st.integers(1, 12), steps=st.integers(20, 50),
       data_seed=st.integers(0, 2**31 - 1))
def test_open_loop_matches_torch(precision, cfg, channels, steps, data_seed):
    net = build_network(dataclasses.replace(cfg, precision=precision), channels)
    assert_open_loop_equal(net, random_payloads(net, steps, data_seed))


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_open_loop_sparse_with_delays(precision):
    cfg = ReservoirConfig(size=30, connectivity=0.2, spectral_radius=2.0, input_scale=3.0,
                          bias=0.2, delay_max=4, refractory=2, precision=precision, seed=5)
    net = as_sparse(build_network(cfg, 8))
    assert_open_loop_equal(net, random_payloads(net, 50, 1))


def test_open_loop_fixed_u_wraps():
    """Strong input and no current decay drive u past 2^23: both engines wrap alike."""
    cfg = ReservoirConfig(size=24, input_scale=90.0, input_connectivity=1.0, du=0.0, dv=0.5,
                          refractory=3, seed=7)
    net = build_network(cfg, 6)
    payloads = np.full((40, 6), 255, dtype=np.int64)
    assert_open_loop_equal(net, payloads)


def test_open_loop_negative_recurrent_exponent():
    """Tiny recurrent weights get a negative exponent: each delay slot's sum is floored."""
    cfg = ReservoirConfig(size=30, connectivity=0.5, spectral_radius=0.02, input_scale=3.0,
                          bias=0.3, delay_max=3, seed=11)
    net = build_network(cfg, 5)
    assert net.w_rec_exp < 0
    assert_open_loop_equal(net, random_payloads(net, 60, 2))


# ---------------------------------------------------------------- 2. compiled targets
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_open_loop_cython(precision):
    cfg = ReservoirConfig(size=30, connectivity=0.3, spectral_radius=2.0, input_scale=3.0,
                          bias=0.3, delay_max=3, refractory=2, precision=precision, seed=5)
    net = build_network(cfg, 8)
    assert_open_loop_equal(net, random_payloads(net, 60, 1), "cython")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="standalone build tested on Unix only")
def test_open_loop_cpp_standalone(brian2_caches):
    cfg = ReservoirConfig(size=30, connectivity=0.3, spectral_radius=2.0, input_scale=3.0,
                          bias=0.3, delay_max=3, refractory=2, precision="fixed", seed=5)
    net = build_network(cfg, 8)
    assert_open_loop_equal(net, random_payloads(net, 60, 1), "cpp_standalone",
                           directory=str(brian2_caches / "standalone"))


@pytest.mark.slow
def test_cython_compile_error_is_raised(monkeypatch):
    """Brian2's Cython manager swallows compile errors (the block then does nothing): the
    backend checks every block compiled. cython's ``_clip`` takes double bounds and fails on
    int64 values, the case that once silently produced no spikes."""
    def broken(network, slots):
        code = brian2_backend.MODES["exact"](network, slots)
        expr = "sign(y) * (abs(y) // 4096) + u + bias"
        bad = code.update.replace(expr, f"clip({expr}, -8388607, 8388607)")
        assert bad != code.update
        return dataclasses.replace(code, update=bad)

    monkeypatch.setitem(brian2_backend.MODES, "broken", broken)
    net = build_network(ReservoirConfig(size=8, seed=1), 3)
    with pytest.raises(RuntimeError, match="could not compile"):
        brian2_backend.record_spikes(net, np.zeros((3, 3), dtype=np.int64), "cython",
                                     mode="broken")


# ---------------------------------------------------------------- 3. closed loop
def _agent(precision: str, encoder: str = "population", changes: bool = False,
           **reservoir: float) -> DeployedAgent:
    """CartPole agent (32 neurons, K = 5) with a random readout."""
    cfg = ReservoirConfig(size=32, precision=precision, seed=3, **reservoir)  # type: ignore[arg-type]
    enc = make_encoder(calibrate_ranges("CartPole-v1", 5, 0, changes=changes), 10, 1.0,
                       kind=encoder, changes=changes)
    net = build_network(cfg, enc.n_channels, binary_input=enc.binary)
    w = np.random.default_rng(0).normal(size=(2, net.size))
    ro = ReadoutParams(w=w, b=np.zeros(2), trace_decay=0.0, action_low=np.zeros(0),
                       action_high=np.zeros(0))
    return DeployedAgent("CartPole-v1", net, enc, ro, 5)


CLOSED_LOOP = {
    # bias > threshold: every neuron spikes in the warm-up step, which must not be counted;
    # refractory counters and delayed spikes must be cleared between episodes
    "fixed-bias_refractory_delays": ("fixed", dict(bias=1.2, refractory=2, delay_max=3)),
    # binary input spikes drawn per timestep from the episode's generator, on both engines
    "float-poisson": ("float", dict(encoder="poisson", input_scale=3.0)),
    "fixed-current": ("fixed", dict(encoder="current")),
    # change channels: the previous observation must reach the encoder on both engines
    "fixed-changes": ("fixed", dict(changes=True)),
}


@pytest.mark.parametrize("case", CLOSED_LOOP)
def test_closed_loop_matches_torch(case):
    precision, kw = CLOSED_LOOP[case]
    agent = _agent(precision, **kw)
    ref = torch_backend.play(agent, [0, 1])
    got = brian2_backend.play(agent, [0, 1])
    for a, b in zip(ref, got, strict=True):
        assert (a.seed, a.ret, a.length, a.spikes) == (b.seed, b.ret, b.length, b.spikes)
        np.testing.assert_array_equal(a.actions, b.actions)
        assert a.actions.dtype == b.actions.dtype


# ---------------------------------------------------------------- 4. errors
def test_argument_errors():
    net = build_network(ReservoirConfig(size=8, seed=1), 3)
    with pytest.raises(ValueError, match="unknown Brian2 target"):
        brian2_backend.build(net, "gpu")
    with pytest.raises(ValueError, match="unknown Brian2 mode"):
        brian2_backend.build(net, "numpy", mode="nonexistent")
    with pytest.raises(ValueError, match="with standalone"):
        brian2_backend.build(net, "cpp_standalone")
    with pytest.raises(ValueError, match="payloads must be"):
        brian2_backend.record_spikes(net, np.zeros((5, 2)), "numpy")
    with pytest.raises(ValueError, match="runtime target"):
        brian2_backend.play(_agent("fixed"), [0], target="cpp_standalone")
    with pytest.raises(ValueError, match="synapse must be"):
        brian2_detailed.detailed_mode(synapse="alpha")
    with pytest.raises(ValueError, match="delay_offset"):
        brian2_detailed.detailed_mode(substeps=4, delay_offset=0.1)


# ---------------------------------------------------------------- 5. detailed modes
def _lone_neurons(bias: list[float], w_in: list[float], du: float, dv: float,
                  refractory: int) -> NetworkParams:
    """Unconnected float neurons (threshold 1), one input channel."""
    n = len(bias)
    return NetworkParams(precision="float", w_in=np.array(w_in, dtype=float)[:, None],
                         w_in_exp=0, w_rec=np.zeros((n, n)), w_rec_exp=0, du=du, dv=dv, vth=1.0,
                         bias=np.array(bias, dtype=float), bias_exp=0, refractory=refractory,
                         payload_levels=0)


def _spike_times(net: NetworkParams, payloads: np.ndarray, mode: str = "detailed") -> list:
    """Recorded spike times (ms) of each neuron (the start of the substep of the crossing)."""
    import brian2

    res = brian2_backend.build(net, "numpy", mode=mode)
    mon = brian2.SpikeMonitor(res.neurons)
    res.net.add(mon)
    res.record(payloads)
    trains = mon.spike_trains()
    return [np.asarray(trains[i] / brian2.ms) for i in range(net.size)]


def test_detailed_single_neuron_matches_the_analytic_solution():
    """Neuron 0: constant drive bias = 0.2; neuron 1: one payload 1.0 at timestep 0 through
    w = 0.2 with du = 0 (u = 0.2 from 1 ms on, constant). vth = 1, dv = 0.1, R = 2 ms.

    From v = 0: v(s) = V·(1 − e^{−λ s}), V = 0.2/dv = 2, λ = −ln(0.9) = 0.1053605/ms; v = 1 at
    s* = ln(V/(V − 1))/λ = ln 2/0.1053605 = 6.578813 ms (neuron 1: 1 ms later, 7.578813 ms).
    After a spike v is held R ms: ISI = R + s* = 8.578813 ms, rate 116.567 Hz. A crossing is
    recorded at the start of its 0.1 ms substep and the reset acts at its end, so each simulated
    ISI is R + ⌈s*/h⌉·h = 8.6 ms (rate within h/ISI of the continuous one).
    """
    first, isi = 6.578813, 8.578813
    h = brian2_detailed.DetailedParams().dt_ms
    net = _lone_neurons([0.2, 0.0], [0.0, 0.2], du=0.0, dv=0.1, refractory=2)
    payloads = np.zeros((200, 1))
    payloads[0] = 1.0
    times = _spike_times(net, payloads)
    for t, onset in zip(times, (first, first + 1.0), strict=True):
        assert t[0] < onset <= t[0] + h, (t[0], onset)
        np.testing.assert_allclose(np.diff(t), isi, atol=h)
        rate = (t.size - 1) / (t[-1] - t[0]) * 1000.0
        assert abs(rate - 1000.0 / isi) < 1000.0 / isi * h / isi, rate


@pytest.mark.parametrize("du", [0.5, 1.0])
@pytest.mark.parametrize("mode", ["detailed", "detailed-cond"])
def test_detailed_event_charge_is_w_over_du(mode, du):
    """One event of weight w puts the charge w/du into v (dv = 0, far below threshold): the
    discrete w·Σ(1 − du)^k; the conductance model near rest (w small) gives the same. du = 1
    (an instantaneous current, τ_syn = h) delivers w."""
    w = 1e-3
    net = _lone_neurons([0.0], [w], du=du, dv=0.0, refractory=0)
    payloads = np.zeros((40, 1))
    payloads[0] = 1.0
    res = brian2_backend.build(net, "numpy", mode=mode)
    res.record(payloads)
    assert float(res.neurons.v[0]) == pytest.approx(w / du, rel=2e-3)


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_detailed_spike_counts_follow_the_exact_mode(precision):
    """A 60-neuron reservoir with strong recurrence (spectral radius 2, delays) and 4 input
    channels, 300 timesteps. Measured: count correlation 0.995 (fixed) and 0.994 (float), the
    detailed model firing 1.11–1.15× as often (a crossing resets within its timestep and the
    next interval starts at once, where the discrete neuron waits for the timestep's end).
    A wrong mapping fails: τ_m ×2 → 0.876 / 2.05×, τ_m /2 → 0.755 / 0.43×, τ_syn ×2 → 0.63 /
    4.2×, τ_syn /2 → 0.71 / 0.30×, no jump gain κ → 0.80 / 0.45×, recurrence dropped → 0.67 /
    0.73×."""
    cfg = ReservoirConfig(size=60, connectivity=0.2, spectral_radius=2.0, input_scale=1.0,
                          input_connectivity=0.3, delay_max=2, precision=precision, seed=2)
    net = build_network(cfg, 4)
    payloads = random_payloads(net, 300, 2)
    ref = torch_backend.record_spikes(net, payloads)
    got = brian2_backend.record_spikes(net, payloads, "numpy", mode="detailed")
    m = xc.spike_metrics(ref, got)
    assert m["count_correlation"] > 0.98, m
    assert 0.9 < m["spikes"] / m["spikes_reference"] < 1.3, m


@pytest.mark.parametrize("mode", ["detailed", "detailed-cond"])
def test_detailed_refractory_period(mode):
    """Strongly driven neurons: no two spikes of a neuron closer than R ms, and the bound is
    reached (the shortest interval is within one timestep of it)."""
    refractory = 3
    cfg = ReservoirConfig(size=20, connectivity=0.3, input_scale=6.0, input_connectivity=1.0,
                          bias=0.5, refractory=refractory, precision="float", seed=4)
    net = build_network(cfg, 3)
    times = _spike_times(net, np.ones((60, 3)), mode)
    gaps = np.concatenate([np.diff(t) for t in times])
    assert gaps.size and gaps.min() >= refractory - 1e-9
    assert gaps.min() < refractory + 1.0


def test_crosscheck_reports_detailed_without_threshold():
    agent = _agent("fixed")
    result = xc.crosscheck(agent, ["torch", "brian2-detailed"], [0], spike_steps=40)
    assert result["backends"]["torch"]["thresholded"] is True
    detailed = result["backends"]["brian2-detailed"]
    assert detailed["thresholded"] is False
    assert {"spike_agreement", "count_correlation", "van_rossum"} <= detailed.keys()
    assert result["trains"]["brian2-detailed"].shape == (40, agent.network.size)
    assert xc.failures(result, 0.99, 0.99) == []
    strict = xc.failures(result, 1.01, 1.01)
    assert strict and not any(line.startswith("brian2-detailed") for line in strict)
