"""``alchemy crosscheck``: the same episodes on several backends, compared action by action and
spike by spike.

Closed loop: each backend plays the same seeds; actions are compared with the reference backend
(the first one named) step by step. Spike level: the reference's first episode is recorded as its
per-timestep input and replayed open loop on every backend, so spike trains are compared on
identical input even where closed-loop trajectories would diverge.

Spike metrics per backend against the reference (over the first ``spike_steps`` timesteps):
agreement (fraction of equal neuron-timestep entries), first differing timestep, Pearson
correlation of per-neuron spike counts, and the van Rossum distance (exponential kernel of
``tau`` timesteps; ``sqrt(Σ_t (f_a − f_b)² / tau)`` per neuron, averaged over neurons).

Backends in :data:`MEASURED` run a different neuron model (``brian2-detailed``: continuous-time
LIF): their differences are reported, with ``thresholded: False``, and never count as failures
(nor does any backend compared with such a reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.agent_io import DeployedAgent
from neuralalchemy.network import NetworkParams
from neuralalchemy.sim.backend import get_backend
from neuralalchemy.sim.runner import action_agreement

Recorder = Callable[[NetworkParams, np.ndarray], np.ndarray]


def _record_torch(net: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    from neuralalchemy.sim.torch_backend import record_spikes
    return record_spikes(net, payloads)


def _record_lava(net: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    from neuralalchemy.sim.lava_backend import record_spikes
    return record_spikes(net, payloads)


def _record_brian2(net: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    from neuralalchemy.sim.brian2_backend import record_spikes
    return record_spikes(net, payloads, target="numpy")


def _record_brian2_detailed(net: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    from neuralalchemy.sim.brian2_backend import record_spikes
    return record_spikes(net, payloads, target="numpy", mode="detailed")


RECORDERS: dict[str, Recorder] = {"torch": _record_torch, "sim": _record_lava,
                                  "brian2": _record_brian2,
                                  "brian2-detailed": _record_brian2_detailed}
"""Backend name -> open-loop spike recorder (same input convention everywhere)."""

MEASURED = frozenset({"brian2-detailed"})
"""Backends whose difference from the reference is measured, not held to the thresholds."""


def van_rossum(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Mean over neurons of the discrete van Rossum distance between spike trains (T, N)."""
    decay = np.exp(-1.0 / tau)
    fa = np.zeros(a.shape[1])
    fb = np.zeros(a.shape[1])
    total = np.zeros(a.shape[1])
    for t in range(a.shape[0]):
        fa = fa * decay + a[t]
        fb = fb * decay + b[t]
        total += (fa - fb) ** 2
    return float(np.mean(np.sqrt(total / tau)))


def spike_metrics(ref: np.ndarray, other: np.ndarray, tau: float = 5.0) -> dict[str, Any]:
    """Agreement, first divergence, count correlation and van Rossum distance of (T, N) trains."""
    equal = ref == other
    rows = np.flatnonzero(~equal.all(axis=1))
    ca, cb = ref.sum(0).astype(float), other.sum(0).astype(float)
    corr = 1.0 if np.array_equal(ca, cb) else float(np.corrcoef(ca, cb)[0, 1]) \
        if ca.std() > 0 and cb.std() > 0 else 0.0
    return {"spike_agreement": float(equal.mean()),
            "first_spike_divergence": int(rows[0]) if rows.size else None,
            "count_correlation": corr, "van_rossum": van_rossum(ref, other, tau),
            "spikes_reference": int(ref.sum()), "spikes": int(other.sum())}


def crosscheck(agent: DeployedAgent, backends: Sequence[str], seeds: Sequence[int],
               spike_steps: int = 500) -> dict[str, Any]:
    """Play ``seeds`` on every backend and compare each with ``backends[0]``."""
    from neuralalchemy.sim.torch_backend import play as torch_play

    reference = backends[0]
    plays = {name: get_backend(name)(agent, seeds) for name in backends}
    inputs = torch_play(agent, seeds[:1], record_inputs=True)[0].extra["inputs"][:spike_steps]
    trains = {name: RECORDERS[name](agent.network, inputs)  # type: ignore[arg-type]
              for name in backends if name in RECORDERS}
    out: dict[str, Any] = {"reference": reference, "seeds": list(seeds),
                           "spike_steps": int(inputs.shape[0]), "backends": {}}
    for name in backends:
        entry: dict[str, Any] = {"returns": [r.ret for r in plays[name]],
                                 "mean_return": float(np.mean([r.ret for r in plays[name]])),
                                 "thresholded": not MEASURED & {name, reference}}
        entry.update(action_agreement(plays[name], plays[reference]))
        if name in trains and reference in trains:
            entry.update(spike_metrics(trains[reference], trains[name]))
        out["backends"][name] = entry
    out["trains"] = trains
    return out


def failures(result: dict[str, Any], min_actions: float, min_spikes: float) -> list[str]:
    """Backends whose agreement falls under the thresholds (one line each); entries with
    ``thresholded: False`` (a :data:`MEASURED` backend) are skipped."""
    bad = []
    for name, e in result["backends"].items():
        if not e.get("thresholded", True):
            continue
        if e["agreement"] < min_actions:
            bad.append(f"{name}: action agreement {e['agreement']:.4f} < {min_actions}")
        if "spike_agreement" in e and e["spike_agreement"] < min_spikes:
            bad.append(f"{name}: spike agreement {e['spike_agreement']:.4f} < {min_spikes}")
    return bad


def raster_plot(trains: dict[str, np.ndarray], path: Path, steps: int = 200) -> Path:
    """One raster per backend (first ``steps`` timesteps) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralalchemy.plots import save_png

    fig, axes = plt.subplots(len(trains), 1, figsize=(8, 2.2 * len(trains)), dpi=100,
                             sharex=True, squeeze=False)
    for ax, (name, train) in zip(axes[:, 0], trains.items()):
        t, n = np.nonzero(train[:steps])
        ax.scatter(t, n, s=1, color="black")
        ax.set_ylabel(f"{name}\nneuron")
    axes[-1, 0].set_xlabel("timestep")
    return save_png(fig, path)
