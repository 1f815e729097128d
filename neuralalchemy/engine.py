"""The reference engine: batched LIF reservoirs in PyTorch, float and Loihi fixed point.

:func:`lif_step` is the one pure step function (``(input, state, params) -> (spikes, state)``)
that the :class:`Reservoir` wrapper, the learners and the equivalence tests against Lava all use.
The equations and bit widths are in :mod:`neuralalchemy.network`.

B independent copies (environments, tasks, perturbed policies) step together; row ``b`` of every
state tensor is copy ``b``. Integer dynamics run in int64 tensors; the synaptic sums run as float
matrix products only where every partial sum is an exactly representable integer (checked once).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from neuralalchemy.network import NetworkParams

_WRAP = 2**23  # u and v are 24-bit


class LifState(NamedTuple):
    """Per-copy state: currents ``u``, voltages ``v``, last spikes ``s``, refractory counters."""

    u: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor
    ref: torch.Tensor


class EngineParams(NamedTuple):
    """Tensors of one :class:`~neuralalchemy.network.NetworkParams`, ready for :func:`lif_step`."""

    fixed: bool
    w_in_t: torch.Tensor  # (C, N), dtype chosen so that sums are exact in fixed point
    w_in_exp: int
    w_rec_t: torch.Tensor  # (N, N) transposed: s @ w_rec_t
    w_rec_exp: int
    du: float | int
    dv: float | int
    vth: float | int  # effective threshold (vth << 6 in fixed point)
    bias: torch.Tensor  # effective bias per neuron (bias << bias_exp in fixed point)
    refractory: int


def _exact_dtype(w: np.ndarray, max_input: float) -> torch.dtype:
    """float32 when every partial sum of ``w @ x`` is an integer below 2^24, else float64."""
    bound = float(np.abs(w).sum(axis=1).max(initial=0.0)) * max_input
    return torch.float32 if bound < 2**24 else torch.float64


def engine_params(p: NetworkParams, device: str | torch.device = "cpu") -> EngineParams:
    """Convert network parameters into engine tensors once."""
    if p.precision == "fixed":
        in_dtype = _exact_dtype(p.w_in, max(p.payload_levels, 1))
        rec_dtype = _exact_dtype(p.w_rec, 1.0)
        bias = np.left_shift(p.bias.astype(np.int64), p.bias_exp) if p.bias_exp >= 0 else \
            np.right_shift(p.bias.astype(np.int64), -p.bias_exp)
        return EngineParams(
            fixed=True,
            w_in_t=torch.as_tensor(p.w_in.T.astype(np.float64), dtype=in_dtype, device=device),
            w_in_exp=int(p.w_in_exp),
            w_rec_t=torch.as_tensor(p.w_rec.T.astype(np.float64), dtype=rec_dtype, device=device),
            w_rec_exp=int(p.w_rec_exp),
            du=int(p.du), dv=int(p.dv), vth=int(p.vth) << 6,
            bias=torch.as_tensor(bias, dtype=torch.int64, device=device),
            refractory=int(p.refractory),
        )
    f64 = torch.float64
    return EngineParams(
        fixed=False,
        w_in_t=torch.as_tensor(p.w_in.T.copy(), dtype=f64, device=device), w_in_exp=0,
        w_rec_t=torch.as_tensor(p.w_rec.T.copy(), dtype=f64, device=device), w_rec_exp=0,
        du=float(p.du), dv=float(p.dv), vth=float(p.vth),
        bias=torch.as_tensor(p.bias, dtype=f64, device=device), refractory=int(p.refractory),
    )


def zero_state(ep: EngineParams, batch: int) -> LifState:
    """All-zero state for ``batch`` copies."""
    n = ep.w_rec_t.shape[0]
    dtype = torch.int64 if ep.fixed else torch.float64
    dev = ep.w_rec_t.device
    return LifState(
        u=torch.zeros(batch, n, dtype=dtype, device=dev),
        v=torch.zeros(batch, n, dtype=dtype, device=dev),
        s=torch.zeros(batch, n, dtype=torch.bool, device=dev),
        ref=torch.zeros(batch, n, dtype=torch.int64, device=dev),
    )


def _shift(acc: torch.Tensor, exp: int) -> torch.Tensor:
    return acc << exp if exp > 0 else acc >> (-exp)


def synaptic_input(payload: torch.Tensor | None, state: LifState, ep: EngineParams) -> torch.Tensor:
    """Dense input of one step: ``W_in·payload + W_rec·s`` (each shifted by its exponent)."""
    rec = state.s.to(ep.w_rec_t.dtype) @ ep.w_rec_t
    if ep.fixed:
        a = _shift(rec.round().to(torch.int64), ep.w_rec_exp)
        if payload is not None:
            inp = (payload.to(ep.w_in_t.dtype) @ ep.w_in_t).round().to(torch.int64)
            a = a + _shift(inp, ep.w_in_exp)
        return a
    if payload is not None:
        return (payload.to(torch.float64) @ ep.w_in_t) + rec
    return rec


def _decay_fixed(x: torch.Tensor, factor: int) -> torch.Tensor:
    y = x * factor
    return torch.sign(y) * (y.abs() >> 12)


def lif_step(a: torch.Tensor, state: LifState, ep: EngineParams) -> LifState:
    """One LIF timestep given the summed synaptic input ``a`` (B, N); returns the new state.

    Fixed point reproduces Lava's ``PyLifModelBitAcc`` bit for bit (24-bit wrap of ``u``, clip of
    ``v``, truncation toward zero in the decays); float reproduces ``PyLifModelFloat`` and, with a
    refractory period, ``PyLifRefractoryModelFloat`` (``u`` integrates, ``v`` is held).
    """
    if ep.fixed:
        u = _decay_fixed(state.u, 4096 - (int(ep.du) + 1)) + (a << 6)
        u = torch.where(u > _WRAP, u - 2 * _WRAP, u)
        u = torch.where(u <= -_WRAP, u + 2 * _WRAP, u)
        v_new = torch.clamp(_decay_fixed(state.v, 4096 - int(ep.dv)) + u + ep.bias,
                            -(_WRAP - 1), _WRAP - 1)
    else:
        u = state.u * (1.0 - ep.du) + a
        v_new = state.v * (1.0 - ep.dv) + u + ep.bias
    if ep.refractory > 0:
        free = state.ref == 0
        v_new = torch.where(free, v_new, state.v)
    s = v_new > ep.vth
    v = torch.where(s, torch.zeros_like(v_new), v_new)
    ref = state.ref
    if ep.refractory > 0:
        ref = torch.where(s, torch.full_like(ref, ep.refractory), (ref - 1).clamp_min(0))
    return LifState(u=u, v=v, s=s, ref=ref)


class Reservoir:
    """B copies of one reservoir stepping together, with the closed-loop timing used everywhere.

    Timing (identical on Lava): after :meth:`reset`, one warm-up timestep runs with no input (the
    input Dense holds nothing yet). Each environment step then holds the encoded observation for
    ``K`` timesteps; the spikes of those ``K`` timesteps are that step's features.
    """

    def __init__(self, params: NetworkParams, batch: int, device: str | torch.device = "cpu"):
        self.params = params
        self.ep = engine_params(params, device)
        self.batch = batch
        self.state = zero_state(self.ep, batch)

    @property
    def size(self) -> int:
        """Neurons per copy."""
        return self.params.size

    def reset(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Zero the state of ``rows`` (all if None), run their warm-up step; return its spikes."""
        fresh = zero_state(self.ep, self.batch if rows is None else int(rows.numel()))
        warm = lif_step(synaptic_input(None, fresh, self.ep), fresh, self.ep)
        if rows is None:
            self.state = warm
        else:
            self.state = LifState(*(old.index_copy(0, rows, new)
                                    for old, new in zip(self.state, warm)))
        return warm.s

    def run(self, payload: torch.Tensor, steps: int) -> torch.Tensor:
        """Hold ``payload`` (B, C) for ``steps`` timesteps; return spike counts (B, N) as int64."""
        counts = torch.zeros(self.batch, self.size, dtype=torch.int64, device=payload.device)
        state = self.state
        for _ in range(steps):
            state = lif_step(synaptic_input(payload, state, self.ep), state, self.ep)
            counts += state.s
        self.state = state
        return counts

    def run_record(self, payload: torch.Tensor, steps: int) -> tuple[torch.Tensor, LifState]:
        """Like :meth:`run` but return every timestep's spikes (steps, B, N) and the final state."""
        spikes = []
        state = self.state
        for _ in range(steps):
            state = lif_step(synaptic_input(payload, state, self.ep), state, self.ep)
            spikes.append(state.s)
        self.state = state
        return torch.stack(spikes), state
