"""``alchemy train``: a spiking-reservoir agent on a Gymnasium environment.

The reservoir is fixed (drawn from the config's seed, in the configured precision: fixed point by
default, so training sees exactly the dynamics that run on Loihi); the readout is learned by ARS
(:mod:`neuralalchemy.learners.ars`) on batched closed-loop episodes of the reference engine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralalchemy.agent_io import make_encoder
from neuralalchemy.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from neuralalchemy.config import Config, ConfigError
from neuralalchemy.envs import EnvInfo, calibrate_ranges, env_info
from neuralalchemy.fsio import atomic_write_json
from neuralalchemy.learners import make_learner
from neuralalchemy.learners.base import Context, Learner, Progress, Readout
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.plots import learning_curve
from neuralalchemy.records import MetricsLog, new_run_dir, read_metrics, write_provenance

QUICK_EVAL_EPISODES = 20
EVAL_SEED = 1_000_000  # evaluation episodes use seeds EVAL_SEED + i, never seen in training


@dataclass
class TrainResult:
    """Where the run lives and what it reached."""

    run_dir: Path
    summary: dict[str, Any]


def encoder_ranges(cfg: Config, info: EnvInfo) -> np.ndarray:
    """The configured ranges, or ranges calibrated from random-policy episodes."""
    if cfg.encoder.ranges:
        ranges = np.asarray(cfg.encoder.ranges, dtype=np.float64)
        if ranges.shape != (info.obs_dim, 2):
            raise ConfigError(f"encoder.ranges: {info.env_id} has {info.obs_dim} observation "
                              f"dimensions, the config gives {len(ranges)} ranges")
        return ranges
    return calibrate_ranges(cfg.env, cfg.encoder.calibration_episodes, cfg.training.seed)


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("env steps  {task.fields[status]}"), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


def train(cfg: Config, out: Path | None = None, steps: int | None = None,
          progress: bool = True) -> TrainResult:
    """Train until the evaluation mean reaches the target or the step budget runs out."""
    torch.set_num_threads(1)
    info = env_info(cfg.env)
    target = cfg.training.target_return
    target = info.reward_threshold if target is None else target
    budget = steps if steps is not None else cfg.training.steps
    ranges = encoder_ranges(cfg, info)
    enc = make_encoder(ranges, cfg.encoder.neurons_per_dim, cfg.encoder.width, cfg.encoder.kind)
    network = build_network(cfg.reservoir, enc.n_channels, enc.binary)
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    ctx = Context(cfg, info, network, enc, decay)
    learner = make_learner(ctx)
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", cfg.env)
    write_provenance(run_dir, cfg, {"budget_steps": budget, "target_return": target})
    env_dict = {**asdict(info), "action_low": info.action_low.tolist(),
                "action_high": info.action_high.tolist()}
    save = partial(_save, run_dir, cfg, env_dict, ranges, network)
    best: dict[str, Any] = {"mean": -np.inf}
    start = time.perf_counter()
    solved = False
    log = MetricsLog(run_dir / "metrics.jsonl")
    try:
        with _progress(progress) as bar:
            task = bar.add_task("train", total=budget, status="")
            while learner.env_steps < budget and not solved:
                done = learner.step()
                _log_train(log, learner, done)
                status = f"train mean {done.returns.mean():7.1f}" if done.returns.size else ""
                if learner.iteration % cfg.training.eval_every == 0:
                    solved, mean = _evaluate(ctx, learner, target, log, best, start)
                    status += f"  eval {mean:7.1f}"
                    save(best, learner)
                bar.update(task, completed=min(learner.env_steps, budget), status=status)
        if not solved:
            solved, _ = _evaluate(ctx, learner, target, log, best, start, final=True)
    finally:
        log.close()
    save(best, learner)
    metrics = read_metrics(run_dir / "metrics.jsonl")
    learning_curve(metrics, run_dir / "learning_curve.png",
                   f"{cfg.env}: spiking reservoir + {cfg.training.algorithm.upper()}", target)
    summary = {
        "env": cfg.env, "solved": bool(solved), "target_return": target,
        "algorithm": cfg.training.algorithm,
        "eval_mean": float(best["mean"]), "eval_std": float(best.get("std", 0.0)),
        "eval_episodes": int(best.get("episodes", 0)), "env_steps": int(learner.env_steps),
        "env_steps_at_best": int(best.get("env_steps", 0)), "updates": learner.iteration,
        "wall_s": round(time.perf_counter() - start, 2), "neurons": network.size,
        "precision": network.precision, "checkpoint": CHECKPOINT_NAME,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return TrainResult(run_dir, summary)


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
