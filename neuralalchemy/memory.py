"""Bistable memory units: flip-flops of LIF clusters, built of ordinary weights only.

A memory unit is four groups of ``k = memory_size`` neurons appended after the reservoir's layers
in the same LIF population (same ``du``, ``dv``, ``vth``, refractory period ``R``): a ``+`` and a
``−`` cluster, and a reset gate for each. Everything that makes them remember is in ``W_rec``,
``W_in`` and ``bias``:

* **recurrent excitation** inside a cluster, all to all without self-loops, ``g/(k−1)`` per
  synapse (``g = memory_gain·vth``): once the cluster fires, each member receives ``g`` per
  volley, enough to fire again when its refractory period ends; the cluster stays on
  (persistent activity, an attractor) with no input;
* **cues**: unit ``j`` listens to input channels ``c₊ = 2j mod C`` and ``c₋ = 2j+1 mod C`` (the
  above/below-centre channels of observation dimension ``j`` under the ``current`` encoder).
  ``c₊`` drives the ``+`` cluster and the gate of the ``−`` cluster, ``c₋`` the reverse, each
  with weight ``s = memory_input_scale·vth`` per unit of channel value;
* **reset gates**: a gate neuron inhibits every neuron of the cluster it resets with
  ``−h/k`` (``h = memory_inhibition·vth``). A gate has no recurrence: it fires only while its
  cue is present, so a ``+`` cue sets the ``+`` cluster and silences the ``−`` one, and the
  reverse; the set and the reset do not compete (direct mutual inhibition between the clusters
  would let the active cluster block its partner's ignition). The clusters are excitatory and
  the gates inhibitory (Dale's law holds);
* **a cue threshold**: the bias ``b = memory_bias·vth < 0`` keeps distractor input from
  igniting a cluster or a gate. A channel value ``x`` held for good drives ``u → s·x/du`` and
  ``v → (u + b)/dv``, so ``x ≤ (dv·vth − b)·du/s`` never fires (0.53 at the defaults), while a
  cue of 1 fires a cluster in its third timestep.

Why it holds. A cluster that fires at step ``t`` delivers ``g`` at ``t+1`` to each member, whose
``v`` is held at 0 until ``t+R``; ``u`` decays meanwhile. Firing every ``R+1`` steps, ``u`` just
after a volley is ``U = g/(1 − (1−du)^(R+1))`` and at the first free step
``v = U·(1−du)^R + b``: at the defaults (``g = 6.5``, ``R = 2``, ``du = 1/2``, ``b = −0.6``)
``U = 7.4``, ``v = 1.26·vth``, so the cluster refires at the refractory limit indefinitely
(measured: ``u`` cycles 7.5, 3.7, 1.9 in fixed point). A gate volley (``−h`` into ``u``)
outweighs it. The memory neurons receive no reservoir synapses, so reservoir activity cannot
erase them; the reservoir does not listen to them; a linear readout reads them like any other
neuron. Limits:
cues must be at least three input steps apart (a gate's inhibition hyperpolarises the cluster it
resets for a few steps after its cue), and ``R``, ``du``, ``dv`` are the reservoir's, so other
neuron constants need other ``g``, ``h``, ``b``.

Fixed point. The weights are ordinary ``w_rec``/``w_in``/``bias`` entries and quantize with the
reservoir's shared exponents (:func:`neuralalchemy.network.quantize_network`). The per-synapse
magnitudes ``g/(k−1)`` (0.59), ``h/k`` (0.42) and ``s`` (0.8) stay within the mantissa range the
reservoir's own largest weights already set (0.99·vth for ``w_rec`` and ``w_in`` at 256 neurons,
whose largest weights are 0.58 and 0.8), so the exponents do not change and the reservoir loses
no precision; a larger ``k`` lowers the per-synapse weights at the same gain. Memory synapses
carry no extra delay.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from neuralalchemy.config import ReservoirConfig

GROUPS = 4
"""Groups of ``memory_size`` neurons per unit: ``+`` cluster, ``−`` cluster, ``+`` reset gate
(inhibits the ``+`` cluster, driven by ``c₋``), ``−`` reset gate (driven by ``c₊``)."""


def memory_neurons(cfg: ReservoirConfig) -> int:
    """Neurons the memory units add: ``4·memory_units·memory_size``."""
    return GROUPS * cfg.memory_units * cfg.memory_size


def cluster_slices(cfg: ReservoirConfig, unit: int) -> tuple[slice, slice]:
    """Indices of unit ``unit``'s ``+`` and ``−`` clusters in the whole population."""
    if not 0 <= unit < cfg.memory_units:
        raise ValueError(f"unit must be in 0..{cfg.memory_units - 1}, got {unit}")
    k = cfg.memory_size
    start = cfg.size * cfg.layers + GROUPS * unit * k
    return slice(start, start + k), slice(start + k, start + 2 * k)


