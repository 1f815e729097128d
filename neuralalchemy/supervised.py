"""``alchemy train --task NAME``: supervised reservoir tasks on the project's LIF reservoir.

The reservoir is the one every backend runs (:class:`neuralalchemy.engine.Reservoir`, in the
configured precision: fixed point is what runs on Loihi). Each input step is encoded (series: the
encoder of ``cfg.encoder`` over the task's input range; digits: one graded channel per pixel
column) and held for ``K = reservoir.steps_per_obs`` timesteps. Features of an input step are the
spike counts of its K timesteps, or with ``readout.features = trace`` the trace
``f(t) = trace_decay·f(t−1) + counts(t)``.

Readouts, on features standardised with the training rows' mean and std:

* ridge regression (series tasks), closed form with a bias::

      w = argmin (1/T)·|X·w + b − Y|² + λ·|w|²   →   (XᵀX/T + λ·I)·w = XᵀY/T   (X centred)

* softmax (digits): multinomial logistic regression, ``p = softmax(W·x + b)``, trained by
  L-BFGS on the mean cross-entropy + λ·‖W‖².

Metrics: ``NRMSE = RMSE / std(y_test)``, memory capacity ``MC = Σ_k r²(u(t−k), ŷ_k(t))`` (test
rows), accuracy. A run folder holds ``config.yaml``, ``provenance.json``, ``metrics.jsonl``,
``summary.json`` and ``checkpoint.npz`` (network + readout, :func:`save_task_checkpoint`).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralalchemy.agent_io import (
    EncoderParams,
    channel_values,
    encode,
    make_encoder,
    update_features,
)
from neuralalchemy.config import Config, ConfigError
from neuralalchemy.engine import Reservoir
from neuralalchemy.fsio import atomic_write_bytes, atomic_write_json
from neuralalchemy.network import PAYLOAD_LEVELS, NetworkParams, build_network, quantize_network
from neuralalchemy.records import MetricsLog, new_run_dir, write_provenance
from neuralalchemy.supervised_tasks import (
    SEQUENCE_TASKS,
    SERIES_TASKS,
    SequenceTask,
    SeriesTask,
    digits,
    series_task,
)

CHECKPOINT_NAME = "checkpoint.npz"
SUMMARY_NAME = "summary.json"
METRICS_NAME = "metrics.jsonl"
RIDGE_GRID = tuple(10.0**e for e in range(-8, 3))
METRIC_OF = {"regression": "nrmse", "memory": "memory_capacity", "recall": "accuracy",
             "classification": "accuracy"}


# ---------------------------------------------------------------- task and encoding
def make_task(cfg: Config) -> SeriesTask | SequenceTask:
    """The configured task's data (deterministic from ``task.seed``)."""
    t = cfg.task
    if t.name in SEQUENCE_TASKS:
        return digits(t.seed)
    if t.name not in SERIES_TASKS:
        raise ConfigError(f"task.name: {t.name!r} is not a supervised task; choose one of "
                          f"{', '.join(SERIES_TASKS + SEQUENCE_TASKS)}")
    max_delay = t.max_delay or 2 * cfg.reservoir.size * cfg.reservoir.layers
    if t.name == "memory_capacity" and max_delay >= t.train_length // 2:
        raise ConfigError(f"task.max_delay: {max_delay} delays need task.train_length > "
                          f"{2 * max_delay}; raise train_length or lower max_delay")
    return series_task(t.name, t.train_length, t.test_length, t.washout, t.seed,
                       horizon=t.horizon, max_delay=max_delay, delay=t.delay)


def series_encoder(cfg: Config, task: SeriesTask) -> EncoderParams:
    """The configured encoder over the task's input range (graded: population or current)."""
    if cfg.encoder.changes:
        raise ConfigError("encoder.changes is for environments (it codes each step's change); "
                          "supervised tasks code the series itself: set encoder.changes=false")
    if cfg.encoder.kind == "poisson":
        raise ConfigError("encoder.kind: 'poisson' is not available for supervised tasks; use "
                          "'population' or 'current'")
    return make_encoder(task.input_range, cfg.encoder.neurons_per_dim, cfg.encoder.width,
                        cfg.encoder.kind)


def task_network(cfg: Config, n_inputs: int) -> NetworkParams:
    """The reservoir of ``cfg.reservoir`` for ``n_inputs`` graded channels."""
    return build_network(cfg.reservoir, n_inputs)


