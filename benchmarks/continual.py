"""Continual learning on a CartPole task sequence, five ways of carrying knowledge forward.

Methods: posterior-as-prior (with weaker strengths β), replay, both, fine-tuning, and
task-specific heads under a prior refitted after each task (``neuralalchemy.meta.continual``).

Metrics as Continual World defines them (see :mod:`neuralalchemy.meta.continual`): average
performance at the end, forgetting, forward transfer against each task learned from scratch
(the same scratch reference for every method of a seed, in the same run). Each seed draws its own
reservoir, task sequence and learner randomness; the table gives mean ± std over the seeds.

    python benchmarks/continual.py [--quick] [--seeds 3] [--jobs 2] [--tasks 5] [--steps 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.config import load_config  # noqa: E402
from neuralalchemy.meta.continual import (  # noqa: E402
    ALL_METHODS,
    HeadsFit,
    run_sequence,
    scratch_curves,
)
from neuralalchemy.meta.core import (  # noqa: E402
    build_agent,
    defaults_for,
    family_of,
    shared_normalisation,
)
from neuralalchemy.meta.metatrain import broad_prior  # noqa: E402
from neuralalchemy.task_families import SPLITS  # noqa: E402

METRICS = ("average_performance", "forgetting", "forward_transfer")
SPLIT_TITLES = {"train": "Within-range tasks (the training split)",
                "within": "Within-range tasks (the held-out split)",
                "extrapolation": "Extrapolation tasks (the extreme shell of every parameter)"}


def job(split: str, seed: int, method: str | None, strength: float, args: argparse.Namespace
        ) -> dict[str, Any]:
    """One seed's scratch reference (``method`` None) or one method's pass over its sequence of
    ``split`` tasks."""
    torch.set_num_threads(1)
    cfg = load_config(base=defaults_for(None),
                      overrides=[f"training.seed={seed}", f"reservoir.seed={seed}"], environ={})
    agent = build_agent(cfg)
    family = family_of(cfg.env)
    tasks = family.tasks(split, args.tasks, seed + 1)
    feat = shared_normalisation(agent, tasks[:1], cfg.meta.norm_episodes, seed)
    start = broad_prior(agent, 2, feat)
    t0 = time.perf_counter()
    if method is None:
        ref = scratch_curves(agent, family.name, tasks, start, None, args.steps,
                             args.eval_episodes, seed)
        return {"reference": ref, "wall": time.perf_counter() - t0}
    run = run_sequence(agent, family.name, tasks, start, None, method, args.steps,
                       args.eval_episodes, seed, strength=strength,
                       heads=HeadsFit.from_meta(cfg.meta))
    return {"run": run, "wall": time.perf_counter() - t0}


def run_all(args: argparse.Namespace, variants: list[tuple[str, float, str]]
            ) -> tuple[dict[tuple[str, int], Any], dict[tuple[str, str, int], dict[str, Any]]]:
    """Scratch references and method runs for every split and seed, ``args.jobs`` processes at
    a time; keyed by (split, seed) and (split, label, seed)."""
    seeds = range(args.seeds)
    todo = [(sp, s, None, 1.0, None) for sp in args.splits for s in seeds]
    todo += [(sp, s, m, b, label) for sp in args.splits for m, b, label in variants for s in seeds]
    refs: dict[tuple[str, int], Any] = {}
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}

    def done(item: tuple, out: dict[str, Any]) -> None:
        split, seed, _, _, label = item
        if label is None:
            refs[split, seed] = out["reference"]
            print(f"{split} seed {seed} scratch reference: {out['wall']:.0f} s", flush=True)
        else:
            runs[split, label, seed] = out
            print(f"{split} seed {seed} {label}: {out['wall']:.0f} s\n"
                  f"{out['run'].perf.round(2)}", flush=True)

    if args.jobs <= 1:
        for item in todo:
            done(item, job(*item[:4], args))
        return refs, runs
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(job, *item[:4], args): item for item in todo}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
    return refs, runs


def fmt_mean_std(values: list[float]) -> str:
    """``mean ± std`` over seeds (just the value for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10_000, help="env steps per task")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0…N−1 (reservoir, tasks, learner)")
    ap.add_argument("--jobs", type=int, default=2, help="processes running seeds and methods")
    ap.add_argument("--strengths", default="0.1,0.01",
                    help="comma-separated prior strengths β < 1 for extra posterior-prior rows "
                         "(the carried evidence weighed β-fold; the plain row is β = 1)")
    ap.add_argument("--splits", default="train,extrapolation",
                    help="task sequences to run, by the family's split: 'train' (Packer et "
                         "al.'s within range, tasks that share one policy) and/or "
                         "'extrapolation' (the extreme shell, tasks that pull the readout apart)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = ap.parse_args()
    args.splits = [v.strip() for v in args.splits.split(",") if v.strip()]
    unknown = [v for v in args.splits if v not in SPLITS]
    if unknown or not args.splits:
        ap.error(f"--splits: unknown split {unknown[0]!r}; known: {', '.join(SPLITS)}"
                 if unknown else f"--splits: name at least one of {', '.join(SPLITS)}")
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be at least 1")
    if args.quick:
        args.tasks, args.steps, args.eval_episodes, args.seeds = 2, 1000, 3, 1
    strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    variants = [(m, 1.0, m) for m in ALL_METHODS]
    variants[1:1] = [("posterior-prior", b, f"posterior-prior β={b:g}") for b in strengths]
    t0 = time.perf_counter()
    refs, runs = run_all(args, variants)
    total = time.perf_counter() - t0
    tables = []
    for split in args.splits:
        rows = []
        for _, _, label in variants:
            per_seed = [runs[split, label, s]["run"].metrics(refs[split, s])
                        for s in range(args.seeds)]
            met = [fmt_mean_std([m[k] for m in per_seed]) for k in METRICS]
            both = sum(m["forgetting"] <= 0.02 and m["forward_transfer"] > 0 for m in per_seed)
            wall = np.mean([runs[split, label, s]["wall"] for s in range(args.seeds)])
            rows.append([label, *met, f"{both}/{args.seeds}", f"{wall:.0f}"])
        text = table(["method", "average performance", "forgetting", "forward transfer",
                      "seeds meeting the goal", "wall s / seed"], rows)
        print(f"{split}:\n{text}")
        tables.append(f"{SPLIT_TITLES.get(split, split)}:\n\n{text}")
    caption = (f"{args.tasks} CartPole tasks in sequence, {args.steps:,} env steps of Bayesian "
               f"linear Q each, performance = return / 500 over {args.eval_episodes} greedy "
               f"episodes; mean ± std over {args.seeds} seeds, each with its own reservoir, task "
               "sequence and scratch reference. posterior-prior β: the next task's prior keeps "
               "the posterior mean and β times the evidence gathered so far "
               "(meta.prior_strength; β = 1 is exact posterior-as-prior). heads: one readout "
               "per task, kept once the task is done (the task is known when it is run, as in "
               "Continual World's multi-head setting), each new one starting from the "
               "hierarchical prior fitted by SVI to the tasks before it (meta.heads); its "
               "forgetting is 0 by construction, and its forward transfer is what that prior "
               "gives a new task. Goal: forgetting "
               "≤ 0.02 with positive forward transfer (Continual World: EWC 0.02 / −0.18; "
               "fine-tuning forgetting 0.73); 'seeds meeting the goal' counts the seeds where "
               f"both hold. Whole run {total:.0f} s with {args.jobs} process(es).")
    if not args.no_write and not args.quick:
        write_section("continual", "Continual learning without forgetting",
                      caption + "\n\n" + "\n\n".join(tables))


if __name__ == "__main__":
    main()
