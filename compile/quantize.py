"""Quantization that keeps behaviour: float agent -> Loihi fixed point, chosen on trajectories.

The float agent plays a few episodes (recording every timestep's input); each candidate
fixed-point network (voltage scale ``2**bits`` per threshold, each weight matrix at the smallest
exponent that keeps 8-bit mantissas) is driven open loop by the same inputs (8-bit payloads
``floor(255·x + 0.5)``), its per-step spike counts go through the same readout, and the candidate
whose actions agree most often with the float agent's wins (ties: the finer scale).

A recurrent spiking reservoir amplifies rounding: after a few hundred timesteps the fixed-point
spike trains differ from the float ones even at fine scales, and the float readout, fitted to the
float features, then disagrees on close decisions. So each candidate may also get a calibrated
readout: the float readout's outputs regressed (ridge) on the fixed network's own features over
separate calibration episodes, a distillation of the float policy onto the network that will
run. The float readout is kept where it agrees as well. The report gives, per candidate, both
agreements; for the chosen one the agreement on held-out episodes that took no part in any
choice, the relative RMS weight error of each matrix, the reservoir's spectral radius before
and after, and the float agent's own sensitivity: its agreement with itself under 1e-4 relative
noise on the recurrent weights, the ceiling for any quantizer of that network.
"""

from __future__ import annotations

import typing as ty
from dataclasses import replace
from typing import Any

import numpy as np

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, act, update_features
from neuralalchemy.network import (
    PAYLOAD_LEVELS,
    NetworkParams,
    dequantize,
    quantize_network,
    spectral_radius,
)

SCALE_BITS = (14, 15, 16, 17, 18, 19, 20)

SENSITIVITY_NOISE = 1e-4
"""Relative recurrent-weight noise of the float sensitivity check (:func:`float_sensitivity`)."""

RIDGES = (1e-4, 1e-3, 1e-2, 1e-1)
"""Ridge strengths (relative to the mean feature power) tried for the calibrated readout."""


def _features_open_loop(agent: DeployedAgent, net: NetworkParams, inputs: np.ndarray,
                        steps: int) -> np.ndarray:
    """Readout features (steps, N) of ``net`` driven open loop by a recorded input sequence."""
    from neuralalchemy.sim.torch_backend import record_spikes

    spikes = record_spikes(net, inputs)[1:1 + steps * agent.steps_per_obs]
    counts = spikes.reshape(steps, agent.steps_per_obs, -1).sum(axis=1)
    trace = np.zeros(net.size)
    out = np.zeros((steps, net.size))
    for i, c in enumerate(counts):
        trace = update_features(trace, c, agent.readout.trace_decay)
        out[i] = trace
    return out


