"""Surrogate-gradient backpropagation through time (BPTT) through the spiking reservoir.

Forward pass: exactly :func:`neuralalchemy.engine.lif_step` in float mode (float64, the same
operations in the same order), so a network trained here runs unchanged on the engine, and after
:func:`~neuralalchemy.network.quantize_network` on the Loihi fixed-point path::

    a[t] = W_in·diag(g)·x[t-1] + Σ_d W_rec,d·s[t-1-d]
    u[t] = u[t-1]·(1 − du) + a[t]
    v[t] = v[t-1]·(1 − dv) + u[t] + bias          (held for ``refractory`` steps after a spike)
    s[t] = H(v[t] − vth);  v[t] ← v[t]·(1 − s[t])

Backward pass: the Heaviside ``H`` has the fast-sigmoid (SuperSpike) surrogate derivative

    ∂s/∂v ≈ 1 / (vth·(1 + k·abs(v − vth)/vth)²),    k = ``TaskConfig.surrogate_slope``

and the reset is detached (gradients do not flow through ``v ← 0``). Features are the spike
counts of the ``K = steps_per_obs`` timesteps that hold each input, differentiable through the
surrogate, or (``trace_decay`` > 0) their trace ``f(t) = trace_decay·f(t−1) + counts(t)``; the
readout is linear (``W_out·z + b``): MSE for regression, softmax cross-entropy for
classification. With one target per sequence the readout sees the mean features of the steps
after the washout, or (``concat``) the features of every step, concatenated.

What is trained: the readout always; ``W_in`` with ``train_input``; ``W_rec`` with
``train_recurrent`` (only the existing synapses, each keeping its sign, so sparsity and Dale's
law hold: the weights are masked and projected back onto their sign after each step). ``W_in``
trains only its existing synapses too (``reservoir.input_connectivity`` holds, so the trained
network needs no more synapses on chip than the untrained one); one gain
per input channel with ``attention`` (:mod:`neuralalchemy.attention`). The gains are folded into
``W_in`` in the returned network, which therefore compiles like any other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from neuralalchemy.attention import fold_gains
from neuralalchemy.config import TaskConfig, TrainingConfig
from neuralalchemy.engine import Reservoir, split_by_delay
from neuralalchemy.learners.optim import (
    Schedule,
    dropout,
    gaussian_noise,
    make_optimizer,
    readout_penalty,
    softmax_lbfgs,
    weight_noise,
)
from neuralalchemy.network import PAYLOAD_LEVELS, NetworkParams, dequantize, quantize_network

_DT = torch.float64
Kind = Literal["regression", "classification"]


# ---------------------------------------------------------------- the differentiable LIF
class SurrogateParams(NamedTuple):
    """Neuron constants of the differentiable step (float units, as in ``NetworkParams``)."""

    du: float
    dv: float
    vth: float
    bias: torch.Tensor
    refractory: int
    slope: float


class SpikeState(NamedTuple):
    """As :class:`neuralalchemy.engine.LifState`, with float spikes ``s`` (0/1, differentiable)
    and float delay history ``hist`` (B, D, N)."""

    u: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor
    ref: torch.Tensor
    hist: torch.Tensor


class _FastSigmoidSpike(torch.autograd.Function):
    """``H(v − vth)`` forward; ``1/(vth·(1 + k|v − vth|/vth)²)`` backward."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, vth: float, slope: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.vth, ctx.slope = vth, slope
        return (v > vth).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (v,) = ctx.saved_tensors
        x = (v - ctx.vth).abs() / ctx.vth
        return grad / (ctx.vth * (1.0 + ctx.slope * x) ** 2), None, None


def spike(v: torch.Tensor, vth: float, slope: float) -> torch.Tensor:
    """Spikes ``v > vth`` as 0/1 floats, with the fast-sigmoid surrogate gradient."""
    return _FastSigmoidSpike.apply(v, vth, slope)


def zero_spike_state(batch: int, n: int, delays: int) -> SpikeState:
    """All-zero state of ``batch`` copies with ``delays`` steps of spike history."""
    z = torch.zeros(batch, n, dtype=_DT)
    return SpikeState(z, z.clone(), z.clone(), torch.zeros(batch, n, dtype=torch.int64),
                      torch.zeros(batch, delays, n, dtype=_DT))


