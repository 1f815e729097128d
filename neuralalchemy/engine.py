"""The reference engine: batched LIF reservoirs in PyTorch, float and Loihi fixed point.

:func:`lif_step` is the one pure step function (``(input, state, params) -> (spikes, state)``)
that the :class:`Reservoir` wrapper, the learners and the equivalence tests against Lava all use.
The equations and bit widths are in :mod:`neuralalchemy.network`.

B independent copies (environments, tasks, perturbed policies) step together; row ``b`` of every
state tensor is copy ``b``. Integer dynamics run in int64 tensors; the synaptic sums run as float
matrix products only where every partial sum is an exactly representable integer (checked once).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from neuralalchemy.network import NetworkParams

_WRAP = 2**23  # u and v are 24-bit


class LifState(NamedTuple):
    """Per-copy state: currents ``u``, voltages ``v``, last spikes ``s``, refractory counters and,
    with synaptic delays up to D, the spikes of the D steps before (``hist[:, d-1]`` is
    ``s[t-1-d]``; shape (B, D, N))."""

    u: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor
    ref: torch.Tensor
    hist: torch.Tensor


class DenseSynapses:
    """``W · x`` with a dense matrix (B, C) -> (B, N), then Lava's exponent shift in fixed point.

    Fixed point: the product runs in float32 (or float64) only when every partial sum is an
    integer below 2^24 (2^53), so it is exact; the result is converted to int64 and shifted.
    """

    def __init__(self, w: np.ndarray, exp: int, fixed: bool, max_input: float,
                 device: str | torch.device = "cpu"):
        self.fixed, self.exp = fixed, int(exp)
        dtype = _exact_dtype(w, max_input) if fixed else torch.float64
        self.w_t = torch.as_tensor(np.asarray(w, dtype=np.float64).T.copy(), dtype=dtype,
                                   device=device)
        self.n_post = int(w.shape[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        acc = x.to(self.w_t.dtype) @ self.w_t
        if self.fixed:
            return _shift(acc.round().to(torch.int64), self.exp)
        return acc


class SparseSynapses:
    """Event-driven ``W · s`` for binary spikes with a sparse matrix: only the outgoing synapses
    of neurons that spiked are touched (cost ∝ spikes × fan-out, as in Brian2 or GeNN).

    Fixed point accumulates in int64 (exact); float accumulates in float64 (the summation order
    differs from Lava's dense sum, so the last bit can differ, never the integer result).
    """

    def __init__(self, w: Any, exp: int, fixed: bool, device: str | torch.device = "cpu"):
        import scipy.sparse as sp

        wt = sp.csr_matrix(w).T.tocsr()  # rows: presynaptic neurons
        wt.sort_indices()
        self.fixed, self.exp = fixed, int(exp)
        self.n_post = int(w.shape[0])
        self.indptr = torch.as_tensor(wt.indptr.astype(np.int64), device=device)
        self.post = torch.as_tensor(wt.indices.astype(np.int64), device=device)
        vdtype = torch.int64 if fixed else torch.float64
        data = wt.data.astype(np.int64 if fixed else np.float64)
        self.values = torch.as_tensor(data, dtype=vdtype, device=device)

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        batch = s.shape[0]
        out = torch.zeros(batch * self.n_post, dtype=self.values.dtype, device=s.device)
        rows, pre = s.nonzero(as_tuple=True)
        if pre.numel():
            start = self.indptr[pre]
            count = self.indptr[pre + 1] - start
            spike_of = torch.repeat_interleave(torch.arange(pre.numel(), device=s.device), count)
            first = torch.cumsum(count, 0) - count
            syn = start[spike_of] + torch.arange(spike_of.numel(), device=s.device) \
                - first[spike_of]
            out.index_add_(0, rows[spike_of] * self.n_post + self.post[syn], self.values[syn])
        out = out.view(batch, self.n_post)
        return _shift(out, self.exp) if self.fixed else out


Synapses = DenseSynapses | SparseSynapses


def make_synapses(w: Any, exp: int, fixed: bool, max_input: float, binary: bool,
                  device: str | torch.device = "cpu") -> Synapses:
    """Event-driven synapses for sparse matrices of binary spikes, dense products otherwise."""
    import scipy.sparse as sp

    if sp.issparse(w):
        if binary:
            return SparseSynapses(w, exp, fixed, device)
        w = w.toarray()
    return DenseSynapses(np.asarray(w), exp, fixed, max_input, device)


class EngineParams(NamedTuple):
    """Tensors of one :class:`~neuralalchemy.network.NetworkParams`, ready for :func:`lif_step`."""

    fixed: bool
    syn_in: Synapses
    syn_rec: tuple[Synapses, ...]  # index d: synapses with extra delay d
    n: int
    du: float | int
    dv: float | int
    vth: float | int  # effective threshold (vth << 6 in fixed point)
    bias: torch.Tensor  # effective bias per neuron (bias << bias_exp in fixed point)
    refractory: int
    device: torch.device


def _exact_dtype(w: np.ndarray, max_input: float) -> torch.dtype:
    """float32 when every partial sum of ``w @ x`` is an integer below 2^24, else float64."""
    bound = float(np.abs(w).sum(axis=1).max(initial=0.0)) * max_input
    return torch.float32 if bound < 2**24 else torch.float64


def engine_params(p: NetworkParams, device: str | torch.device = "cpu") -> EngineParams:
    """Convert network parameters into engine tensors once."""
    fixed = p.precision == "fixed"
    syn_in = make_synapses(p.w_in, p.w_in_exp, fixed, max(p.payload_levels, 1), False, device)
    syn_rec = tuple(make_synapses(w, p.w_rec_exp, fixed, 1.0, True, device)
                    for w in split_by_delay(p.w_rec, p.delays))
    if fixed:
        b = p.bias.astype(np.int64)
        bias = torch.as_tensor(b << p.bias_exp if p.bias_exp >= 0 else b >> -p.bias_exp,
                               dtype=torch.int64, device=device)
        return EngineParams(True, syn_in, syn_rec, p.size, int(p.du), int(p.dv),
                            int(p.vth) << 6, bias, int(p.refractory), torch.device(device))
    bias = torch.as_tensor(p.bias, dtype=torch.float64, device=device)
    return EngineParams(False, syn_in, syn_rec, p.size, float(p.du), float(p.dv), float(p.vth),
                        bias, int(p.refractory), torch.device(device))


def split_by_delay(w: Any, delays: Any) -> list[Any]:
    """``[W_0, W_1, ..., W_D]`` with ``W_d`` the synapses of extra delay ``d``."""
    import scipy.sparse as sp

    if delays is None:
        return [w]
    top = int(delays.max()) if (not sp.issparse(delays) or delays.nnz) else 0
    if sp.issparse(w):
        w, delays = sp.csr_matrix(w), sp.csr_matrix(delays)
        parts = []
        for d in range(top + 1):
            part = w.copy()
            part.data = np.where(delays.data == d, part.data, 0)
            part.eliminate_zeros()
            parts.append(part)
        return parts
    return [np.where(np.asarray(delays) == d, w, 0) for d in range(top + 1)]


def zero_state(ep: EngineParams, batch: int) -> LifState:
    """All-zero state for ``batch`` copies."""
    dtype = torch.int64 if ep.fixed else torch.float64
    dev = ep.device
    return LifState(
        u=torch.zeros(batch, ep.n, dtype=dtype, device=dev),
        v=torch.zeros(batch, ep.n, dtype=dtype, device=dev),
        s=torch.zeros(batch, ep.n, dtype=torch.bool, device=dev),
        ref=torch.zeros(batch, ep.n, dtype=torch.int64, device=dev),
        hist=torch.zeros(batch, len(ep.syn_rec) - 1, ep.n, dtype=torch.bool, device=dev),
    )


def _shift(acc: torch.Tensor, exp: int) -> torch.Tensor:
    return acc << exp if exp > 0 else acc >> (-exp) if exp < 0 else acc


def synaptic_input(payload: torch.Tensor | None, state: LifState, ep: EngineParams) -> torch.Tensor:
    """Dense input of one step: ``W_in·payload + W_rec·s`` (each shifted by its exponent)."""
    a = ep.syn_rec[0](state.s)
    for d in range(1, len(ep.syn_rec)):
        a = a + ep.syn_rec[d](state.hist[:, d - 1])
    if payload is not None:
        a = a + ep.syn_in(payload)
    return a


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
    hist = state.hist
    if hist.shape[1]:
        hist = torch.cat([state.s[:, None], hist[:, :-1]], dim=1)
    return LifState(u=u, v=v, s=s, ref=ref, hist=hist)


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
        """Run ``steps`` timesteps with input ``payload``: (B, C) held, or (steps, B, C) one per
        timestep; return the spike counts (B, N) as int64."""
        counts = torch.zeros(self.batch, self.size, dtype=torch.int64, device=payload.device)
        state = self.state
        for k in range(steps):
            x = payload[k] if payload.dim() == 3 else payload
            state = lif_step(synaptic_input(x, state, self.ep), state, self.ep)
            counts += state.s
        self.state = state
        return counts

