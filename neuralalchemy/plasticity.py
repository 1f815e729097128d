"""Local plasticity (Hebbian, pair STDP) in the reference engine, and pre-adaptation of a reservoir.

The rules follow Loihi 2's learning engine as Lava simulates it (``LearningDense`` /
``LearningSparse`` with a ``Loihi2FLearningRule``; ``STDPLoihi`` is one such rule): spikes only
record *when* a neuron last fired within a learning epoch of ``E`` timesteps, and at the end of
each epoch the accumulated change is applied once.

Traces and dependencies, per epoch (``k = 1..E`` the step within the epoch)::

    x1[t] = x1[t-1]·exp(−1/tau_plus)  + impulse·[pre spiked at t]     (pre trace, 7-bit in fixed)
    y1[t] = y1[t-1]·exp(−1/tau_minus) + impulse·[post spiked at t]    (post trace)
    x0 = pre spiked in the epoch,  y0 = post spiked in the epoch
    tx, ty = step of the last pre / post spike in the epoch

A neuron that fires more than once in an epoch adds the impulse of the earlier spikes to the trace
value at the epoch start (Lava's ``USE_REGULAR_IMPULSE``), the last one at ``tx``.

Weight change, once per epoch, traces read at the other side's last spike::

    stdp:     dw = c_plus·y0·x1[ty] − c_minus·x0·y1[tx]
    hebbian:  dw = c_plus·y0·x1[ty] − c_decay·y0·w

with ``c_plus = lr·a_plus·peak/impulse``, ``c_minus = lr·a_minus·peak/impulse`` (weight units per
trace unit; ``peak`` the largest initial magnitude of the adapting synapses) and, for Hebbian,
``c_decay = lr/w_max``: the decay makes ``w → w_max·peak·x1/impulse`` the fixed point of the rule,
so Hebbian growth cannot run away (Oja-like normalisation, expressible on Loihi as a ``y0·w``
product). Weights are then clipped to ``[0, w_max·peak]`` (excitatory synapses; the sign never
changes, Dale's law) and only existing synapses change (``mask``).

Fixed point (Lava ``PyLearningDenseModelBitApproximate``), all integers:

* traces 7 bits (0..127), integer impulses; decay ``floor(x·exp(−1/tau)) + [r < frac]`` with
  one random ``r`` per trace kind and epoch, shared by all neurons (Lava's ``TraceRandom``: x
  seeded with ``seed``, y with ``seed + 2``, advanced twice per timestep);
* each product's constant is ``m·2^e`` with ``m`` in −8..7 and ``e`` in −7..8 (Loihi's 4-bit
  scaling mantissa); STDP's two products share ``e`` (as ``STDPLoihi``'s learning rate does);
* accumulator 16-bit signed holding ``w << 7``; product ``dep·clip(factor)·m << (e + 7)``, each
  clipped to ±(2^15 − 1); excitatory accumulators floor at 0;
* stochastic rounding to the 8-bit weight: ``w = (acc >> 7) + [r_w < (acc mod 128)/128]``, one
  ``r_w`` per epoch (Lava's ``ConnVarRandom``, seed 2), then ``w`` clipped to 0..255 (and to the
  rule's bound).

Float mode is Lava's ``floating_pt`` learning model: the same epochs with real traces (impulse 1),
no rounding.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from neuralalchemy.config import PlasticityConfig
from neuralalchemy.network import NetworkParams, stable_weights

TRACE_MAX = 127
"""Traces are 7-bit unsigned on Loihi 2 (Lava ``W_TRACE``)."""

FIXED_IMPULSE = 16
"""Trace increment per spike in fixed point (Lava's ``STDPLoihi`` default): 3 bits of headroom."""

ACC_SHIFT = 7
"""The learning accumulator holds ``w << 7`` (16-bit signed accumulator, 9-bit signed weight)."""

_ACC_MAX = 2**15 - 1
_ACC_MIN = -(2**15) - 1
_WEIGHT_SEED = 2  # Lava's ConnVarRandom() is always seeded with 2

Rule = Literal["hebbian", "stdp"]


# ---------------------------------------------------------------- rule constants
@dataclass(frozen=True)
class Product:
    """One term ``mant·2^exp · dep · factor`` of a Loihi learning rule.

    ``dep`` is ``"x0"`` or ``"y0"``; ``factor`` one of ``"x1"``, ``"y1"``, ``"w"``. In fixed point
    ``mant`` is an integer in −8..7 and ``exp`` in −7..8; in float ``mant`` is the whole real
    coefficient and ``exp`` is 0.
    """

    dep: str
    factor: str
    mant: float
    exp: int

    @property
    def value(self) -> float:
        """The coefficient ``mant·2^exp``."""
        return float(self.mant) * 2.0**self.exp

    def literal(self) -> str:
        """The term in Lava's learning-rule string syntax."""
        return f"({int(self.mant)}) * 2 ^ {int(self.exp)} * {self.dep} * {self.factor}"


@dataclass(frozen=True)
class LearningRule:
    """A rule in the learning engine's terms (what both the torch step and Lava run).

    Attributes
    ----------
    kind : ``"stdp"`` or ``"hebbian"``.
    fixed : integer (Lava ``fixed_pt``) or float arithmetic.
    products : the terms of ``dw``.
    impulse : trace increment per spike (integer in fixed point).
    tau_x, tau_y : trace time constants in timesteps (pre, post).
    epoch : learning epoch ``E`` in timesteps.
    w_lo, w_hi : bounds of an adapted weight (mantissa units in fixed point, ``w_hi <= 255``).
    seed : seed of the trace rounding (Lava ``rng_seed``).
    """

    kind: str
    fixed: bool
    products: tuple[Product, ...]
    impulse: float
    tau_x: float
    tau_y: float
    epoch: int
    w_lo: float
    w_hi: float
    seed: int = 0

    def dw_string(self) -> str:
        """``dw`` in Lava's string syntax (fixed point constants)."""
        return " + ".join(p.literal() for p in self.products)


def quantize_scale(value: float, exp: int | None = None) -> tuple[int, int]:
    """Nearest ``m·2^e`` to ``value`` with ``|m| <= 7`` and ``e`` in −7..8 (``e`` given or the
    best); values below ``2^-8`` round to ``(0, -7)``."""
    mag, sign = abs(value), (1 if value >= 0 else -1)
    candidates = range(-7, 9) if exp is None else (exp,)
    best = (0, -7 if exp is None else exp)
    best_err = mag
    for e in candidates:
        m = min(7, int(math.floor(mag / 2.0**e + 0.5)))
        err = abs(m * 2.0**e - mag)
        if err < best_err - 1e-15:
            best, best_err = (sign * m, e), err
    return best


def _stdp_exponent(c_plus: float, c_minus: float) -> int:
    """Smallest shared exponent in −7..8 that keeps both STDP mantissas within 7."""
    top = max(c_plus, c_minus)
    for e in range(-7, 9):
        if top / 2.0**e <= 7.5:
            return e
    return 8


def make_rule(cfg: PlasticityConfig, peak: float, fixed: bool, seed: int = 0) -> LearningRule:
    """The rule a config describes for synapses whose largest initial magnitude is ``peak``.

    Fixed point bounds weights to ``min(255, floor(w_max·peak))`` (8-bit mantissas); float to
    ``w_max·peak``.
    """
    if cfg.rule not in ("stdp", "hebbian"):
        raise ValueError(f"plasticity rule must be 'stdp' or 'hebbian', got {cfg.rule!r}")
    impulse = FIXED_IMPULSE if fixed else 1.0
    c_plus = cfg.lr * cfg.a_plus * peak / impulse
    c_minus = cfg.lr * cfg.a_minus * peak / impulse
    c_decay = cfg.lr / cfg.w_max
    if cfg.rule == "stdp":
        if fixed:
            e = _stdp_exponent(c_plus, c_minus)
            mp, _ = quantize_scale(c_plus, e)
            mm, _ = quantize_scale(c_minus, e)
            prods = (Product("x0", "y1", -mm, e), Product("y0", "x1", mp, e))
        else:
            prods = (Product("x0", "y1", -c_minus, 0), Product("y0", "x1", c_plus, 0))
    elif fixed:
        mp, ep = quantize_scale(c_plus)
        md, ed = quantize_scale(c_decay)
        prods = (Product("y0", "x1", mp, ep), Product("y0", "w", -md, ed))
    else:
        prods = (Product("y0", "x1", c_plus, 0), Product("y0", "w", -c_decay, 0))
    w_hi = min(255.0, math.floor(cfg.w_max * peak + 1e-9)) if fixed else cfg.w_max * peak
    return LearningRule(cfg.rule, fixed, prods, impulse, cfg.tau_plus, cfg.tau_minus,
                        int(cfg.epoch), 0.0, w_hi, int(seed))


# ---------------------------------------------------------------- pure step functions
class TraceState(NamedTuple):
    """Learning state of one synapse group: traces at the epoch start, last spike step within the
    epoch (0 = none), and the global timestep count ``t``."""

    x1: torch.Tensor  # (pre,)
    y1: torch.Tensor  # (post,)
    tx: torch.Tensor  # (pre,) int64
    ty: torch.Tensor  # (post,) int64
    t: int


def zero_traces(n_pre: int, n_post: int, rule: LearningRule) -> TraceState:
    """All traces zero, no spikes, ``t = 0``."""
    dtype = torch.int64 if rule.fixed else torch.float64
    return TraceState(torch.zeros(n_pre, dtype=dtype), torch.zeros(n_post, dtype=dtype),
                      torch.zeros(n_pre, dtype=torch.int64), torch.zeros(n_post, dtype=torch.int64),
                      0)


def lava_random(seed: int, index: int) -> float:
    """Draw number ``index`` (0-based) of ``np.random.default_rng(seed).random()`` in O(1)."""
    bits = np.random.PCG64(seed)
    bits.advance(index)
    return float(np.random.Generator(bits).random())


def _impulse(trace: torch.Tensor, where: torch.Tensor, rule: LearningRule) -> torch.Tensor:
    bumped = trace + rule.impulse
    if rule.fixed:
        bumped = bumped.clamp(0, TRACE_MAX)
    return torch.where(where, bumped, trace)


def spike_phase(state: TraceState, s_pre: torch.Tensor, s_post: torch.Tensor,
                rule: LearningRule) -> TraceState:
    """Record this timestep's spikes (bool (pre,), (post,)); the timestep count advances."""
    t = state.t + 1
    k = (t - 1) % rule.epoch + 1
    x1 = _impulse(state.x1, (state.tx > 0) & s_pre, rule)
    y1 = _impulse(state.y1, (state.ty > 0) & s_post, rule)
    tx = torch.where(s_pre, torch.full_like(state.tx, k), state.tx)
    ty = torch.where(s_post, torch.full_like(state.ty, k), state.ty)
    return TraceState(x1, y1, tx, ty, t)


def epoch_due(state: TraceState, rule: LearningRule) -> bool:
    """True after the last timestep of an epoch (Lava's ``lrn_guard``)."""
    return state.t > 0 and state.t % rule.epoch == 0


def _history(trace: torch.Tensor, t_spike: torch.Tensor, tau: float, rule: LearningRule,
             rand: float) -> torch.Tensor:
    """Trace values at steps 0..E of the epoch, shape (E + 1, n)."""
    factor = float(np.exp(-1 / np.full((1, 1), tau))[0, 0])  # numpy's exp, as Lava computes it
    rows = [trace]
    for k in range(1, rule.epoch + 1):
        if rule.fixed:
            scaled = rows[-1].to(torch.float64) * factor
            floor = torch.floor(scaled)
            cur = floor.to(torch.int64) + (rand < (scaled - floor)).to(torch.int64)
        else:
            cur = rows[-1] * factor
        rows.append(_impulse(cur, t_spike == k, rule))
    return torch.stack(rows)


def _fixed_product(p: Product, dep: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    width = 9 if p.factor == "w" else 7
    val = factor.clamp(-(2**width), 2**width - 1)
    shift = max(0, width + 4 - 15)
    cur = (dep.to(torch.int64) * val * int(p.mant)) >> shift
    return (cur << (int(p.exp) + ACC_SHIFT)).clamp(_ACC_MIN, _ACC_MAX)


def learn_phase(w: torch.Tensor, state: TraceState, rule: LearningRule,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, TraceState]:
    """Apply one epoch's change to ``w`` (post, pre) and start the next epoch.

    ``mask`` (bool, same shape) marks the synapses that may change (None: all).
    """
    index = 2 * state.t  # both trace generators advance twice per timestep
    hx = _history(state.x1, state.tx, rule.tau_x, rule, lava_random(rule.seed, index))
    hy = _history(state.y1, state.ty, rule.tau_y, rule, lava_random(rule.seed + 2, index))
    x0 = (state.tx > 0)[None, :]
    y0 = (state.ty > 0)[:, None]
    factors = {
        ("y0", "x1"): hx[state.ty],  # (post, pre)
        ("x0", "y1"): hy[state.tx].T,  # (post, pre)
        ("y0", "w"): w,
    }
    deps = {"x0": x0, "y0": y0}
    if rule.fixed:
        acc = w.to(torch.int64) << ACC_SHIFT
        for p in rule.products:
            acc = (acc + _fixed_product(p, deps[p.dep], factors[(p.dep, p.factor)])) \
                .clamp(_ACC_MIN, _ACC_MAX)
        acc = acc.clamp_min(0)  # excitatory accumulator
        rand = lava_random(_WEIGHT_SEED, state.t // rule.epoch)
        frac = (acc & (2**ACC_SHIFT - 1)).to(torch.float64) / 2**ACC_SHIFT
        new = (acc >> ACC_SHIFT) + (rand < frac).to(torch.int64)
        new = new.clamp(0, 255)
    else:
        dw = torch.zeros_like(w, dtype=torch.float64)
        for p in rule.products:
            dep = deps[p.dep].to(torch.float64)
            dw = dw + p.value * dep * factors[(p.dep, p.factor)].to(torch.float64)
        new = w + dw
    new = new.clamp(rule.w_lo, rule.w_hi).to(w.dtype)
    if mask is not None:
        new = torch.where(mask, new, w)
    ends = TraceState(hx[-1], hy[-1], torch.zeros_like(state.tx), torch.zeros_like(state.ty),
                      state.t)
    return new, ends


def plastic_step(w: torch.Tensor, state: TraceState, s_pre: torch.Tensor, s_post: torch.Tensor,
                 rule: LearningRule,
                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, TraceState]:
    """One timestep: record spikes, then apply the epoch's change if the epoch ends here."""
    state = spike_phase(state, s_pre, s_post, rule)
    if epoch_due(state, rule):
        return learn_phase(w, state, rule, mask)
    return w, state


def run_rule(w: np.ndarray, pre: np.ndarray, post: np.ndarray, rule: LearningRule,
             mask: np.ndarray | None = None) -> np.ndarray:
    """Weights after each epoch, (epochs + 1, post, pre), for given spike rasters (T, pre) and
    (T, post) (open loop: the post spikes do not depend on the weights)."""
    dtype = torch.int64 if rule.fixed else torch.float64
    wt = torch.as_tensor(np.asarray(w), dtype=dtype)
    m = None if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    state = zero_traces(w.shape[1], w.shape[0], rule)
    out = [wt.clone()]
    for t in range(pre.shape[0]):
        wt, state = plastic_step(wt, state, torch.as_tensor(pre[t], dtype=torch.bool),
                                 torch.as_tensor(post[t], dtype=torch.bool), rule, m)
        if epoch_due(state, rule):
            out.append(wt.clone())
    return torch.stack(out).numpy()


# ---------------------------------------------------------------- pre-adaptation of a reservoir
def _dense(w: Any) -> np.ndarray:
    return w.toarray() if sp.issparse(w) else np.asarray(w)


def _shifted(acc: torch.Tensor, exp: int, fixed: bool) -> torch.Tensor:
    if not fixed:
        return acc
    acc = acc.round().to(torch.int64)
    return acc << exp if exp > 0 else acc >> (-exp) if exp < 0 else acc


def _sequences(payloads: Any) -> list[np.ndarray]:
    """One (T, C) array, a (S, T, C) stack or a list of (T_i, C) arrays -> list of sequences."""
    if isinstance(payloads, np.ndarray) and payloads.ndim == 2:
        return [payloads]
    seqs = [np.asarray(p) for p in payloads]
    if not seqs or any(s.ndim != 2 for s in seqs):
        raise ValueError("payloads must be (T, C), (S, T, C) or a list of (T, C) arrays")
    return seqs


def _pre_events(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Input channels that count as a presynaptic spike: a binary spike, or a graded payload in
    the upper half of its range (the channel's receptive field is active)."""
    if levels == 1:
        return x > 0
    return x > (levels / 2 if levels > 1 else 0.5)


class _Adapter:
    """The reservoir's closed-form loop with one plastic synapse group (torch, batch 1)."""

    def __init__(self, network: NetworkParams, target: str, rule: LearningRule | None,
                 mask: np.ndarray):
        from neuralalchemy.engine import engine_params

        self.net, self.target, self.rule = network, target, rule
        self.fixed = network.precision == "fixed"
        self.ep = engine_params(network)
        dtype = torch.int64 if self.fixed else torch.float64
        self.w_rec = torch.as_tensor(_dense(network.w_rec), dtype=dtype)
        self.w_in = torch.as_tensor(np.asarray(network.w_in), dtype=dtype)
        self.mask = torch.as_tensor(mask)
        plastic = self.w_rec if target == "recurrent" else self.w_in
        self.traces = zero_traces(plastic.shape[1], plastic.shape[0], rule) if rule else None

    def _drive(self, w: torch.Tensor, x: torch.Tensor, exp: int) -> torch.Tensor:
        return _shifted(x.to(torch.float64) @ w.T.to(torch.float64), exp, self.fixed)

    def run(self, seq: np.ndarray, steps: int) -> int:
        """Run one sequence from a zero state (learning if a rule is set); return its spikes."""
        from neuralalchemy.engine import lif_step, zero_state

        state = zero_state(self.ep, 1)
        a_rec = torch.zeros(1, self.net.size, dtype=state.u.dtype)
        total = 0
        for obs in seq:
            x = torch.as_tensor(np.asarray(obs))[None]
            for _ in range(steps):
                a_in = self._drive(self.w_in, x, self.net.w_in_exp)
                state = lif_step(a_rec + a_in, state, self.ep)
                a_rec = self._drive(self.w_rec, state.s, self.net.w_rec_exp)
                total += int(state.s.sum())
                if self.rule is not None:
                    self._learn(x[0], state.s[0])
        return total

    def _learn(self, x: torch.Tensor, s: torch.Tensor) -> None:
        if self.rule is None or self.traces is None:
            return
        if self.target == "recurrent":
            self.w_rec, self.traces = plastic_step(self.w_rec, self.traces, s, s, self.rule,
                                                   self.mask)
        else:
            pre = _pre_events(x, self.net.payload_levels)
            self.w_in, self.traces = plastic_step(self.w_in, self.traces, pre, s, self.rule,
                                                  self.mask)


def _rate(network: NetworkParams, seqs: list[np.ndarray], steps: int) -> float:
    sim = _Adapter(network, "recurrent", None, np.zeros((1, 1), dtype=bool))
    spikes = sum(sim.run(seq, steps) for seq in seqs)
    return spikes / max(1, network.size * steps * sum(len(s) for s in seqs))


def _with_weights(network: NetworkParams, target: str, w: np.ndarray) -> NetworkParams:
    """``network`` with adapted weights, still valid for Lava (same exponent, stable mantissas)."""
    fixed = network.precision == "fixed"
    if target == "input":
        w_in = stable_weights(w.astype(np.int64)) if fixed else w
        return dataclasses.replace(network, w_in=w_in)
    if sp.issparse(network.w_rec):
        csr = sp.csr_matrix(network.w_rec, copy=True)
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        data = w[rows, csr.indices]
        csr.data = stable_weights(data.astype(np.int64)) if fixed else data
        return dataclasses.replace(network, w_rec=csr)
    w_rec = stable_weights(w.astype(np.int64)) if fixed else w
    return dataclasses.replace(network, w_rec=w_rec)


def pre_adapt(network: NetworkParams, payloads: Any, cfg: PlasticityConfig, steps_per_obs: int,
              seed: int = 0) -> tuple[NetworkParams, dict[str, Any]]:
    """Run the reservoir over an input stream while a local rule adapts its excitatory synapses.

    ``payloads``: encoded observations (T, C) (or several sequences, see :func:`_sequences`),
    each held ``steps_per_obs`` timesteps; the state starts at zero for each sequence (the traces
    and the epoch clock carry over). ``cfg.target`` picks the excitatory recurrent synapses
    (``w_rec > 0``) or the excitatory input synapses (``w_in > 0``, a presynaptic event being an
    input payload above half its range). Only existing synapses change, never their sign; the
    inhibitory ones are untouched. The network runs in its own precision: in fixed point the rule
    is Loihi's learning engine (:func:`learn_phase`) and the result keeps the network's exponents
    with mantissas that obey Lava's weight rules (:func:`~neuralalchemy.network.stable_weights`:
    a mixed-sign matrix keeps even mantissas). Returns the adapted network and statistics: mean
    absolute Δw over the adapted synapses (weight units and relative to their initial peak), the
    fraction that changed, firing rates (spikes per neuron per timestep) before and after, the
    rule's constants and the number of epochs.
    """
    if cfg.rule == "none":
        return network, {"rule": "none"}
    if steps_per_obs < 1:
        raise ValueError(f"steps_per_obs must be >= 1, got {steps_per_obs}")
    if cfg.target == "recurrent" and network.delays is not None:
        raise ValueError("recurrent plasticity needs a network without synaptic delays (Loihi's "
                         "learning connections have none)")
    seqs = _sequences(payloads)
    w0 = _dense(network.w_rec) if cfg.target == "recurrent" else np.asarray(network.w_in)
    mask = w0 > 0
    if not mask.any():
        raise ValueError(f"the {cfg.target} weights have no excitatory synapse to adapt")
    peak = float(w0[mask].max())
    rule = make_rule(cfg, peak, network.precision == "fixed", seed)
    sim = _Adapter(network, cfg.target, rule, mask)
    for seq in seqs:
        sim.run(seq, steps_per_obs)
    w1 = (sim.w_rec if cfg.target == "recurrent" else sim.w_in).numpy()
    adapted = _with_weights(network, cfg.target, w1)
    w_final = _dense(adapted.w_rec) if cfg.target == "recurrent" else np.asarray(adapted.w_in)
    delta = np.abs(w_final[mask].astype(np.float64) - w0[mask])
    stats = {
        "rule": cfg.rule, "target": cfg.target, "synapses": int(mask.sum()),
        "epochs": sim.traces.t // rule.epoch if sim.traces else 0,
        "mean_abs_dw": float(delta.mean()), "mean_abs_dw_rel": float(delta.mean() / peak),
        "changed_fraction": float((delta > 0).mean()),
        "rate_before": _rate(network, seqs, steps_per_obs),
        "rate_after": _rate(adapted, seqs, steps_per_obs),
        "dw": rule.dw_string() if rule.fixed else str([p.value for p in rule.products]),
        "w_hi": rule.w_hi,
    }
    return adapted, stats


def observation_payloads(cfg: Any, info: Any, encoder: Any, episodes: int,
                         seed: int) -> np.ndarray:
    """Encoded observations (T_obs, C) of ``episodes`` random-policy episodes of ``cfg.env``.

    Payloads are in the network's input format (``cfg.reservoir.precision``): 8-bit graded ints
    in fixed point, floats in [0, 1] in float; a Poisson encoder gives one Bernoulli draw per
    observation (held for the observation's timesteps during pre-adaptation).
    """
    from neuralalchemy.agent_io import channel_values, encode
    from neuralalchemy.envs import make_env

    fixed = cfg.reservoir.precision == "fixed"
    rng = np.random.default_rng([int(seed), 0x57D9])
    env = make_env(cfg.env)
    env.action_space.seed(int(seed))
    limit = info.max_episode_steps or 1000
    seen: list[np.ndarray] = []
    before: list[np.ndarray] = []  # each observation's predecessor in its episode (change channels)
    try:
        for _ in range(episodes):
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            seen.append(obs)
            before.append(obs)
            for _ in range(limit):
                before.append(obs)
                obs, _, term, trunc, _ = env.step(env.action_space.sample())
                seen.append(obs)
                if term or trunc:
                    break
    finally:
        env.close()
    data = np.asarray(seen, dtype=np.float64)
    prev = np.asarray(before, dtype=np.float64)
    if encoder.binary:
        values = channel_values(data, encoder, prev)
        spikes = rng.random((len(data), encoder.n_channels)) < values
        return spikes.astype(np.int64 if fixed else np.float64)
    return encode(data, encoder, 255 if fixed else 0, prev)
