"""Network parameters: drawn once from (spec, seed), then mapped to Loihi's fixed-point formats.

A :class:`NetworkParams` is what every engine runs: the torch reference, Lava and Brian2 all read
these arrays and none re-draws a random number.

Float model (Lava ``floating_pt``), per timestep ``t``::

    a[t] = W_in · x[t-1] + W_rec · s[t-1]           (each Dense adds one step of delay)
    u[t] = u[t-1]·(1 − du) + a[t]
    v[t] = v[t-1]·(1 − dv) + u[t] + bias       (held at 0 for ``refractory`` steps after a spike)
    s[t] = v[t] > vth;  v[t] ← 0 where s[t]

Fixed-point model (Lava ``fixed_pt``, ``PyLifModelBitAcc`` + ``PyDenseModelBitAcc``), all integers::

    a     = shift(W_in_q · p, e_in) + shift(W_rec_q · s, e_rec)   shift(x, e) = x << e or x >> −e
    u     = wrap24(sign(x)·(|x| >> 12) + (a << 6)),   x = u·(4096 − (du_q + 1))
    v     = clip(sign(y)·(|y| >> 12) + u + (bias_q << bias_exp), ±(2^23 − 1)),   y = v·(4096 − dv_q)
    s     = v > (vth_q << 6);  v ← 0 where s

Bit widths (Loihi 2): weights 8-bit mantissa (mixed-sign matrices keep 7 bits + sign, even values)
with a shared exponent; ``du``, ``dv`` 12-bit unsigned; ``vth`` 17-bit unsigned (<< 6 inside);
``bias`` 13-bit signed mantissa with a 3-bit exponent; ``u``, ``v`` 24-bit; input payload 8-bit
graded spikes (0..255).

Float → fixed mapping with voltage scale ``S`` (voltage units per float unit, ``S·vth = 2^17``)::

    vth_q = S·vth/64,  w_q·2^e = S·w/64,  w_in_q·2^e = S·w_in/(64·255),  bias_q·2^e = S·bias,
    du_q = round(4096·du) − 1,  dv_q = round(4096·dv)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from neuralalchemy.config import ReservoirConfig
from neuralalchemy.memory import append_memory

PAYLOAD_LEVELS = 255
"""Graded input spikes carry 8-bit payloads: an encoder value in [0, 1] becomes 0..255."""

VOLTAGE_SCALE_BITS = 17
"""The threshold maps to 2^17 voltage units (vth mantissa 2048): ample headroom in 24 bits."""

Precision = Literal["fixed", "float"]


@dataclass(frozen=True, eq=False)
class NetworkParams:
    """Everything an engine needs to run the reservoir, in one precision.

    Attributes
    ----------
    precision : ``"fixed"`` (integers, Lava ``fixed_pt``) or ``"float"`` (Lava ``floating_pt``).
    w_in : (N, C) input weights (int32 mantissas in fixed point).
    w_in_exp : shared exponent of ``w_in`` (0 in float).
    w_rec : (N, N) recurrent weights, ``w_rec[post, pre]``.
    w_rec_exp : shared exponent of ``w_rec``.
    du, dv : current and voltage decay (12-bit integers in fixed point).
    vth : threshold (17-bit mantissa, shifted left by 6 inside, in fixed point).
    bias : (N,) bias (13-bit mantissas in fixed point), scaled by ``2**bias_exp``.
    bias_exp : exponent of ``bias`` (0..7; 0 in float).
    refractory : timesteps the voltage stays at 0 after a spike.
    payload_levels : input levels: 255 = 8-bit graded payloads (fixed point), 1 = binary spikes,
        0 = real-valued input (float).
    delays : None, or extra synaptic delay per recurrent synapse (0..62), same shape and, when
        sparse, the same stored entries as ``w_rec``: a spike of ``pre`` at ``t`` reaches ``post``
        at ``t + 1 + delays[post, pre]`` (Lava ``DelayDense``).
    layers : the population is a stack of ``layers`` equal layers (block structure of ``w_rec``;
        the input reaches layer 0 only).
    """

    precision: Precision
    w_in: np.ndarray
    w_in_exp: int
    w_rec: np.ndarray
    w_rec_exp: int
    du: float
    dv: float
    vth: float
    bias: np.ndarray
    bias_exp: int
    refractory: int
    payload_levels: int
    delays: Any = None
    layers: int = 1

    def __post_init__(self) -> None:
        n = self.w_rec.shape[0]
        if self.w_rec.shape != (n, n):
            raise ValueError(f"w_rec must be square, got {self.w_rec.shape}")
        if self.w_in.ndim != 2 or self.w_in.shape[0] != n:
            raise ValueError(f"w_in must be ({n}, C), got {self.w_in.shape}")
        if self.bias.shape != (n,):
            raise ValueError(f"bias must be ({n},), got {self.bias.shape}")
        if self.delays is not None and self.delays.shape != self.w_rec.shape:
            raise ValueError(f"delays must match w_rec {self.w_rec.shape}, got {self.delays.shape}")
        if self.precision not in ("fixed", "float"):
            raise ValueError(f"precision must be 'fixed' or 'float', got {self.precision!r}")

    @property
    def size(self) -> int:
        """Number of reservoir neurons N."""
        return int(self.w_rec.shape[0])

    @property
    def n_inputs(self) -> int:
        """Number of input channels C."""
        return int(self.w_in.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays (the artifact's ``network.npz``)."""
        out: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("w_rec", "delays") and sp.issparse(value):
                csr = value.tocsr()
                if f.name == "delays":
                    out["delays_data"] = csr.data
                    continue
                out.update(w_rec_data=csr.data, w_rec_indices=csr.indices,
                           w_rec_indptr=csr.indptr, w_rec_shape=np.array(csr.shape))
                continue
            if value is None:
                continue
            out[f.name] = np.asarray(value)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> NetworkParams:
        """Inverse of :meth:`to_arrays`."""
        kw: dict[str, Any] = {}
        if "w_rec" not in arrays and "w_rec_indptr" in arrays:
            shape = tuple(int(x) for x in np.asarray(arrays["w_rec_shape"]))
            parts = (arrays["w_rec_indices"], arrays["w_rec_indptr"])
            arrays = {**arrays, "w_rec": sp.csr_matrix((arrays["w_rec_data"], *parts), shape)}
            if "delays_data" in arrays:
                arrays["delays"] = sp.csr_matrix((arrays["delays_data"], *parts), shape)
        for f in dataclasses.fields(cls):
            if f.name not in arrays:
                if f.default is not dataclasses.MISSING:
                    continue
                raise ValueError(f"network arrays lack {f.name!r}")
            if sp.issparse(arrays[f.name]):
                kw[f.name] = arrays[f.name]
                continue
            if f.name == "delays":
                kw[f.name] = np.asarray(arrays[f.name]).astype(np.int64)
                continue
            value = np.asarray(arrays[f.name])
            if f.name in ("w_in", "w_rec", "bias"):
                kw[f.name] = value
            elif f.name == "precision":
                kw[f.name] = str(value)
            elif f.name in ("w_in_exp", "w_rec_exp", "bias_exp", "refractory", "payload_levels",
                            "layers"):
                kw[f.name] = int(value)
            else:
                kw[f.name] = float(value) if str(arrays["precision"]) == "float" else int(value)
        return cls(**kw)


