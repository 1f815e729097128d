"""Does the reservoir hyperparameter prior pick a better reservoir than the configured one?

For each family, meta-train twice on the same training tasks and seeds: once on the configured
reservoir (``meta.reservoir_candidates=0``) and once on the mode of the fitted hyperparameter
prior (``meta.reservoir_candidates=16``, :mod:`neuralalchemy.meta.reservoir_prior`). Compare the
return each training task's own Bayesian linear Q reaches, and on held-out ``within`` tasks the
greedy return of the meta-prior's readout before any episode and after 2 episodes of
adaptation.

    python benchmarks/meta_reservoir.py [--quick] [--families cartpole] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.checkpoint import load_checkpoint  # noqa: E402
from neuralalchemy.config import load_config  # noqa: E402
from neuralalchemy.meta.adapt import adapt_blq  # noqa: E402
from neuralalchemy.meta.core import agent_from_checkpoint, defaults_for  # noqa: E402
from neuralalchemy.meta.metatrain import meta_train  # noqa: E402
from neuralalchemy.meta.reservoir_prior import HYPER_NAMES  # noqa: E402
from neuralalchemy.task_families import FAMILIES  # noqa: E402


def one(name: str, candidates: int, args: argparse.Namespace, work: Path) -> dict:
    """Meta-train ``name`` with ``candidates`` reservoir candidates; held-out curves."""
    family = FAMILIES[name]
    cfg = load_config(overrides=[f"env={family.env_id}", f"meta.train_tasks={args.train_tasks}",
                                 f"meta.task_steps={args.task_steps}",
                                 f"meta.reservoir_candidates={candidates}"],
                      base=defaults_for(family.env_id))
    t0 = time.perf_counter()
    result = meta_train(cfg, out=work / str(candidates), progress=False)
    seconds = time.perf_counter() - t0
    agent = agent_from_checkpoint(load_checkpoint(result.run_dir))
    curves = []
    for i, task in enumerate(family.tasks("within", args.tasks, 10_000)):
        run = adapt_blq(agent, task, result.prior.gaussian(), result.prior.noise_var, (0, 2),
                        args.eval_episodes, 100 + i)
        run.learner.vec.close()
        curves.append(run.returns)
    out = {"summary": result.summary, "seconds": seconds, "curves": np.array(curves)}
    print(f"{name} candidates={candidates}: {seconds:.0f} s, task returns "
          f"{result.summary['task_returns']}, held-out {np.round(curves, 0).tolist()}, "
          f"reservoir {result.summary['reservoir']}", flush=True)
    return out


def rows_for(name: str, runs: dict[int, dict]) -> list[list[object]]:
    base = np.array(runs[0]["summary"]["task_returns"])
    rows = []
    for candidates, run in runs.items():
        s, r = run["summary"], run["summary"]["reservoir"]
        returns = np.array(s["task_returns"])
        label = ("configured" if candidates == 0 else
                 f"prior mode: candidate {r['chosen']} of {r['candidates']} "
                 f"(p = {r['chosen_prior_probability']:.2f})")
        better = "–" if candidates == 0 else f"{int((returns > base).sum())}/{len(base)}"
        rows.append([name, label, ", ".join(f"{k} {r[k]:.3g}" for k in HYPER_NAMES),
                     f"{returns.mean():.0f} ± {returns.std():.0f}", better,
                     f"{np.median(run['curves'][:, 0]):.0f}",
                     f"{np.median(run['curves'][:, 1]):.0f}", f"{run['seconds']:.0f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="cartpole")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    ap.add_argument("--train-tasks", type=int, default=8)
    ap.add_argument("--task-steps", type=int, default=20_000)
    ap.add_argument("--tasks", type=int, default=4, help="held-out within tasks")
    ap.add_argument("--eval-episodes", type=int, default=10)
    args = ap.parse_args()
    if args.quick:
        args.train_tasks, args.task_steps, args.tasks, args.eval_episodes = 3, 1000, 1, 2
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families.split(","):
            runs = {c: one(name.strip(), c, args, Path(tmp)) for c in (0, args.candidates)}
            rows += rows_for(name.strip(), runs)
    text = table(["family", "reservoir", "hyperparameters", "training-task return (mean ± std)",
                  "tasks above configured", "held-out after 0 ep (median)",
                  "held-out after 2 ep (median)", "meta-train s"], rows)
    print(text)
    caption = (f"Meta-training on {args.train_tasks} training tasks × {args.task_steps:,} env "
               "steps of Bayesian linear Q, the same tasks and seeds for both rows; held-out: "
               f"{args.tasks} within-range tasks, greedy return over {args.eval_episodes} "
               "episodes of the meta-prior's readout, then after 2 episodes of adaptation. "
               f"Candidates: the configured reservoir and {args.candidates - 1} around it, scored "
               "by the log evidence of return-to-go and observation-change regressions on "
               "random-policy episodes (meta/reservoir_prior.py).")
    if not args.no_write and not args.quick:
        write_section("meta_reservoir", "Meta-prior over reservoir hyperparameters",
                      caption + "\n\n" + text)


if __name__ == "__main__":
    main()