def surrogate_input(x: torch.Tensor | None, state: SpikeState, w_in_t: torch.Tensor,
                    w_rec_t: list[torch.Tensor]) -> torch.Tensor:
    """``W_in·x + Σ_d W_rec,d·s[t-1-d]`` from transposed (pre, post) matrices, summed in the
    engine's order (recurrent first, then the delayed parts, then the input)."""
    a = state.s @ w_rec_t[0]
    for d in range(1, len(w_rec_t)):
        a = a + state.hist[:, d - 1] @ w_rec_t[d]
    if x is not None:
        a = a + x @ w_in_t
    return a


def surrogate_lif_step(a: torch.Tensor, state: SpikeState, p: SurrogateParams) -> SpikeState:
    """One float LIF timestep, equal in value to ``engine.lif_step`` (float mode)."""
    u = state.u * (1.0 - p.du) + a
    v_new = state.v * (1.0 - p.dv) + u + p.bias
    if p.refractory > 0:
        v_new = torch.where(state.ref == 0, v_new, state.v)
    s = spike(v_new, p.vth, p.slope)
    v = v_new * (1.0 - s.detach())
    ref = state.ref
    if p.refractory > 0:
        fired = s.detach() > 0
        ref = torch.where(fired, torch.full_like(ref, p.refractory), (ref - 1).clamp_min(0))
    hist = state.hist
    if hist.shape[1]:
        hist = torch.cat([state.s[:, None], hist[:, :-1]], dim=1)
    return SpikeState(u, v, s, ref, hist)