def cue_channels(unit: int, n_inputs: int) -> tuple[int, int]:
    """Input channels ``(c₊, c₋)`` that set and reset unit ``unit``."""
    return (2 * unit) % n_inputs, (2 * unit + 1) % n_inputs


def memory_recurrent(cfg: ReservoirConfig) -> sp.csr_matrix:
    """Recurrent weights among the memory neurons (``post, pre``), float (threshold ``vth``)."""
    k, units = cfg.memory_size, cfg.memory_units
    own = np.full((k, k), cfg.memory_gain * cfg.vth / (k - 1))
    np.fill_diagonal(own, 0.0)
    gate = np.full((k, k), -cfg.memory_inhibition * cfg.vth / k)
    zero = np.zeros((k, k))
    unit = np.block([[own, zero, gate, zero],  # rows: post; columns: pre
                     [zero, own, zero, gate],
                     [zero, zero, zero, zero],
                     [zero, zero, zero, zero]])
    return sp.csr_matrix(sp.block_diag([unit] * units, format="csr"))


def memory_input(cfg: ReservoirConfig, n_inputs: int) -> np.ndarray:
    """Input weights of the memory neurons ``(4·units·k, C)``: each cue channel drives its own
    cluster and the gate that resets the partner."""
    if n_inputs < 2:
        raise ValueError("memory units need at least 2 input channels (a set and a reset cue)")
    k, scale = cfg.memory_size, cfg.memory_input_scale * cfg.vth
    w = np.zeros((memory_neurons(cfg), n_inputs))
    for j in range(cfg.memory_units):
        plus, minus = cue_channels(j, n_inputs)
        base = GROUPS * j * k
        for group, channel in enumerate((plus, minus, minus, plus)):
            w[base + group * k:base + (group + 1) * k, channel] = scale
    return w


def append_memory(cfg: ReservoirConfig, w_rec: sp.csr_matrix, delays: sp.csr_matrix | None,
                  w_in: np.ndarray, bias: np.ndarray
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix | None, np.ndarray, np.ndarray]:
    """The reservoir's ``(w_rec, delays, w_in, bias)`` with the memory neurons appended.

    The reservoir's entries keep their values and (CSR) order; the memory block sits on the
    diagonal after them, with delays stored as explicit zeros on the same entries.
    """
    mem = memory_recurrent(cfg)
    w_rec = sp.csr_matrix(w_rec)
    new_rec = sp.csr_matrix(sp.block_diag([w_rec, mem], format="csr"))
    new_rec.sort_indices()
    new_delays = None
    if delays is not None:
        from neuralalchemy.network import delays_like  # network imports this module
        old = delays_like(w_rec, delays)
        new_delays = new_rec.copy()
        new_delays.data = np.concatenate(
            [old.data, np.zeros(mem.nnz, dtype=old.data.dtype)]).astype(np.int64)
    new_in = np.vstack([w_in, memory_input(cfg, w_in.shape[1])])
    new_bias = np.concatenate([bias, np.full(memory_neurons(cfg), cfg.memory_bias * cfg.vth)])
    return new_rec, new_delays, new_in, new_bias