def _agreement(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Fraction of steps whose actions agree (all components, to float tolerance)."""
    same = total = 0
    for got, ref in pairs:
        n = len(ref)
        same += int(np.sum(np.all(np.isclose(np.reshape(got, (n, -1)), np.reshape(ref, (n, -1))),
                                  axis=1)))
        total += n
    return same / max(total, 1)


def refit_readout(readout: ReadoutParams, features: np.ndarray, targets: np.ndarray,
                  ridge: float) -> ReadoutParams:
    """Readout calibrated on the fixed-point network: ridge regression of the float readout's
    outputs ``targets`` (S, A) on the fixed network's features (S, N) plus a bias column, with
    ``ridge`` relative to the mean feature power (the float readout is the teacher)."""
    x = np.hstack([features, np.ones((len(features), 1))])
    gram = x.T @ x
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    coef = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), x.T @ targets)
    return replace(readout, w=coef[:-1].T.copy(), b=coef[-1].copy())


def _to_payload(inputs: np.ndarray, levels: int) -> np.ndarray:
    return inputs.astype(np.int64) if levels == 1 else \
        np.floor(inputs * PAYLOAD_LEVELS + 0.5).astype(np.int64)


def _rel_rms(a: Any, b: Any) -> float:
    a = a.toarray() if hasattr(a, "toarray") else np.asarray(a)
    b = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
    norm = float(np.sqrt(np.mean(a * a)))
    return float(np.sqrt(np.mean((a - b) ** 2)) / norm) if norm else 0.0


class _Trajectory(ty.NamedTuple):
    inputs: np.ndarray  # (T, C) float inputs, one row per timestep
    steps: int
    actions: np.ndarray  # the float agent's actions
    outputs: np.ndarray  # the float readout's outputs (steps, A)


def _trajectories(agent: DeployedAgent, seeds: list[int]) -> list[_Trajectory]:
    from neuralalchemy.sim.torch_backend import play

    float_net: NetworkParams = agent.network  # type: ignore[assignment]
    out = []
    for rec in play(agent, seeds, record_inputs=True):
        feats = _features_open_loop(agent, float_net, rec.extra["inputs"], rec.length)
        out.append(_Trajectory(rec.extra["inputs"], rec.length, np.asarray(rec.actions),
                               feats @ agent.readout.w.T + agent.readout.b))
    return out


def _candidate(agent: DeployedAgent, net: NetworkParams, calib: list[_Trajectory],
               evals: list[_Trajectory]) -> tuple[float, float | None, ReadoutParams]:
    """Best of the float readout and the readouts refit on ``calib`` (one per ridge value) by
    action agreement on ``evals``: (agreement, ridge or None, readout)."""
    def feats(tr: _Trajectory) -> np.ndarray:
        return _features_open_loop(agent, net, _to_payload(tr.inputs, net.payload_levels),
                                   tr.steps)

    eval_feats = [feats(tr) for tr in evals]

    def score(ro: ReadoutParams) -> float:
        return _agreement([(act(f, ro), tr.actions) for f, tr in zip(eval_feats, evals)])

    best: tuple[float, float | None, ReadoutParams] = (score(agent.readout), None,
                                                       agent.readout)
    if calib:
        x = np.vstack([feats(tr) for tr in calib])
        y = np.vstack([tr.outputs for tr in calib])
        for ridge in RIDGES:
            ro = refit_readout(agent.readout, x, y, ridge)
            agreement = score(ro)
            if agreement > best[0]:
                best = (agreement, ridge, ro)
    return best


def quantize_agent(agent: DeployedAgent, episodes: int = 3, seed: int = 0,
                   candidates: tuple[int, ...] = SCALE_BITS, calibration_episodes: int = 3,
                   heldout_episodes: int = 2) -> tuple[DeployedAgent, dict]:
    """The fixed-point agent that best keeps the float agent's actions, and the report.

    The float agent plays ``calibration_episodes`` + ``episodes`` + ``heldout_episodes``
    episodes (seeds from ``seed`` on). For each voltage scale the fixed network keeps the float
    readout or gets one refit on the calibration episodes (:func:`refit_readout`, ridge from
    :data:`RIDGES`), whichever agrees more with the float actions on the ``episodes``; the scale
    and readout that agree most win (ties: the finer scale), and their agreement on the held-out
    episodes, which chose nothing, is reported as ``action_agreement_heldout``.
    """
    float_net: NetworkParams = agent.network  # type: ignore[assignment]
    if float_net.precision != "float":
        raise ValueError("quantize_agent expects a float agent")
    seeds = [seed + i for i in range(calibration_episodes + episodes + heldout_episodes)]
    trajs = _trajectories(agent, seeds)
    calib = trajs[:calibration_episodes]
    evals = trajs[calibration_episodes:calibration_episodes + episodes]
    heldout = trajs[calibration_episodes + episodes:]
    rows = []
    best: tuple[float, int, NetworkParams, float | None, ReadoutParams] | None = None
    for bits in candidates:
        net = quantize_network(float_net, bits)
        kept = _agreement([(act(_features_open_loop(agent, net, _to_payload(
            tr.inputs, net.payload_levels), tr.steps), agent.readout), tr.actions)
            for tr in evals])
        agreement, ridge, ro = _candidate(agent, net, calib, evals)
        rows.append({"scale_bits": bits, "action_agreement": agreement,
                     "action_agreement_float_readout": kept, "readout_ridge": ridge})
        if best is None or agreement >= best[0]:
            best = (agreement, bits, net, ridge, ro)
    assert best is not None
    agreement, bits, chosen, ridge, readout = best
    fixed = replace(agent, network=chosen, readout=readout)
    held = _agreement([(act(_features_open_loop(agent, chosen, _to_payload(
        tr.inputs, chosen.payload_levels), tr.steps), readout), tr.actions) for tr in heldout])
    back = dequantize(chosen)
    unit = float_net.vth  # dequantize returns threshold 1
    report = {
        "float_sensitivity": {"relative_weight_noise": SENSITIVITY_NOISE,
                              "action_agreement": float_sensitivity(agent, evals, seed)},
        "float_episodes": len(trajs), "calibration_episodes": calibration_episodes,
        "steps_compared": int(sum(t.steps for t in evals)),
        "candidates": rows, "chosen_scale_bits": bits, "action_agreement": agreement,
        "action_agreement_heldout": held if heldout else None,
        "heldout_steps": int(sum(t.steps for t in heldout)),
        "readout": "float readout kept" if ridge is None else
                   f"refit on the fixed-point features (ridge {ridge:g})",
        "weight_error": {"w_in": _rel_rms(float_net.w_in / unit, back.w_in),
                         "w_rec": _rel_rms(float_net.w_rec / unit, back.w_rec)},
        "spectral_radius": {"float": spectral_radius(float_net.w_rec) / unit,
                            "fixed": spectral_radius(back.w_rec)},
        "exponents": {"w_in": chosen.w_in_exp, "w_rec": chosen.w_rec_exp},
    }
    return fixed, report


def float_sensitivity(agent: DeployedAgent, trajs: list[_Trajectory], seed: int = 0,
                      noise: float = 1e-4) -> float:
    """Action agreement of the float agent with itself after multiplying every recurrent weight
    by ``1 + noise·N(0, 1)``: the ceiling no quantizer can pass when the reservoir amplifies
    perturbations this small (measured on a trained CartPole agent: 1e-4 gives about 0.8)."""
    net: NetworkParams = agent.network  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    w = net.w_rec
    noisy = w.multiply(1 + noise * rng.standard_normal(w.shape)).tocsr() if hasattr(w, "multiply") \
        else w * (1 + noise * rng.standard_normal(w.shape))
    net = replace(net, w_rec=noisy)
    return _agreement([(act(_features_open_loop(agent, net, tr.inputs, tr.steps), agent.readout),
                        tr.actions) for tr in trajs])


def quantize_for_target(agent: DeployedAgent) -> tuple[DeployedAgent, dict]:
    """A fixed-point agent for a Loihi target: unchanged if it already is fixed point."""
    net: NetworkParams = agent.network  # type: ignore[assignment]
    if net.precision == "fixed":
        return agent, {"action_agreement": 1.0, "note": "trained in fixed point: no change"}
    return quantize_agent(agent)
