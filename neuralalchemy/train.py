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
from neuralalchemy.learners import ars
from neuralalchemy.network import build_network
from neuralalchemy.plots import learning_curve
from neuralalchemy.records import MetricsLog, new_run_dir, read_metrics, write_provenance
from neuralalchemy.rollout import FeatureStats, run_episodes

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
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
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
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", cfg.env)
    write_provenance(run_dir, cfg, {"budget_steps": budget, "target_return": target})
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    rollout = partial(_rollout, cfg, info, network, enc, decay)
    state = ars.init_state(info.n_actions, network.size, cfg.training.seed)
    log = MetricsLog(run_dir / "metrics.jsonl")
    env_dict = {**asdict(info), "action_low": info.action_low.tolist(),
                "action_high": info.action_high.tolist()}
    best: dict[str, Any] = {"mean": -np.inf}
    start = time.perf_counter()
    solved = False
    try:
        with _progress(progress) as bar:
            task = bar.add_task("train", total=budget, status="")
            while state.env_steps < budget and not solved:
                result = ars.update(state, cfg, rollout)
                _log_train(log, state, result.returns, result.lengths)
                status = f"train mean {result.returns.mean():7.1f}"
                if state.iteration % cfg.training.eval_every == 0:
                    solved, mean = _evaluate(cfg, state, rollout, target, log, best)
                    status += f"  eval {mean:7.1f}"
                    _save(run_dir, cfg, env_dict, ranges, network, best, state)
                bar.update(task, completed=min(state.env_steps, budget), status=status)
        if not solved:
            solved, _ = _evaluate(cfg, state, rollout, target, log, best, final=True)
    finally:
        log.close()
    _save(run_dir, cfg, env_dict, ranges, network, best, state)
    metrics = read_metrics(run_dir / "metrics.jsonl")
    learning_curve(metrics, run_dir / "learning_curve.png", f"{cfg.env}: spiking reservoir + ARS",
                   target)
    summary = {
        "env": cfg.env, "solved": bool(solved), "target_return": target,
        "eval_mean": float(best["mean"]), "eval_std": float(best.get("std", 0.0)),
        "eval_episodes": int(best.get("episodes", 0)), "env_steps": int(state.env_steps),
        "env_steps_at_best": int(best.get("env_steps", 0)), "updates": state.iteration,
        "wall_s": round(time.perf_counter() - start, 2), "neurons": network.size,
        "precision": network.precision, "checkpoint": CHECKPOINT_NAME,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return TrainResult(run_dir, summary)


def _rollout(cfg: Config, info: EnvInfo, network, enc, decay, weights, mean, std, seed,  # type: ignore[no-untyped-def]
             stats):
    biases = np.zeros(weights.shape[:2])
    return run_episodes(cfg.env, info, network, enc, cfg.reservoir.steps_per_obs, weights,
                        biases, mean, std, decay, seed, stats)


def _log_train(log: MetricsLog, state: ars.ArsState, returns: np.ndarray,
               lengths: np.ndarray) -> None:
    steps = state.env_steps - int(lengths.sum())
    for r, n in zip(returns, lengths):
        steps += int(n)
        log.write({"kind": "train", "iteration": state.iteration, "return": float(r),
                   "length": int(n), "env_steps": steps})


def _evaluate(cfg: Config, state: ars.ArsState, rollout, target: float | None,  # type: ignore[no-untyped-def]
              log: MetricsLog, best: dict[str, Any], final: bool = False) -> tuple[bool, float]:
    """Quick evaluation; a full one when the quick one clears the target (or at the end)."""
    mean, std = state.stats.mean_std()
    frozen = (state.theta.copy(), mean, std)
    n = cfg.training.eval_episodes if final else min(QUICK_EVAL_EPISODES,
                                                     cfg.training.eval_episodes)
    ret = _eval_returns(rollout, frozen, n)
    if not final and target is not None and ret.mean() >= target:
        n = cfg.training.eval_episodes
        ret = _eval_returns(rollout, frozen, n)
    record = {"kind": "eval", "iteration": state.iteration, "env_steps": state.env_steps,
              "mean": float(ret.mean()), "std": float(ret.std()), "episodes": n}
    log.write(record)
    full = n == cfg.training.eval_episodes
    if full and (ret.mean() > best["mean"] or "theta" not in best or not best.get("full")):
        best.update(record, theta=frozen[0], feat_mean=frozen[1], feat_std=frozen[2], full=True)
    elif not best.get("full") and ret.mean() > best["mean"]:
        best.update(record, theta=frozen[0], feat_mean=frozen[1], feat_std=frozen[2])
    solved = full and target is not None and ret.mean() >= target
    return solved, float(ret.mean())


def _eval_returns(rollout, frozen, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    theta, mean, std = frozen
    weights = np.repeat(theta[None], n, axis=0)
    return rollout(weights, mean, std, EVAL_SEED, None).returns


def _save(run_dir: Path, cfg: Config, env: dict, ranges: np.ndarray, network,  # type: ignore[no-untyped-def]
          best: dict[str, Any], state: ars.ArsState) -> None:
    if "theta" in best:
        theta, mean, std = best["theta"], best["feat_mean"], best["feat_std"]
    else:
        theta = state.theta
        mean, std = state.stats.mean_std()
    learner = {"algorithm": "ars", "iteration": state.iteration, "env_steps": state.env_steps,
               "eval_mean": float(best["mean"]) if np.isfinite(best["mean"]) else None}
    save_checkpoint(run_dir / CHECKPOINT_NAME,
                    Checkpoint(cfg, env, ranges, network, theta, mean, std, learner))
