"""The Brian2 ``detailed`` modes: the reservoir as a continuous-time LIF network.

The exact mode (:mod:`neuralalchemy.sim.brian2_backend`) runs the discrete Lava dynamics. These
modes run the same network (the artifact's weights, nothing re-drawn) as ordinary differential
equations that Brian2 integrates on a finer clock, so that the difference between the chip's
discrete neuron and a textbook continuous one can be measured (``alchemy crosscheck --backends
torch,brian2,brian2-detailed``). Units: time in ms, one timestep ``T`` = 1 ms, integration step
``h = T / substeps`` (0.1 ms by default); voltages and currents in the float network's units
(threshold ``vth``).

Current-based synapses (mode ``detailed``, Brian2 method ``exact``)::

    du/dt = −λ_u·u                          u += κ·w   when an event of weight w arrives
    dv/dt = −λ_v·v + g_v·(u + bias)         not while refractory (v held at 0)
    spike when v > vth (checked every h);   v ← 0;   refractory for R ms

    λ_u = 1/τ_syn = −ln(1 − du)/T,   λ_v = 1/τ_m = −ln(1 − dv)/T,
    g_v = λ_v/dv = 1/(τ_m·dv),       κ = λ_u·T/du = T/(τ_syn·du)

Why these constants: over one timestep the free decays are the discrete ``(1 − du)`` and
``(1 − dv)``; a drive ``I`` held for a timestep moves ``v`` exactly as the discrete update,
``v(T) = v(0)·(1 − dv) + I`` (so the fixed point is the discrete ``I/dv``); an event of weight
``w`` puts the charge ``∫ g_v·u dt = w/du`` into ``v`` when ``dv → 0``, the discrete
``w·Σ_k (1 − du)^k``. Both gains tend to 1 as ``du, dv → 0``, where the two models coincide.

Limits: ``du`` or ``dv`` = 0 (no decay, τ = ∞) uses the rate ``RATE_MIN`` (τ = 1000 s; the gains
tend to ``g_v = 1/T``, ``κ = 1``); ``du`` or ``dv`` = 1 (instantaneous) uses ``RATE_MAX/h`` (τ =
h: the fastest time constant the threshold checks at every ``h`` still see; a factor e^−10 per
timestep at 10 substeps). Brian2's closed-form solution of the coupled pair divides by
``λ_v − λ_u``: when they are within ``RATE_GAP`` (relative) ``λ_u`` moves that far up. ``g_v``
and ``κ`` are computed from the rates actually used (``du = 1 − e^{−λ_u·T}``), so the gain and
the charge stay exact.

Conductance-based synapses (mode ``detailed-cond``, method ``exponential_euler``)::

    dg_e/dt = −λ_u·g_e,   dg_i/dt = −λ_u·g_i     g_e += κ_h·w for w > 0,  g_i += κ_h·|w| for w < 0
    dv/dt = −λ_v·v + g_v·(g_e·(E_e − v)/E_e + g_i·(v − E_i)/E_i + bias)

Reversal potentials in threshold units relative to rest 0: ``E_e = 4.33·vth``, ``E_i = −vth``
(rest −65 mV, threshold −50 mV, E_e = 0 mV, E_i = −80 mV). At rest the drive is ``g_e − g_i``,
the current-based ``u``; excitation weakens and inhibition strengthens as ``v`` nears threshold.
Exponential Euler holds the conductances constant within a substep, so the jump is
``κ_h = (T/h)·(1 − e^{−λ_u·h})/du`` (→ κ as h → 0): the charge at rest is again ``w/du``.

Timing (timestep ``k`` is the interval [k, k+1) ms):

* Input: the payload of timestep ``t`` (open loop: ``payloads[t]``) is a jump at the start of
  timestep ``t + 1``, when the discrete ``a[t+1]`` holds it; in closed loop each timestep of an
  environment step adds the encoded observation again, as the discrete input does.
* Spikes: Brian2 checks the threshold after each substep's update and records that substep's
  start ``t_s`` (the crossing lies in (t_s, t_s + h]); the raster marks timestep ``⌊t_s/T⌋``, the
  discrete ``s[k]`` (``v`` crossed during timestep ``k``, seen at its end). Several spikes of one
  neuron in one timestep (possible only without refractoriness) mark one entry; closed-loop
  counts count them all.
* Delays: a discrete spike of timestep ``k`` reaches its target at the start of ``k + 1 + d``:
  ``d + 1/2`` ms after a crossing that is uniform within the timestep, on average. The Brian2
  delay is ``(d + delay_offset)·T − h`` (``delay_offset`` = 1/2): ``on_pre`` runs after the
  target's update of its substep, so the jump acts ``h`` later, ``d + 1/2`` ms after ``t_s``.
* Refractoriness: ``refractory = R·T + h``. The reset acts at the end of the substep that starts
  at ``t_s`` and Brian2 counts from ``t_s``, so ``v`` is held R ms after its reset, like the
  discrete hold through timesteps ``k+1 … k+R``.

Fixed-point networks run on their real-valued equivalents (:func:`real_valued`), in threshold
units (``vth = 1``): with ``unit = vth_q·64`` voltage units per threshold,
``w_in = w_in_q·2^e_in·64/unit`` per payload unit (payloads stay 0..255 or 0/1),
``w_rec = w_rec_q·2^e_rec·64/unit``, ``bias = bias_q·2^bias_exp/unit``,
``du = (du_q + 1)/4096``, ``dv = dv_q/4096`` (:func:`neuralalchemy.network.dequantize` with the
input per payload unit). Real arithmetic: no 24-bit wrap of ``u``, no clip of ``v``, no flooring
in the decays or the exponent shifts.
"""

