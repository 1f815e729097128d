"""``alchemy train``: a spiking-reservoir agent on a Gymnasium environment.

The reservoir is fixed (drawn from the config's seed, in the configured precision: fixed point by
default, so training sees exactly the dynamics that run on Loihi); the readout is learned by the
configured learner (:mod:`neuralalchemy.learners`) on closed-loop episodes of the reference engine.

A run keeps ``train_state.npz`` (:mod:`neuralalchemy.train_state`) next to its checkpoint until
it finishes; :func:`resume` continues a killed run from it and ends exactly as the uninterrupted
run would have.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralalchemy.agent_io import encoder_for
from neuralalchemy.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from neuralalchemy.config import Config, ConfigError
from neuralalchemy.envs import EnvInfo, calibrate_ranges, env_info
from neuralalchemy.fsio import atomic_write_json
from neuralalchemy.learners import make_learner
from neuralalchemy.learners.base import Context, Learner, Progress, Readout
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.plots import learning_curve
from neuralalchemy.records import MetricsLog, new_run_dir, read_metrics, write_provenance
from neuralalchemy.train_state import (
    STATE_NAME,
    SUMMARY_NAME,
    EnvStateError,
    config_hash,
    prepare_resume,
    read_resumable,
    run_lock,
    save_train_state,
)
from neuralalchemy.transfer import adopt_source, load_source, source_readout, train_curriculum

QUICK_EVAL_EPISODES = 20
EVAL_SEED = 1_000_000  # evaluation episodes use seeds EVAL_SEED + i, never seen in training
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainResult:
    """Where the run lives and what it reached."""

    run_dir: Path
    summary: dict[str, Any]


def encoder_ranges(cfg: Config, info: EnvInfo) -> np.ndarray:
    """The configured ranges, or ranges calibrated from random-policy episodes: (D, 2), or
    (2·D, 2) with change channels (the observed dimensions, then their changes)."""
    enc = cfg.encoder
    given = {key: np.asarray(getattr(enc, key), dtype=np.float64)
             for key in ("ranges", "change_ranges") if getattr(enc, key)}
    for key, value in given.items():
        if value.shape != (info.obs_dim, 2):
            raise ConfigError(f"encoder.{key}: {info.env_id} has {info.obs_dim} observation "
                              f"dimensions, the config gives {len(value)} ranges")
    if "change_ranges" in given and not enc.changes:
        raise ConfigError("encoder.change_ranges is set but encoder.changes is off: set "
                          "encoder.changes=true, or drop change_ranges")
    wanted = ("ranges", "change_ranges") if enc.changes else ("ranges",)
    if any(key not in given for key in wanted):
        calibrated = calibrate_ranges(cfg.env, enc.calibration_episodes, cfg.training.seed,
                                      changes=enc.changes)
        d = info.obs_dim
        given.setdefault("ranges", calibrated[:d])
        if enc.changes:
            given.setdefault("change_ranges", calibrated[d:])
    return np.vstack([given[key] for key in wanted])


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("env steps  {task.fields[status]}"), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


EvalCallback = Callable[[dict[str, Any]], None]
"""Called after each periodic evaluation with ``{"iteration", "env_steps", "mean"}``."""


@dataclass
class _Run:
    """A run in progress: what the loop reads and what its training state holds."""

    cfg: Config
    run_dir: Path
    ctx: Context
    learner: Learner
    ranges: np.ndarray
    budget: int
    target: float | None
    state_every: int
    best: dict[str, Any] = field(default_factory=lambda: {"mean": -np.inf})
    solved: bool = False
    start: float = field(default_factory=time.perf_counter)
    resumable: bool = True

    def save_checkpoint(self) -> None:
        """The best readout so far (else the current one) as ``checkpoint.npz``."""
        info = self.ctx.info
        env = {**asdict(info), "action_low": info.action_low.tolist(),
               "action_high": info.action_high.tolist()}
        _save(self.run_dir, self.cfg, env, self.ranges, self.ctx.network, self.best,
              self.learner)

    def save_state(self) -> None:
        """``train_state.npz``: everything the loop needs to continue from here, bit for bit.

        An environment whose state cannot be captured leaves the run training, with a warning,
        but no longer resumable from later states."""
        if not self.resumable:
            return
        try:
            learner_state = self.learner.state_dict()
        except EnvStateError as exc:
            self.resumable = False
            warnings.warn(f"{exc}; this run trains on but cannot be resumed", RuntimeWarning,
                          stacklevel=2)
            return
        metrics = self.run_dir / METRICS_NAME
        meta = {"config_hash": config_hash(self.cfg), "budget": self.budget,
                "state_every": self.state_every, "iteration": self.learner.iteration,
                "env_steps": self.learner.env_steps, "solved": bool(self.solved),
                "elapsed_s": time.perf_counter() - self.start,
                "metrics_offset": metrics.stat().st_size if metrics.exists() else 0}
        readout = self.best.get("readout")
        tree = {"learner": learner_state, "encoder_ranges": self.ranges,
                "best": {k: v for k, v in self.best.items() if k != "readout"},
                "best_readout": None if readout is None else asdict(readout)}
        save_train_state(self.run_dir / STATE_NAME, meta, tree)

    def restore(self, meta: dict[str, Any], tree: dict[str, Any]) -> None:
        """Continue from a state written by :meth:`save_state`."""
        self.learner.load_state_dict(tree["learner"])
        self.best = dict(tree["best"])
        if tree["best_readout"] is not None:
            self.best["readout"] = Readout(**tree["best_readout"])
        self.solved = bool(meta["solved"])
        self.start = time.perf_counter() - float(meta["elapsed_s"])


def _start(cfg: Config, info: EnvInfo, ranges: np.ndarray | None = None
           ) -> tuple[Config, np.ndarray, Context, Learner]:
    """The run's config, encoder ranges (``ranges`` when a resumed run knows them), context and
    learner: drawn from the config, or with ``training.init`` taken from the source agent and
    warm-started (transfer learning)."""
    if cfg.training.init is None:
        ranges = encoder_ranges(cfg, info) if ranges is None else ranges
        ctx = build_context(cfg, info, ranges)
        return cfg, ranges, ctx, make_learner(ctx)
    source = load_source(cfg.training.init)
    cfg = adopt_source(cfg, source, info)
    ranges = np.asarray(source.encoder_ranges, dtype=np.float64)
    ctx = build_context(cfg, info, ranges, network=source.network)
    learner = make_learner(ctx)
    learner.warm_start(source_readout(source), cfg.training.init_freeze == "normalisation")
    return cfg, ranges, ctx, learner


def build_context(cfg: Config, info: EnvInfo, ranges: np.ndarray,
                  network: NetworkParams | None = None) -> Context:
    """The context a learner acts in: the encoder over ``ranges``, ``network`` (else drawn from
    ``cfg.reservoir``, pre-adapted when ``cfg.plasticity`` names a rule) and the readout's trace
    decay (0 for spike counts)."""
    enc = encoder_for(cfg.encoder, ranges)
    if network is None:
        network = build_network(cfg.reservoir, enc.n_channels, enc.binary)
        if cfg.plasticity.rule != "none":
            from neuralalchemy.plasticity import observation_payloads, pre_adapt
            stream = observation_payloads(cfg, info, enc, cfg.plasticity.episodes,
                                          cfg.training.seed)
            network, _ = pre_adapt(network, stream, cfg.plasticity, cfg.reservoir.steps_per_obs,
                                   seed=cfg.training.seed)
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    return Context(cfg, info, network, enc, decay)


def _target(cfg: Config, info: EnvInfo) -> float | None:
    target = cfg.training.target_return
    return info.reward_threshold if target is None else target


def train(cfg: Config, out: Path | None = None, steps: int | None = None,
          progress: bool = True, on_eval: EvalCallback | None = None,
          state_every: int = 0) -> TrainResult:
    """Train until the evaluation mean reaches the target or the step budget runs out.

    ``on_eval`` sees every periodic evaluation (not the final one); an exception it raises stops
    training and propagates (hyperparameter search prunes trials this way). The training state
    (``train_state.npz``, :mod:`neuralalchemy.train_state`) is written at the start, at every
    periodic evaluation and, with ``state_every`` > 0, every ``state_every`` updates; a killed
    run continues with :func:`resume`.
    """
    torch.set_num_threads(1)
    if cfg.curriculum.stages:
        if steps is not None:
            raise ConfigError("a curriculum sets each stage's budget in curriculum.stages; "
                              "drop --steps")
        stages = train_curriculum(cfg, train, out=out, progress=progress, on_eval=on_eval,
                                  state_every=state_every)
        last = stages[-1]
        last.summary["curriculum"] = [{"env": r.summary["env"], "run": r.run_dir.name,
                                       "solved": r.summary["solved"],
                                       "env_steps": r.summary["env_steps"],
                                       "eval_mean": r.summary["eval_mean"]} for r in stages]
        last.summary["curriculum_env_steps"] = sum(r.summary["env_steps"] for r in stages)
        atomic_write_json(last.run_dir / SUMMARY_NAME, last.summary)
        return last
    info = env_info(cfg.env)
    budget = steps if steps is not None else cfg.training.steps
    cfg, ranges, ctx, learner = _start(cfg, info)
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", cfg.env)
    run = _Run(cfg, run_dir, ctx, learner, ranges, budget, _target(cfg, info), state_every)
    with run_lock(run_dir):
        write_provenance(run_dir, cfg, {"budget_steps": budget, "target_return": run.target})
        run.save_state()
        return _loop(run, progress, on_eval)


def resume(run_dir: str | Path, progress: bool = True, on_eval: EvalCallback | None = None,
           state_every: int | None = None) -> TrainResult:
    """Continue a killed run from its ``train_state.npz`` to the budget it was started with.

    The result (``checkpoint.npz``, ``summary.json`` and ``metrics.jsonl`` up to wall-clock
    fields) is that of the same run never interrupted. Refuses (:class:`~neuralalchemy.
    train_state.ResumeError`) a folder without a training state, a finished run, and a state
    saved under another config. ``state_every`` (None: as the run was started) only changes when
    states are written, never the result.
    """
    torch.set_num_threads(1)
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        cfg, meta, tree = read_resumable(run_dir)
        info = env_info(cfg.env)
        cfg, ranges, ctx, learner = _start(
            cfg, info, np.asarray(tree["encoder_ranges"], dtype=np.float64))
        every = int(meta["state_every"]) if state_every is None else state_every
        run = _Run(cfg, run_dir, ctx, learner, ranges, int(meta["budget"]),
                   _target(cfg, info), every)
        run.restore(meta, tree)
        prepare_resume(run_dir, METRICS_NAME, int(meta["metrics_offset"]), meta)
        return _loop(run, progress, on_eval)


def _loop(run: _Run, progress: bool, on_eval: EvalCallback | None) -> TrainResult:
    """Learner steps, periodic evaluations and saves, the final evaluation and the summary."""
    learner, every = run.learner, run.cfg.training.eval_every
    log = MetricsLog(run.run_dir / METRICS_NAME)
    try:
        with _progress(progress) as bar:
            task = bar.add_task("train", total=run.budget, status="",
                                completed=min(learner.env_steps, run.budget))
            if learner.iteration == 0 and run.cfg.training.init is not None:
                # a transferred agent may already reach the target: then it trains zero steps
                run.solved, _ = _evaluate(run.ctx, learner, run.target, log, run.best, run.start)
            while learner.env_steps < run.budget and not run.solved:
                done = learner.step()
                _log_train(log, learner, done)
                status = f"train mean {done.returns.mean():7.1f}" if done.returns.size else ""
                if learner.iteration % every == 0:
                    run.solved, mean = _evaluate(run.ctx, learner, run.target, log, run.best,
                                                 run.start)
                    status += f"  eval {mean:7.1f}"
                    run.save_checkpoint()
                    run.save_state()
                    if on_eval is not None:
                        on_eval({"iteration": learner.iteration,
                                 "env_steps": learner.env_steps, "mean": mean})
                elif run.state_every and learner.iteration % run.state_every == 0:
                    run.save_state()
                bar.update(task, completed=min(learner.env_steps, run.budget), status=status)
        if not run.solved:
            run.solved, _ = _evaluate(run.ctx, learner, run.target, log, run.best, run.start,
                                      final=True)
    finally:
        log.close()
    run.save_checkpoint()
    return _finish(run)


def _finish(run: _Run) -> TrainResult:
    """Learning curve and ``summary.json``; the training state is no longer needed."""
    cfg, best, learner = run.cfg, run.best, run.learner
    metrics = read_metrics(run.run_dir / METRICS_NAME)
    learning_curve(metrics, run.run_dir / "learning_curve.png",
                   f"{cfg.env}: spiking reservoir + {cfg.training.algorithm.upper()}", run.target)
    summary = {
        "env": cfg.env, "solved": bool(run.solved), "target_return": run.target,
        "algorithm": cfg.training.algorithm,
        "eval_mean": float(best["mean"]), "eval_std": float(best.get("std", 0.0)),
        "eval_episodes": int(best.get("episodes", 0)), "env_steps": int(learner.env_steps),
        "env_steps_at_best": int(best.get("env_steps", 0)), "updates": learner.iteration,
        "wall_s": round(time.perf_counter() - run.start, 2), "neurons": run.ctx.network.size,
        "precision": run.ctx.network.precision, "checkpoint": CHECKPOINT_NAME,
    }
    atomic_write_json(run.run_dir / SUMMARY_NAME, summary)
    (run.run_dir / STATE_NAME).unlink(missing_ok=True)
    return TrainResult(run.run_dir, summary)


def _log_train(log: MetricsLog, learner: Learner, done: Progress) -> None:
    steps = learner.env_steps - int(done.lengths.sum())
    for r, n in zip(done.returns, done.lengths):
        steps += int(n)
        log.write({"kind": "train", "iteration": learner.iteration, "return": float(r),
                   "length": int(n), "env_steps": steps})


def evaluate_readout(ctx: Context, ro: Readout, episodes: int) -> np.ndarray:
    """Returns of the greedy readout on ``episodes`` evaluation episodes (seeds EVAL_SEED + i)."""
    weights = np.repeat(ro.theta[None], episodes, axis=0)
    biases = np.repeat(ro.bias[None], episodes, axis=0)
    return ctx.episodes(weights, biases, ro.mean, ro.std, EVAL_SEED).returns


def _evaluate(ctx: Context, learner: Learner, target: float | None, log: MetricsLog,
              best: dict[str, Any], start: float, final: bool = False) -> tuple[bool, float]:
    """Quick evaluation; a full one when the quick one clears the target (or at the end).

    The record's ``wall_s`` is the training time so far, evaluation included.
    """
    full_n = ctx.cfg.training.eval_episodes
    ro = learner.readout()
    n = full_n if final else min(QUICK_EVAL_EPISODES, full_n)
    ret = evaluate_readout(ctx, ro, n)
    if not final and target is not None and ret.mean() >= target:
        n = full_n
        ret = evaluate_readout(ctx, ro, n)
    record = {"kind": "eval", "iteration": learner.iteration, "env_steps": learner.env_steps,
              "mean": float(ret.mean()), "std": float(ret.std()), "episodes": n,
              "wall_s": round(time.perf_counter() - start, 3)}
    log.write(record)
    full = n == full_n
    # the kept readout: the best full evaluation, else the best quick one
    if (full and (not best.get("full") or ret.mean() > best["mean"])) or \
            (not best.get("full") and ret.mean() > best["mean"]):
        best.update(record, readout=ro, full=full)
    solved = full and target is not None and ret.mean() >= target
    return solved, float(ret.mean())


def _save(run_dir: Path, cfg: Config, env: dict, ranges: np.ndarray, network: NetworkParams,
          best: dict[str, Any], learner: Learner) -> None:
    ro: Readout = best.get("readout") or learner.readout()
    info = {**learner.summary(),
            "eval_mean": float(best["mean"]) if np.isfinite(best["mean"]) else None}
    save_checkpoint(run_dir / CHECKPOINT_NAME,
                    Checkpoint(cfg, env, ranges, network, ro.theta, ro.mean, ro.std, info,
                               bias=ro.bias))
