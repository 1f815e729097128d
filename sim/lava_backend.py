"""The Lava backend: the compiled agent on Lava's CPU simulator (bit-exact) or on Loihi 2.

Graph (see :mod:`neuralalchemy.sim.lava.process`)::

    EnvLoop.x_out → Dense_in(w_in, w_in_exp, graded) → LIF.a_in
    LIF.s_out → Rec(w_rec, w_rec_exp) → LIF.a_in;   LIF.s_out → EnvLoop.s_in

``Rec`` is ``Dense``, or ``Sparse`` for a CSR ``w_rec``, or ``DelayDense``/``DelaySparse`` when the
network has synaptic delays; ``LIF`` is ``LIFRefractory`` when ``refractory > 0``; ``Dense_in``
takes binary spikes (``num_message_bits = 0``) when the network's ``payload_levels`` is 1
(Poisson encoder).

Each Dense adds one timestep of delay, which reproduces the reference engine's timing
(:class:`neuralalchemy.engine.Reservoir`): a warm-up timestep with zero state and no input, then
``K`` timesteps per environment step with the inputs of the current observation.

Run control: one ``run(RunContinuous())`` per episode; the EnvLoop model requests a pause at the
end of its episode (``_req_pause``), the host reads the telemetry Vars once, zeroes the reservoir
state with ``Var.set`` (``u``, ``v``, the refractory ends and the recurrent connection's buffer;
the input Dense buffer already holds ``W_in·0`` because the EnvLoop's last send of an episode is
zeros) and runs the next episode. ``stop()`` always runs in ``finally``. A model that raised
inside ``run_spk`` would leave Lava deadlocked, so the EnvLoop catches its own errors and hands
the traceback back through a Var; the host re-raises it as ``RuntimeError``.

Hardware (``Loihi2HwCfg``, untested here: it needs lava-loihi): the reservoir uses only ``LIF``
and ``Dense``/``Sparse`` (refractory periods are refused), and the EnvLoop, which has only a CPU
model, runs as a host process next to the chip.

Precisions: ``fixed`` selects the ``fixed_pt`` models (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``
and, with a refractory period, our ``PyLifRefractoryModelBitAcc``); ``float`` selects
``floating_pt`` (``PyLifModelFloat`` / ``PyLifRefractoryModelFloat``, ``PyDenseModelFloat``).
"""

from __future__ import annotations

import time
import typing as ty
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuralalchemy.agent_io import DeployedAgent
from neuralalchemy.network import NetworkParams
from neuralalchemy.sim.backend import BackendUnavailable, EpisodeRecord

FLOAT_MESSAGE_BITS = 24
"""``num_message_bits`` of the float input Dense: any value > 0 makes it graded (real payloads)."""

FIXED_MESSAGE_BITS = 8
"""``num_message_bits`` of the fixed-point input Dense: 8-bit graded payloads 0..255."""

HARDWARE_MESSAGE = (
    "Loihi hardware is not available here: running on Loihi 2 needs Intel's lava-loihi extension "
    "(distributed to Intel Neuromorphic Research Community (INRC) members) and access to a Loihi 2 "
    "system; `--backend sim` runs the same artifact bit-exactly on the CPU with Lava's simulator."
)


# ---------------------------------------------------------------- availability
def hardware_status() -> tuple[bool, str]:
    """Whether Loihi hardware runs here, and why not (one line) when it does not."""
    from lava.utils import loihi

    if not loihi.is_installed():
        return False, HARDWARE_MESSAGE
    return True, ("lava-loihi is installed: runs use Loihi2HwCfg on the Loihi host chosen with "
                  "lava.utils.loihi.use_slurm_host/use_ethernet_host (the EnvLoop runs on the CPU)")