from __future__ import annotations

import functools
import math
import typing as ty
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuralalchemy.network import NetworkParams
from neuralalchemy.sim.brian2_backend import RUNTIME_TARGETS, Brian2Reservoir, ModelCode

TIMESTEP_MS = 1.0
"""One discrete timestep in ms (the exact mode's clock label)."""

RATE_MIN = 1e-6
"""Decay rate (1/ms) standing for ``du`` or ``dv`` = 0: τ = 1000 s, never reached in a run."""

RATE_MAX = 1.0
"""Largest decay per substep (λ·h), standing for ``du`` or ``dv`` = 1: τ = h. A faster pulse
would rise and vanish between two threshold checks."""

RATE_GAP = 1e-3
"""Least relative gap between λ_u and λ_v (the exact solution divides by their difference)."""

SYNAPSES = ("current", "conductance")

_RATES = ("lam_u", "lam_v", "gain_v")  # shared constants in 1/ms


@dataclass(frozen=True)
class DetailedParams:
    """Options of the detailed model.

    Attributes
    ----------
    synapse : ``"current"`` (exponential current, exact integration) or ``"conductance"``
        (excitatory/inhibitory conductances by weight sign, exponential Euler).
    substeps : integration steps per timestep, ``h = 1 ms / substeps``.
    delay_offset : ms added to a synapse's extra delay ``d`` (before the ``− h`` of Brian2's
        ``on_pre`` timing).
    e_exc, e_inh : reversal potentials in units of the threshold, relative to rest 0.
    """

    synapse: str = "current"
    substeps: int = 10
    delay_offset: float = 0.5
    e_exc: float = 4.33
    e_inh: float = -1.0

    def __post_init__(self) -> None:
        if self.synapse not in SYNAPSES:
            raise ValueError(f"synapse must be one of {', '.join(SYNAPSES)}, "
                             f"got {self.synapse!r}")
        if not 1 <= self.substeps <= 1000:
            raise ValueError(f"substeps must be in 1..1000, got {self.substeps}")
        if self.delay_offset < self.dt_ms:
            raise ValueError(f"delay_offset must be at least the integration step "
                             f"{self.dt_ms} ms, got {self.delay_offset}")
        if self.e_exc <= 1.0 or self.e_inh >= 0.0:
            raise ValueError("need e_exc > 1 (above threshold) and e_inh < 0 (below rest), got "
                             f"{self.e_exc}, {self.e_inh}")

    @property
    def dt_ms(self) -> float:
        """Integration step ``h`` in ms."""
        return TIMESTEP_MS / self.substeps


@dataclass(frozen=True)
class RealValued:
    """A network's real-valued parameters, in the float network's units.

    ``w_in`` (N, C) multiplies raw payloads; a recurrent weight is a stored ``w_rec`` entry times
    ``w_rec_scale``; ``bias`` (N,), ``vth``, ``du``, ``dv`` are real numbers.
    """

    w_in: np.ndarray
    w_rec_scale: float
    bias: np.ndarray
    vth: float
    du: float
    dv: float


