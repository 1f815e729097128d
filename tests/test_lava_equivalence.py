"""Lava (CPU simulator) against the torch reference engine: spike for spike, action for action.

Tiers: open loop (random networks and payloads, both precisions, with and without a refractory
period, dense and sparse, with and without delays; fixed point also matches the final ``u`` and
``v`` bit for bit, including runs where ``u`` wraps at 24 bits), closed loop on CartPole
(identical records to ``sim.torch_backend.play``), and the hardware path's refusal when
lava-loihi is absent.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from netcases import as_sparse, random_payloads, reservoir_specs

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, make_encoder
from neuralalchemy.config import ReservoirConfig
from neuralalchemy.engine import engine_params, lif_step, synaptic_input, zero_state
from neuralalchemy.envs import calibrate_ranges, make_env
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.sim import lava_backend, torch_backend
from neuralalchemy.sim.backend import BackendUnavailable

WRAP = 2**23  # u is 24-bit

pytestmark = [
    pytest.mark.lava,
    # Lava's compiler builds networkx graphs; networkx warns on every conversion without pandas
    pytest.mark.filterwarnings("ignore:pandas not found, skipping conversion test:ImportWarning"),
]


# ---------------------------------------------------------------- references
def torch_record(net: NetworkParams, payloads: np.ndarray) -> tuple[np.ndarray, ...]:
    """Spikes (T, N), final u, v, and whether u wrapped, on the torch engine with Lava's timing:
    step t sees ``payloads[t - 1]`` (nothing at t = 0) and the spikes of step t - 1."""
    ep = engine_params(net)
    state = zero_state(ep, 1)
    spikes, wrapped, prev = [], False, None
    for t in range(payloads.shape[0]):
        a = synaptic_input(prev, state, ep)
        if ep.fixed:
            x = state.u * (4096 - (int(ep.du) + 1))
            raw = torch.sign(x) * (x.abs() >> 12) + (a << 6)
            wrapped |= bool(((raw > WRAP) | (raw <= -WRAP)).any())
        state = lif_step(a, state, ep)
        spikes.append(state.s[0].numpy().copy())
        prev = torch.as_tensor(payloads[t][None])
    return np.array(spikes), state.u[0].numpy(), state.v[0].numpy(), wrapped


def assert_open_loop_equal(net: NetworkParams, payloads: np.ndarray) -> bool:
    """Lava's raster equals torch's (and u, v in fixed point); returns whether u wrapped."""
    spikes, u, v, wrapped = torch_record(net, payloads)
    got = lava_backend.record_run(net, payloads)
    mismatch = np.argwhere(got.spikes != spikes)
    assert mismatch.size == 0, f"{len(mismatch)} spike mismatches, first (t, n) {mismatch[0]}"
    if net.precision == "fixed":
        np.testing.assert_array_equal(got.u, u)
        np.testing.assert_array_equal(got.v, v)
    else:  # float sums may differ in order (numpy vs torch): equal up to rounding
        np.testing.assert_allclose(got.u, u, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got.v, v, rtol=1e-9, atol=1e-9)
    return wrapped


# ---------------------------------------------------------------- 1. open loop
reservoirs = reservoir_specs(
    24,
    excitatory_fraction=st.floats(0.0, 1.0),
    layers=st.integers(1, 3),
    feedback_scale=st.sampled_from([0.0, 0.5]),
    lateral_inhibition=st.sampled_from([0.0, 0.0, 1.5]),
)


@pytest.mark.parametrize("precision", ["fixed", "float"])
@pytest.mark.parametrize("refractory", [False, True], ids=["no_refractory", "refractory"])
# no shrinking: every example is a Lava run (~0.5 s); the failing example is printed as drawn
@settings(max_examples=8, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(cfg=reservoirs, channels=st.integers(4, 12), steps=st.integers(30, 60),
       period=st.integers(1, 5), data_seed=st.integers(0, 2**31 - 1))
def test_open_loop_matches_torch(precision, refractory, cfg, channels, steps, period, data_seed):
    cfg = dataclasses.replace(cfg, precision=precision, refractory=period if refractory else 0)
    net = build_network(cfg, channels)
    assert_open_loop_equal(net, random_payloads(net, steps, data_seed))


@pytest.mark.parametrize("refractory", [0, 3])
def test_open_loop_fixed_u_wraps(refractory):
    """Strong input and slow current decay drive u past 2^23: Lava and torch wrap alike."""
    cfg = ReservoirConfig(size=24, input_scale=90.0, input_connectivity=1.0, du=0.0, dv=0.5,
                          refractory=refractory, seed=7)
    net = build_network(cfg, 6)
    payloads = np.full((40, 6), 255, dtype=np.int64)
    assert net.w_in.min() < 0 < net.w_in.max()
    assert assert_open_loop_equal(net, payloads), "u never wrapped: the case tests nothing"


@pytest.mark.parametrize("precision", ["fixed", "float"])
@pytest.mark.parametrize("delay_max", [0, 4])
def test_open_loop_sparse_matches_torch(precision, delay_max):
    """CSR recurrent weights run on Lava's ``Sparse`` / ``DelaySparse``, spike for spike."""
    cfg = ReservoirConfig(size=30, connectivity=0.2, spectral_radius=2.0, input_scale=3.0,
                          bias=0.2, delay_max=delay_max, refractory=2, precision=precision, seed=5)
    net = as_sparse(build_network(cfg, 8))
    assert_open_loop_equal(net, random_payloads(net, 50, 1))


