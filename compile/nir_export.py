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
        "input": nir.Input(input_type={"input": np.array([c])}),
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


def write_nir(agent: DeployedAgent, path: Path) -> None:
    """Write the NIR graph (HDF5) to ``path``."""
    import nir

    nir.write(str(path), to_nir(agent))