def real_valued(network: NetworkParams) -> RealValued:
    """The real-valued equivalent of ``network`` (fixed point: see the module docstring)."""
    if network.precision == "float":
        return RealValued(np.asarray(network.w_in, dtype=np.float64), 1.0,
                          np.asarray(network.bias, dtype=np.float64), float(network.vth),
                          float(network.du), float(network.dv))
    unit = float(network.vth) * 64.0
    return RealValued(
        w_in=np.asarray(network.w_in, dtype=np.float64) * 2.0**network.w_in_exp * 64.0 / unit,
        w_rec_scale=2.0**network.w_rec_exp * 64.0 / unit,
        bias=np.asarray(network.bias, dtype=np.float64) * 2.0**network.bias_exp / unit,
        vth=1.0, du=(int(network.du) + 1) / 4096.0, dv=int(network.dv) / 4096.0)


@dataclass(frozen=True)
class Rates:
    """Rates (1/ms) and gains of the continuous model: ``λ_u``, ``λ_v``, ``g_v`` and the jump
    ``kappa`` per unit weight (see the module docstring)."""

    lam_u: float
    lam_v: float
    gain_v: float
    kappa: float


def _rate(decay: float, h: float) -> float:
    """``−ln(1 − decay)/T``, kept within [RATE_MIN, RATE_MAX/h]."""
    top = RATE_MAX / h
    if decay >= 1.0:
        return top
    return min(max(-math.log1p(-decay) / TIMESTEP_MS, RATE_MIN), top)


def rates(du: float, dv: float, params: DetailedParams) -> Rates:
    """The τ mapping: ``τ_syn = −T/ln(1 − du)``, ``τ_m = −T/ln(1 − dv)``, with the gains
    ``g_v = λ_v/dv`` and the jump ``κ`` (``κ_h`` for the conductance model) that keep the
    discrete per-timestep gain and the charge of an event."""
    h, t = params.dt_ms, TIMESTEP_MS
    lam_u, lam_v = _rate(du, h), _rate(dv, h)
    if params.synapse == "current" and abs(lam_u - lam_v) < RATE_GAP * max(lam_u, lam_v):
        lam_u = lam_v * (1.0 + RATE_GAP)
    du_used, dv_used = -math.expm1(-lam_u * t), -math.expm1(-lam_v * t)
    if params.synapse == "current":
        kappa = lam_u * t / du_used
    else:
        kappa = (t / h) * -math.expm1(-lam_u * h) / du_used
    return Rates(lam_u, lam_v, lam_v / dv_used, kappa)


# ---------------------------------------------------------------- the model, as code
@dataclass(frozen=True)
class _SynapseCode:
    """Brian2 strings of one synapse model: neuron equations (``{flag}``: the refractory
    flag), the input jump, the input synapses' summed input, ``on_pre``, integration method."""

    state: tuple[str, ...]
    jump: str
    input: str
    on_pre: str
    method: str


_SYNAPSE_CODE = {
    "current": _SynapseCode(
        state=("du/dt = -lam_u * u : 1",
               "dv/dt = -lam_v * v + gain_v * (u + bias) : 1{flag}",
               "a_in : 1"),
        jump="u += a_in",
        input="w : 1 (constant)\na_in_post = w * p_pre : 1 (summed)",
        on_pre="u_post += w", method="exact"),
    "conductance": _SynapseCode(
        state=("dge/dt = -lam_u * ge : 1",
               "dgi/dt = -lam_u * gi : 1",
               "dv/dt = -lam_v * v + gain_v * (ge * (e_exc - v) / e_exc"
               " + gi * (v - e_inh) / e_inh + bias) : 1{flag}",
               "a_exc : 1", "a_inh : 1",
               "e_exc : 1 (shared, constant)", "e_inh : 1 (shared, constant)"),
        jump="ge += a_exc\ngi += a_inh",
        input="w : 1 (constant)\n"
              "a_exc_post = w * p_pre * int(w * p_pre > 0) : 1 (summed)\n"
              "a_inh_post = -w * p_pre * int(w * p_pre < 0) : 1 (summed)",
        on_pre="ge_post += w * int(w > 0)\ngi_post -= w * int(w < 0)",
        method="exponential_euler"),
}


