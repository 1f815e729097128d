"""Process models of ``process.py``, and a bit-accurate fixed-point model of ``LIFRefractory``.

Numpy only (plus Gymnasium inside :class:`EnvLoop`'s model): these run in Lava's forked worker
processes, where torch deadlocks. Absolute imports only: Lava's model discovery executes this file
outside its package. Every process here has a ``fixed_pt`` and a ``floating_pt`` model; they differ
only in port types (int32 payloads and spikes in fixed point, float64 in float).
"""

from __future__ import annotations

import traceback
import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed
from lava.proc.lif.process import LIFRefractory

from neuralalchemy.agent_io import act, episode_rng, update_features, window
from neuralalchemy.sim.lava.process import (
    ERROR_CHARS,
    OBSERVATION_ERROR,
    EnvLoop,
    FusedEnvLoop,
    PayloadPlayer,
)


# ---------------------------------------------------------------- the environment loop
class AbstractPyEnvLoopModel(PyLoihiProcessModel):
    """Receive spikes, step the environment every K timesteps, send the next payload.

    Order inside a timestep: ``recv`` first, ``send`` last (the input Dense sends its buffer before
    it receives, so this order cannot deadlock). See
    :class:`~neuralalchemy.sim.lava.process.EnvLoop` for the episode timeline.
    """

    stats: np.ndarray = LavaPyType(np.ndarray, float)
    actions: np.ndarray = LavaPyType(np.ndarray, float)
    error: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params: ty.Any) -> None:
        super().__init__(proc_params)
        p = self.proc_params
        self.env_id: str = p["env_id"]
        self.encoder = p["encoder"]
        self.readout = p["readout"]
        self.k: int = p["steps_per_obs"]
        self.levels: int = p["payload_levels"]
        self.seeds: list[int] = list(p["seeds"])
        self.max_steps: int = p["max_steps"]
        self.env: ty.Any = None
        self.rng: np.random.Generator | None = None
        self.obs: np.ndarray | None = None  # the observation shown (change channels read it)
        self.episode = 0
        self.in_episode = False
        self.zeros = np.zeros(self.encoder.n_channels)
        self.inputs = self.zeros[None]  # (K, C): the input of each timestep of this env step
        self.counts = np.zeros(0, dtype=np.int64)
        self.trace = np.zeros(0)
        self.window = 0
        self.length = 0
        self.ret = 0.0
        self.spike_total = 0

    def run_spk(self) -> None:
        self._receive()
        self.x_out.send(self._payload())

    def _receive(self) -> None:
        """Take this timestep's spikes and advance the episode (errors reported, never raised)."""
        s = self.s_in.recv()
        try:
            self._advance(s)
        except Exception as exc:  # noqa: BLE001 - raising here would deadlock Lava: report
            if type(exc).__name__ == "ObservationError":  # a user-facing one-line error
                self._fail(OBSERVATION_ERROR + str(exc))
            else:
                self._fail(traceback.format_exc())

    def _payload(self) -> np.ndarray:
        """The input of this timestep (zeros between episodes)."""
        return self.inputs[self.window] if self.in_episode else self.zeros

    def _advance(self, s: np.ndarray) -> None:
        if not self.in_episode:
            self._begin_episode(s.shape[0])  # s: the warm-up step's spikes, discarded
            return
        self.counts += s.astype(np.int64)
        self.window += 1
        if self.window == self.k:
            self._env_step()

    def _begin_episode(self, n: int) -> None:
        if self.episode >= len(self.seeds):
            raise RuntimeError(f"EnvLoop ran past its {len(self.seeds)} episode(s)")
        if self.env is None:
            from neuralalchemy.envs import make_env  # gymnasium + numpy only
            self.env = make_env(self.env_id)
        seed = self.seeds[self.episode]
        obs, _ = self.env.reset(seed=seed)
        self.rng = episode_rng(seed) if self.encoder.binary else None
        self.inputs = window(obs, self.encoder, self.levels, self.k, self.rng)
        self.obs = obs
        self.counts = np.zeros(n, dtype=np.int64)
        self.trace = np.zeros(n)
        self.window = self.length = self.spike_total = 0
        self.ret = 0.0
        self.in_episode = True

    def _env_step(self) -> None:
        self.trace = update_features(self.trace, self.counts, self.readout.trace_decay)
        action = act(self.trace, self.readout)
        if self.length >= self.max_steps:
            raise RuntimeError(f"episode {self.episode} exceeded max_steps={self.max_steps}")
        self.actions[self.length] = np.ravel(action)
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.ret += float(reward)
        self.length += 1
        self.spike_total += int(self.counts.sum())
        self.counts[:] = 0
        self.window = 0
        if terminated or truncated:
            self._end_episode()
        else:
            self.inputs = window(obs, self.encoder, self.levels, self.k, self.rng, self.obs)
            self.obs = obs

    def _end_episode(self) -> None:
        self.episode += 1
        self.stats[:] = (self.episode, self.ret, self.length, self.spike_total, 0)
        self.in_episode = False
        self._req_pause = True
        if self.episode == len(self.seeds):
            self._close()

    def _fail(self, text: str) -> None:
        """Report ``text`` through the ``error`` Var, send zeros and pause."""
        codes = np.frombuffer(text[-ERROR_CHARS:].encode("ascii", "replace"), dtype=np.uint8)
        self.error[:] = 0
        self.error[: codes.size] = codes
        self.stats[4] = codes.size
        self.in_episode = False
        self._req_pause = True
        try:
            self._close()
        except Exception:  # noqa: BLE001 - the first error is the one reported
            pass

    def _close(self) -> None:
        if self.env is not None:
            env, self.env = self.env, None
            env.close()


