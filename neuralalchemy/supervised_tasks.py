"""Supervised reservoir tasks, generated in code from a seed (nothing is downloaded).

Every generator is a pure function of its arguments and a seed; a :class:`SeriesTask` is one
continuous input stream ``u`` (T, D) with its targets ``y`` (T, O), cut into washout, training and
test rows; a :class:`SequenceTask` is a set of short independent sequences with class labels.

* **NARMA-10** (Atiya & Parlos 2000): ``u(t) ~ U[0, 0.5]`` i.i.d. and
  ``y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=0..9} y(t−i) + 1.5·u(t−9)·u(t) + 0.1``; the readout at
  step ``t`` (having seen ``u(0..t)``) predicts ``y(t+1)``.
* **Mackey-Glass** (tau = 17): ``dx/dt = 0.2·x(t−tau)/(1 + x(t−tau)^10) − 0.1·x(t)``, integrated
  by RK4 with step 0.1 (the delayed value at half steps is the mean of its grid neighbours) and
  sampled every time unit, the first 1000 units discarded; the series is scaled to [−1, 1] and
  the task is to predict ``x(t + horizon)`` from ``x(0..t)``.
* **Memory capacity** (Jaeger 2001): ``u(t) ~ U[−1, 1]`` i.i.d.; output ``k`` reconstructs
  ``u(t−k)``, ``k = 1..kmax``; ``MC = Σ_k r²(u(t−k), ŷ_k(t))`` on test rows.
* **Digits**: scikit-learn's ``load_digits`` (1797 8×8 images shipped with the package), each
  image presented row by row: 8 input steps of 8 graded channels (pixel / 16).
* **Delayed recall**: cues ±1 arrive at random times, ``delay + 1`` to ``2·delay + 1`` steps apart,
  with silence (0) between; the target is the most recent cue, scored ``delay`` steps after each cue
  (just before the next one can arrive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NARMA_ORDER = 10
MG_TAU, MG_A, MG_B, MG_N = 17.0, 0.2, 0.1, 10
MG_DT, MG_SUBSAMPLE, MG_DISCARD = 0.1, 10, 1000


@dataclass(frozen=True, eq=False)
class SeriesTask:
    """One input stream and its targets: rows ``[washout, washout+train)`` train the readout,
    rows ``[washout+train, T)`` test it.

    ``kind`` is ``"regression"`` (NRMSE), ``"memory"`` (memory capacity) or ``"recall"``
    (sign accuracy on the rows in ``score_rows``). ``input_range`` is the [low, high] of each
    input dimension (the encoder's range).
    """

    name: str
    kind: str
    u: np.ndarray
    y: np.ndarray
    washout: int
    train: int
    input_range: np.ndarray
    score_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.u.ndim != 2 or self.y.ndim != 2 or len(self.u) != len(self.y):
            raise ValueError(f"u and y must be (T, D) and (T, O), got {self.u.shape}, "
                             f"{self.y.shape}")
        if self.washout + self.train >= len(self.u):
            raise ValueError("washout + train leaves no test rows")

    @property
    def train_rows(self) -> slice:
        """Rows of the training states."""
        return slice(self.washout, self.washout + self.train)

    @property
    def test_rows(self) -> slice:
        """Rows of the test states."""
        return slice(self.washout + self.train, len(self.u))


@dataclass(frozen=True, eq=False)
class SequenceTask:
    """Independent sequences ``x`` (n, L, C) with channel values in [0, 1] and labels (n,); the
    first ``train`` sequences train the readout, the rest test it."""

    name: str
    x: np.ndarray
    labels: np.ndarray
    train: int
    classes: int

    kind = "classification"


# ---------------------------------------------------------------- generators
def narma(u: np.ndarray, order: int = NARMA_ORDER) -> np.ndarray:
    """NARMA target of an input ``u`` (T,): ``y[t]`` is the value predicted at step ``t``, i.e.
    ``y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i<order} y(t−i) + 1.5·u(t−order+1)·u(t) + 0.1`` with the
    internal series starting at zero."""
    t_len = len(u)
    s = np.zeros(t_len + 1)
    for t in range(t_len):
        past = s[max(0, t - order + 1):t + 1]
        u_old = u[t - order + 1] if t >= order - 1 else 0.0
        s[t + 1] = 0.3 * s[t] + 0.05 * s[t] * past.sum() + 1.5 * u_old * u[t] + 0.1
    if not np.all(np.isfinite(s)):
        raise ValueError("NARMA diverged; draw another seed")
    return s[1:]


def narma10(length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Input ``u ~ U[0, 0.5]`` (length,) and NARMA-10 targets (length,)."""
    u = np.random.default_rng([seed, 10]).uniform(0.0, 0.5, length)
    return u, narma(u)