# ---------------------------------------------------------------- trainable reservoir
class _Reservoir:
    """The trainable tensors of one float network and the windowed forward pass."""

    def __init__(self, net: NetworkParams, task: TaskConfig):
        w_any: Any = net.w_rec
        w_rec = w_any.toarray() if sp.issparse(w_any) else np.asarray(w_any)
        delays: Any = net.delays
        if sp.issparse(delays):
            delays = delays.toarray()
        self.sparse = sp.issparse(net.w_rec)
        self.net, self.task = net, task
        self.w_in = torch.tensor(net.w_in, dtype=_DT, requires_grad=task.train_input)
        self.log_gain = torch.zeros(net.n_inputs, dtype=_DT, requires_grad=task.attention)
        self.w_rec = torch.tensor(w_rec, dtype=_DT, requires_grad=task.train_recurrent)
        self.mask = torch.as_tensor(w_rec != 0, dtype=_DT)
        self.in_mask = torch.as_tensor(np.asarray(net.w_in) != 0, dtype=_DT)
        self.sign = torch.sign(torch.as_tensor(w_rec, dtype=_DT))
        parts = split_by_delay(w_rec, delays)
        self.delay_masks = [torch.as_tensor(part != 0, dtype=_DT) for part in parts]
        self.params = SurrogateParams(float(net.du), float(net.dv), float(net.vth),
                                      torch.as_tensor(net.bias, dtype=_DT),
                                      int(net.refractory), float(task.surrogate_slope))

    def weights(self, noise: float, gen: torch.Generator | None,
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Transposed effective matrices ``(W_in·diag(g))ᵀ`` and ``[W_rec,dᵀ]`` (noisy in
        training); contiguous like the engine's, so the products match it bit for bit."""
        w_in = self.w_in * self.in_mask * torch.exp(self.log_gain)[None, :]
        w_rec = self.w_rec * self.mask
        if self.task.train_input or self.task.attention:
            w_in = weight_noise(w_in, noise, gen)
        if self.task.train_recurrent:
            w_rec = weight_noise(w_rec, noise, gen)
        rec = [w_rec] if len(self.delay_masks) == 1 else [w_rec * m for m in self.delay_masks]
        return w_in.t().contiguous(), [w.t().contiguous() for w in rec]

    def project(self) -> None:
        """Keep each recurrent synapse on its sign (Dale's law) and off where none exists."""
        with torch.no_grad():
            self.w_rec.copy_(self.sign * (self.sign * self.w_rec).clamp_min(0.0) * self.mask)

    def warm_state(self, batch: int, w_rec_t: list[torch.Tensor]) -> SpikeState:
        """Zero state after the engine's warm-up step (one timestep without input)."""
        st = zero_spike_state(batch, self.net.size, len(w_rec_t) - 1)
        return surrogate_lif_step(surrogate_input(None, st, w_rec_t[0], w_rec_t), st, self.params)

    def run(self, x: torch.Tensor, state: SpikeState, w: tuple[torch.Tensor, list[torch.Tensor]],
            steps_per_obs: int, truncate: int = 0) -> tuple[torch.Tensor, SpikeState]:
        """Spike counts (B, T, N) of inputs ``x`` (B, T, C), each held ``steps_per_obs`` steps;
        the state is detached every ``truncate`` input steps (truncated BPTT; 0: never)."""
        w_in_t, w_rec_t = w
        counts = []
        for t in range(x.shape[1]):
            if truncate and t and t % truncate == 0:
                state = SpikeState(*(s.detach() for s in state))
            c = torch.zeros(x.shape[0], self.net.size, dtype=_DT)
            for _ in range(steps_per_obs):
                state = surrogate_lif_step(surrogate_input(x[:, t], state, w_in_t, w_rec_t),
                                           state, self.params)
                c = c + state.s
            counts.append(c)
        return torch.stack(counts, dim=1), state

    def network(self) -> NetworkParams:
        """The trained float network, gains folded into ``W_in``."""
        w_rec = (self.w_rec * self.mask).detach().numpy()
        if self.sparse:
            old = sp.csr_matrix(self.net.w_rec)
            w_rec = sp.csr_matrix((w_rec[old.nonzero()], old.indices, old.indptr), old.shape)
        w_in = (self.w_in * self.in_mask).detach().numpy().copy()
        net = dataclasses.replace(self.net, w_in=w_in, w_rec=w_rec)
        return fold_gains(net, np.exp(self.log_gain.detach().numpy()))


# ---------------------------------------------------------------- results and evaluation
@dataclass(eq=False)
class BackpropResult:
    """A trained network and its readout.

    ``readout_w`` (O, F) and ``readout_b`` (O,) act on raw features per input step (spike
    counts, or their trace with ``trace_decay`` > 0; for a sequence target: their mean over the
    steps after the washout, or with ``concat`` those steps' features concatenated):
    ``y = readout_w·z + readout_b`` (regression, targets in their own units) or class logits
    (classification). ``network`` is float, with ``gains`` already folded into ``w_in``.
    """

    network: NetworkParams
    readout_w: np.ndarray
    readout_b: np.ndarray
    gains: np.ndarray
    losses: list[float]
    kind: str
    steps_per_obs: int
    washout: int
    per_sequence: bool = False
    trace_decay: float = 0.0
    concat: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def as_batch(inputs: np.ndarray) -> np.ndarray:
    """Inputs as (B, T, C): a (T, C) series becomes one sequence."""
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim == 2:
        return x[None]
    if x.ndim != 3:
        raise ValueError(f"inputs must be (T, C) or (B, T, C), got shape {x.shape}")
    return x


def engine_features(network: NetworkParams, inputs: np.ndarray, steps_per_obs: int,
                    trace_decay: float = 0.0) -> np.ndarray:
    """Spike counts (B, T, N) of the ordinary engine, float or fixed point, or their trace
    (``trace_decay`` > 0). Inputs are channel values (float payloads); fixed point sends them as
    8-bit payloads ``floor(255·x + 0.5)`` (values must lie in [0, 1]), or as binary spikes for a
    binary-input network."""
    x = as_batch(inputs)
    if network.precision == "fixed":
        levels = PAYLOAD_LEVELS if network.payload_levels > 1 else 1
        x = np.clip(np.floor(x * levels + 0.5), 0, levels)
    res = Reservoir(network, x.shape[0])
    res.reset()
    payload = torch.as_tensor(x, dtype=torch.int64 if network.precision == "fixed" else _DT)
    out = [res.run(payload[:, t], steps_per_obs) for t in range(x.shape[1])]
    counts = torch.stack(out, dim=1).to(_DT)
    return trace(counts, trace_decay).numpy()


def trace(counts: torch.Tensor, decay: float, start: torch.Tensor | None = None,
          ) -> torch.Tensor:
    """``f(t) = decay·f(t−1) + counts(t)`` along dim 1 of (B, T, N), from ``f(−1) = start``
    (zeros if None); the counts themselves when ``decay`` is 0 (differentiable)."""
    if decay == 0.0:
        return counts
    f = torch.zeros_like(counts[:, 0]) if start is None else start
    out = []
    for t in range(counts.shape[1]):
        f = decay * f + counts[:, t]
        out.append(f)
    return torch.stack(out, dim=1)


def _readout_inputs(feats: Any, washout: int, per_sequence: bool, concat: bool = False) -> Any:
    """Per-step features after the washout (B·T', N), or per sequence (B, N) their mean, or
    with ``concat`` (B, T'·N) every step's (numpy arrays or tensors)."""
    kept = feats[:, washout:]
    if per_sequence:
        return kept.reshape(kept.shape[0], -1) if concat else kept.mean(1)
    return kept.reshape(-1, feats.shape[-1])


def predict(result: BackpropResult, inputs: np.ndarray, precision: str = "float") -> np.ndarray:
    """Readout outputs on new inputs with the ordinary engine: ``precision`` ``"float"`` runs the
    trained float network, ``"fixed"`` its :func:`quantize_network` (Loihi 2 fixed point).
    Returns (B·T', O) per step after the washout, or (B, O) per sequence; class logits for
    classification."""
    network = result.network if precision == "float" else quantize_network(result.network)
    feats = engine_features(network, inputs, result.steps_per_obs, result.trace_decay)
    z = _readout_inputs(feats, result.washout, result.per_sequence, result.concat)
    return z @ result.readout_w.T + result.readout_b


def score(result: BackpropResult, inputs: np.ndarray, targets: np.ndarray,
          precision: str = "float") -> float:
    """NRMSE ``sqrt(mean((y − ŷ)²)/var(y))`` (regression) or accuracy (classification)."""
    out = predict(result, inputs, precision)
    y, per_sequence = align_targets(inputs, targets)
    rows = y if per_sequence else _steps(y, result.washout)
    if result.kind == "classification":
        return float(np.mean(out.argmax(axis=1) == rows.astype(np.int64)))
    return nrmse(out, rows.reshape(out.shape))


def nrmse(pred: np.ndarray, y: np.ndarray) -> float:
    """``sqrt(mean((y − ŷ)²) / var(y))`` over all entries."""
    return float(np.sqrt(np.mean((y - pred) ** 2) / np.var(y)))


def align_targets(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, bool]:
    """Targets as (B, T, ...) per step, or (B, ...) per sequence (the flag).

    A (T, C) series takes (T,) or (T, O) targets. (B, T, C) sequences take targets whose
    leading shape is (B, T) (one per step), else (B,) or (B, O) (one per sequence: the readout
    then sees the mean counts of the steps after the washout).
    """
    y = np.asarray(targets)
    if np.asarray(inputs).ndim == 2:
        if y.shape[0] != np.asarray(inputs).shape[0]:
            raise ValueError(f"targets {y.shape} do not match inputs {np.shape(inputs)}")
        return y[None], False
    bt = as_batch(inputs).shape[:2]
    if y.ndim >= 2 and y.shape[:2] == bt:
        return y, False
    if y.shape[0] == bt[0]:
        return y, True
    raise ValueError(f"targets {y.shape} match neither the steps {bt} nor the sequences")


def _steps(y: np.ndarray, washout: int) -> np.ndarray:
    """Per-step targets (B, T, ...) after the washout, as rows (B·T', ...)."""
    kept = y[:, washout:]
    return kept.reshape(-1, *kept.shape[2:])


def ridge_readout(z: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form readout on features ``z`` (rows, N) for targets ``y`` (rows, O):
    ``min Σ‖W·ẑ + b − y‖²/rows + ridge·‖W‖²`` on standardised features ``ẑ``, returned for raw
    features as (W (O, N), b (O,)); the bias is not penalised."""
    y2 = y.reshape(len(y), -1)
    mu, sd = z.mean(axis=0), z.std(axis=0) + 1e-9
    zs = (z - mu) / sd
    gram = zs.T @ zs / len(z) + ridge * np.eye(z.shape[1])
    w = np.linalg.solve(gram, zs.T @ (y2 - y2.mean(axis=0)) / len(z)).T / sd
    return w, y2.mean(axis=0) - w @ mu


def ridge_result(network: NetworkParams, inputs: np.ndarray, targets: np.ndarray,
                 steps_per_obs: int, washout: int, ridge: float) -> BackpropResult:
    """The readout-only baseline on the untrained network: closed-form ridge on its counts,
    evaluated by :func:`predict` and :func:`score` exactly as a trained result."""
    y, per_sequence = align_targets(inputs, targets)
    z = _readout_inputs(engine_features(network, inputs, steps_per_obs), washout, per_sequence)
    w, b = ridge_readout(z, y if per_sequence else _steps(y, washout), ridge)
    return BackpropResult(network=network, readout_w=w, readout_b=b,
                          gains=np.ones(network.n_inputs), losses=[], kind="regression",
                          steps_per_obs=steps_per_obs, washout=washout,
                          per_sequence=per_sequence)


def softmax_readout(z: np.ndarray, labels: np.ndarray, classes: int, l2: float,
                    iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on features ``z`` (rows, F): mean cross-entropy +
    ``l2``·‖W‖² (:func:`~neuralalchemy.learners.optim.softmax_lbfgs`); (W, b) as arrays."""
    return softmax_lbfgs(z, labels, classes, l2, iterations)


# ---------------------------------------------------------------- training
class Readin(NamedTuple):
    """How spikes become readout features: ``steps_per_obs`` timesteps per input step, the
    trace decay (0: counts), and per-sequence features concatenated (else averaged)."""

    steps_per_obs: int
    trace_decay: float = 0.0
    concat: bool = False


_VAR_FLOOR = 0.01
"""Added to each feature's variance before standardising: a neuron silent at the start that
training wakes up then feeds the readout counts of at most ``K/0.1``, not ``K/0``."""


class _Head:
    """The readout on standardised features, ``out = W·(z − μ)/σ + b``, with regression targets
    standardised too (``(y − ȳ)/s``); :meth:`raw` folds both back onto raw counts."""

    def __init__(self, z0: np.ndarray, y0: np.ndarray, kind: str, ridge: float):
        self.mu, self.sd = z0.mean(axis=0), np.sqrt(z0.var(axis=0) + _VAR_FLOOR)
        zn = (z0 - self.mu) / self.sd
        if kind == "classification":
            classes = int(y0.max()) + 1
            self.ym, self.ys = np.zeros(classes), np.ones(classes)
            w, b = softmax_readout(zn, y0.astype(np.int64), classes, ridge)
        else:
            y2 = y0.reshape(len(y0), -1)
            self.ym, self.ys = y2.mean(axis=0), y2.std(axis=0) + 1e-12
            w, b = ridge_readout(zn, (y2 - self.ym) / self.ys, ridge)
        self.w = torch.tensor(w, dtype=_DT, requires_grad=True)
        self.b = torch.tensor(b, dtype=_DT, requires_grad=True)
        self.mu_t, self.sd_t = torch.as_tensor(self.mu), torch.as_tensor(self.sd)

    def targets(self, y: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "classification":
            return y.reshape(-1).long()
        return (y.reshape(len(y), -1) - torch.as_tensor(self.ym)) / torch.as_tensor(self.ys)

    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        w = self.w.detach().numpy() / self.sd
        b = self.b.detach().numpy() - w @ self.mu
        return w * self.ys[:, None], b * self.ys + self.ym


class _Batch(NamedTuple):
    prefix: torch.Tensor | None  # (b, P, C) run without gradient before the window
    x: torch.Tensor  # (b, L, C)
    y: torch.Tensor  # (b, L, ...) per step, or (b, ...) per sequence
    loss_from: int  # first step of the window that enters the loss
    per_sequence: bool  # one target per sequence (mean counts) rather than per step


class _Windows:
    """Training batches: long per-step series are cut into random windows of
    ``sequence_length`` steps, each preceded by ``washout`` steps run without gradient; shorter
    sequences (and per-sequence targets) are used whole, truncated every ``sequence_length``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, per_sequence: bool, task: TaskConfig,
                 washout: int):
        self.x, self.y, self.per_sequence, self.washout = x, y, per_sequence, washout
        b, t = x.shape[:2]
        self.length = task.sequence_length
        self.windowed = not per_sequence and t > washout + self.length
        count = b * max(1, (t - washout) // self.length) if self.windowed else b
        self.batch = min(task.batch_size, count)
        self.steps_per_epoch = max(1, math.ceil(count / task.batch_size))

    def draw(self, rng: np.random.Generator) -> _Batch:
        """One batch of ``batch_size`` windows or sequences."""
        seqs = rng.integers(0, self.x.shape[0], self.batch) if self.windowed else \
            rng.permutation(self.x.shape[0])[:self.batch]
        if not self.windowed:
            return _Batch(None, torch.as_tensor(self.x[seqs]), torch.as_tensor(self.y[seqs]),
                          self.washout, self.per_sequence)
        w, n = self.washout, self.length
        starts = rng.integers(w, self.x.shape[1] - n + 1, self.batch)
        pre = np.stack([self.x[s, t - w:t] for s, t in zip(seqs, starts)])
        xs = np.stack([self.x[s, t:t + n] for s, t in zip(seqs, starts)])
        ys = np.stack([self.y[s, t:t + n] for s, t in zip(seqs, starts)])
        return _Batch(torch.as_tensor(pre), torch.as_tensor(xs), torch.as_tensor(ys), 0, False)


def _batch_loss(model: _Reservoir, head: _Head, batch: _Batch, kind: str, readin: Readin,
                train: TrainingConfig, gen: torch.Generator) -> torch.Tensor:
    """Loss of one batch: forward through the window, readout, MSE or cross-entropy, penalty."""
    task = model.task
    w = model.weights(task.weight_noise, gen)
    state = model.warm_state(batch.x.shape[0], w[1])
    start = None
    if batch.prefix is not None and batch.prefix.shape[1]:
        with torch.no_grad():
            pre, state = model.run(gaussian_noise(batch.prefix, task.input_noise, gen), state, w,
                                   readin.steps_per_obs)
            start = trace(pre, readin.trace_decay)[:, -1]
    x = gaussian_noise(batch.x, task.input_noise, gen)
    counts, _ = model.run(x, state, w, readin.steps_per_obs, truncate=task.sequence_length)
    feats = trace(counts, readin.trace_decay, start)
    z = _readout_inputs(feats, batch.loss_from, batch.per_sequence, readin.concat)
    if batch.per_sequence:
        y = batch.y
    else:
        y = batch.y[:, batch.loss_from:]
        y = y.reshape(-1, *y.shape[2:])
    z = dropout((z - head.mu_t) / head.sd_t, task.dropout, gen)
    out = z @ weight_noise(head.w, task.weight_noise, gen).T + head.b
    target = head.targets(y, kind)
    if kind == "classification":
        loss = torch.nn.functional.cross_entropy(out, target)
    else:
        loss = ((out - target) ** 2).mean()
    penalised = [head.w, torch.exp(model.log_gain)] if task.attention else [head.w]
    return loss + readout_penalty(penalised, train.l1, train.l2)


def _param_groups(model: _Reservoir, head: _Head, lr: float) -> list[dict[str, Any]]:
    """Optimizer groups: the reservoir weights step in units of their mean magnitude."""
    groups: list[dict[str, Any]] = [{"params": [head.w, head.b]}]
    if model.task.attention:
        groups.append({"params": [model.log_gain]})
    for flag, tensor in ((model.task.train_input, model.w_in),
                         (model.task.train_recurrent, model.w_rec)):
        if flag:
            nz = tensor.detach().abs()
            scale = float(nz[nz > 0].mean()) if bool((nz > 0).any()) else 1.0
            groups.append({"params": [tensor], "lr": lr * scale})
    return groups


def fit_backprop(network: NetworkParams, inputs: np.ndarray, targets: np.ndarray, kind: Kind,
                 task_cfg: TaskConfig, train_cfg: TrainingConfig, steps_per_obs: int,
                 washout: int, seed: int, progress: bool = False, *, trace_decay: float = 0.0,
                 concat: bool = False) -> BackpropResult:
    """Train by surrogate-gradient BPTT (see the module docstring); return the float network
    with the gains folded in, the readout on raw counts, the gains and the loss per step. A
    fixed-point ``network`` is trained as its :func:`~neuralalchemy.network.dequantize` float
    equal (threshold 1).

    ``inputs``: (T, C) series or (B, T, C) sequences of channel values (in [0, 1] for the
    fixed-point path), each held ``steps_per_obs`` timesteps; ``targets``: see
    :func:`align_targets` (class indices for classification). Features: spike counts, their
    trace (``trace_decay`` > 0), per sequence averaged or concatenated (``concat``). The readout
    starts from the closed-form ridge solution (``task_cfg.ridge``; classification: softmax
    regression with that L2) on the untrained reservoir; for regression it is refitted in closed
    form on the trained reservoir at the end. Optimizer, rate, schedule
    (over all gradient steps unless ``train_cfg.lr_horizon`` is set), l1 and l2 come from
    ``train_cfg``; dropout, input noise and weight noise from ``task_cfg``.
    """
    network = dequantize(network)  # a fixed-point network trains as its float equal
    if kind not in ("regression", "classification"):
        raise ValueError(f"kind must be 'regression' or 'classification', got {kind!r}")
    if steps_per_obs < 1 or washout < 0:
        raise ValueError("steps_per_obs must be >= 1 and washout >= 0")
    x = as_batch(inputs)
    y, per_sequence = align_targets(inputs, targets)
    if not per_sequence and washout >= x.shape[1]:
        raise ValueError(f"washout {washout} leaves no step of {x.shape[1]}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    readin = Readin(steps_per_obs, trace_decay, concat)
    z0 = _readout_inputs(engine_features(network, x, steps_per_obs, trace_decay), washout,
                         per_sequence, concat)
    y_rows = y if per_sequence else _steps(y, washout)
    head = _Head(z0, y_rows, kind, task_cfg.ridge)
    model = _Reservoir(network, task_cfg)
    windows = _Windows(x, y, per_sequence, task_cfg, washout)
    total = task_cfg.epochs * windows.steps_per_epoch
    opt = make_optimizer(_param_groups(model, head, train_cfg.lr), train_cfg)
    sched = Schedule(opt, dataclasses.replace(train_cfg, lr_horizon=train_cfg.lr_horizon or total))
    losses: list[float] = []
    for step in range(total):
        sched.update(step)
        loss = _batch_loss(model, head, windows.draw(rng), kind, readin, train_cfg, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.project()
        losses.append(float(loss.detach()))
        if progress and (step + 1) % windows.steps_per_epoch == 0:
            epoch = (step + 1) // windows.steps_per_epoch
            recent = float(np.mean(losses[-windows.steps_per_epoch:]))
            print(f"epoch {epoch}/{task_cfg.epochs}  loss {recent:.5f}", flush=True)
    trained = model.network()
    w_out, b_out = head.raw()
    if kind == "regression":
        z = _readout_inputs(engine_features(trained, x, steps_per_obs, trace_decay), washout,
                            per_sequence, concat)
        w_out, b_out = ridge_readout(z, y_rows, task_cfg.ridge)
    return BackpropResult(network=trained, readout_w=w_out, readout_b=b_out,
                          gains=np.exp(model.log_gain.detach().numpy()), losses=losses,
                          kind=kind, steps_per_obs=steps_per_obs, washout=washout,
                          per_sequence=per_sequence, trace_decay=trace_decay, concat=concat,
                          info={"steps": total})