def run_config(precision: str, hardware: bool = False) -> ty.Any:
    """Lava run config for a precision: ``Loihi2SimCfg`` (CPU) or ``Loihi2HwCfg`` (Loihi 2).

    Fixed point pins :class:`~neuralalchemy.sim.lava.models.PyLifRefractoryModelBitAcc` for
    ``LIFRefractory`` (Lava ships no fixed-point model for it, and discovery would not find ours).
    """
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    from lava.proc.lif.process import LIFRefractory

    from neuralalchemy.sim.lava.models import PyLifRefractoryModelBitAcc

    if precision not in ("fixed", "float"):
        raise ValueError(f"precision must be 'fixed' or 'float', got {precision!r}")
    if hardware:
        if precision != "fixed":
            raise ValueError("Loihi hardware runs fixed-point networks only")
        return Loihi2HwCfg(select_tag="fixed_pt")
    if precision == "fixed":
        return Loihi2SimCfg(select_tag="fixed_pt",
                            exception_proc_model_map={LIFRefractory: PyLifRefractoryModelBitAcc})
    return Loihi2SimCfg(select_tag="floating_pt")


# ---------------------------------------------------------------- the reservoir graph
@dataclass
class LavaReservoir:
    """The reservoir as Lava processes: ``lif`` with its input and recurrent connections."""

    lif: ty.Any
    dense_in: ty.Any
    rec: ty.Any

    def reset_state(self) -> None:
        """Zero ``u``, ``v``, the refractory ends and the recurrent connection's buffer with
        ``Var.set`` (~20 µs per value: 3N values, plus N with a refractory period, plus N per
        extra delay slot)."""
        zeros = np.zeros(self.lif.u.shape)
        self.lif.u.set(zeros)
        self.lif.v.set(zeros)
        if hasattr(self.lif, "refractory_period_end"):
            self.lif.refractory_period_end.set(zeros)
        self.rec.a_buff.set(np.zeros(self.rec.a_buff.shape))


def _recurrent_connection(network: NetworkParams) -> ty.Any:
    """``Dense``, ``Sparse`` (CSR ``w_rec``), ``DelayDense`` or ``DelaySparse`` (with ``delays``).

    All four add one timestep of delay; a synapse of extra delay ``d`` arrives ``d + 1`` steps
    after its spike, as in the reference engine. Sparse matrices keep their stored entries (the
    delays share the weights' structure).
    """
    import scipy.sparse as sp
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.sparse.process import DelaySparse, Sparse

    dtype = np.int32 if network.precision == "fixed" else np.float64
    sparse = sp.issparse(network.w_rec)
    kw: dict[str, ty.Any] = dict(weight_exp=int(network.w_rec_exp))
    kw["weights"] = sp.csr_matrix(network.w_rec, dtype=dtype) if sparse \
        else np.asarray(network.w_rec, dtype=dtype)
    if network.delays is None:
        return (Sparse if sparse else Dense)(**kw)
    delays = sp.csr_matrix(network.delays, dtype=np.int64) if sparse \
        else np.asarray(network.delays, dtype=np.int64)  # Lava insists on int64
    top = int(delays.max())
    if top > 62:
        raise ValueError(f"synaptic delays must be <= 62 for Loihi, got {top}")
    return (DelaySparse if sparse else DelayDense)(delays=delays, max_delay=top, **kw)


def build_reservoir(network: NetworkParams, hardware: bool = False,
                    input_dense: bool = True) -> LavaReservoir:
    """Lava processes of a :class:`NetworkParams` (no input connected yet).

    Fixed point passes Lava's integer formats unchanged (the weights already obey Lava's
    clip/truncate rules, so the bit-accurate connections re-applying them is a no-op). The input
    Dense is graded (``num_message_bits`` 8 in fixed point, 24 in float) unless the network takes
    binary spikes (``payload_levels == 1``).
    """
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF, LIFRefractory

    n = network.size
    fixed = network.precision == "fixed"
    if fixed:
        neuron = dict(du=int(network.du), dv=int(network.dv), vth=int(network.vth),
                      bias_mant=network.bias.astype(np.int32), bias_exp=int(network.bias_exp))
    else:
        neuron = dict(du=float(network.du), dv=float(network.dv), vth=float(network.vth),
                      bias_mant=network.bias.astype(np.float64), bias_exp=0)
    if hardware and (network.refractory > 0 or network.delays is not None):
        raise ValueError("refractory periods and synaptic delays are not mapped to Loihi here "
                         "(the hardware graph uses LIF and Dense/Sparse only)")
    if network.refractory > 0:
        lif = LIFRefractory(shape=(n,), refractory_period=int(network.refractory), **neuron)
    else:
        lif = LIF(shape=(n,), **neuron)
    if network.payload_levels == 1:
        bits = 0
    else:
        bits = FIXED_MESSAGE_BITS if fixed else FLOAT_MESSAGE_BITS
    rec = _recurrent_connection(network)
    dense_in = None
    if input_dense:
        dense_in = Dense(weights=np.asarray(network.w_in, dtype=np.int32 if fixed else np.float64),
                         weight_exp=int(network.w_in_exp), num_message_bits=bits)
        dense_in.a_out.connect(lif.a_in)
    lif.s_out.connect(rec.s_in)
    rec.a_out.connect(lif.a_in)
    return LavaReservoir(lif=lif, dense_in=dense_in, rec=rec)


