"""Inputs and network variants shared by the equivalence tests (Lava, Brian2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from neuralalchemy.network import NetworkParams

CARTPOLE_RANGES = "encoder.ranges=[[-2.4, 2.4], [-3.0, 3.0], [-0.21, 0.21], [-3.5, 3.5]]"
"""A ``--set`` override with explicit CartPole encoder ranges (no calibration episodes)."""


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


def reservoir_specs(max_size: int, **extra: Any) -> Any:
    """Hypothesis strategy of random :class:`ReservoirConfig` specs (sizes 6..``max_size``):
    the dynamics every equivalence test varies, plus ``extra`` field strategies."""
    from hypothesis import strategies as st

    from neuralalchemy.config import ReservoirConfig

    return st.builds(
        ReservoirConfig,
        size=st.integers(6, max_size),
        connectivity=st.floats(0.05, 0.6),
        spectral_radius=st.floats(0.0, 4.0),
        input_scale=st.floats(0.2, 60.0),
        du=st.floats(0.0, 1.0),
        dv=st.floats(0.0, 1.0),
        bias=st.floats(-1.0, 1.5),
        delay_max=st.sampled_from([0, 0, 2, 5]),
        seed=st.integers(0, 2**31 - 1),
        **extra,
    )


BRIAN2_PYPARSING = pytest.mark.filterwarnings(
    "ignore:'(setResultsName|parseString|scanString|parseAll)' (argument is )?deprecated"
    ":DeprecationWarning")
"""brian2 2.9's parsers use pyparsing's deprecated camelCase API (at import and when parsing
model strings); pyparsing 3.3 warns on each call."""
