"""Export a compiled network as a NIR graph (https://neuroir.org).

Graph: ``input → w_in (Linear) → reservoir (CubaLIF) → w_rec (Linear) → reservoir`` and
``reservoir → readout (Affine) → output``. The discrete Lava dynamics

    u ← u·(1 − du) + a,   v ← v·(1 − dv) + u + bias,   spike when v > vth, reset v to 0

are the forward-Euler form (step ``dt = 1``) of NIR's CubaLIF with ``tau_syn = dt/du``,
``tau_mem = dt/dv``, ``w_in = 1/du``, ``r = 1/dv``, ``v_leak = bias/dv``, ``v_reset = 0``.
Fixed-point networks are exported as their float equivalent (threshold 1); the metadata states the
timestep, reset rule, delay convention (each Linear adds one timestep), the refractory period and
that the readout acts on spike counts summed over ``steps_per_obs`` timesteps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralalchemy.agent_io import DeployedAgent
from neuralalchemy.network import NetworkParams, dequantize


def to_nir(agent: DeployedAgent):  # type: ignore[no-untyped-def]
    """The agent's network as a ``nir.NIRGraph``."""
    import nir

    net: NetworkParams = dequantize(agent.network)  # type: ignore[arg-type]
    n, c = net.size, net.n_inputs
    du, dv = max(net.du, 1e-9), max(net.dv, 1e-9)
    ones = np.ones(n)
    lif = nir.CubaLIF(tau_syn=ones / du, tau_mem=ones / dv, r=ones / dv,
                      v_leak=np.asarray(net.bias, dtype=np.float64) / dv,
                      v_threshold=ones * net.vth, v_reset=np.zeros(n), w_in=ones / du,
                      metadata={"refractory_steps": int(net.refractory)})
    nodes = {
        "input": nir.Input(input_type={"input": np.array([c])},
                           metadata={"encoder_kind": agent.encoder.kind,
                                     "encoder_centers": agent.encoder.centers,
                                     "encoder_sigma": agent.encoder.sigma,
                                     "payload_levels": int(agent.network.payload_levels),  # type: ignore[attr-defined]
                                     "action_low": agent.readout.action_low,
                                     "action_high": agent.readout.action_high,
                                     "trace_decay": agent.readout.trace_decay}),
        "w_in": nir.Linear(weight=np.asarray(net.w_in, dtype=np.float64)),
        "reservoir": lif,
        "w_rec": nir.Linear(weight=np.asarray(net.w_rec, dtype=np.float64)),
        "readout": nir.Affine(weight=agent.readout.w, bias=agent.readout.b),
        "output": nir.Output(output_type={"output": np.array([agent.readout.w.shape[0]])}),
    }
    edges = [("input", "w_in"), ("w_in", "reservoir"), ("reservoir", "w_rec"),
             ("w_rec", "reservoir"), ("reservoir", "readout"), ("readout", "output")]
    metadata = {
        "dt": 1.0, "time_unit": "timestep", "reset": "zero (v := 0 after a spike)",
        "delay": "every Linear adds one timestep of delay (Lava Dense convention)",
        "source_precision": agent.network.precision,  # type: ignore[attr-defined]
        "steps_per_obs": agent.steps_per_obs, "env_id": agent.env_id,
        "readout": "acts on spike counts summed over steps_per_obs timesteps",
        "producer": "neuralalchemy",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _uniform(values: np.ndarray, name: str) -> float:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size and not np.allclose(arr, arr[0]):
        raise ValueError(f"NIR import: {name} differs between neurons; only uniform values map "
                         "to Lava's scalar LIF parameters")
    return float(arr[0]) if arr.size else 1.0


def from_nir(path: Path) -> DeployedAgent:
    """Rebuild a float agent from a NIR graph of this layout (``input → w_in → CubaLIF ⇄ w_rec``,
    ``CubaLIF → Affine → output``). The encoder, environment id and ``steps_per_obs`` come from
    the graph's metadata, as this module writes them; the CubaLIF is mapped back to Lava's
    discrete LIF with ``du = dt/tau_syn``, ``dv = dt/tau_mem`` (``r·dv = 1`` required)."""
    import nir

    from neuralalchemy.agent_io import EncoderParams, ReadoutParams

    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py/NIR raise many types for a bad file
        raise ValueError(f"{path} is not a readable NIR graph ({type(exc).__name__})") from None
    nodes, meta = graph.nodes, graph.metadata
    need = {"input", "w_in", "reservoir", "w_rec", "readout"}
    if not need <= set(nodes) or "env_id" not in meta:
        raise ValueError(f"{path}: NIR import needs nodes {sorted(need)} and env_id/"
                         "steps_per_obs metadata, as `alchemy compile` exports them")
    lif, enc_meta = nodes["reservoir"], nodes["input"].metadata
    dt = float(meta.get("dt", 1.0))
    du, dv = dt / _uniform(lif.tau_syn, "tau_syn"), dt / _uniform(lif.tau_mem, "tau_mem")
    if not np.isclose(_uniform(lif.r, "r") * dv, 1.0):
        raise ValueError(f"{path}: CubaLIF r·dt/tau_mem must be 1 to map onto Lava's LIF")
    gain = np.asarray(lif.w_in, dtype=np.float64).ravel() * du
    gain = np.broadcast_to(gain, (np.asarray(nodes["w_rec"].weight).shape[0],))
    net = NetworkParams(
        precision="float", w_in=gain[:, None] * np.asarray(nodes["w_in"].weight), w_in_exp=0,
        w_rec=gain[:, None] * np.asarray(nodes["w_rec"].weight), w_rec_exp=0, du=du, dv=dv,
        vth=_uniform(lif.v_threshold, "v_threshold"),
        bias=np.asarray(lif.v_leak, dtype=np.float64).ravel() * dv, bias_exp=0,
        refractory=int(lif.metadata.get("refractory_steps", 0)),
        payload_levels=1 if int(enc_meta.get("payload_levels", 0)) == 1 else 0)
    enc = EncoderParams(np.asarray(enc_meta["encoder_centers"]),
                        np.asarray(enc_meta["encoder_sigma"]), str(enc_meta["encoder_kind"]))
    ro = ReadoutParams(np.asarray(nodes["readout"].weight), np.asarray(nodes["readout"].bias),
                       float(enc_meta.get("trace_decay", 0.0)),
                       np.asarray(enc_meta.get("action_low", np.zeros(0))),
                       np.asarray(enc_meta.get("action_high", np.zeros(0))))
    return DeployedAgent(str(meta["env_id"]), net, enc, ro, int(meta["steps_per_obs"]))


def write_spikes(trains: dict[str, np.ndarray], path: Path) -> None:
    """Save the reservoir's recorded spike trains (T, N) as NIR data: one node per backend, each
    with the observable ``spikes`` as boolean time-gridded data (1 sample, dt = 1 timestep)."""
    import nir

    nodes = {name: nir.NIRNodeData(
        {"spikes": nir.TimeGriddedData(np.asarray(train, dtype=bool)[None], 1.0)})
        for name, train in trains.items()}
    nir.write_data(str(path), nir.NIRGraphData(nodes))


def write_nir(agent: DeployedAgent, path: Path) -> None:
    """Write the NIR graph (HDF5) to ``path``."""
    import nir

    nir.write(str(path), to_nir(agent))
