"""The agent's sensory encoder and readout, in plain numpy.

These functions are shared verbatim by every backend (the torch reference, the Lava process that
owns the environment, Brian2), so that the only thing a backend contributes is the reservoir's
dynamics. This module imports numpy alone: it runs inside Lava's worker processes.

Encoder (population coding, Gaussian receptive fields): observation dimension ``d`` is tiled by
``M`` centres ``c[d, m]`` with width ``sigma[d]``; channel ``(d, m)`` carries
``x = exp(−(o_d − c[d, m])² / (2·sigma[d]²))`` in [0, 1]. In fixed point the channel sends a graded
spike with 8-bit payload ``floor(255·x + 0.5)``; on chip this is a Dense input layer with
``num_message_bits = 8``.

Change channels (``changes``, optional): the encoder also codes each dimension's change since the
previous environment step, ``o_t − o_{t−1}`` (zero on an episode's first step), as further
dimensions of the same kind (transient channels, as a retina's or an event camera's). The encoder
then holds one previous observation: every caller passes it as ``prev``.

Readout: features are the spike counts of the ``K`` timesteps of one environment step (or their
trace across steps); ``logits = W_out · features + b_out``; the action is the first argmax
(discrete) or ``clip(tanh(logits), −1, 1)`` rescaled to the action box (continuous).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ENCODERS = ("population", "current", "poisson")


@dataclass(frozen=True, eq=False)
class EncoderParams:
    """Centres (D, M) and widths (D,) of the encoder's channels, and its kind.

    * ``population``: Gaussian receptive fields, M per dimension, graded payloads (Loihi 2:
      a Dense input layer with ``num_message_bits = 8``).
    * ``current``: M = 1 centre per dimension (the range's middle) and sigma = half the range;
      two graded channels per dimension carry ``clip(±(o − c)/sigma, 0, 1)`` (direct current
      injection through the same graded Dense input).
    * ``poisson``: the population's receptive-field values become spike probabilities; each
      timestep each channel sends a binary spike with that probability (Loihi: binary spikes
      from the host into a Dense input layer with ``num_message_bits = 0``).
    """

    centers: np.ndarray
    sigma: np.ndarray
    kind: str = "population"
    changes: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ENCODERS:
            raise ValueError(f"unknown encoder kind {self.kind!r}: choose one of "
                             f"{', '.join(ENCODERS)}")
        if self.changes and self.centers.shape[0] % 2:
            raise ValueError("an encoder with change channels codes 2·D dimensions (D observed, "
                             f"D changes); it has {self.centers.shape[0]}")

    @property
    def obs_dim(self) -> int:
        """Observation dimensions D it reads (half its coded dimensions with change channels)."""
        rows = int(self.centers.shape[0])
        return rows // 2 if self.changes else rows

    @property
    def n_channels(self) -> int:
        """Input channels: D·M (population, poisson) or 2·D (current)."""
        return int(2 * self.centers.shape[0] if self.kind == "current" else self.centers.size)

    @property
    def binary(self) -> bool:
        """True when the encoder sends binary spikes (each timestep differs)."""
        return self.kind == "poisson"


def make_encoder(ranges: np.ndarray, per_dim: int, width: float,
                 kind: str = "population", changes: bool = False) -> EncoderParams:
    """Centres evenly spaced over each ``[low, high]`` range; sigma = width · spacing.

    With ``changes`` the ranges are 2·D rows: the D observed dimensions, then their changes."""
    ranges = np.asarray(ranges, dtype=np.float64)
    lo, hi = ranges[:, 0], ranges[:, 1]
    if kind == "current":
        return EncoderParams(centers=((lo + hi) / 2)[:, None], sigma=(hi - lo) / 2, kind=kind,
                             changes=changes)
    frac = np.linspace(0.0, 1.0, per_dim)
    centers = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
    sigma = width * (hi - lo) / (per_dim - 1)
    return EncoderParams(centers=centers, sigma=sigma, kind=kind, changes=changes)


def encoder_for(enc_cfg: object, ranges: np.ndarray) -> EncoderParams:
    """The encoder an ``encoder:`` config section (:class:`neuralalchemy.config.EncoderConfig`)
    builds over ``ranges`` (2·D rows with change channels)."""
    return make_encoder(ranges, enc_cfg.neurons_per_dim, enc_cfg.width,  # type: ignore[attr-defined]
                        enc_cfg.kind, enc_cfg.changes)  # type: ignore[attr-defined]


def coded(obs: np.ndarray, enc: EncoderParams, prev: np.ndarray | None = None) -> np.ndarray:
    """The dimensions the encoder codes: ``obs`` itself, or ``[obs, obs − prev]`` with change
    channels (``prev`` None: an episode's first step, zero change)."""
    obs = np.asarray(obs, dtype=np.float64)
    if not enc.changes:
        return obs
    delta = np.zeros_like(obs) if prev is None else obs - np.asarray(prev, dtype=np.float64)
    return np.concatenate([obs, delta], axis=-1)


def channel_values(obs: np.ndarray, enc: EncoderParams,
                   prev: np.ndarray | None = None) -> np.ndarray:
    """Channel values in [0, 1] of observations ``(..., D)`` -> ``(..., C)``; ``prev``: the
    previous step's observations (read by change channels only)."""
    obs = coded(obs, enc, prev)
    z = (obs[..., :, None] - enc.centers) / enc.sigma[:, None]
    if enc.kind == "current":
        both = np.concatenate([np.clip(z, 0.0, 1.0), np.clip(-z, 0.0, 1.0)], axis=-1)
        return both.reshape(*obs.shape[:-1], -1)
    return np.exp(-0.5 * z * z).reshape(*obs.shape[:-1], -1)


def encode(obs: np.ndarray, enc: EncoderParams, levels: int,
           prev: np.ndarray | None = None) -> np.ndarray:
    """Graded input of observations ``(..., D)`` -> ``(..., C)``.

    ``levels > 1`` gives integer payloads 0..levels (fixed point); 0 gives floats in [0, 1].
    """
    x = channel_values(obs, enc, prev)
    if levels > 1:
        return np.floor(x * levels + 0.5).astype(np.int64)
    return x


def window(obs: np.ndarray, enc: EncoderParams, levels: int, steps: int,
           rng: np.random.Generator | None, prev: np.ndarray | None = None) -> np.ndarray:
    """The input of each of the ``steps`` timesteps of one environment step: ``(steps, ..., C)``.

    ``prev``: the observations of the previous environment step, None on an episode's first
    (read by change channels only).

    Graded encoders repeat one payload; the Poisson encoder draws ``rng.random((steps, ..., C))``
    and spikes where the draw is below the channel value (ints 0/1 in fixed point, floats in
    float), so every backend given the same generator sends the same spikes.
    """
    if not enc.binary:
        payload = encode(obs, enc, levels, prev)
        return np.broadcast_to(payload, (steps, *payload.shape))
    if rng is None:
        raise ValueError("the poisson encoder needs a random generator")
    x = channel_values(obs, enc, prev)
    spikes = rng.random((steps, *x.shape)) < x
    return spikes.astype(np.int64 if levels else np.float64)


def episode_rng(seed: int) -> np.random.Generator:
    """The encoder's generator for the episode with this seed (identical on every backend)."""
    return np.random.default_rng([int(seed), 0x5EED])


@dataclass(frozen=True, eq=False)
class ReadoutParams:
    """Linear readout ``logits = w · features + b``; ``trace_decay`` 0 means raw counts.

    ``action_low``/``action_high`` are set for continuous (Box) actions, empty for discrete.
    """

    w: np.ndarray
    b: np.ndarray
    trace_decay: float
    action_low: np.ndarray
    action_high: np.ndarray

    @property
    def discrete(self) -> bool:
        """True for a Discrete action space."""
        return self.action_low.size == 0


def update_features(trace: np.ndarray, counts: np.ndarray, decay: float) -> np.ndarray:
    """Features of this environment step from the previous trace and this step's counts."""
    if decay == 0.0:
        return counts.astype(np.float64)
    return decay * trace + counts


def raster_features(raster: np.ndarray, steps_per_obs: int, decay: float) -> np.ndarray:
    """Readout features per input step from a recorded raster (T, N): step ``i``'s spike counts
    are rows ``1 + iK … (i + 1)K`` (``K = steps_per_obs``; row 0 is the engine's rest step),
    then :func:`update_features` step by step."""
    k = max(int(steps_per_obs), 1)
    steps = (raster.shape[0] - 1) // k
    counts = raster[1:1 + steps * k].reshape(steps, k, -1).sum(axis=1).astype(np.float64)
    if decay == 0.0:
        return counts
    out = np.empty_like(counts)
    trace = np.zeros(raster.shape[1])
    for i in range(steps):
        trace = out[i] = update_features(trace, counts[i], decay)
    return out


def select_action(logits: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """First argmax when ``low`` is empty (discrete), else ``tanh`` rescaled to ``[low, high]``."""
    if low.size == 0:
        return np.argmax(logits, axis=-1)
    return low + (np.tanh(logits) + 1.0) * 0.5 * (high - low)


def act(features: np.ndarray, ro: ReadoutParams) -> np.ndarray:
    """Actions for features ``(..., F)``: int indices (discrete) or floats in the box."""
    return select_action(features @ ro.w.T + ro.b, ro.action_low, ro.action_high)


@dataclass(frozen=True, eq=False)
class DeployedAgent:
    """A compiled agent as every backend sees it: network, encoder, readout and timing.

    ``network`` is a :class:`neuralalchemy.network.NetworkParams` (kept untyped here so this module
    imports numpy alone).
    """

    env_id: str
    network: object
    encoder: EncoderParams
    readout: ReadoutParams
    steps_per_obs: int

    def payload(self, obs: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
        """Encoded input of one observation (graded payloads in fixed point)."""
        return encode(obs, self.encoder, int(self.network.payload_levels),  # type: ignore[attr-defined]
                      prev)

    def window(self, obs: np.ndarray, rng: np.random.Generator | None,
               prev: np.ndarray | None = None) -> np.ndarray:
        """Input of each timestep of one environment step, (K, C); ``prev``: the previous
        step's observation (None on an episode's first step)."""
        levels = int(self.network.payload_levels)  # type: ignore[attr-defined]
        return window(obs, self.encoder, levels, self.steps_per_obs, rng, prev)