# ---------------------------------------------------------------- 2. closed loop
def _agent(precision: str, size: int = 32, encoder: str = "population", changes: bool = False,
           **reservoir: float) -> DeployedAgent:
    """CartPole agent with a zero readout (always action 0: the pole falls in ~10 steps)."""
    cfg = ReservoirConfig(size=size, precision=precision, seed=3, **reservoir)  # type: ignore[arg-type]
    enc = make_encoder(calibrate_ranges("CartPole-v1", 5, 0, changes=changes), 10, 1.0,
                       kind=encoder, changes=changes)
    net = build_network(cfg, enc.n_channels, binary_input=enc.binary)
    ro = ReadoutParams(w=np.zeros((2, net.size)), b=np.zeros(2), trace_decay=0.0,
                       action_low=np.zeros(0), action_high=np.zeros(0))
    return DeployedAgent("CartPole-v1", net, enc, ro, 5)


def _with_readout(agent: DeployedAgent, w: np.ndarray, b: np.ndarray) -> DeployedAgent:
    ro = dataclasses.replace(agent.readout, w=w, b=b)
    return dataclasses.replace(agent, readout=ro)


def _balancing_readout(agent: DeployedAgent) -> DeployedAgent:
    """Ridge-fit the readout to a pole-angle teacher on the torch engine's spike counts."""
    from neuralalchemy.engine import Reservoir

    env, res = make_env("CartPole-v1"), Reservoir(agent.network, 1)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    feats, targets = [], []
    for episode in range(3):
        obs, _ = env.reset(seed=1000 + episode)
        res.reset()
        for _ in range(150):
            counts = res.run(torch.as_tensor(agent.payload(obs)[None]), agent.steps_per_obs)
            teacher = int(obs[2] + 0.5 * obs[3] > 0)
            feats.append(counts[0].numpy().astype(float))
            targets.append([1.0 - 2 * teacher, 2 * teacher - 1.0])
            action = teacher if rng.random() > 0.1 else 1 - teacher
            obs, _, term, trunc, _ = env.step(action)
            if term or trunc:
                break
    env.close()
    x = np.hstack([np.array(feats), np.ones((len(feats), 1))])
    sol = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ np.array(targets))
    return _with_readout(agent, sol[:-1].T.copy(), sol[-1].copy())


def assert_records_equal(ref, got):
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        assert (a.seed, a.ret, a.length, a.spikes) == (b.seed, b.ret, b.length, b.spikes)
        np.testing.assert_array_equal(a.actions, b.actions)
        assert a.actions.dtype == b.actions.dtype


VARIANTS = {
    "plain": {},
    # bias > threshold: every neuron spikes in the warm-up step, which must not be counted;
    # refractory ends and delay buffers must be zeroed between episodes
    "bias_refractory_delays": dict(bias=1.2, refractory=2, delay_max=3),
    # binary input spikes drawn per timestep from the episode's generator, on both engines
    "poisson": dict(encoder="poisson", input_scale=3.0),
    "current": dict(encoder="current"),
    # change channels: the environment process must hand the encoder the previous observation
    "changes": dict(changes=True),
    "poisson_changes": dict(encoder="poisson", changes=True, input_scale=3.0),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_closed_loop_random_readout(precision, variant):
    agent = _agent(precision, **VARIANTS[variant])
    w = np.random.default_rng(0).normal(size=(2, agent.network.size))  # type: ignore[attr-defined]
    agent = _with_readout(agent, w, np.zeros(2))
    assert_records_equal(torch_backend.play(agent, [0, 1]), lava_backend.play(agent, [0, 1]))


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_closed_loop_balancing_readout(precision):
    agent = _balancing_readout(_agent(precision, size=64))
    ref = torch_backend.play(agent, [0, 1])
    assert min(r.length for r in ref) >= 60, "the fitted readout should balance for a while"
    assert_records_equal(ref, lava_backend.play(agent, [0, 1]))


def test_model_error_is_reported_not_hung():
    """An exception inside the EnvLoop model comes back as a RuntimeError with its traceback."""
    agent = _agent("fixed")
    with pytest.raises(RuntimeError, match="exceeded max_steps=3"):
        lava_backend.play(agent, [0], max_steps=3)


# ---------------------------------------------------------------- 3. hardware path
def test_hardware_refused_without_lava_loihi():
    from lava.utils import loihi

    if loihi.is_installed():
        pytest.skip("lava-loihi is installed here")
    ok, why = lava_backend.hardware_status()
    assert not ok and "lava-loihi" in why and "--backend sim" in why
    broken = DeployedAgent("CartPole-v1", None, None, None, 5)  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailable, match="lava-loihi"):
        lava_backend.play(broken, [0], hardware=True)  # refuses before touching the agent