# ---------------------------------------------------------------- drawing the float network
SPARSE_FROM = 2048
"""Recurrent matrices of this many neurons or more are kept sparse (CSR)."""


def draw_float_network(cfg: ReservoirConfig, n_inputs: int,
                       binary_input: bool = False) -> NetworkParams:
    """Draw the float reservoir from its config and seed (the one source of every weight).

    Each of the ``layers`` layers has ``size`` neurons. Within a layer, synapses exist
    independently with probability ``connectivity`` (no self-loops), drawn by geometric skipping
    so that large sparse networks cost O(synapses); magnitudes are uniform in (0, 1]; the first
    ``round(excitatory_fraction·size)`` neurons of a layer are excitatory (positive outgoing
    weights), the rest inhibitory (negative, scaled by ``inhibitory_gain``): Dale's law. With
    ``lateral_inhibition`` > 0 every inhibitory neuron also inhibits the neurons within
    ``lateral_radius`` of it on the layer's ring. Each layer's block is scaled to spectral radius
    ``spectral_radius·vth``. Excitatory neurons of layer k project forward to layer k+1
    (``interlayer_connectivity``, magnitudes ``interlayer_scale``) and, with ``feedback_scale`` >
    0, back from k+1 to k. Input weights reach layer 0 only: random sign, magnitude uniform in
    (0, 1]·``input_scale·vth``, density ``input_connectivity``. Every recurrent synapse gets an
    extra delay uniform in 0..``delay_max``. Networks of :data:`SPARSE_FROM` neurons or more keep
    ``w_rec`` (and ``delays``) sparse. With ``memory_units`` > 0, the bistable memory clusters of
    :mod:`neuralalchemy.memory` follow the layers (neurons ``size·layers`` onward); they draw no
    random number, so the reservoir part equals the network drawn without them.
    """
    if cfg.topology == "delay_line":
        return delay_line_network(cfg, n_inputs, binary_input)
    m, layers = cfg.size, cfg.layers
    n = m * layers
    rng = np.random.default_rng(cfg.seed)
    n_exc = int(round(cfg.excitatory_fraction * m))
    blocks = []
    for k in range(layers):
        block = _recurrent_block(rng, cfg, m, n_exc)
        blocks.append(sp.coo_matrix((block.data, (block.row + k * m, block.col + k * m)),
                                    shape=(n, n)))
        if k + 1 < layers:
            blocks.append(_between(rng, m, n_exc, cfg.interlayer_connectivity,
                                   cfg.interlayer_scale * cfg.vth, k + 1, k, n))
            if cfg.feedback_scale > 0:
                blocks.append(_between(rng, m, n_exc, cfg.interlayer_connectivity,
                                       cfg.feedback_scale * cfg.vth, k, k + 1, n))
    w_rec = sp.csr_matrix(sum(blocks[1:], blocks[0]).tocsr()) if blocks else sp.csr_matrix((n, n))
    w_rec.sum_duplicates()
    delays = None
    if cfg.delay_max > 0:
        delays = w_rec.copy()
        delays.data = rng.integers(0, cfg.delay_max + 1, size=w_rec.nnz).astype(np.int64)
    in_mask = rng.random((m, n_inputs)) < cfg.input_connectivity
    in_mag = 1.0 - rng.random((m, n_inputs))
    in_sign = np.where(rng.random((m, n_inputs)) < 0.5, -1.0, 1.0)
    w_in = np.zeros((n, n_inputs))
    w_in[:m] = np.where(in_mask, in_mag * in_sign * cfg.input_scale * cfg.vth, 0.0)
    bias = np.full(n, cfg.bias * cfg.vth)
    # memory units are drawn last: the reservoir's weights are those of the plain network
    return _float_params(cfg, w_rec, delays, w_in, bias, binary_input, layers)


