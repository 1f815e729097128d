"""``alchemy continual``: one method through a task sequence, its scratch reference, the run
folder (final readout as a checkpoint, ``summary.json``, ``continual.png``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralalchemy.config import Config
from neuralalchemy.fsio import atomic_write_json
from neuralalchemy.learners.base import Readout
from neuralalchemy.meta.continual import (
    HEADS,
    METHODS,
    HeadsFit,
    SequenceRun,
    run_sequence,
    scratch_curves,
    summary,
)
from neuralalchemy.meta.core import build_agent, family_of, save_agent, shared_normalisation
from neuralalchemy.meta.metatrain import broad_prior
from neuralalchemy.records import new_run_dir, write_metrics, write_provenance


def method_of(cfg: Config, method: str) -> str:
    """``config`` → the method that ``meta.heads``, ``meta.posterior_prior`` and
    ``meta.replay`` select."""
    if method != "config":
        return method
    if cfg.meta.heads:
        return HEADS
    chosen = (cfg.meta.posterior_prior, cfg.meta.replay)
    return next(name for name, flags in METHODS.items() if flags == chosen)


def continual(cfg: Config, method: str = "config", progress: bool = True,
              out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Learn ``meta.continual_tasks`` training tasks in order; see :mod:`.continual`."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    torch.set_num_threads(1)
    start = time.perf_counter()
    method = method_of(cfg, method)
    agent = build_agent(cfg)
    family = family_of(cfg.env)
    m, tr = cfg.meta, cfg.training
    tasks = family.tasks("train", m.continual_tasks, tr.seed + 1)
    # the normalisation is fixed from the first task alone (later tasks are not seen early)
    feat = shared_normalisation(agent, tasks[:1], m.norm_episodes, tr.seed)
    n_actions = agent.context(None).info.n_actions
    prior = broad_prior(agent, n_actions, feat)
    with Bar(TextColumn("[bold]continual[/]"), BarColumn(), MofNCompleteColumn(),
             TextColumn("{task.description}"), TimeElapsedColumn(), disable=not progress) as bar:
        job = bar.add_task(method, total=2 * len(tasks))
        run = run_sequence(agent, family.name, tasks, prior, tr.noise_var, method,
                           m.continual_steps, m.eval_episodes, tr.seed, 4, m.replay_per_task,
                           on_task=lambda i: bar.update(job, completed=i + 1),
                           strength=m.prior_strength, heads=HeadsFit.from_meta(m))
        bar.update(job, description="scratch reference")
        ref = scratch_curves(agent, family.name, tasks, prior, tr.noise_var, m.continual_steps,
                             m.eval_episodes, tr.seed)
        bar.update(job, completed=2 * len(tasks))
    result = {"family": family.name, **summary(run, ref, tasks),
              "wall_s": round(time.perf_counter() - start, 2)}
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", f"continual-{family.name}")
    write_provenance(run_dir, cfg, {"kind": "continual", "method": method, "tasks": tasks})
    last = run.final_readout
    ro = Readout(last[:, :-1].copy(), last[:, -1].copy(), feat[0], feat[1])
    learner = {"algorithm": f"blq-continual-{method}", "tasks": len(tasks)}
    extras = {}
    if run.prior is not None and run.heads is not None:
        # every task's readout, and the prior a further task would start from (so the run
        # adapts with `alchemy adapt RUN` and shows with `alchemy prior show RUN`)
        extras = {**run.prior.to_extras(), "continual.heads": run.heads}
    save_agent(run_dir, agent.checkpoint(tasks[-1], ro, learner, extras))
    write_metrics(run_dir / "metrics.jsonl", [
        {"kind": "after_task", "task": i, "performance": [float(v) for v in row]}
        for i, row in enumerate(run.perf)])
    _plot(run, ref, run_dir / "continual.png", family.name)
    result["checkpoint"] = "checkpoint.npz"
    atomic_write_json(run_dir / "summary.json", result)
    return run_dir, result


def _plot(run: SequenceRun, ref: list[list[float]], path: Path, family: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralalchemy.plots import save_png

    n = run.perf.shape[0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    im = ax1.imshow(run.perf.T, vmin=0, vmax=1, cmap="viridis", origin="lower")
    ax1.set_xlabel("after training task")
    ax1.set_ylabel("performance on task")
    ax1.set_xticks(range(n))
    ax1.set_yticks(range(n))
    fig.colorbar(im, ax=ax1, fraction=0.046)
    for i, (mine, base) in enumerate(zip(run.curves, ref)):
        x = i + np.arange(1, len(mine) + 1) / len(mine)
        ax2.plot(x, mine, "o-", color="C0", label=run.method if i == 0 else None)
        ax2.plot(x, base, "x--", color="C1", label="scratch" if i == 0 else None)
    ax2.set_xlabel("task (training progress)")
    ax2.set_ylabel("performance on the current task")
    ax2.set_ylim(-0.02, 1.02)
    ax2.legend(fontsize=8)
    fig.suptitle(f"continual learning on {family}: {run.method}", fontsize=10)
    save_png(fig, path)
