"""Export a compiled network as a NIR graph (https://neuroir.org).

Graph: ``input → w_in (Linear) → reservoir (CubaLIF) → w_rec (Linear) → reservoir`` and
``reservoir → readout (Affine) → output``. Recurrent synapses with an extra delay of ``d``
timesteps (``network.delays``) go through their own branch ``reservoir → w_rec_d{d} (Linear) →
delay_d{d} (Delay, d timesteps) → reservoir``; ``w_rec`` keeps the undelayed ones. The discrete
Lava dynamics

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
import scipy.sparse as sp

from neuralalchemy.agent_io import DeployedAgent
from neuralalchemy.network import NetworkParams, dequantize


def _dense(w: object) -> np.ndarray:
    """NIR has no sparse weights: CSR matrices are written out dense."""
    return np.asarray(w.toarray() if sp.issparse(w) else w, dtype=np.float64)


def _recurrent_split(net: NetworkParams) -> dict[int, np.ndarray]:
    """Recurrent weights by extra delay: ``{d: W_d}`` with ``W_0 + W_1 + … = w_rec``."""
    w = _dense(net.w_rec)
    if net.delays is None:
        return {0: w}
    delays = _dense(net.delays).astype(np.int64)
    return {int(d): np.where(delays == d, w, 0.0) for d in np.unique(delays[w != 0])} or {0: w}


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
    rec = _recurrent_split(net)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([c])},
                           metadata={"encoder_kind": agent.encoder.kind,
                                     "encoder_centers": agent.encoder.centers,
                                     "encoder_sigma": agent.encoder.sigma,
                                     "encoder_changes": int(agent.encoder.changes),
                                     "payload_levels": int(agent.network.payload_levels),  # type: ignore[attr-defined]
                                     "action_low": agent.readout.action_low,
                                     "action_high": agent.readout.action_high,
                                     "trace_decay": agent.readout.trace_decay}),
        "w_in": nir.Linear(weight=_dense(net.w_in)),
        "reservoir": lif,
        "w_rec": nir.Linear(weight=rec.pop(0, np.zeros((n, n)))),
        "readout": nir.Affine(weight=agent.readout.w, bias=agent.readout.b),
        "output": nir.Output(output_type={"output": np.array([agent.readout.w.shape[0]])}),
    }
    edges = [("input", "w_in"), ("w_in", "reservoir"), ("reservoir", "w_rec"),
             ("w_rec", "reservoir"), ("reservoir", "readout"), ("readout", "output")]
    for d, w in rec.items():
        nodes[f"w_rec_d{d}"] = nir.Linear(weight=w)
        nodes[f"delay_d{d}"] = nir.Delay(delay=np.full(n, float(d)))
        edges += [("reservoir", f"w_rec_d{d}"), (f"w_rec_d{d}", f"delay_d{d}"),
                  (f"delay_d{d}", "reservoir")]
    metadata = {
        "dt": 1.0, "time_unit": "timestep", "reset": "zero (v := 0 after a spike)",
        "delay": "every Linear adds one timestep of delay (Lava Dense convention); a Delay node "
                 "adds its delay in timesteps on top",
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


def _recurrent_merge(nodes: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """``w_rec`` and the per-synapse delays from ``w_rec`` plus the ``w_rec_d{d}`` branches."""
    w = np.array(nodes["w_rec"].weight, dtype=np.float64)
    branches = sorted(int(name[len("w_rec_d"):]) for name in nodes if name.startswith("w_rec_d"))
    if not branches:
        return w, None
    delays = np.zeros(w.shape, dtype=np.int64)
    for d in branches:
        wd = np.asarray(nodes[f"w_rec_d{d}"].weight, dtype=np.float64)
        if np.any((wd != 0) & (w != 0)):
            raise ValueError(f"NIR import: synapses appear in both w_rec and w_rec_d{d}")
        w = w + wd
        delays[wd != 0] = d
    return w, delays


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
    w_rec, delays = _recurrent_merge(nodes)
    gain = np.broadcast_to(gain, (w_rec.shape[0],))
    net = NetworkParams(
        precision="float", w_in=gain[:, None] * np.asarray(nodes["w_in"].weight), w_in_exp=0,
        w_rec=gain[:, None] * w_rec, w_rec_exp=0, du=du, dv=dv, delays=delays,
        vth=_uniform(lif.v_threshold, "v_threshold"),
        bias=np.asarray(lif.v_leak, dtype=np.float64).ravel() * dv, bias_exp=0,
        refractory=int(lif.metadata.get("refractory_steps", 0)),
        payload_levels=1 if int(enc_meta.get("payload_levels", 0)) == 1 else 0)
    enc = EncoderParams(np.asarray(enc_meta["encoder_centers"]),
                        np.asarray(enc_meta["encoder_sigma"]), str(enc_meta["encoder_kind"]),
                        bool(int(np.asarray(enc_meta.get("encoder_changes", 0)))))
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
