"""Brian2 (exact mode) against the torch reference engine: spike for spike, action for action.

Tiers: open loop on small random networks (both precisions, refractory periods, synaptic delays,
dense and sparse, u wrapping at 24 bits) on Brian2's numpy target; the same on the compiled
targets (cython, cpp_standalone: ``slow``, they compile C++); closed loop on CartPole
(identical records to ``sim.torch_backend.play``); argument errors.

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
from netcases import as_sparse, random_payloads, reservoir_specs

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, make_encoder
from neuralalchemy.config import ReservoirConfig
from neuralalchemy.envs import calibrate_ranges
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.sim import brian2_backend, torch_backend

pytestmark = [
    pytest.mark.brian2,
    # brian2 2.9's parsers use pyparsing's deprecated camelCase API (at import and when parsing
    # model strings); pyparsing 3.3 warns on each call
    pytest.mark.filterwarnings(
        "ignore:'(setResultsName|parseString|scanString|parseAll)' (argument is )?deprecated"
        ":DeprecationWarning"),
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
def _agent(precision: str, encoder: str = "population", **reservoir: float) -> DeployedAgent:
    """CartPole agent (32 neurons, K = 5) with a random readout."""
    cfg = ReservoirConfig(size=32, precision=precision, seed=3, **reservoir)  # type: ignore[arg-type]
    enc = make_encoder(calibrate_ranges("CartPole-v1", 5, 0), 10, 1.0, kind=encoder)
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
        brian2_backend.build(net, "numpy", mode="detailed")
    with pytest.raises(ValueError, match="with standalone"):
        brian2_backend.build(net, "cpp_standalone")
    with pytest.raises(ValueError, match="payloads must be"):
        brian2_backend.record_spikes(net, np.zeros((5, 2)), "numpy")
    with pytest.raises(ValueError, match="runtime target"):
        brian2_backend.play(_agent("fixed"), [0], target="cpp_standalone")
