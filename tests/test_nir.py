"""NIR export and import: round trips that keep every spike, delays included, and a third-party
reader (Norse) that runs the exported graph to the same spikes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from netcases import as_sparse, random_payloads

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, make_encoder
from neuralalchemy.compile.nir_export import from_nir, to_nir, write_nir
from neuralalchemy.config import ReservoirConfig
from neuralalchemy.envs import calibrate_ranges
from neuralalchemy.network import NetworkParams, build_network, dequantize
from neuralalchemy.sim.torch_backend import record_spikes


def _agent(precision: str = "float", **reservoir: object) -> DeployedAgent:
    enc = make_encoder(calibrate_ranges("CartPole-v1", 3, 0), 6, 1.0)
    cfg = ReservoirConfig(**{"size": 40, "precision": precision, "seed": 11,  # type: ignore[arg-type]
                             "spectral_radius": 1.5, "input_scale": 4.0, **reservoir})
    net = build_network(cfg, enc.n_channels)
    w = np.random.default_rng(1).normal(size=(2, net.size))
    ro = ReadoutParams(w=w, b=np.array([0.5, -0.5]), trace_decay=0.0,
                       action_low=np.zeros(0), action_high=np.zeros(0))
    return DeployedAgent("CartPole-v1", net, enc, ro, 5)


def _round_trip(agent: DeployedAgent, tmp_path) -> DeployedAgent:
    path = tmp_path / "net.nir"
    write_nir(agent, path)
    return from_nir(path)


@pytest.mark.parametrize("reservoir", [
    dict(delay_max=0, bias=0.0), dict(delay_max=4, bias=0.3, refractory=3),
])
@pytest.mark.parametrize("sparse", [False, True])
def test_round_trip_keeps_every_spike(tmp_path, reservoir, sparse):
    agent = _agent(**reservoir)
    if sparse:
        agent = dataclasses.replace(agent, network=as_sparse(agent.network))
    back = _round_trip(agent, tmp_path)
    net: NetworkParams = agent.network
    payloads = random_payloads(net, 200, 3)
    ref = record_spikes(net, payloads)
    assert ref.sum() > 50, "the case is silent: it tests nothing"
    np.testing.assert_array_equal(record_spikes(back.network, payloads), ref)
    if reservoir["delay_max"]:
        w = np.asarray(net.w_rec.toarray() if sparse else net.w_rec)
        d = np.asarray(net.delays.toarray() if sparse else net.delays)
        np.testing.assert_array_equal(back.network.delays[w != 0], d[w != 0])
        assert len(np.unique(d[w != 0])) > 1, "no delays drawn: the case tests nothing"
    np.testing.assert_array_equal(back.readout.w, agent.readout.w)
    assert back.network.refractory == net.refractory


def test_delay_branches_are_nir_delay_nodes():
    import nir

    graph = to_nir(_agent(delay_max=3))
    delays = {name: node for name, node in graph.nodes.items() if isinstance(node, nir.Delay)}
    assert delays, "delayed synapses must be exported as Delay nodes"
    for name, node in delays.items():
        d = int(name.rsplit("d", 1)[1])
        assert np.all(node.delay == d)
        assert (name, "reservoir") in graph.edges


def test_fixed_point_exports_its_float_equivalent(tmp_path):
    agent = _agent("fixed", bias=0.2)
    back = _round_trip(agent, tmp_path)
    flt = dequantize(agent.network)
    np.testing.assert_allclose(back.network.w_rec, flt.w_rec, rtol=1e-12)
    np.testing.assert_allclose(back.network.bias, flt.bias, rtol=1e-12)
    assert (back.network.du, back.network.dv) == pytest.approx((flt.du, flt.dv))


def test_norse_runs_the_export_to_the_same_spikes(tmp_path):
    """Norse's NIR reader (nirtorch's graph executor) gives feed-forward edges no delay, so its
    raster is ours one timestep earlier; otherwise spike for spike. Norse ignores the refractory
    metadata and feeds ``v_leak`` into the CubaLIF synapse as well, so the case has neither a
    refractory period nor a bias."""
    import warnings

    import nir
    import torch

    agent = _agent(bias=0.0, refractory=0)
    path = tmp_path / "net.nir"
    write_nir(agent, path)
    with warnings.catch_warnings():
        # torch.jit.script at norse's import; nirtorch.load's own deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import norse.torch as norse

        module = norse.from_nir(nir.read(str(path)), dt=1.0)
    payloads = random_payloads(agent.network, 300, 7)
    ref = record_spikes(agent.network, payloads)
    state, rows = None, []
    for x in torch.as_tensor(payloads, dtype=torch.float32):
        _, state = module(x[None], state)
        rows.append(state.cache["reservoir"][0].detach().numpy())
    got = np.array(rows, dtype=bool)
    assert ref.sum() > 500
    np.testing.assert_array_equal(got[:-1], ref[1:])