def _float_params(cfg: ReservoirConfig, w_rec: sp.csr_matrix, delays: sp.csr_matrix | None,
                  w_in: np.ndarray, bias: np.ndarray, binary_input: bool,
                  layers: int) -> NetworkParams:
    """The float network of drawn weights, with the memory units appended (``memory_units`` >
    0); dense below :data:`SPARSE_FROM` neurons."""
    if cfg.memory_units > 0:
        w_rec, delays, w_in, bias = append_memory(cfg, w_rec, delays, w_in, bias)
    dense = w_rec.shape[0] < SPARSE_FROM
    return NetworkParams(
        precision="float", w_in=w_in, w_in_exp=0,
        w_rec=w_rec.toarray() if dense else w_rec, w_rec_exp=0,
        du=float(cfg.du), dv=float(cfg.dv), vth=float(cfg.vth),
        bias=bias, bias_exp=0, refractory=int(cfg.refractory),
        payload_levels=1 if binary_input else 0,
        delays=(delays.toarray() if dense else delays) if delays is not None else None,
        layers=layers,
    )


RELAY_GAIN = 2.0
"""Weight of a delay-line synapse in units of the threshold: one spike in drives one spike out."""


def delay_line_network(cfg: ReservoirConfig, n_inputs: int,
                       binary_input: bool = False) -> NetworkParams:
    """A spiking delay-line reservoir (the delay-line topology of Rodan and Tiňo's minimum
    complexity ESNs, made of LIF neurons): ``size`` neurons in ``max(1, n_inputs // 2)`` chains.

    Chain ``j`` reads input channels ``2j`` and ``2j+1`` (the above/below-centre channels of
    observation dimension ``j`` under the ``current`` encoder): its head receives
    ``I = s·(1 + x₂ⱼ − x₂ⱼ₊₁)/2`` with ``s = input_scale·vth`` (a bias carries the constant), so
    its spike count over the K timesteps of an input step grows with the input value (a rate
    code). Each later neuron of the chain receives its predecessor's spikes with weight
    ``RELAY_GAIN·vth`` and an extra delay of ``K − 1`` timesteps, so with the Dense connection's
    own timestep a spike moves exactly one input step down the chain: neuron ``i`` of a chain
    counts, in step ``t``, the spikes its head fired in step ``t − i``, and a linear readout
    recalls the last ``size / chains`` inputs. Exact relaying needs a neuron that fires once per
    input spike: ``du = 1`` (the current lasts one timestep), ``dv = 0`` (the head integrates its
    input without leak) and ``refractory = 0`` (a relay can follow a head firing every
    timestep); ``configs/memory_capacity_delay_line.yaml`` sets them. Nothing is random; Dale's
    law holds (every synapse is excitatory). ``layers`` must be 1; memory units may follow.
    """
    from neuralalchemy.config import ConfigError

    if cfg.layers != 1:
        raise ConfigError("reservoir.topology: 'delay_line' builds one population; set "
                          "reservoir.layers to 1")
    hop = cfg.steps_per_obs - 1
    if hop > 62:
        raise ConfigError(f"reservoir.topology: a delay line delays each hop by steps_per_obs "
                          f"- 1 = {hop} timesteps, over Loihi's 62; lower reservoir.steps_per_obs")
    n, chains = cfg.size, max(1, n_inputs // 2)
    if n < chains:
        raise ConfigError(f"reservoir.size: a delay line needs a neuron per chain ({chains} "
                          f"chains for {n_inputs} input channels); raise reservoir.size")
    bounds = np.linspace(0, n, chains + 1).round().astype(int)
    heads = bounds[:-1]
    post = np.concatenate([np.arange(a + 1, b) for a, b in zip(bounds[:-1], bounds[1:])])
    pre = post - 1
    w_rec = sp.csr_matrix((np.full(post.size, RELAY_GAIN * cfg.vth), (post, pre)), shape=(n, n))
    w_rec.sort_indices()
    delays = None
    if hop > 0:
        delays = w_rec.copy()
        delays.data = np.full(w_rec.nnz, hop, dtype=np.int64)
    s = cfg.input_scale * cfg.vth
    w_in = np.zeros((n, n_inputs))
    bias = np.full(n, cfg.bias * cfg.vth)
    for j, h in enumerate(heads):
        if 2 * j + 1 < n_inputs:
            w_in[h, 2 * j], w_in[h, 2 * j + 1] = s / 2, -s / 2
            bias[h] += s / 2
        else:  # a single channel: the count grows with its value
            w_in[h, min(2 * j, n_inputs - 1)] = s
    return _float_params(cfg, w_rec, delays, w_in, bias, binary_input, 1)


def _recurrent_block(rng: np.random.Generator, cfg: ReservoirConfig, m: int,
                     n_exc: int) -> sp.coo_matrix:
    """One layer's recurrent weights (Dale's law, optional ring lateral inhibition), scaled."""
    post, pre = _bernoulli_positions(rng, m, m, cfg.connectivity)
    keep = post != pre
    post, pre = post[keep], pre[keep]
    mag = 1.0 - rng.random(post.size)
    sign = np.where(pre < n_exc, 1.0, -cfg.inhibitory_gain)
    block = sp.csr_matrix((mag * sign, (post, pre)), shape=(m, m))
    if cfg.lateral_inhibition > 0 and n_exc < m:
        inh = np.arange(n_exc, m)
        offsets = np.array([o for o in range(-cfg.lateral_radius, cfg.lateral_radius + 1) if o])
        targets = (inh[:, None] + offsets[None, :]) % m
        lat = sp.csr_matrix((np.full(targets.size, -cfg.lateral_inhibition),
                             (targets.ravel(), np.repeat(inh, offsets.size))), shape=(m, m))
        block = block + lat
    radius = spectral_radius(block)
    if radius > 0:
        block = block * (cfg.spectral_radius * cfg.vth / radius)
    return sp.coo_matrix(block)


def _between(rng: np.random.Generator, m: int, n_exc: int, p: float, scale: float, dst: int,
             src: int, n: int) -> sp.coo_matrix:
    """Excitatory projection from layer ``src`` to layer ``dst`` (magnitudes uniform (0, 1])."""
    post, pre = _bernoulli_positions(rng, m, n_exc, p)
    mag = (1.0 - rng.random(post.size)) * scale
    return sp.coo_matrix((mag, (post + dst * m, pre + src * m)), shape=(n, n))


def _bernoulli_positions(rng: np.random.Generator, rows: int, cols: int,
                         p: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every entry of a rows × cols Bernoulli(p) mask, in row-major order."""
    total = rows * cols
    if p >= 1.0:
        flat = np.arange(total, dtype=np.int64)
    else:
        chunks, pos = [], -1
        while True:
            expect = int((total - pos) * p * 1.05) + 64
            gaps = rng.geometric(p, size=expect)
            steps = pos + np.cumsum(gaps)
            chunks.append(steps[steps < total])
            if steps[-1] >= total:
                break
            pos = int(steps[-1])
        flat = np.concatenate(chunks)
    return flat // cols, flat % cols


def delays_like(w: sp.csr_matrix, delays: Any) -> sp.csr_matrix:
    """``delays`` as a CSR matrix storing exactly the entries of the CSR matrix ``w`` (the
    contract of :attr:`NetworkParams.delays`); ValueError when they differ."""
    d = sp.csr_matrix(delays)
    if not (np.array_equal(d.indptr, w.indptr) and np.array_equal(d.indices, w.indices)):
        raise ValueError("sparse delays must store the same entries as w_rec")
    return d


def spectral_radius(w: Any) -> float:
    """Largest eigenvalue magnitude: exact (dense eigvals) up to 3000 neurons; beyond, the
    random-matrix estimate ``max(sqrt(N·Var(w_ij)), |N·E[w_ij]|)`` (circular law plus the
    mean-field outlier), which a full eigen-decomposition of 10^5 neurons could not afford."""
    n = w.shape[0]
    if n == 0 or (sp.issparse(w) and w.nnz == 0) or (not sp.issparse(w) and not np.any(w)):
        return 0.0
    if n <= 3000:
        dense = w.toarray() if sp.issparse(w) else w
        return float(np.max(np.abs(np.linalg.eigvals(dense))))
    data = w.data if sp.issparse(w) else w[w != 0]
    mean = data.sum() / (n * n)
    var = (data**2).sum() / (n * n) - mean**2
    return float(max(np.sqrt(n * var), abs(n * mean)))


def fan_in(w: Any) -> np.ndarray:
    """Number of nonzero synapses onto each postsynaptic neuron (rows of ``w``)."""
    if sp.issparse(w):
        return np.diff(sp.csr_matrix(w).indptr)
    return (np.asarray(w) != 0).sum(axis=1)


# ---------------------------------------------------------------- Lava's weight rules
def sign_mode(w: np.ndarray) -> str:
    """Lava's sign mode of a weight matrix: 'exc' (all >= 0), 'inh' (all <= 0) or 'mixed'."""
    if w.size == 0 or np.min(w) >= 0:
        return "exc"
    if np.max(w) <= 0:
        return "inh"
    return "mixed"


def lava_weight_rules(w: np.ndarray, num_weight_bits: int = 8) -> np.ndarray:
    """Apply Lava's Dense clip (8 bits) and truncation of low bits, exactly as the bit-accurate
    model does on its first step: mixed [−256, 255], exc [0, 255], inh [−255, 0]; then
    ``tb = 8 − num_weight_bits + is_mixed`` low bits cleared (on ``|w|`` for inhibitory)."""
    mode = sign_mode(w)
    w = w.astype(np.int64)
    if mode == "mixed":
        w = np.clip(w, -256, 255)
    elif mode == "exc":
        w = np.clip(w, 0, 255)
    else:
        w = np.clip(w, -255, 0)
    tb = 8 - num_weight_bits + int(mode == "mixed")
    if mode == "inh":
        return (-((-w >> tb) << tb)).astype(np.int32)
    return ((w >> tb) << tb).astype(np.int32)


def quantize_matrix(w: Any, scale: float) -> tuple[Any, int]:
    """Mantissas and exponent with ``mantissa·2^exp ≈ scale·w`` under Lava's 8-bit rules.

    The exponent is the smallest that keeps the largest magnitude within the mantissa range
    (254 for mixed-sign matrices, whose lowest bit Lava clears; 255 otherwise). A sparse matrix
    stays sparse (its stored values are quantized; the sign mode of the stored values is that of
    the whole matrix, since zeros neither make it mixed nor change the clip).
    """
    if sp.issparse(w):
        csr = sp.csr_matrix(w, copy=True)
        mant, exp = quantize_matrix(csr.data, scale)
        csr.data = mant.astype(np.int32)  # explicit zeros stay: delays share this structure
        return csr, exp
    target = np.asarray(w, dtype=np.float64) * scale
    peak = float(np.max(np.abs(target))) if target.size else 0.0
    if peak == 0.0:
        return np.zeros(w.shape, dtype=np.int32), 0
    limit = 254.0 if sign_mode(target) == "mixed" else 255.0
    exp = int(np.ceil(np.log2(peak / limit)))
    exp = max(exp, -8)
    while peak / 2.0**exp > limit + 0.5:
        exp += 1
    mant = np.rint(target / 2.0**exp)
    return stable_weights(mant), exp


def stable_weights(w: np.ndarray, num_weight_bits: int = 8) -> np.ndarray:
    """Apply :func:`lava_weight_rules` until nothing changes.

    One application can change the sign mode (a mixed matrix whose positive weights truncate to
    0 becomes inhibitory), and Lava re-derives the mode from the stored matrix; a fixed point of
    the rules is what Lava will use unchanged, so every engine then sees the same weights.
    """
    out = lava_weight_rules(w, num_weight_bits)
    for _ in range(4):
        again = lava_weight_rules(out, num_weight_bits)
        if np.array_equal(again, out):
            return out
        out = again
    raise ValueError("weight truncation did not settle")  # pragma: no cover - at most 2 rounds


def quantize_network(params: NetworkParams,
                     scale_bits: int = VOLTAGE_SCALE_BITS) -> NetworkParams:
    """Map a float network to Loihi 2's fixed-point formats (see the module docstring); the
    threshold maps to ``2**scale_bits`` voltage units (17 leaves 6 bits of headroom in 24)."""
    if params.precision != "float":
        raise ValueError("quantize_network expects a float network")
    if not 8 <= scale_bits <= 22:
        raise ValueError(f"scale_bits must be in 8..22, got {scale_bits}")
    scale = 2.0**scale_bits / params.vth  # voltage units per float unit
    w_rec, e_rec = quantize_matrix(params.w_rec, scale / 64.0)
    levels = 1 if params.payload_levels == 1 else PAYLOAD_LEVELS
    w_in, e_in = quantize_matrix(params.w_in, scale / (64.0 * levels))
    bias_mant, bias_exp = _quantize_bias(params.bias * scale)
    return NetworkParams(
        precision="fixed", w_in=w_in, w_in_exp=e_in, w_rec=w_rec, w_rec_exp=e_rec,
        du=int(max(0, min(4095, round(4096 * params.du) - 1))),
        dv=int(max(0, min(4095, round(4096 * params.dv)))),
        vth=int(round(scale * params.vth / 64.0)), bias=bias_mant, bias_exp=bias_exp,
        refractory=params.refractory, payload_levels=levels, delays=params.delays,
        layers=params.layers,
    )


def _quantize_bias(target: np.ndarray) -> tuple[np.ndarray, int]:
    peak = float(np.max(np.abs(target))) if target.size else 0.0
    exp = 0
    while exp < 7 and peak / 2.0**exp > 4095:
        exp += 1
    mant = np.clip(np.rint(target / 2.0**exp), -4096, 4095).astype(np.int32)
    return mant, exp


def build_network(cfg: ReservoirConfig, n_inputs: int,
                  binary_input: bool = False) -> NetworkParams:
    """The network a config describes, in its configured precision."""
    params = draw_float_network(cfg, n_inputs, binary_input)
    return quantize_network(params) if cfg.precision == "fixed" else params


def dequantize(params: NetworkParams) -> NetworkParams:
    """The float network equal in value to a fixed-point one, threshold 1 (for a ``cpu`` target).

    Float dynamics then differ from the integer ones only by rounding (decay truncation)."""
    if params.precision == "float":
        return params
    unit = params.vth * 64.0  # voltage units per threshold
    return NetworkParams(
        precision="float",
        w_in=params.w_in * 2.0**params.w_in_exp * 64.0 * params.payload_levels / unit,
        w_in_exp=0,
        w_rec=params.w_rec * 2.0**params.w_rec_exp * 64.0 / unit, w_rec_exp=0,
        du=(params.du + 1) / 4096.0, dv=params.dv / 4096.0, vth=1.0,
        bias=params.bias * 2.0**params.bias_exp / unit, bias_exp=0,
        refractory=params.refractory, payload_levels=0 if params.payload_levels > 1 else 1,
        delays=params.delays, layers=params.layers,
    )