def _child_errors(proc: ty.Any) -> str:
    """Tracebacks of Lava worker processes that raised (Lava only logs them at INFO)."""
    try:
        actors = proc.runtime._messaging_infrastructure.actors
    except AttributeError:
        return ""
    found = []
    for actor in actors:
        exc = actor.exception
        if exc:
            found.append(str(exc[1]))
    return "\n".join(found)


def _safe_stop(proc: ty.Any) -> None:
    """``stop()`` the runtime if one was created (never raises)."""
    if proc.runtime is None:
        return
    try:
        proc.stop()
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        pass


# ---------------------------------------------------------------- closed loop
def _episode_limit(env_id: str, max_steps: int | None) -> tuple[int, bool, int]:
    from neuralalchemy.envs import env_info

    info = env_info(env_id)
    limit = max_steps or info.max_episode_steps
    if not limit:
        raise ValueError(f"{env_id} has no TimeLimit: pass max_steps to bound the episode length")
    return int(limit), info.discrete, 1 if info.discrete else info.n_actions


def play(agent: DeployedAgent, seeds: Sequence[int], hardware: bool = False, *,
         max_steps: int | None = None) -> list[EpisodeRecord]:
    """Play one episode per seed on Lava; the records equal the torch reference's.

    ``hardware=True`` runs on Loihi 2 (``Loihi2HwCfg``; the EnvLoop then runs as a host process)
    and raises :class:`BackendUnavailable` before building anything when lava-loihi is absent.
    ``max_steps`` bounds an episode (default: the environment's TimeLimit).
    """
    if hardware:
        ok, why = hardware_status()
        if not ok:
            raise BackendUnavailable(why)
    seeds = [int(s) for s in seeds]
    if not seeds:
        return []
    from neuralalchemy.sim.lava.process import EnvLoop, FusedEnvLoop

    network: NetworkParams = agent.network  # type: ignore[assignment]
    limit, discrete, action_dim = _episode_limit(agent.env_id, max_steps)
    res = build_reservoir(network, hardware, input_dense=hardware)
    common = dict(env_id=agent.env_id, encoder=agent.encoder, readout=agent.readout,
                  steps_per_obs=agent.steps_per_obs, payload_levels=network.payload_levels,
                  n_neurons=network.size, seeds=seeds, max_steps=limit, action_dim=action_dim)
    if hardware:  # the host process feeds the chip through the input Dense
        loop = EnvLoop(**common)
        loop.x_out.connect(res.dense_in.s_in)
    else:  # on the CPU the loop does the input Dense's arithmetic itself: one process fewer
        loop = FusedEnvLoop(w_in=np.asarray(network.w_in, dtype=np.int32 if network.precision ==
                                            "fixed" else np.float64),
                            w_in_exp=int(network.w_in_exp), **common)
        loop.a_out.connect(res.lif.a_in)
    res.lif.s_out.connect(loop.s_in)
    records: list[EpisodeRecord] = []
    try:
        start = time.perf_counter()
        loop.create_runtime(run_cfg=run_config(network.precision, hardware))
        build_s = time.perf_counter() - start
        for i, seed in enumerate(seeds):
            record = _play_episode(loop, res, i, seed, discrete)
            if i == 0:
                record.extra["build_s"] = build_s
            records.append(record)
    finally:
        _safe_stop(loop)
    return records