@implements(proc=EnvLoop, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyEnvLoopModelFixed(AbstractPyEnvLoopModel):
    """Fixed point: 8-bit graded payloads (int32 on the wire), int32 spikes."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)


@implements(proc=EnvLoop, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEnvLoopModelFloat(AbstractPyEnvLoopModel):
    """Float: real-valued payloads in [0, 1] and float spikes (float64 on the wire)."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


# ---------------------------------------------------------------- the fused input connection
class _FusedInput:
    """:class:`~neuralalchemy.sim.lava.process.FusedEnvLoop`: ``Dense``'s work inside the loop.

    Send the buffered input first (as ``Dense`` does), then receive the spikes and buffer the
    input of this timestep's payload for the next one."""

    a_buff: np.ndarray
    proc_params: ty.Any
    fixed: bool

    def _setup_weights(self, fixed: bool) -> None:
        w = np.asarray(self.proc_params["w_in"])
        self.binary_in = int(self.proc_params["payload_levels"]) == 1
        self.exp = int(self.proc_params["w_in_exp"])
        if fixed:
            from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

            mode = determine_sign_mode(w)
            w = truncate_weights(clip_weights(w, mode, num_bits=8), mode, 8)
        self.w_in = w

    def _synaptic(self, x: np.ndarray) -> np.ndarray:
        if self.binary_in:
            a = self.w_in[:, x.astype(bool)].sum(axis=1)
        else:  # integer payloads in fixed point (the between-episode zeros are floats)
            a = self.w_in.dot(x.astype(np.int64) if self.fixed else x)
        if not self.fixed:
            return a
        return np.left_shift(a, self.exp) if self.exp > 0 else np.right_shift(a, -self.exp)

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)  # type: ignore[attr-defined]
        self._receive()  # type: ignore[attr-defined]
        try:
            self.a_buff = self._synaptic(self._payload())  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - raising here would deadlock Lava: report instead
            self._fail(traceback.format_exc())  # type: ignore[attr-defined]
            self.a_buff = np.zeros_like(self.a_buff)