def payload(values: np.ndarray, network: NetworkParams) -> np.ndarray:
    """Channel values in [0, 1] as the network's input: 8-bit payloads in fixed point."""
    if network.payload_levels > 1:
        return np.floor(values * PAYLOAD_LEVELS + 0.5).astype(np.int64)
    return np.asarray(values, dtype=np.float64)


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.int64 if x.dtype.kind == "i" else torch.float64)


# ---------------------------------------------------------------- reservoir states
def series_states(network: NetworkParams, inputs: np.ndarray, steps: int, decay: float = 0.0,
                  lanes: int = 1, warmup: int = 0, progress: bool = False) -> np.ndarray:
    """Features (T, N) of one input stream ``inputs`` (T, C), each row held ``steps`` timesteps.

    With ``lanes`` > 1 the stream is cut into that many consecutive pieces that run side by side
    as a batch; each piece first runs on the ``warmup`` inputs before it (their states are
    dropped), so its state has forgotten the zero start as the continuous run has.
    """
    t_len = len(inputs)
    lanes = max(1, min(lanes, t_len))
    piece = -(-t_len // lanes)
    starts = np.arange(lanes) * piece
    lead = np.minimum(starts, warmup)
    length = piece + int(lead.max())
    index = np.clip(starts[:, None] - lead[:, None] + np.arange(length)[None, :], 0, t_len - 1)
    x = _tensor(inputs[index.T])  # (length, lanes, C)
    res = Reservoir(network, lanes)
    res.reset()
    feats = np.zeros((length, lanes, network.size))
    trace = np.zeros((lanes, network.size))
    with _Bar(progress, "reservoir", length) as (bar, job):
        for i in range(length):
            counts = res.run(x[i], steps).numpy()
            trace = update_features(trace, counts, decay)
            feats[i] = trace
            if i % 50 == 0 or i == length - 1:
                bar.update(job, completed=i + 1)
    out = np.zeros((t_len, network.size))
    for b in range(lanes):
        rows = np.arange(starts[b], min(starts[b] + piece, t_len))
        out[rows] = feats[lead[b] + rows - starts[b], b]
    return out


def sequence_states(network: NetworkParams, inputs: np.ndarray, steps: int,
                    decay: float = 0.0, batch: int = 512, progress: bool = False) -> np.ndarray:
    """Features (n, L·N) of independent sequences ``inputs`` (n, L, C): the reservoir is reset
    before each sequence; the features of its L input steps are concatenated."""
    n, length = inputs.shape[:2]
    out = np.zeros((n, length, network.size))
    with _Bar(progress, "reservoir", n) as (bar, job):
        for lo in range(0, n, batch):
            x = _tensor(inputs[lo:lo + batch])
            res = Reservoir(network, len(x))
            res.reset()
            trace = np.zeros((len(x), network.size))
            for i in range(length):
                trace = update_features(trace, res.run(x[:, i], steps).numpy(), decay)
                out[lo:lo + len(x), i] = trace
            bar.update(job, completed=min(n, lo + batch))
    return out.reshape(n, -1)


class _Bar:
    """A rich progress bar (a no-op when disabled)."""

    def __init__(self, enabled: bool, label: str, total: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        self.progress = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 disable=not enabled, transient=True)
        self.total = total

    def __enter__(self) -> tuple[Any, Any]:
        self.progress.__enter__()
        return self.progress, self.progress.add_task("run", total=self.total)

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


# ---------------------------------------------------------------- readouts
@dataclass(frozen=True, eq=False)
class LinearReadout:
    """``y = w · (x − mean)/std + b``: ridge regression (``kind='ridge'``) or softmax logits."""

    w: np.ndarray  # (O, F)
    b: np.ndarray  # (O,)
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    kind: str = "ridge"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs (regression) or logits (softmax) of features ``x`` (T, F)."""
        return ((x - self.mean) / self.std) @ self.w.T + self.b


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (x - mean) / std, mean, std


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> LinearReadout:
    """Closed-form ridge regression with bias on standardised features (module docstring)."""
    y = y.reshape(len(y), -1)
    z, mean, std = _standardise(x)
    zc = z - z.mean(axis=0)
    ym = y.mean(axis=0)
    gram = zc.T @ zc / len(z) + ridge * np.eye(z.shape[1])
    w = np.linalg.solve(gram + 1e-12 * np.eye(len(gram)), zc.T @ (y - ym) / len(z)).T
    b = ym - w @ z.mean(axis=0)
    return LinearReadout(w, b, mean, std)


def select_ridge(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID,
                 holdout: float = 0.2) -> float:
    """The penalty of ``grid`` with the least squared error on the last ``holdout`` of the rows
    (the readout fitted on the rows before them)."""
    cut = int(len(x) * (1.0 - holdout))
    errors = [float(np.mean((fit_ridge(x[:cut], y[:cut], lam)(x[cut:]) -
                             y[cut:].reshape(len(y) - cut, -1)) ** 2)) for lam in grid]
    return grid[int(np.argmin(errors))]


def fit_softmax(x: np.ndarray, labels: np.ndarray, classes: int, l2: float,
                iterations: int = 200) -> LinearReadout:
    """Multinomial logistic regression by L-BFGS: mean cross-entropy + ``l2``·‖W‖²."""
    from neuralalchemy.learners.optim import softmax_lbfgs

    z, mean, std = _standardise(x)
    w, b = softmax_lbfgs(z, labels, classes, l2, iterations)
    return LinearReadout(w, b, mean, std, kind="softmax")


# ---------------------------------------------------------------- metrics
def nrmse(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Root-mean-square error divided by the standard deviation of ``y``."""
    y, y_hat = np.ravel(y), np.ravel(y_hat)
    return float(np.sqrt(np.mean((y - y_hat) ** 2)) / np.std(y))


def capacity_curve(targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Squared correlation r²(target_k, output_k) per column (0 for a constant column)."""
    tc = targets - targets.mean(axis=0)
    oc = outputs - outputs.mean(axis=0)
    den = np.sqrt((tc**2).sum(axis=0) * (oc**2).sum(axis=0))
    r = np.divide((tc * oc).sum(axis=0), den, out=np.zeros(den.shape), where=den > 0)
    return r**2


def memory_capacity(targets: np.ndarray, outputs: np.ndarray) -> float:
    """``MC = Σ_k r²(u(t−k), ŷ_k(t))``."""
    return float(capacity_curve(targets, outputs).sum())


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of equal entries."""
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


# ---------------------------------------------------------------- fitting on states
def evaluate_series(task: SeriesTask, feats: np.ndarray, ridge: float,
                    choose_ridge: bool = False) -> tuple[dict[str, Any], LinearReadout]:
    """Fit a ridge readout on the training rows of ``feats`` (T, F); metrics on the test rows."""
    x_tr, y_tr = feats[task.train_rows], task.y[task.train_rows]
    lam = select_ridge(x_tr, y_tr) if choose_ridge else ridge
    ro = fit_ridge(x_tr, y_tr, lam)
    metrics = {"ridge": lam, **_series_metrics(task, task.y[task.test_rows],
                                                ro(feats[task.test_rows]))}
    if task.kind == "regression":
        metrics["train_nrmse"] = nrmse(y_tr, ro(x_tr))
    return metrics, ro


def _series_metrics(task: SeriesTask, y_te: np.ndarray, y_hat: np.ndarray) -> dict[str, Any]:
    """Test metrics of a series task from its test targets and outputs."""
    if task.kind == "regression":
        return {"nrmse": nrmse(y_te, y_hat)}
    if task.kind == "memory":
        curve = capacity_curve(y_te, y_hat)
        return {"memory_capacity": float(curve.sum()), "capacity_curve": curve.tolist()}
    assert task.score_rows is not None
    rows = task.score_rows
    rows = rows[rows >= task.test_rows.start] - task.test_rows.start
    return {"accuracy": accuracy(np.sign(y_te[rows, 0]), np.sign(y_hat[rows, 0])),
            "nrmse": nrmse(y_te, y_hat)}


def evaluate_sequences(task: SequenceTask, feats: np.ndarray,
                       l2: float) -> tuple[dict[str, Any], LinearReadout]:
    """Softmax readout on the first ``task.train`` sequences; accuracy on the rest."""
    tr = slice(0, task.train)
    te = slice(task.train, len(task.labels))
    ro = fit_softmax(feats[tr], task.labels[tr], task.classes, l2)
    metrics = {"accuracy": accuracy(task.labels[te], ro(feats[te]).argmax(axis=1)),
               "train_accuracy": accuracy(task.labels[tr], ro(feats[tr]).argmax(axis=1)),
               "ridge": l2}
    return metrics, ro


# ---------------------------------------------------------------- the run
@dataclass
class TaskResult:
    """Where the run lives and what it reached."""

    run_dir: Path
    summary: dict[str, Any]


def task_features(cfg: Config, task: SeriesTask | SequenceTask, network: NetworkParams,
                  enc: EncoderParams | None, progress: bool = False) -> np.ndarray:
    """Reservoir features of the whole task (series: (T, N); sequences: (n, L·N))."""
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    k = cfg.reservoir.steps_per_obs
    if isinstance(task, SequenceTask):
        return sequence_states(network, payload(task.x, network), k, decay, progress=progress)
    assert enc is not None
    inputs = encode(task.u, enc, network.payload_levels if network.payload_levels > 1 else 0)
    return series_states(network, inputs, k, decay, cfg.task.lanes, cfg.task.washout, progress)


def _check(cfg: Config) -> None:
    t = cfg.task
    if t.name == "none":
        raise ConfigError("task.name: 'none' is the RL agent; set task.name to one of "
                          f"{', '.join(SERIES_TASKS + SEQUENCE_TASKS)} for a supervised task")
    if t.name in SERIES_TASKS and t.washout >= t.train_length:
        raise ConfigError(f"task.washout: {t.washout} must be below task.train_length "
                          f"({t.train_length})")


def train_task(cfg: Config, out: Path | None = None, progress: bool = True) -> TaskResult:
    """Generate the task, run the reservoir, fit the readout; write the run folder.

    ``task.method = 'backprop'`` trains through the spiking network by surrogate gradients
    (:func:`fit_backprop`) instead of the closed-form readout.
    """
    torch.set_num_threads(1)
    _check(cfg)
    start = time.perf_counter()
    task = make_task(cfg)
    if isinstance(task, SequenceTask):
        enc, n_inputs = None, int(task.x.shape[2])
    else:
        enc = series_encoder(cfg, task)
        n_inputs = enc.n_channels
    network = task_network(cfg, n_inputs)
    plastic: dict[str, Any] = {}
    if cfg.plasticity.rule != "none":
        network, plastic = pre_adapt_on_task(cfg, task, network, enc)
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", cfg.task.name)
    write_provenance(run_dir, cfg, {"task": cfg.task.name, "method": cfg.task.method,
                                    "task_seed": cfg.task.seed})
    log = MetricsLog(run_dir / METRICS_NAME)
    try:
        if cfg.task.method == "backprop":
            metrics, ro, network = fit_backprop(cfg, task, network, enc, log, progress)
        else:
            metrics, ro = _fit_closed_form(cfg, task, network, enc, log, progress, start)
    finally:
        log.close()
    save_task_checkpoint(run_dir / CHECKPOINT_NAME, cfg, network, ro, enc)
    metric = METRIC_OF[task.kind]
    summary = {"task": cfg.task.name, "method": cfg.task.method, "metric": metric,
               "value": float(metrics[metric]), **_scalars(metrics),
               "neurons": network.size, "precision": network.precision,
               "steps_per_obs": cfg.reservoir.steps_per_obs, "plasticity": cfg.plasticity.rule,
               **{f"plasticity_{k}": v for k, v in plastic.items()
                  if isinstance(v, (int, float))},
               "wall_s": round(time.perf_counter() - start, 2), "checkpoint": CHECKPOINT_NAME}
    atomic_write_json(run_dir / SUMMARY_NAME, summary)
    return TaskResult(run_dir, summary)


def pre_adapt_on_task(cfg: Config, task: SeriesTask | SequenceTask, network: NetworkParams,
                      enc: EncoderParams | None) -> tuple[NetworkParams, dict[str, Any]]:
    """Unsupervised pre-adaptation (``plasticity.rule``) on the task's own training inputs,
    never its targets or its test part: the first ``plasticity.episodes`` digit images, or the
    training stream of a series task cut into ``plasticity.episodes`` sequences."""
    from neuralalchemy.plasticity import pre_adapt

    n = cfg.plasticity.episodes
    if isinstance(task, SequenceTask):
        stream: Any = list(payload(task.x[:min(n, task.train)], network))
    else:
        assert enc is not None
        levels = network.payload_levels if network.payload_levels > 1 else 0
        inputs = encode(task.u[:task.washout + task.train], enc, levels)
        stream = [part for part in np.array_split(inputs, min(n, len(inputs))) if len(part)]
    return pre_adapt(network, stream, cfg.plasticity, cfg.reservoir.steps_per_obs,
                     seed=cfg.training.seed)


def _fit_closed_form(cfg: Config, task: SeriesTask | SequenceTask, network: NetworkParams,
                     enc: EncoderParams | None, log: MetricsLog, progress: bool,
                     start: float) -> tuple[dict[str, Any], LinearReadout]:
    """Reservoir features, then the ridge (series) or softmax (sequences) readout."""
    feats = task_features(cfg, task, network, enc, progress)
    log.write({"kind": "states", "rows": int(len(feats)), "features": int(feats.shape[1]),
               "mean_count": float(feats.mean()),
               "silent_fraction": float(np.mean(feats.max(axis=0) == 0)),
               "wall_s": round(time.perf_counter() - start, 3)})
    if isinstance(task, SequenceTask):
        metrics, ro = evaluate_sequences(task, feats, cfg.task.ridge)
    else:
        metrics, ro = evaluate_series(task, feats, cfg.task.ridge, cfg.task.select_ridge)
    log.write({"kind": "eval", "split": "test", **metrics,
               "wall_s": round(time.perf_counter() - start, 3)})
    return metrics, ro


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (list, np.ndarray))}