def _play_episode(loop: ty.Any, res: LavaReservoir, i: int, seed: int,
                  discrete: bool) -> EpisodeRecord:
    """Episode ``i``: zero the reservoir (after the first), run until the EnvLoop pauses, read the
    telemetry once. ``wall_s`` covers all of it; ``extra`` splits off the reset and the reads."""
    from lava.magma.core.run_conditions import RunContinuous

    start = time.perf_counter()
    if i:
        res.reset_state()
    reset_s = time.perf_counter() - start
    try:
        loop.run(condition=RunContinuous())
        loop.wait()
    except RuntimeError as exc:
        raise RuntimeError(f"Lava run of episode {i} (seed {seed}) failed: {exc}\n"
                           f"{_child_errors(loop)}") from None
    run_end = time.perf_counter()
    done, ret, length, spikes, error_chars = loop.stats.get()
    if error_chars:
        from neuralalchemy.sim.lava.process import OBSERVATION_ERROR

        text = loop.error.get()[: int(error_chars)].astype(np.uint8).tobytes().decode("ascii")
        if text.startswith(OBSERVATION_ERROR):
            from neuralalchemy.envs import ObservationError

            raise ObservationError(text[len(OBSERVATION_ERROR):])
        raise RuntimeError(f"EnvLoop failed in episode {i} (seed {seed}):\n{text}")
    if int(done) != i + 1:
        raise RuntimeError(f"EnvLoop reports {int(done)} episodes done, expected {i + 1}")
    actions = loop.actions.get()[: int(length)]
    actions = actions[:, 0].astype(np.int64) if discrete else actions
    end = time.perf_counter()
    return EpisodeRecord(seed, float(ret), int(length), actions, int(spikes), end - start,
                         extra={"reset_s": reset_s, "read_s": end - run_end})


# ---------------------------------------------------------------- open loop (equivalence tests)
class LavaRecording(ty.NamedTuple):
    """Spikes (T, N) of an open-loop run and the final state (u, v as Lava holds them)."""

    spikes: np.ndarray
    u: np.ndarray
    v: np.ndarray


def record_run(network: NetworkParams, payloads: np.ndarray) -> LavaRecording:
    """Drive the network with ``payloads`` (T, C) on Lava's simulator; spikes and final u, v.

    Spikes of timestep ``t`` (row ``t``) are driven by ``payloads[t − 1]`` and the spikes of
    ``t − 1`` (one Dense delay each); row 0 is the zero-state, zero-input step. Reading the
    recording costs ~20 µs per value (T·N + 2N).
    """
    from lava.magma.core.run_conditions import RunSteps

    from neuralalchemy.sim.lava.process import PayloadPlayer

    payloads = np.asarray(payloads)
    if payloads.ndim != 2 or payloads.shape[1] != network.n_inputs:
        raise ValueError(f"payloads must be (T, {network.n_inputs}), got {payloads.shape}")
    res = build_reservoir(network)
    player = PayloadPlayer(payloads=payloads, n_neurons=network.size)
    player.x_out.connect(res.dense_in.s_in)
    res.lif.s_out.connect(player.s_in)
    try:
        try:
            player.run(condition=RunSteps(num_steps=payloads.shape[0]),
                       run_cfg=run_config(network.precision))
        except RuntimeError as exc:
            raise RuntimeError(f"Lava open-loop run failed: {exc}\n{_child_errors(player)}") \
                from None
        spikes = player.spikes.get().astype(bool)
        u, v = res.lif.u.get(), res.lif.v.get()
    finally:
        _safe_stop(player)
    if network.precision == "fixed":
        u, v = u.astype(np.int64), v.astype(np.int64)
    return LavaRecording(spikes=spikes, u=u, v=v)


def record_spikes(network: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    """Spikes (T, N) of :func:`record_run` (the open-loop spike raster)."""
    return record_run(network, payloads).spikes
