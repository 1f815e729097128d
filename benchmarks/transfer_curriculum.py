"""Transfer and curriculum learning: env steps to balance a short pole, from scratch, from a
trained CartPole-v1 agent (``--init``) and through an easy-to-hard curriculum.

The hard task is ``CartPoleTask-v1@length=0.1`` (a pole five times shorter than CartPole-v1's),
target 475 over the evaluation episodes. Per seed (reservoir and learner):

* scratch: ``configs/transfer_cartpole.yaml`` without ``--init``;
* transfer: the same config with ``--init`` a CartPole-v1 agent trained (same seed, same encoder
  ranges) until it reaches 475; its source steps are reported apart;
* curriculum: ``configs/curriculum_cartpole.yaml`` (pole 0.5 → 0.25 → 0.1), every stage counted.

Figures: seeds that reach the target on the short pole, median env steps on the short pole and
in total (a seed that never reaches it counts as more than its budget), final evaluation mean.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.config import load_config  # noqa: E402
from neuralalchemy.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRANSFER = ROOT / "configs" / "transfer_cartpole.yaml"
CURRICULUM = ROOT / "configs" / "curriculum_cartpole.yaml"
SOURCE_STEPS = 100_000
RANGES = "encoder.ranges=[[-2.4,2.4],[-3.0,3.0],[-0.21,0.21],[-3.5,3.5]]"


def _seeded(seed: int, out: Path) -> list[str]:
    return [f"training.seed={seed}", f"reservoir.seed={seed}", f"out={out}"]


def run_seed(seed: int, out: Path) -> dict[str, dict]:
    """The three ways to the short pole for one seed: summaries keyed by method."""
    res: dict[str, dict] = {}
    t0 = time.perf_counter()
    scratch = train(load_config(TRANSFER, _seeded(seed, out)), progress=False).summary
    res["scratch"] = {**scratch, "total": scratch["env_steps"],
                      "wall": time.perf_counter() - t0}
    t0 = time.perf_counter()
    src = train(load_config(None, [*_seeded(seed, out), RANGES]), steps=SOURCE_STEPS,
                progress=False)
    t1 = time.perf_counter()
    tr = train(load_config(TRANSFER, [*_seeded(seed, out), f"training.init={src.run_dir}"]),
               progress=False).summary
    res["transfer"] = {**tr, "total": tr["env_steps"] + src.summary["env_steps"],
                       "source": src.summary, "wall": time.perf_counter() - t1,
                       "wall_total": time.perf_counter() - t0}
    t0 = time.perf_counter()
    cur = train(load_config(CURRICULUM, _seeded(seed, out)), progress=False).summary
    res["curriculum"] = {**cur, "total": cur["curriculum_env_steps"],
                         "wall": time.perf_counter() - t0}
    return res


def _median(values: list[int], solved: list[bool], budget: int) -> str:
    """Upper median, an unsolved seed counting as more than ``budget``."""
    keyed = sorted(v if s else budget + 1 for v, s in zip(values, solved))
    m = keyed[len(keyed) // 2]
    return f"> {budget:,}" if m > budget else f"{m:,}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    budget = load_config(TRANSFER).training.steps
    per_seed = []
    with TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            per_seed.append(run_seed(seed, Path(tmp)))
            print(f"seed {seed}: " + ", ".join(
                f"{k} {v['env_steps']:,} steps solved={v['solved']}"
                for k, v in per_seed[-1].items()), flush=True)
    rows = []
    for method in ("scratch", "transfer", "curriculum"):
        runs = [s[method] for s in per_seed]
        solved = [bool(r["solved"]) for r in runs]
        finals = np.array([r["eval_mean"] for r in runs])
        rows.append([
            f"**{method}**" if method != "scratch" else method,
            f"{sum(solved)}/{len(runs)}",
            _median([r["env_steps"] for r in runs], solved, budget),
            _median([r["total"] for r in runs], solved, budget + SOURCE_STEPS),
            f"{finals.mean():.1f} ± {finals.std():.1f}",
            f"{np.median([r['wall'] for r in runs]):.0f}"])
    src_steps = [s["transfer"]["source"]["env_steps"] for s in per_seed]
    headers = ["method", "reached 475", "median env steps on pole 0.1", "median env steps in "
               "total", "final return (pole 0.1)", "median wall s (pole 0.1 / curriculum)"]
    body = (f"Hard task CartPoleTask-v1@length=0.1 (target 475, budget {budget:,} env steps); "
            f"seeds 0…{args.seeds - 1}; ARS on the 256-neuron fixed-point reservoir. Transfer "
            f"starts from a CartPole-v1 agent of the same seed (source env steps "
            f"{', '.join(f'{s:,}' for s in src_steps)}; in the total column); the curriculum "
            "is configs/curriculum_cartpole.yaml, all stages counted. An unreached target "
            "counts as more than the budget.\n\n" + table(headers, rows))
    print(body)
    if not args.no_write:
        write_section("transfer_curriculum", "Transfer and curriculum learning: CartPole short "
                      "pole", body)


if __name__ == "__main__":
    main()