def backprop_network(cfg: Config, task: SeriesTask | SequenceTask, network: NetworkParams,
                     enc: EncoderParams | None,
                     progress: bool = False) -> tuple[NetworkParams, list[float]]:
    """Train ``network`` through its spikes by surrogate gradients
    (:func:`neuralalchemy.learners.surrogate.fit_backprop`) on the task's training part (series:
    the washout and training rows; digits: the training images), on the features the readout
    will see (``readout.features``; digits: the row steps concatenated). Returns the trained
    network in ``network``'s precision (quantized again in fixed point) and the loss per
    gradient step."""
    try:
        from neuralalchemy.learners import surrogate
    except ImportError:
        raise ConfigError("task.method: 'backprop' needs neuralalchemy.learners.surrogate, "
                          "which this installation lacks; use task.method=ridge") from None
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    k, seed = cfg.reservoir.steps_per_obs, cfg.training.seed
    if isinstance(task, SequenceTask):
        result = surrogate.fit_backprop(network, task.x[:task.train], task.labels[:task.train],
                                        "classification", cfg.task, cfg.training, k, 0, seed,
                                        progress, trace_decay=decay, concat=True)
    else:
        assert enc is not None
        end = task.washout + task.train
        result = surrogate.fit_backprop(network, channel_values(task.u[:end], enc),
                                        task.y[:end], "regression", cfg.task, cfg.training, k,
                                        task.washout, seed, progress, trace_decay=decay)
    trained = result.network
    return (trained if network.precision == "float" else quantize_network(trained),
            result.losses)