def _mg_rate(x: float, x_tau: float) -> float:
    return MG_A * x_tau / (1.0 + x_tau**MG_N) - MG_B * x


def mackey_glass(length: int, seed: int, tau: float = MG_TAU) -> np.ndarray:
    """Mackey-Glass series sampled every time unit (length,), after ``MG_DISCARD`` units.

    RK4 with step ``MG_DT``; the history before t = 0 is ``1.2 + 0.2·(U[0,1) − 0.5)``."""
    lag = int(round(tau / MG_DT))
    steps = (length + MG_DISCARD) * MG_SUBSAMPLE
    rng = np.random.default_rng([seed, 17])
    x = np.empty(lag + steps + 1)
    x[:lag + 1] = 1.2 + 0.2 * (rng.random(lag + 1) - 0.5)
    h = MG_DT
    for i in range(lag, lag + steps):
        d0, d1 = x[i - lag], x[i - lag + 1]
        dm = 0.5 * (d0 + d1)
        xi = x[i]
        k1 = _mg_rate(xi, d0)
        k2 = _mg_rate(xi + 0.5 * h * k1, dm)
        k3 = _mg_rate(xi + 0.5 * h * k2, dm)
        k4 = _mg_rate(xi + h * k3, d1)
        x[i + 1] = xi + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
    series = x[lag + 1:][::MG_SUBSAMPLE]
    return series[MG_DISCARD:MG_DISCARD + length]


def delayed(u: np.ndarray, max_delay: int) -> np.ndarray:
    """Columns ``k-1`` = ``u(t−k)`` for ``k = 1..max_delay`` (zeros before the start)."""
    out = np.zeros((len(u), max_delay))
    for k in range(1, max_delay + 1):
        out[k:, k - 1] = u[:-k]
    return out


def recall_stream(length: int, delay: int, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Cue stream (length,), target = the last cue (length,), and the recall rows (cue time +
    ``delay``). Gaps between cues are uniform in ``delay+1..2·delay+1``."""
    rng = np.random.default_rng([seed, 31])
    u, y = np.zeros(length), np.zeros(length)
    times = []
    t = int(rng.integers(0, delay))
    while t < length:
        times.append(t)
        t += int(rng.integers(delay + 1, 2 * delay + 2))
    times_a = np.asarray(times)
    u[times_a] = rng.choice([-1.0, 1.0], size=times_a.size)
    last = 0.0
    for i in range(length):
        last = u[i] if u[i] != 0 else last
        y[i] = last
    recall = times_a + delay
    return u, y, recall[recall < length]


def digits(seed: int, test_fraction: float = 0.2) -> SequenceTask:
    """scikit-learn's 8×8 digits as 8 rows of 8 channels in [0, 1], shuffled by ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the digits task needs scikit-learn: pip install scikit-learn") \
            from exc
    data = load_digits()
    images = np.asarray(data.images, dtype=np.float64) / 16.0
    labels = np.asarray(data.target, dtype=np.int64)
    order = np.random.default_rng([seed, 8]).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    return SequenceTask("digits", images[order], labels[order], len(labels) - n_test, 10)


# ---------------------------------------------------------------- tasks from settings
def series_task(name: str, train: int, test: int, washout: int, seed: int, *,
                horizon: int = 1, max_delay: int = 200, delay: int = 30) -> SeriesTask:
    """The named series task with ``washout + train + test`` rows."""
    total = washout + train + test
    if name == "narma10":
        u, y = narma10(total, seed)
        return SeriesTask(name, "regression", u[:, None], y[:, None], washout, train,
                          np.array([[0.0, 0.5]]))
    if name == "mackey_glass":
        x = mackey_glass(total + horizon, seed)
        lo, hi = x[:washout + train].min(), x[:washout + train].max()
        x = 2.0 * (x - lo) / (hi - lo) - 1.0
        return SeriesTask(name, "regression", x[:total, None], x[horizon:, None], washout, train,
                          np.array([[-1.0, 1.0]]))
    if name == "memory_capacity":
        u = np.random.default_rng([seed, 1]).uniform(-1.0, 1.0, total)
        return SeriesTask(name, "memory", u[:, None], delayed(u, max_delay),
                          max(washout, max_delay), train - max(0, max_delay - washout),
                          np.array([[-1.0, 1.0]]))
    if name == "delayed_recall":
        u, y, recall = recall_stream(total, delay, seed)
        return SeriesTask(name, "recall", u[:, None], y[:, None], washout, train,
                          np.array([[-1.0, 1.0]]), score_rows=recall)
    raise ValueError(f"{name!r} is not a series task")


SERIES_TASKS = ("narma10", "mackey_glass", "memory_capacity", "delayed_recall")
SEQUENCE_TASKS = ("digits",)
