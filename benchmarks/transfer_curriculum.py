"""Transfer and curriculum learning: a short pole from a trained CartPole-v1 agent, and a
success-only reward through a sparse-reward curriculum, each against training from scratch.

Per seed (reservoir and learner), ARS on the 256-neuron fixed-point reservoir:

* transfer: ``configs/transfer_cartpole.yaml`` (``CartPoleTask-v1@length=0.3``, and 0.2, poles
  shorter than CartPole-v1's 0.5, target 475) from scratch and with ``--init`` a CartPole-v1
  agent trained (same seed, same encoder ranges) until it reaches 475; the source's steps are
  reported apart. Figures: return before training (jumpstart), mean return over the first
  :data:`AUC_STEPS` steps (area under the learning curve), steps to the target;
* curricula for a success-only reward (``GoalCartPole-v1@goal=500``: 1 for balancing 500 steps,
  else 0; target a 95 % success rate), every stage counted, against goal 500 from scratch with
  the same total budget: ``configs/curriculum_goal_cartpole.yaml`` (goal 25 → 100 → 250 → 500)
  and ``configs/curriculum_dense_to_sparse.yaml`` (CartPole-v1's dense reward, then the sparse
  one).

A seed that never reaches the target counts as more than its budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.config import Config, load_config  # noqa: E402
from neuralalchemy.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRANSFER = ROOT / "configs" / "transfer_cartpole.yaml"
CURRICULUM = ROOT / "configs" / "curriculum_goal_cartpole.yaml"
DENSE_TO_SPARSE = ROOT / "configs" / "curriculum_dense_to_sparse.yaml"
SOURCE_STEPS = 100_000
RANGES = "encoder.ranges=[[-2.4,2.4],[-3.0,3.0],[-0.21,0.21],[-3.5,3.5]]"


AUC_STEPS = 20_000
"""Budget of the area under the learning curve (mean evaluation return over the first env
steps)."""


def curve(run_dir: Path) -> list[tuple[int, float]]:
    """(env steps, mean evaluation return) of every evaluation of a run."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").open()]
    return [(int(r["env_steps"]), float(r["mean"])) for r in rows if r.get("kind") == "eval"]


def area(points: list[tuple[int, float]], budget: int = AUC_STEPS) -> float:
    """Mean evaluation return over env steps 0..budget: each evaluation holds until the next;
    before a run's first evaluation its first value counts (which favours a run that is not
    evaluated before its first update); after its last, its last."""
    if not points:
        return float("nan")
    steps = np.array([p[0] for p in points] + [budget], dtype=float)
    values = np.array([p[1] for p in points])
    start = np.clip(np.concatenate([[0.0], steps[1:-1]]), 0, budget)
    stop = np.clip(steps[1:], 0, budget)
    return float(np.sum(values * np.maximum(stop - start, 0)) / budget)


def _seeded(seed: int, out: Path) -> list[str]:
    return [f"training.seed={seed}", f"reservoir.seed={seed}", f"out={out}"]


POLES = ("0.3", "0.2")
"""Half pole lengths of the transfer targets (``transfer_cartpole.yaml`` ships 0.3)."""


def _timed(cfg: Config, steps: int | None = None) -> tuple[Any, dict]:
    """Train ``cfg``; the result and its summary with the wall time."""
    t0 = time.perf_counter()
    run = train(cfg, steps=steps, progress=False)
    return run, {**run.summary, "wall": time.perf_counter() - t0}


def run_seed(seed: int, out: Path) -> dict[tuple[str, str], dict]:
    """Every method of every task for one seed: summaries keyed by (task, method)."""
    res: dict[tuple[str, str], dict] = {}
    base = _seeded(seed, out)
    src = train(load_config(None, [*base, RANGES, "training.eval_every=1",
                                   "training.target_return=475"]), steps=SOURCE_STEPS,
                progress=False)
    for pole in POLES:
        env = f"env=CartPoleTask-v1@length={pole}"
        run, summary = _timed(load_config(TRANSFER, [*base, env]))
        res[f"pole {pole}", "scratch"] = {**summary, "total": summary["env_steps"],
                                          "curve": curve(run.run_dir)}
        run, summary = _timed(load_config(TRANSFER, [*base, env,
                                                     f"training.init={src.run_dir}"]))
        res[f"pole {pole}", "transfer"] = {
            **summary, "total": summary["env_steps"] + src.summary["env_steps"],
            "curve": curve(run.run_dir), "source": src.summary}
    hard = load_config(CURRICULUM, base)
    budget = sum(int(st["steps"]) for st in hard.curriculum.stages)
    _, summary = _timed(load_config(CURRICULUM, [*base, "curriculum.stages=[]"]), budget)
    res["goal 500", "scratch"] = {**summary, "total": summary["env_steps"]}
    for method, path in (("goal curriculum", CURRICULUM), ("dense → sparse", DENSE_TO_SPARSE)):
        _, summary = _timed(load_config(path, base))
        res["goal 500", method] = {**summary, "total": summary["curriculum_env_steps"]}
    return res


