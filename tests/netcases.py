"""Inputs and network variants shared by the equivalence tests (Lava, Brian2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from neuralalchemy.network import NetworkParams


def random_payloads(net: NetworkParams, steps: int, seed: int) -> np.ndarray:
    """Sparse random payloads: 0..255 integers in fixed point, [0, 1] floats in float."""
    rng = np.random.default_rng(seed)
    x = rng.random((steps, net.n_inputs)) * (rng.random((steps, net.n_inputs)) < 0.5)
    return np.floor(255 * x + 0.5).astype(np.int64) if net.precision == "fixed" else x


def as_sparse(net: NetworkParams) -> NetworkParams:
    """The same network with CSR recurrent weights (and delays on the same entries)."""
    w = sp.csr_matrix(net.w_rec)
    delays = None
    if net.delays is not None:
        rows = np.repeat(np.arange(w.shape[0]), np.diff(w.indptr))
        delays = w.copy()
        delays.data = np.asarray(net.delays)[rows, w.indices].astype(np.int64)
    return dataclasses.replace(net, w_rec=w, delays=delays)
