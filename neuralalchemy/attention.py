"""Attention over input channels: one learned positive gain per channel, compiled into ``W_in``.

The gains ``g ∈ (0, ∞)^C`` scale the input current channel by channel::

    a[t] = W_in · diag(g) · x[t-1] + W_rec · s[t-1]

They are learned in log space (``g = exp(ℓ)``, ``ℓ = 0`` at the start, so ``g = 1`` leaves the
network exactly as drawn) by :func:`neuralalchemy.learners.surrogate.fit_backprop`, and folded
into the input weights before compilation: ``W_in' = W_in · diag(g)``. The compiled network has
no extra process and no extra timestep.

On Loihi 2 the input connection is one Dense process with 8-bit weight mantissas and one shared
exponent ``e`` (:func:`neuralalchemy.network.quantize_matrix`)::

    w_q[i, c]·2^e ≈ S·w_in[i, c]·g_c / (64·255)

so a gain is a per-column scaling of the mantissas under the shared exponent. The exponent is set
by the largest ``|w_in·g|``: a column with gain ``g_c`` keeps about ``8 + log2(g_c/g_max)`` bits
(7 for mixed-sign matrices), and a column whose gain falls below about half a mantissa step of
the strongest column rounds to zero: the channel is pruned on chip. :func:`realised_gains` reads
the gains back from the quantized mantissas, which is how the tests check that they survive.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neuralalchemy.network import PAYLOAD_LEVELS, NetworkParams


def fold_gains(network: NetworkParams, gains: np.ndarray) -> NetworkParams:
    """The float network with ``W_in · diag(gains)`` as its input weights (gains > 0)."""
    gains = np.asarray(gains, dtype=np.float64)
    if network.precision != "float":
        raise ValueError("fold_gains expects a float network (fold before quantize_network)")
    if gains.shape != (network.n_inputs,):
        raise ValueError(f"gains must be ({network.n_inputs},), got {gains.shape}")
    if not np.all(np.isfinite(gains)) or np.any(gains <= 0):
        raise ValueError("gains must be finite and positive")
    return dataclasses.replace(network, w_in=network.w_in * gains[None, :])


def realised_gains(fixed: NetworkParams, reference: NetworkParams) -> np.ndarray:
    """Per-channel gains that a fixed-point network's input weights realise relative to the float
    input weights ``reference.w_in`` (before folding): ``Σ_i |w_fixed[i, c]| / Σ_i |w_ref[i, c]|``
    with ``w_fixed`` the dequantized mantissas in float units (threshold ``reference.vth``).
    Channels with no input synapse give NaN."""
    if fixed.precision != "fixed" or reference.precision != "float":
        raise ValueError("realised_gains expects a fixed network and its float reference")
    levels = PAYLOAD_LEVELS if fixed.payload_levels > 1 else 1
    unit = fixed.vth * 64.0 / reference.vth  # voltage units per float unit
    w = fixed.w_in.astype(np.float64) * 2.0**fixed.w_in_exp * 64.0 * levels / unit
    ref = np.abs(reference.w_in).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ref > 0, np.abs(w).sum(axis=0) / ref, np.nan)
