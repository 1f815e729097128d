"""Quantization that keeps behaviour: float agent -> Loihi fixed point, chosen on trajectories.

The float agent plays a few episodes (recording every timestep's input); each candidate
fixed-point network (voltage scale ``2**bits`` per threshold, each weight matrix at the smallest
exponent that keeps 8-bit mantissas) is driven open loop by the same inputs (8-bit payloads
``floor(255·x + 0.5)``), its per-step spike counts go through the same readout, and the candidate
whose actions agree most often with the float agent's wins (ties: the finer scale). The report
gives, per candidate, the action agreement; for the chosen one the relative RMS weight error of
each matrix and the reservoir's spectral radius before and after.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from neuralalchemy.agent_io import DeployedAgent, act, update_features
from neuralalchemy.network import (
    PAYLOAD_LEVELS,
    NetworkParams,
    dequantize,
    quantize_network,
    spectral_radius,
)

SCALE_BITS = (14, 15, 16, 17, 18, 19, 20)


def _actions_open_loop(agent: DeployedAgent, net: NetworkParams, inputs: np.ndarray,
                       steps: int) -> np.ndarray:
    """Actions the readout takes on ``net``'s spikes for a recorded input sequence."""
    from neuralalchemy.sim.torch_backend import record_spikes

    spikes = record_spikes(net, inputs)[1:1 + steps * agent.steps_per_obs]
    counts = spikes.reshape(steps, agent.steps_per_obs, -1).sum(axis=1)
    trace = np.zeros(net.size)
    out = []
    for c in counts:
        trace = update_features(trace, c, agent.readout.trace_decay)
        out.append(act(trace, agent.readout))
    return np.asarray(out)


def _to_payload(inputs: np.ndarray, levels: int) -> np.ndarray:
    return inputs.astype(np.int64) if levels == 1 else \
        np.floor(inputs * PAYLOAD_LEVELS + 0.5).astype(np.int64)


def _rel_rms(a: Any, b: Any) -> float:
    a = a.toarray() if hasattr(a, "toarray") else np.asarray(a)
    b = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
    norm = float(np.sqrt(np.mean(a * a)))
    return float(np.sqrt(np.mean((a - b) ** 2)) / norm) if norm else 0.0


def quantize_agent(agent: DeployedAgent, episodes: int = 3, seed: int = 0,
                   candidates: tuple[int, ...] = SCALE_BITS) -> tuple[NetworkParams, dict]:
    """The fixed-point network that best keeps the float agent's actions, and the report."""
    from neuralalchemy.sim.torch_backend import play

    float_net: NetworkParams = agent.network  # type: ignore[assignment]
    if float_net.precision != "float":
        raise ValueError("quantize_agent expects a float agent")
    records = play(agent, [seed + i for i in range(episodes)], record_inputs=True)
    rows = []
    best: tuple[float, int, NetworkParams] | None = None
    for bits in candidates:
        net = quantize_network(float_net, bits)
        same = total = 0
        for rec in records:
            inputs = _to_payload(rec.extra["inputs"], net.payload_levels)
            acts = _actions_open_loop(agent, net, inputs, rec.length)
            ref = np.asarray(rec.actions)
            same += int(np.sum(np.all(np.isclose(acts.reshape(rec.length, -1),
                                                 ref.reshape(rec.length, -1)), axis=1)))
            total += rec.length
        agreement = same / max(total, 1)
        rows.append({"scale_bits": bits, "action_agreement": agreement})
        if best is None or agreement >= best[0]:
            best = (agreement, bits, net)
    assert best is not None
    agreement, bits, chosen = best
    back = dequantize(chosen)
    unit = float_net.vth  # dequantize returns threshold 1
    report = {
        "float_episodes": episodes, "steps_compared": int(sum(r.length for r in records)),
        "candidates": rows, "chosen_scale_bits": bits, "action_agreement": agreement,
        "weight_error": {"w_in": _rel_rms(float_net.w_in / unit, back.w_in),
                         "w_rec": _rel_rms(float_net.w_rec / unit, back.w_rec)},
        "spectral_radius": {"float": spectral_radius(float_net.w_rec) / unit,
                            "fixed": spectral_radius(back.w_rec)},
        "exponents": {"w_in": chosen.w_in_exp, "w_rec": chosen.w_rec_exp},
    }
    return chosen, report


def quantize_for_target(agent: DeployedAgent) -> tuple[DeployedAgent, dict]:
    """A fixed-point agent for a Loihi target: unchanged if it already is fixed point."""
    net: NetworkParams = agent.network  # type: ignore[assignment]
    if net.precision == "fixed":
        return agent, {"action_agreement": 1.0, "note": "trained in fixed point: no change"}
    chosen, report = quantize_agent(agent)
    return replace(agent, network=chosen), report