def _median(values: list[int], solved: list[bool], budget: int) -> str:
    """Upper median, a seed that never reached the target counting as more than ``budget``."""
    keyed = sorted(v if s else float("inf") for v, s in zip(values, solved))
    m = keyed[len(keyed) // 2]
    return f"> {budget:,}" if m == float("inf") else f"{int(m):,}"


ROWS = (*((f"pole {p}", "scratch", "transfer") for p in POLES),
        ("goal 500", "scratch", "goal curriculum", "dense → sparse"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    budget = load_config(TRANSFER).training.steps
    stages = load_config(CURRICULUM).curriculum.stages
    hard_budget = sum(int(st["steps"]) for st in stages)
    per_seed = []
    with TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            per_seed.append(run_seed(seed, Path(tmp)))
            print(f"seed {seed}: " + ", ".join(
                f"{t} {m} {v['env_steps']:,} steps solved={v['solved']}"
                for (t, m), v in per_seed[-1].items()), flush=True)
    rows = []
    for task, *methods in ROWS:
        pole = task.startswith("pole")
        cap = budget if pole else hard_budget
        for method in methods:
            runs = [s[task, method] for s in per_seed]
            solved = [bool(r["solved"]) for r in runs]
            finals = np.array([r["eval_mean"] for r in runs])
            curves = [r.get("curve") for r in runs]
            early = ["–", "–"]
            if all(curves):
                if all(c[0][0] == 0 for c in curves):  # evaluated before its first update
                    early[0] = f"{np.median([c[0][1] for c in curves]):.0f}"
                early[1] = f"{np.median([area(c) for c in curves]):.0f}"
            rows.append([
                task, method if method.startswith("scratch") else f"**{method}**",
                *early, f"{sum(solved)}/{len(runs)}",
                _median([r["env_steps"] for r in runs], solved, cap),
                _median([r["total"] for r in runs], solved, cap + SOURCE_STEPS),
                f"{finals.mean():.1f} ± {finals.std():.1f}" if pole else
                f"{finals.mean():.2f} ± {finals.std():.2f}",
                f"{np.median([r['wall'] for r in runs]):.0f}"])
    src_steps = [s[f"pole {POLES[0]}", "transfer"]["source"]["env_steps"] for s in per_seed]
    headers = ["hard task", "method", "median return before training",
               f"median mean return over the first {AUC_STEPS:,} steps", "reached the target",
               "median env steps on the hard task",
               "median env steps in total", "final return (hard task)", "median wall s"]
    body = (f"Seeds 0…{args.seeds - 1}; ARS on the 256-neuron fixed-point reservoir, evaluated "
            "after every update (a transferred agent also before its first). Poles 0.3 and 0.2 "
            "(configs/transfer_cartpole.yaml, CartPoleTask-v1@length=0.3 or 0.2, against "
            f"CartPole-v1's 0.5; target 475, budget {budget:,} env steps): from scratch and from "
            "one CartPole-v1 agent of the same seed (source env steps "
            f"{', '.join(f'{s:,}' for s in src_steps)}, in the total column). Goal 500 "
            "(GoalCartPole-v1@goal=500: 1 for balancing 500 steps, else 0; target a 95 % success "
            f"rate over 20 episodes): from scratch with {hard_budget:,} env steps and through "
            "configs/curriculum_goal_cartpole.yaml (goal 25 → 100 → 250 → 500) and "
            "configs/curriculum_dense_to_sparse.yaml (CartPole-v1's dense reward to 475, then "
            "goal 500), the same total budget, all stages counted in the total column. A seed "
            "that never reaches the target counts as more than the budget. The mean return over "
            f"the first {AUC_STEPS:,} steps is the area under the evaluation curve divided by the "
            "steps (each evaluation holds until the next; a scratch run's first evaluation, after "
            "its first update, also stands for the steps before it).\n\n" + table(headers, rows))
    print(body)
    if not args.no_write:
        write_section("transfer_curriculum", "Transfer and curriculum learning: shorter poles "
                      "and a success-only reward", body)


if __name__ == "__main__":
    main()