@implements(proc=FusedEnvLoop, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyFusedEnvLoopModelFixed(_FusedInput, AbstractPyEnvLoopModel):
    """Fixed point: ``Dense``'s bit-accurate input arithmetic, int32 on the wire."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)  # unconnected
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    def __init__(self, proc_params: ty.Any) -> None:
        super().__init__(proc_params)
        self.fixed = True
        self._setup_weights(fixed=True)


@implements(proc=FusedEnvLoop, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedEnvLoopModelFloat(_FusedInput, AbstractPyEnvLoopModel):
    """Float: ``W·x`` in float64."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)  # unconnected
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params: ty.Any) -> None:
        super().__init__(proc_params)
        self.fixed = False
        self._setup_weights(fixed=False)


# ---------------------------------------------------------------- open-loop player
class AbstractPyPayloadPlayerModel(PyLoihiProcessModel):
    """Store the spikes of timestep ``t`` in row ``t − 1``; send payload row ``t − 1``."""

    payloads: np.ndarray = LavaPyType(np.ndarray, float)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        row = self.time_step - 1
        s = self.s_in.recv()
        if row < self.spikes.shape[0]:
            self.spikes[row] = s
            self.x_out.send(self.payloads[row])
        else:
            self.x_out.send(np.zeros(self.payloads.shape[1]))


@implements(proc=PayloadPlayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyPayloadPlayerModelFixed(AbstractPyPayloadPlayerModel):
    """Fixed point: int32 payloads and spikes."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)


@implements(proc=PayloadPlayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPayloadPlayerModelFloat(AbstractPyPayloadPlayerModel):
    """Float: float64 payloads and spikes."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


# ---------------------------------------------------------------- fixed-point refractory LIF
@implements(proc=LIFRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyLifRefractoryModelBitAcc(AbstractPyLifModelFixed):
    """Bit-accurate LIF with a refractory period: ``PyLifModelBitAcc``'s arithmetic (shared base
    ``AbstractPyLifModelFixed``, same threshold and spike rule) plus a voltage hold.

    Integer dynamics of ``PyLifModelBitAcc`` (all state 24-bit, ``du``/``dv`` 12-bit, ``vth``
    17-bit shifted left by 6, ``bias_mant`` 13-bit with 3-bit ``bias_exp``)::

        u = wrap24(sign(x)·(|x| >> 12) + (a << 6)),  x = u·(4096 − (du + 1))
        v = clip(sign(y)·(|y| >> 12) + u + (bias_mant << bias_exp), ±(2^23 − 1)),  y = v·(4096 − dv)
        s = v > (vth << 6);  v ← 0 where s

    Refractory hold, with the semantics of Lava's float ``PyLifRefractoryModelFloat``: a spike at
    timestep ``t`` sets ``refractory_period_end = t + R``; while ``refractory_period_end >= t'``
    the voltage keeps its value (0 after the reset) and ``u`` integrates as usual, i.e. ``v`` is
    frozen for the R timesteps after a spike. Lava 0.10 has no fixed-point model for
    ``LIFRefractory``; run configs must pin this one (``exception_proc_model_map``), since Lava's
    discovery only searches ``lava/proc/lif``.
    """

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    refractory_period_end: np.ndarray = LavaPyType(np.ndarray, int)

    def __init__(self, proc_params: ty.Any) -> None:
        super().__init__(proc_params)
        self.effective_vth = 0
        self.refractory_period: int = int(proc_params["refractory_period"])

    def scale_threshold(self) -> None:
        """``vth << 6``, as ``PyLifModelBitAcc``."""
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self) -> np.ndarray:
        """Spike where ``v > vth << 6``."""
        return self.v > self.effective_vth

    def subthr_dynamics(self, activation_in: np.ndarray) -> None:
        held = self.refractory_period_end >= self.time_step
        v_before = self.v.copy()
        super().subthr_dynamics(activation_in)
        self.v[held] = v_before[held]

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        spiked = spike_vector.astype(bool)
        self.refractory_period_end[spiked] = self.time_step + self.refractory_period
        self.v[spiked] = 0
