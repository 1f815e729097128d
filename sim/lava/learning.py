"""Plasticity on Lava: a spike source through a ``LearningDense`` with our rule, on Loihi2SimCfg.

Graph (one ``run(RunSteps(E))`` per learning epoch, the weights read after each)::

    RingBuffer(pre) ──► LearningDense(w, rule) ──► LIF ──► RingBuffer sink
                              ▲ s_in_bap              │
                              └───────────────────────┘
    (or, open loop: RingBuffer(post) ──► LearningDense.s_in_bap)

The rule is a :class:`neuralalchemy.plasticity.LearningRule`: STDP becomes Lava's ``STDPLoihi``
(learning rate ``2^e``, amplitudes the integer mantissas, so its string is exactly our products),
Hebbian a ``Loihi2FLearningRule`` with the ``dw`` string of :meth:`LearningRule.dw_string`.
Fixed point selects ``PyLearningDenseModelBitApproximate`` (``fixed_pt``), float
``PyLearningDenseModelFloat``. ``stop()`` always runs in ``finally``.

Lava executes this folder's files during process-model discovery: this module only defines
functions and imports Lava inside them.
"""

from __future__ import annotations

import typing as ty
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LearningRun:
    """Weights after each recorded epoch (epochs + 1, post, pre; row 0 the initial weights) and the
    post spikes (T, post) of a Lava learning run."""

    weights: np.ndarray
    post_spikes: np.ndarray


def lava_rule(rule: ty.Any) -> ty.Any:
    """The Lava learning rule object of a :class:`~neuralalchemy.plasticity.LearningRule`."""
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
    from lava.proc.learning_rules.stdp_learning_rule import STDPLoihi

    common = dict(t_epoch=int(rule.epoch), rng_seed=int(rule.seed))
    impulse = int(rule.impulse) if rule.fixed else float(rule.impulse)
    if rule.kind == "stdp":
        minus = next(p for p in rule.products if p.dep == "x0")
        plus = next(p for p in rule.products if p.dep == "y0")
        if rule.fixed:
            lr, a_plus, a_minus = 2.0**plus.exp, int(plus.mant), int(minus.mant)
        else:
            lr, a_plus, a_minus = 1.0, plus.value, minus.value
        return STDPLoihi(learning_rate=lr, A_plus=a_plus, A_minus=a_minus,
                         tau_plus=rule.tau_x, tau_minus=rule.tau_y, x1_impulse=impulse,
                         y1_impulse=impulse, **common)
    if rule.fixed:
        dw = rule.dw_string()
    else:
        dw = " + ".join(f"{p.value!r} * {p.dep} * {p.factor}" for p in rule.products)
    return Loihi2FLearningRule(dw=dw, x1_impulse=impulse, x1_tau=rule.tau_x,
                               y1_impulse=impulse, y1_tau=rule.tau_y, **common)


def run_learning(weights: np.ndarray, pre: np.ndarray, rule: ty.Any, *,
                 post: np.ndarray | None = None, neuron: dict[str, ty.Any] | None = None,
                 weight_exp: int = 0) -> LearningRun:
    """Run ``pre`` spikes (T, pre) through a ``LearningDense`` of ``weights`` (post, pre).

    Post spikes come from ``post`` (T, post), given (open loop), or from a ``LIF`` with the
    ``neuron`` parameters (``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``) that the
    connection drives (closed loop; its spikes are the back-propagated ``s_in_bap``). ``T`` must
    be a multiple of the rule's epoch; the weights are read after each epoch. The connection is
    excitatory (``SignMode.EXCITATORY``: Lava's learning models otherwise default to mixed sign,
    which lets a weight cross zero and clears the lowest bit of every fixed-point weight).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.utils.weightutils import SignMode

    steps, epoch = int(pre.shape[0]), int(rule.epoch)
    if steps % epoch:
        raise ValueError(f"run length {steps} is not a multiple of the epoch {epoch}")
    if (post is None) == (neuron is None):
        raise ValueError("give exactly one of post (spikes) or neuron (LIF parameters)")
    if np.min(weights, initial=0) < 0:
        raise ValueError("learning synapses are excitatory: weights must be >= 0")
    dtype = np.int32 if rule.fixed else np.float64
    n_post = int(weights.shape[0])
    src = Source(data=np.asarray(pre, dtype=dtype).T.copy())
    dense = LearningDense(weights=np.asarray(weights, dtype=dtype), weight_exp=int(weight_exp),
                          sign_mode=SignMode.EXCITATORY, learning_rule=lava_rule(rule))
    src.s_out.connect(dense.s_in)
    if post is not None:
        post_src = Source(data=np.asarray(post, dtype=dtype).T.copy())
        post_src.s_out.connect(dense.s_in_bap)
        sink = None
    else:
        lif = LIF(shape=(n_post,), **(neuron or {}))
        dense.a_out.connect(lif.a_in)
        lif.s_out.connect(dense.s_in_bap)
        sink = Sink(shape=(n_post,), buffer=steps)
        lif.s_out.connect(sink.a_in)
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if rule.fixed else "floating_pt")
    trajectory = [np.asarray(weights, dtype=np.float64)]
    spikes = np.asarray(post if post is not None else np.zeros((steps, n_post)))
    try:
        for _ in range(steps // epoch):
            src.run(condition=RunSteps(num_steps=epoch), run_cfg=cfg)
            trajectory.append(np.asarray(dense.weights.get(), dtype=np.float64))
        if sink is not None:
            spikes = np.asarray(sink.data.get()).T > 0
    finally:
        if src.runtime is not None:
            src.stop()
    return LearningRun(weights=np.stack(trajectory), post_spikes=np.asarray(spikes, dtype=bool))
