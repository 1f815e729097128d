"""Lava Processes of the closed loop: interfaces only (ports and state), numerics in ``models.py``.

Lava's model discovery executes every ``.py`` file of this folder: this module has no side effects
at import.

Graph (one episode is one ``run``)::

    EnvLoop.x_out ──► Dense_in ──► LIF.a_in ◄── Dense_rec ◄──┐
         ▲                          LIF.s_out ───────────────┘
         └───────────── s_in ◄──────────┘

The reservoir is Lava's own ``LIF`` (``LIFRefractory`` when ``refractory > 0``) with two ``Dense``;
only :class:`EnvLoop` (the Gymnasium environment, the encoder and the readout) is ours, and it runs
as a host (CPU) process on every target. On the CPU simulator :class:`FusedEnvLoop` does the input
``Dense``'s arithmetic itself and feeds ``LIF.a_in`` directly (one Lava process fewer per
timestep, same spikes bit for bit); the Loihi graph keeps the ``Dense``. :class:`PayloadPlayer`
drives the same network open loop with a given payload sequence and records its spikes (the
equivalence tests).
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var

STATS_FIELDS = ("episodes_done", "ret", "length", "spikes", "error_chars")
"""Layout of :attr:`EnvLoop.stats`: episodes finished, the last episode's return, length
(environment steps) and spike total (warm-up step excluded), and the length of the error text
in :attr:`EnvLoop.error` (0 when the model raised nothing)."""

ERROR_CHARS = 2000
"""Characters of a model-side traceback kept in :attr:`EnvLoop.error`."""

OBSERVATION_ERROR = "ObservationError: "
"""Prefix of :attr:`EnvLoop.error` when the environment produced an observation the agent cannot
encode; the rest is the one-line message (no traceback), raised again on the host."""


class EnvLoop(AbstractProcess):
    """The environment side of the closed loop: receives spikes, sends encoded observations.

    Every Lava timestep the model first receives the reservoir's spikes ``s_in`` (N,), then does its
    bookkeeping, then sends the input ``x_out`` (C,). Timestep 1 of an episode receives the
    warm-up spikes (discarded), resets the environment with the episode's seed and sends the
    first of the K inputs of ``obs_0`` (``agent_io.window``: one payload repeated K times for
    graded encoders, K fresh Bernoulli draws from ``agent_io.episode_rng(seed)`` for the Poisson
    encoder). Each following block of ``K = steps_per_obs`` timesteps accumulates spike counts and
    sends the window's next rows; after the K-th, the readout acts, the environment steps and the
    first input of ``obs_next`` is sent in the same timestep. At the end of an episode the model
    sends zeros, writes the telemetry Vars and requests a pause; the host then zeroes the
    reservoir state and runs again.

    Parameters
    ----------
    env_id : Gymnasium id, created inside the model (in Lava's worker process).
    encoder : :class:`neuralalchemy.agent_io.EncoderParams`.
    readout : :class:`neuralalchemy.agent_io.ReadoutParams`.
    steps_per_obs : K, Lava timesteps per environment step.
    payload_levels : the network's input levels (255 graded fixed point, 1 binary spikes,
        0 real-valued float).
    n_neurons : N, the size of ``s_in``.
    seeds : one episode per seed, in order.
    max_steps : environment steps an episode may take (size of :attr:`actions`).
    action_dim : 1 for a discrete action, else the Box dimension.

    Vars
    ----
    stats : (5,) float, laid out as :data:`STATS_FIELDS`.
    actions : (max_steps, action_dim) float, the last episode's actions (rows ``>= length`` stale).
    error : (ERROR_CHARS,) float, the tail of a traceback as character codes. A process model that
        raises inside ``run_spk`` leaves its neighbours blocked on their ports and Lava's
        ``wait()``/``stop()`` hang; the model therefore catches its own errors, still sends its
        payload, requests a pause and reports the traceback here.
    """

    def __init__(self, *, env_id: str, encoder: ty.Any, readout: ty.Any, steps_per_obs: int,
                 payload_levels: int, n_neurons: int, seeds: ty.Sequence[int], max_steps: int,
                 action_dim: int, name: str | None = None,
                 log_config: LogConfig | None = None) -> None:
        if steps_per_obs < 1:
            raise ValueError(f"steps_per_obs must be >= 1, got {steps_per_obs}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        super().__init__(env_id=env_id, encoder=encoder, readout=readout,
                         steps_per_obs=int(steps_per_obs), payload_levels=int(payload_levels),
                         seeds=[int(s) for s in seeds], max_steps=int(max_steps),
                         name=name, log_config=log_config)
        self.x_out = OutPort(shape=(int(encoder.n_channels),))
        self.s_in = InPort(shape=(int(n_neurons),))
        self.stats = Var(shape=(len(STATS_FIELDS),), init=0)
        self.actions = Var(shape=(int(max_steps), int(action_dim)), init=0)
        self.error = Var(shape=(ERROR_CHARS,), init=0)


class FusedEnvLoop(EnvLoop):
    """:class:`EnvLoop` that also does the input connection's work: it sends the reservoir's
    synaptic input ``a_out`` (N,) itself instead of the payload, one process fewer per timestep
    on the CPU simulator (each Lava process costs a message round per timestep).

    The arithmetic is Lava's ``Dense`` (its bit-accurate model in fixed point: weights clipped and
    truncated as ``Dense`` does, ``(W·x) << exp``, or ``>> −exp``; graded payloads as ``W·x``,
    binary spikes as the column sum) with ``Dense``'s one-timestep buffer: the input computed
    from timestep ``t``'s payload is sent at ``t + 1``. ``x_out`` stays unconnected. CPU only (a
    host process cannot feed a neurocore's ``a_in`` directly): Loihi runs keep the ``Dense``.

    Extra parameters: ``w_in`` (N, C) and ``w_in_exp`` of the input connection.

    Vars: ``a_buff`` (N,), the buffered input (zeroed with the reservoir between episodes).
    """

    def __init__(self, *, w_in: np.ndarray, w_in_exp: int, **kwargs: ty.Any) -> None:
        w_in = np.asarray(w_in)
        super().__init__(**kwargs)
        self.proc_params.overwrite("w_in", w_in)
        self.proc_params.overwrite("w_in_exp", int(w_in_exp))
        self.a_out = OutPort(shape=(w_in.shape[0],))
        self.a_buff = Var(shape=(w_in.shape[0],), init=0)


class PayloadPlayer(AbstractProcess):
    """Open-loop driver and recorder: sends ``payloads[t]`` at timestep ``t + 1`` (zeros after the
    last row) and stores the spikes received at timestep ``t + 1`` in ``spikes[t]``.

    With one Dense between it and the LIF, the spikes of timestep ``t + 1`` are driven by
    ``payloads[t - 1]`` (nothing at ``t = 0``), exactly as the reference engine's
    ``synaptic_input`` with the previous step's payload.

    Vars
    ----
    payloads : (T, C) the input sequence.
    spikes : (T, N) the recorded spikes (0/1).
    """

    def __init__(self, *, payloads: np.ndarray, n_neurons: int, name: str | None = None,
                 log_config: LogConfig | None = None) -> None:
        payloads = np.asarray(payloads)
        if payloads.ndim != 2:
            raise ValueError(f"payloads must be (T, C), got shape {payloads.shape}")
        super().__init__(name=name, log_config=log_config)
        steps, channels = payloads.shape
        self.x_out = OutPort(shape=(channels,))
        self.s_in = InPort(shape=(int(n_neurons),))
        self.payloads = Var(shape=(steps, channels), init=payloads)
        self.spikes = Var(shape=(steps, int(n_neurons)), init=0)
