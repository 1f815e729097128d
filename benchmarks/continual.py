"""Continual learning on a CartPole task sequence: posterior-as-prior, replay, both, fine-tuning.

Metrics as Continual World defines them (see :mod:`neuralalchemy.meta.continual`): average
performance at the end, forgetting, forward transfer against each task learned from scratch
(the same scratch reference for every method, in the same run).

    python benchmarks/continual.py [--quick] [--tasks 5] [--steps 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.config import load_config  # noqa: E402
from neuralalchemy.meta.continual import METHODS, run_sequence, scratch_curves  # noqa: E402
from neuralalchemy.meta.core import (  # noqa: E402
    build_agent,
    defaults_for,  # noqa: E402
    family_of,
    shared_normalisation,
)
from neuralalchemy.meta.metatrain import broad_prior  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10_000, help="env steps per task")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--strengths", default="0.1",
                    help="comma-separated prior strengths β < 1 for extra posterior-prior rows "
                         "(the carried evidence weighed β-fold; the plain row is β = 1)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.steps, args.eval_episodes = 2, 1000, 3
    torch.set_num_threads(1)
    cfg = load_config(base=defaults_for(None))
    agent = build_agent(cfg)
    family = family_of(cfg.env)
    tasks = family.tasks("train", args.tasks, cfg.training.seed + 1)
    feat = shared_normalisation(agent, tasks[:1], cfg.meta.norm_episodes, cfg.training.seed)
    start = broad_prior(agent, 2, feat)
    t0 = time.perf_counter()
    ref = scratch_curves(agent, family.name, tasks, start, None, args.steps, args.eval_episodes,
                         cfg.training.seed)
    print(f"scratch reference: {time.perf_counter() - t0:.0f} s, curves {ref}", flush=True)
    strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    variants = [(m, 1.0, m) for m in METHODS]
    variants[1:1] = [("posterior-prior", b, f"posterior-prior β={b:g}") for b in strengths]
    rows = []
    for method, strength, label in variants:
        t0 = time.perf_counter()
        run = run_sequence(agent, family.name, tasks, start, None, method, args.steps,
                           args.eval_episodes, cfg.training.seed, strength=strength)
        m = run.metrics(ref)
        wall = time.perf_counter() - t0
        print(f"{label}: {m}  ({wall:.0f} s)\n{run.perf.round(2)}", flush=True)
        rows.append([label, f"{m['average_performance']:.3f}", f"{m['forgetting']:.3f}",
                     f"{m['forward_transfer']:.3f}", f"{wall:.0f}"])
    text = table(["method", "average performance", "forgetting", "forward transfer", "wall s"],
                 rows)
    print(text)
    caption = (f"{args.tasks} CartPole tasks (Packer et al. training split) in sequence, "
               f"{args.steps:,} env steps of Bayesian linear Q each, performance = return / 500 "
               f"over {args.eval_episodes} greedy episodes. posterior-prior β: the next task's "
               "prior keeps the posterior mean and β times the evidence gathered so far "
               "(meta.prior_strength; β = 1 is exact posterior-as-prior). Goal: forgetting "
               "≤ 0.02 with positive forward transfer (Continual World: EWC 0.02 / −0.18; "
               "fine-tuning forgetting 0.73).")
    if not args.no_write and not args.quick:
        write_section("continual", "Continual learning without forgetting", caption + "\n\n" + text)


if __name__ == "__main__":
    main()
