"""The Brian2 backend: the reservoir's discrete Lava dynamics written as a Brian2 model.

Mode ``exact`` reproduces the reference engine (:mod:`neuralalchemy.engine`, equations in
:mod:`neuralalchemy.network`) timestep for timestep, from the artifact's explicit weights (nothing
is re-drawn). Float networks run in float64 with the engine's order of operations (one operation
per statement, so Brian2's sympy pass cannot re-associate a sum; ``-ffast-math`` off); fixed-point
networks run Lava's integer arithmetic in int64 Brian2 variables (``: integer``, floor division
``//``), on the numpy and cython runtimes and on ``cpp_standalone``. The model has no ODEs: the
clock's ``dt`` is a label (1 ms = one timestep).

Objects (``d`` = 0..D, the extra synaptic delays present in ``network.delays``)::

    inputs   NeuronGroup(C):  p                      the payload of this timestep
    syn_in   Synapses(inputs → neurons):  a_in_post = w·p_pre (summed)   [slot 'groups', order −1]
    neurons  NeuronGroup(N):  run_regularly update   [slot 'groups', order 0]
                 a = shift_rec(acc_0) + … + shift_rec(acc_D) + shift_in(a_in);  acc_d = 0
                 u, v (LIF, float or integer), refractory hold;  threshold v > vth;  reset v = 0
    syn_rec[d] Synapses(neurons → neurons, delay d·dt):  on_pre  acc_d_post += w

Within timestep ``t``: the payload of ``t`` is in ``p`` (open loop: ``p = stim(t, i)`` at slot
'start'); the summed input and the LIF update run at 'groups'; spikes ``s[t]`` at 'thresholds';
at 'synapses' the spikes of ``t − d`` land in ``acc_d``, which the update of ``t + 1`` consumes:
a spike at ``t`` reaches its target at ``t + 1 + d``. In fixed point each ``acc_d`` is one
projection's integer sum of one sending step, shifted by the exponent on its own (Lava's
``DelayDense`` shifts each delay slot's sum), floor division for negative exponents.

Modes ``detailed`` and ``detailed-cond`` (:mod:`neuralalchemy.sim.brian2_detailed`) run the
same network as continuous-time ODEs on a finer clock, to measure how far a biologically detailed
neuron is from the chip's discrete one.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import tempfile
import time
import typing as ty
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuralalchemy.agent_io import DeployedAgent, act, episode_rng, update_features
from neuralalchemy.network import NetworkParams, delays_like
from neuralalchemy.sim.backend import BackendUnavailable, EpisodeRecord

TARGETS = ("numpy", "cython", "cpp_standalone")
"""Brian2 code-generation targets: two runtimes and the standalone C++ device."""

RUNTIME_TARGETS = ("numpy", "cython")

EXACT_COMPILE_ARGS = ["-w", "-O3", "-march=native", "-std=c++11", "-ffp-contract=off"]
"""Brian2's default C++ flags without ``-ffast-math`` (and no fused multiply-add), so float code
keeps IEEE semantics and the order of operations written in the model."""

_WRAP = 2**23


# ---------------------------------------------------------------- the model, as code
@dataclass(frozen=True)
class ModelCode:
    """Brian2 strings and values of one reservoir model.

    ``neuron_eqs`` declares the neuron variables; ``shared`` gives the values of its
    ``(shared, constant)`` parameters and ``per_neuron`` the per-neuron constants; ``update`` is
    the run_regularly code of each timestep; ``dtype`` the numpy type of integer/weight
    variables (int64 in fixed point); ``objects`` builds the Brian2 objects
    (``(b2, network, code, target, rec) -> Brian2Reservoir``; None: the exact mode's).
    """

    neuron_eqs: str
    update: str
    threshold: str
    reset: str
    weight_type: str  # "1" (float) or "integer"
    dtype: type
    shared: dict[str, ty.Any]
    per_neuron: dict[str, np.ndarray]
    delays: tuple[int, ...]  # the extra delays that have synapses (one Synapses object each)
    objects: Callable[..., Brian2Reservoir] | None = None


def _refractory_lines(network: NetworkParams, value_expr: str) -> list[str]:
    """Hold ``v`` while refractory (``ref > 0``), count ``ref`` down; plain update otherwise."""
    if network.refractory <= 0:
        return [f"v = {value_expr}"]
    return [f"v = {value_expr} * int(ref == 0) + v * int(ref > 0)", "ref = ref - int(ref > 0)"]


def _exact_float(network: NetworkParams, slots: tuple[int, ...]) -> ModelCode:
    """Lava ``floating_pt`` dynamics, one float64 operation per statement in the engine's order:
    ``a = (W_0·s + W_1·s_1 + …) + W_in·p``; ``u = u·(1 − du) + a``;
    ``v = (v·(1 − dv) + u) + bias``."""
    acc = [f"acc_{d}" for d in slots]
    lines = [f"a = {acc[0]}"] + [f"a = a + {x}" for x in acc[1:]] + ["a = a + a_in"] if acc \
        else ["a = a_in"]
    lines += ["ud = u * keep_u", "u = ud + a", "vd = v * keep_v", "vu = vd + u",
              "vn = vu + bias"]
    lines += _refractory_lines(network, "vn") + [f"acc_{d} = 0" for d in slots]
    eqs = ["u : 1", "v : 1", "a_in : 1", "bias : 1 (constant)", "count : integer",
           "keep_u : 1 (shared, constant)", "keep_v : 1 (shared, constant)",
           "vth : 1 (shared, constant)"] + [f"acc_{d} : 1" for d in slots]
    if network.refractory > 0:
        eqs += ["ref : integer", "ref_period : integer (shared, constant)"]
    return ModelCode(
        neuron_eqs="\n".join(eqs), update="\n".join(lines), threshold="v > vth",
        reset="v = 0\ncount += 1" + ("\nref = ref_period" if network.refractory > 0 else ""),
        weight_type="1", dtype=np.float64,
        shared=dict(keep_u=1.0 - float(network.du), keep_v=1.0 - float(network.dv),
                    vth=float(network.vth), ref_period=int(network.refractory)),
        per_neuron=dict(bias=np.asarray(network.bias, dtype=np.float64)), delays=slots)


def _shift_expr(var: str, exp: int) -> str:
    """Lava's exponent shift of an integer sum: ``x << e`` or ``x >> −e`` (floor)."""
    if exp > 0:
        return f"{var} * {2**exp}"
    if exp < 0:
        return f"{var} // {2**-exp}"
    return var


def _exact_fixed(network: NetworkParams, slots: tuple[int, ...]) -> ModelCode:
    """Lava ``fixed_pt`` (``PyLifModelBitAcc`` + ``PyDenseModelBitAcc``) in int64 variables::

        a = Σ_d shift(acc_d, e_rec) + shift(a_in, e_in)
        x = u·(4096 − (du + 1));  u = sign(x)·(|x| // 4096) + a·64;  u wraps to 24 bits
        y = v·(4096 − dv);  v = clip(sign(y)·(|y| // 4096) + u + bias_eff, ±(2^23 − 1))
        s = v > vth·64;  v = 0 where s
    """
    shifted = [_shift_expr(f"acc_{d}", network.w_rec_exp) for d in slots]
    shifted.append(_shift_expr("a_in", network.w_in_exp))
    lines = [f"a = {shifted[0]}"] + [f"a = a + {x}" for x in shifted[1:]]
    lines += [
              "x = u * fu", "u = sign(x) * (abs(x) // 4096) + a * 64",
              f"u = u - {2 * _WRAP} * int(u > {_WRAP})",
              f"u = u + {2 * _WRAP} * int(u <= {-_WRAP})",
              "y = v * fv",
              "vr = sign(y) * (abs(y) // 4096) + u + bias",  # clip without float bounds:
              f"vn = vr - (vr - {_WRAP - 1}) * int(vr > {_WRAP - 1})",  # cython's _clip
              f"vn = vn - (vn + {_WRAP - 1}) * int(vn < {-(_WRAP - 1)})"]  # takes doubles
    lines += _refractory_lines(network, "vn") + [f"acc_{d} = 0" for d in slots]
    eqs = ["u : integer", "v : integer", "a_in : integer", "bias : integer (constant)",
           "count : integer", "fu : integer (shared, constant)",
           "fv : integer (shared, constant)", "vth : integer (shared, constant)"]
    eqs += [f"acc_{d} : integer" for d in slots]
    if network.refractory > 0:
        eqs += ["ref : integer", "ref_period : integer (shared, constant)"]
    b = np.asarray(network.bias).astype(np.int64)
    bias = b << network.bias_exp if network.bias_exp >= 0 else b >> -network.bias_exp
    return ModelCode(
        neuron_eqs="\n".join(eqs), update="\n".join(lines), threshold="v > vth",
        reset="v = 0\ncount += 1" + ("\nref = ref_period" if network.refractory > 0 else ""),
        weight_type="integer", dtype=np.int64,
        shared=dict(fu=4096 - (int(network.du) + 1), fv=4096 - int(network.dv),
                    vth=int(network.vth) << 6, ref_period=int(network.refractory)),
        per_neuron=dict(bias=bias), delays=slots)


def _exact(network: NetworkParams, slots: tuple[int, ...]) -> ModelCode:
    return (_exact_fixed if network.precision == "fixed" else _exact_float)(network, slots)


def _detailed(network: NetworkParams, slots: tuple[int, ...]) -> ModelCode:
    from neuralalchemy.sim.brian2_detailed import detailed_mode
    return detailed_mode()(network, slots)


def _detailed_cond(network: NetworkParams, slots: tuple[int, ...]) -> ModelCode:
    from neuralalchemy.sim.brian2_detailed import detailed_mode
    return detailed_mode(synapse="conductance")(network, slots)


MODES: dict[str, Callable[[NetworkParams, tuple[int, ...]], ModelCode]] = {
    "exact": _exact, "detailed": _detailed, "detailed-cond": _detailed_cond}
"""Mode name -> model builder, given the network and the extra delays that have synapses.
``exact``: Lava's discrete dynamics (the reference engine's); ``detailed``: continuous-time LIF
with current-based exponential synapses, ``detailed-cond``: conductance-based
(:mod:`neuralalchemy.sim.brian2_detailed`)."""


# ---------------------------------------------------------------- Brian2 set-up
def _brian2() -> ty.Any:
    try:
        import brian2
    except ImportError as exc:  # pragma: no cover - brian2 is a dependency
        raise BackendUnavailable(f"brian2 is not importable ({exc}): pip install 'brian2>=2.9'") \
            from None
    return brian2


@contextlib.contextmanager
def _prefs(target: str) -> Iterator[None]:
    """Set Brian2's code-generation target and IEEE-exact C++ flags; restore them afterwards."""
    b2 = _brian2()
    old = (b2.prefs.codegen.target, list(b2.prefs.codegen.cpp.extra_compile_args_gcc))
    b2.prefs.codegen.target = "numpy" if target == "cpp_standalone" else target
    b2.prefs.codegen.cpp.extra_compile_args_gcc = list(EXACT_COMPILE_ARGS)
    try:
        yield
    finally:
        b2.prefs.codegen.target, b2.prefs.codegen.cpp.extra_compile_args_gcc = old


def _entries(w: ty.Any, delays: ty.Any = None) -> tuple[ty.Any, ...]:
    """(post, pre, value, extra delay or None) of the nonzero entries of ``w``, in CSR order
    (sparse ``delays`` share ``w``'s stored entries). int32 indices: 12 bytes per synapse plus
    the value, which matters at 10^8 synapses."""
    import scipy.sparse as sp

    if sp.issparse(w):
        csr = sp.csr_matrix(w)
        post = np.repeat(np.arange(csr.shape[0], dtype=np.int32), np.diff(csr.indptr))
        pre, value = csr.indices.astype(np.int32, copy=False), csr.data
        delay = None
        if delays is not None:
            d_csr = delays_like(csr, delays)
            delay = np.asarray(d_csr.data, dtype=np.int64)
    else:
        w = np.asarray(w)
        rows, cols = np.nonzero(w)
        post, pre, value = rows.astype(np.int32), cols.astype(np.int32), w[rows, cols]
        delay = np.asarray(delays, dtype=np.int64)[rows, cols] if delays is not None else None
    keep = value != 0
    if not keep.all():
        post, pre, value = post[keep], pre[keep], value[keep]
        delay = delay[keep] if delay is not None else None
    return post, pre, value, delay


@dataclass
class Brian2Reservoir:
    """The reservoir as Brian2 objects in one ``Network``, on one target.

    Runtime targets step under host control (:meth:`reset`, :meth:`run`); ``cpp_standalone``
    runs once (:meth:`record`, :meth:`run_steps`), compiling the whole simulation.
    """

    network: NetworkParams
    target: str
    code: ModelCode
    net: ty.Any
    neurons: ty.Any
    inputs: ty.Any
    syn_in: ty.Any
    syn_rec: list[ty.Any]
    directory: str | None = None  # cpp_standalone project folder (None: a fresh temporary one)
    timing: dict[str, float] = field(default_factory=dict)
    compiled_ok: bool = False  # every code block was checked to have compiled
    scratch: str | None = None  # temporary standalone project, deleted once read

    # ------------------------------------------------------------ closed loop (runtime)
    def _check_runtime(self) -> None:
        if self.target not in RUNTIME_TARGETS:
            raise ValueError(f"host-controlled stepping needs a runtime target "
                             f"({', '.join(RUNTIME_TARGETS)}), not {self.target!r}: "
                             "cpp_standalone compiles the whole run into one binary")

    def reset(self) -> np.ndarray:
        """Zero every state (and pending delayed spikes), run the warm-up timestep with no
        input; return its spikes (not counted by the next :meth:`run`)."""
        self._check_runtime()
        with _prefs(self.target):
            self.net.restore("fresh")
            self._run(1)
        spikes = np.asarray(self.neurons.count[:]) > 0
        self.neurons.count = 0
        return spikes

    def run(self, window: np.ndarray) -> np.ndarray:
        """Run ``len(window)`` timesteps, timestep ``k`` with input ``window[k]`` (C,); return
        the spike counts (N,) as int64. Runs of equal rows go in one ``run``."""
        self._check_runtime()
        window = np.asarray(window)
        start, steps = 0, window.shape[0]
        with _prefs(self.target):
            while start < steps:
                stop = start + 1
                while stop < steps and np.array_equal(window[stop], window[start]):
                    stop += 1
                self.inputs.p = window[start].astype(self.code.dtype)
                self._run(stop - start)
                start = stop
        counts = np.asarray(self.neurons.count[:], dtype=np.int64)
        self.neurons.count = 0
        return counts

    def _run(self, steps: int, namespace: dict | None = None) -> None:
        b2 = _brian2()
        self.net.run(steps * b2.ms, namespace=namespace or {}, report=None)
        if not self.compiled_ok:
            _check_compiled(self.net)
            self.compiled_ok = True

    # ------------------------------------------------------------ open loop (any target)
    def record(self, payloads: np.ndarray) -> np.ndarray:
        """Spikes (T, N) of ``T`` timesteps from the zero state; timestep ``t`` gets
        ``payloads[t − 1]`` (nothing at ``t = 0``), the torch engine's open-loop timing."""
        b2 = _brian2()
        payloads = np.asarray(payloads)
        steps, n = payloads.shape[0], self.network.size
        shifted = np.zeros((max(steps, 1), self.network.n_inputs))
        shifted[1:steps] = payloads[: steps - 1]
        stim = b2.TimedArray(shifted, dt=1 * b2.ms, name="stim")
        cast = "int(stim(t, i))" if self.code.dtype is np.int64 else "stim(t, i)"
        feed = self.inputs.run_regularly(f"p = {cast}", when="start", dt=1 * b2.ms)
        mon = b2.SpikeMonitor(self.neurons, record=True)
        self.net.add(feed, mon)
        self._execute(steps, {"stim": stim})
        raster = np.zeros((steps, n), dtype=bool)
        # timestep of each spike: a substep's start time t_s lies in [k, k + 1) ms
        t_idx = np.floor(np.asarray(mon.t[:] / b2.ms) + 1e-6).astype(np.int64)
        raster[t_idx, np.asarray(mon.i[:])] = True
        self._drop_scratch()
        return raster

    def run_steps(self, steps: int) -> np.ndarray:
        """Run ``steps`` timesteps from here with the current input (zero unless set); return
        the spike counts per neuron (N,) since the last reset of the counts. ``timing`` gets
        ``run_s`` (and, standalone, ``compile_s`` and ``run_wall_s``)."""
        self._execute(steps, {})
        counts = np.asarray(self.neurons.count[:], dtype=np.int64)
        self._drop_scratch()
        return counts

    def _drop_scratch(self) -> None:
        """Delete the temporary standalone project (its results have been read)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def _execute(self, steps: int, namespace: dict) -> None:
        """Run on the runtime, or build, compile and run the standalone project."""
        with _prefs(self.target):
            if self.target in RUNTIME_TARGETS:
                start = time.perf_counter()
                self._run(steps, namespace)
                self.timing["run_s"] = time.perf_counter() - start
                return
            b2 = _brian2()
            device = b2.get_device()
            self._run(steps, namespace)
            if self.directory is None:
                self.scratch = tempfile.mkdtemp(prefix="brian2_standalone_")
            directory = self.directory or self.scratch
            start = time.perf_counter()
            device.build(directory=directory, compile=True, run=False, with_output=False)
            compiled = time.perf_counter()
            device.run(directory=directory, with_output=False)
            self.timing.update(compile_s=compiled - start,
                               run_wall_s=time.perf_counter() - compiled,
                               run_s=float(device._last_run_time))


def _check_compiled(net: ty.Any) -> None:
    """Raise if a code block failed to compile: Brian2's Cython extension manager returns None
    on a Cython compile error and the block then silently does nothing."""
    for obj in getattr(net, "sorted_objects", []):
        for codeobj in getattr(obj, "_code_objects", []):
            compiled = getattr(codeobj, "compiled_code", None)
            if not isinstance(compiled, dict):
                continue
            for block, module in compiled.items():
                source = getattr(codeobj.code, block, "") or ""
                if module is None and source.strip() and "EMPTY_CODE_BLOCK" not in source:
                    raise RuntimeError(f"Brian2 could not compile the {block!r} block of "
                                       f"{codeobj.name!r} (see the compiler output above)")


def build(network: NetworkParams, target: str = "cython", *, mode: str = "exact",
          directory: str | None = None) -> Brian2Reservoir:
    """The Brian2 objects of ``network`` (see the module docstring) on ``target``.

    ``cpp_standalone`` needs the standalone device (build inside ``with standalone():``) and
    runs once (:meth:`~Brian2Reservoir.record` or :meth:`~Brian2Reservoir.run_steps`) in the
    project folder ``directory``: a fresh temporary folder by default (a full compilation, about
    a minute on 2 cores); reusing a folder recompiles only the files that changed.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown Brian2 target {target!r}: choose one of {', '.join(TARGETS)}")
    try:
        make_code = MODES[mode]
    except KeyError:
        raise ValueError(f"unknown Brian2 mode {mode!r}: choose one of {', '.join(MODES)}") \
            from None
    b2 = _brian2()
    if target == "cpp_standalone" and not isinstance(b2.get_device(), _standalone_class()):
        raise ValueError("build a cpp_standalone reservoir inside `with standalone():`")
    rec = _entries(network.w_rec, network.delays)
    if rec[3] is not None:
        slots = tuple(int(d) for d in np.unique(rec[3]))
    else:
        slots = (0,) if rec[2].size else ()
    code = make_code(network, slots)
    with _prefs(target):
        res = (code.objects or _make_objects)(b2, network, code, target, rec)
    res.directory = directory
    return res


def _make_objects(b2: ty.Any, network: NetworkParams, code: ModelCode, target: str,
                  rec: tuple[ty.Any, ...]) -> Brian2Reservoir:
    dt = 1 * b2.ms
    n, c = network.size, network.n_inputs
    int_dtypes = {name: np.int64 for name in ("u", "v", "a_in", "bias", "fu", "fv", "vth")}
    int_dtypes.update({f"acc_{d}": np.int64 for d in code.delays})
    neurons = b2.NeuronGroup(n, code.neuron_eqs, threshold=code.threshold, reset=code.reset,
                             dt=dt, name="reservoir",
                             dtype=int_dtypes if code.dtype is np.int64 else None)
    for name, value in {**code.shared, **code.per_neuron}.items():
        if name in neurons.variables:
            setattr(neurons, name, value)
    updater = neurons.run_regularly(code.update, when="groups", order=0, dt=dt, name="lif_update")
    inputs = b2.NeuronGroup(c, f"p : {code.weight_type}", dt=dt, name="inputs",
                            dtype={"p": np.int64} if code.dtype is np.int64 else None)
    wdt = {"w": np.int64} if code.dtype is np.int64 else None
    syn_in = b2.Synapses(inputs, neurons, f"w : {code.weight_type} (constant)\n"
                         f"a_in_post = w * p_pre : {code.weight_type} (summed)",
                         dt=dt, name="syn_in", dtype=wdt)
    post, pre, w, _ = _entries(network.w_in)
    if w.size:  # Brian2 refuses to connect empty index arrays
        syn_in.connect(i=pre, j=post)
        syn_in.w = w.astype(code.dtype)
    syn_rec = []
    post, pre, w, delay = rec
    for d in code.delays:
        sel = slice(None) if delay is None else delay == d
        syn = b2.Synapses(neurons, neurons, f"w : {code.weight_type} (constant)",
                          on_pre=f"acc_{d}_post += w", delay=d * dt, dt=dt,
                          name=f"syn_rec_{d}", dtype=wdt)
        syn.connect(i=pre[sel], j=post[sel])
        syn.w = w[sel].astype(code.dtype)
        syn_rec.append(syn)
    net = b2.Network(neurons, updater, inputs, syn_in, *syn_rec)
    if target in RUNTIME_TARGETS:
        net.store("fresh")
    return Brian2Reservoir(network, target, code, net, neurons, inputs, syn_in, syn_rec)


def _standalone_class() -> type:
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    return CPPStandaloneDevice


@contextlib.contextmanager
def standalone() -> Iterator[None]:
    """Switch Brian2 to a fresh ``cpp_standalone`` device; back to the runtime device after."""
    b2 = _brian2()
    b2.set_device("cpp_standalone", build_on_run=False)
    device = b2.get_device()
    device.reinit()
    device.activate(build_on_run=False)
    try:
        yield
    finally:
        device.reinit()
        from brian2.devices.device import reset_device

        reset_device()


# ---------------------------------------------------------------- the backend's entry points
def record_spikes(network: NetworkParams, payloads: np.ndarray, target: str = "cython", *,
                  mode: str = "exact", directory: str | None = None) -> np.ndarray:
    """Open-loop spike raster (T, N) of ``network`` driven by ``payloads`` (T, C).

    Timestep ``t`` sees ``a[t] = W_in·payloads[t − 1] + W_rec·s[t − 1]`` (nothing at ``t = 0``),
    the timing of the torch engine and of :func:`neuralalchemy.sim.lava_backend.record_spikes`.
    """
    payloads = np.asarray(payloads)
    if payloads.ndim != 2 or payloads.shape[1] != network.n_inputs:
        raise ValueError(f"payloads must be (T, {network.n_inputs}), got {payloads.shape}")
    if target == "cpp_standalone":
        with standalone():
            return build(network, target, mode=mode, directory=directory).record(payloads)
    return build(network, target, mode=mode).record(payloads)


def play(agent: DeployedAgent, seeds: Sequence[int], mode: str = "exact", *,
         target: str = "numpy") -> list[EpisodeRecord]:
    """Play one episode per seed on Brian2 in closed loop; the records equal the torch
    reference's (:func:`neuralalchemy.sim.torch_backend.play`).

    The host loop follows docs/neuron-model.md: after an episode reset (every state zeroed,
    pending delayed spikes dropped) one warm-up timestep runs with no input; each environment
    step then runs ``K`` timesteps (``Network.run``) with the encoded observation in the input
    group's ``p`` (binary encoders: one payload per timestep), and the ``K`` timesteps' spike
    counts feed the readout. ``target`` is a runtime target, ``numpy`` by default: every
    ``Network.run`` regenerates Brian2's code objects (~50 ms with numpy, ~110 ms with cython on
    2 cores, more than the simulation of a small reservoir), and calls ``gc.collect()``, which
    with torch and Lava imported costs ~0.2 s: the objects that exist when play starts are
    frozen out of the collector (``gc.freeze``) for the duration of the episodes.
    """
    from neuralalchemy.envs import make_env

    if target not in RUNTIME_TARGETS:
        raise ValueError(f"closed-loop play needs a runtime target ({', '.join(RUNTIME_TARGETS)})"
                         f", not {target!r}")
    seeds = [int(s) for s in seeds]
    start = time.perf_counter()
    res = build(agent.network, target, mode=mode)  # type: ignore[arg-type]
    build_s = time.perf_counter() - start
    env = make_env(agent.env_id)
    records = []
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        for seed in seeds:
            records.append(_play_episode(agent, res, env, seed))
    finally:
        if freeze:
            gc.unfreeze()
        env.close()
    if records:
        records[0].extra["build_s"] = build_s
    return records


def _play_episode(agent: DeployedAgent, res: Brian2Reservoir, env: ty.Any,
                  seed: int) -> EpisodeRecord:
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    rng = episode_rng(seed) if agent.encoder.binary else None
    res.reset()
    trace = np.zeros(res.network.size)
    actions, ret, spikes, done = [], 0.0, 0, False
    prev = None
    while not done:
        counts = res.run(agent.window(obs, rng, prev))
        prev = obs
        spikes += int(counts.sum())
        trace = update_features(trace, counts, agent.readout.trace_decay)
        action = act(trace, agent.readout)
        actions.append(action)
        obs, reward, term, trunc, _ = env.step(action)
        ret += float(reward)
        done = term or trunc
    return EpisodeRecord(seed, ret, len(actions), np.asarray(actions), spikes,
                         time.perf_counter() - start)