def detailed_code(network: NetworkParams, slots: tuple[int, ...],
                  params: DetailedParams | None = None) -> ModelCode:
    """The detailed model of ``network``: Brian2 strings, constants and its object builder.

    ``update`` is the input jump run at the start of every timestep; ``slots`` (the exact
    mode's delay slots) is unused: every recurrent synapse carries its own delay.
    """
    params = params or DetailedParams()
    real = real_valued(network)
    r = rates(real.du, real.dv, params)
    code = _SYNAPSE_CODE[params.synapse]
    flag = " (unless refractory)" if network.refractory > 0 else ""
    eqs = [line.replace("{flag}", flag) for line in code.state]
    eqs += ["bias : 1 (constant)", "count : integer", "vth : 1 (shared, constant)"]
    eqs += [f"{name} : Hz (shared, constant)" for name in _RATES]
    shared: dict[str, ty.Any] = dict(lam_u=r.lam_u, lam_v=r.lam_v, gain_v=r.gain_v, vth=real.vth)
    if params.synapse == "conductance":
        shared.update(e_exc=params.e_exc * real.vth, e_inh=params.e_inh * real.vth)
    return ModelCode(
        neuron_eqs="\n".join(eqs), update=code.jump, threshold="v > vth",
        reset="v = 0\ncount += 1", weight_type="1", dtype=np.float64, shared=shared,
        per_neuron=dict(bias=real.bias), delays=slots,
        objects=functools.partial(_make_objects, params=params, real=real, rates=r))


def detailed_mode(**options: ty.Any) -> Callable[[NetworkParams, tuple[int, ...]], ModelCode]:
    """A model builder for :data:`~neuralalchemy.sim.brian2_backend.MODES` with
    :class:`DetailedParams` ``options``, e.g. ``MODES["fine"] = detailed_mode(substeps=100)``."""
    return functools.partial(detailed_code, params=DetailedParams(**options))


# ---------------------------------------------------------------- Brian2 objects
def _make_objects(b2: ty.Any, network: NetworkParams, code: ModelCode, target: str,
                  rec: tuple[ty.Any, ...], *, params: DetailedParams, real: RealValued,
                  rates: Rates) -> Brian2Reservoir:
    """NeuronGroup on the ``h`` clock with the input jump every timestep (slot 'groups':
    summed input at order −2, jump at −1, integration at 0); one recurrent Synapses with a delay
    per synapse."""
    ms, h = b2.ms, params.dt_ms * b2.ms
    code_of = _SYNAPSE_CODE[params.synapse]
    refractory = network.refractory * TIMESTEP_MS * ms + h if network.refractory > 0 else False
    neurons = b2.NeuronGroup(network.size, code.neuron_eqs, threshold=code.threshold,
                             reset=code.reset, refractory=refractory,
                             method=code_of.method, dt=h, name="reservoir")
    for name, value in {**code.shared, **code.per_neuron}.items():
        setattr(neurons, name, value / ms if name in _RATES else value)
    jump = neurons.run_regularly(code.update, when="groups", order=-1, dt=TIMESTEP_MS * ms,
                                 name="input_jump")
    inputs = b2.NeuronGroup(network.n_inputs, "p : 1", dt=TIMESTEP_MS * ms, name="inputs")
    syn_in = b2.Synapses(inputs, neurons, code_of.input, dt=TIMESTEP_MS * ms, name="syn_in")
    post, pre = np.nonzero(real.w_in)
    if post.size:  # Brian2 refuses to connect empty index arrays
        syn_in.connect(i=pre, j=post)
        syn_in.w = real.w_in[post, pre] * rates.kappa
    for updater in syn_in.summed_updaters.values():
        updater.order = -2
    syn_rec = []
    post, pre, w, delay = rec
    if np.size(w):
        syn = b2.Synapses(neurons, neurons, "w : 1 (constant)", on_pre=code_of.on_pre,
                          dt=h, name="syn_rec")
        syn.connect(i=pre, j=post)
        syn.w = np.asarray(w, dtype=np.float64) * real.w_rec_scale * rates.kappa
        extra = np.zeros(np.size(w)) if delay is None else np.asarray(delay, dtype=np.float64)
        syn.delay = (extra + params.delay_offset) * TIMESTEP_MS * ms - h
        syn_rec.append(syn)
    net = b2.Network(neurons, jump, inputs, syn_in, *syn_rec)
    if target in RUNTIME_TARGETS:
        net.store("fresh")
    return Brian2Reservoir(network, target, code, net, neurons, inputs, syn_in, syn_rec)