def fit_backprop(cfg: Config, task: SeriesTask | SequenceTask, network: NetworkParams,
                 enc: EncoderParams | None, log: MetricsLog,
                 progress: bool) -> tuple[dict[str, Any], LinearReadout, NetworkParams]:
    """Surrogate-gradient training (``task.method = 'backprop'``, :func:`backprop_network`),
    then exactly the closed-form path on the trained network (quantized again in fixed point):
    the same features, rows, ridge selection (or softmax) and test metrics, so that with
    nothing in the reservoir trained the result equals ``task.method = 'ridge'``. Returns (test
    metrics, readout, trained network)."""
    start = time.perf_counter()
    trained, losses = backprop_network(cfg, task, network, enc, progress)
    for i, loss in enumerate(losses):
        log.write({"kind": "train", "step": i, "loss": float(loss)})
    metrics, ro = _fit_closed_form(cfg, task, trained, enc, log, progress, start)
    return metrics, ro, trained


# ---------------------------------------------------------------- checkpoint
TASK_CHECKPOINT_KIND = "neuralalchemy-task-checkpoint"

def save_task_checkpoint(path: Path, cfg: Config, network: NetworkParams, ro: LinearReadout,
                         enc: EncoderParams | None) -> None:
    """Network, encoder and readout in one npz (no pickles), written atomically. Keys:
    ``meta`` (JSON: config, readout kind), ``net.<field>``, ``readout.w``/``b``/``mean``/
    ``std``, and ``encoder.centers``/``sigma`` for series tasks."""
    arrays: dict[str, np.ndarray] = {f"net.{k}": v for k, v in network.to_arrays().items()}
    arrays.update({"readout.w": ro.w, "readout.b": ro.b, "readout.mean": ro.mean,
                   "readout.std": ro.std})
    if enc is not None:
        arrays.update({"encoder.centers": enc.centers, "encoder.sigma": enc.sigma})
    meta = {"format": 1, "kind": TASK_CHECKPOINT_KIND, "config": cfg.to_dict(),
            "readout_kind": ro.kind,
            "encoder_kind": None if enc is None else enc.kind}
    arrays["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_task_checkpoint(path: Path) -> tuple[dict[str, Any], NetworkParams, LinearReadout]:
    """(meta, network, readout) of a checkpoint written by :func:`save_task_checkpoint`."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        net = NetworkParams.from_arrays({k[4:]: data[k] for k in data.files
                                         if k.startswith("net.")})
        ro = LinearReadout(data["readout.w"], data["readout.b"], data["readout.mean"],
                           data["readout.std"], kind=meta["readout_kind"])
    return meta, net, ro
