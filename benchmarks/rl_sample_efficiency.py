"""RL sample efficiency: our spiking-reservoir agents against Stable-Baselines3 peers, same run.

For each environment and seed: the env steps and wall time until the evaluation mean first
reaches the threshold (CartPole 475, Acrobot −100, MountainCar −110, Pendulum −200; the masked
and sparse variants use their parent's threshold), whether it stays there (every later
evaluation at or above it), and the final return. Peers: SB3 PPO and DQN on rl-baselines3-zoo's
published hyperparameters, and sb3-contrib's RecurrentPPO (zoo's ``CartPoleNoVel-v1`` /
``PendulumNoVel-v1`` settings) on the masked tasks; see ``_sb3_peers.py``.

Protocol (both sides):

* Seeds 0…n−1. Ours: the shipped config meant for the env (``configs/``), with
  ``training.seed`` and ``reservoir.seed`` set to the seed (so the reservoir is redrawn per seed,
  as a peer's network initialisation is), ``training.steps`` set to the env's budget and
  ``training.target_return`` set out of reach, so training never stops early; environment
  variables do not override the configs here. Peers: ``seed`` for the model and the training
  envs.
* Evaluation: the greedy/deterministic policy on 20 episodes seeded 1,000,000 + i (the same
  episodes every time and for every agent), then 100 episodes after the last update (the
  final return). Ours evaluate every ``training.eval_every`` updates of their config; the peers
  after the update that reaches each multiple of ``PEER_EVAL_EVERY`` env steps (coarser when a
  rollout is longer). The table gives the median interval observed.
* Wall time: training time until the evaluation, evaluations included, single torch thread.
* A run that never reaches the threshold within the budget counts as "> budget" in the medians.

Usage: ``python benchmarks/rl_sample_efficiency.py`` (all envs, 5 seeds; hours on 2 cores;
writes the ``rl_sample_efficiency`` section of RESULTS.md), ``--quick`` (budgets ÷ 10, 2 seeds,
a smoke test), ``--envs CartPole-v1,Acrobot-v1``, ``--seeds 3``, ``--peers ppo,dqn``,
``--no-write``. Raw evaluation curves go to ``benchmarks/out/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sb3_peers as peers  # noqa: E402
from _results import machine, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
OUT = Path(__file__).resolve().parent / "out"

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MaskedCartPole-v1",
        "MaskedPendulum-v1", "SparseCartPole-v1")
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0,
              "Pendulum-v1": -200.0, "MaskedCartPole-v1": 475.0, "MaskedPendulum-v1": -200.0,
              "SparseCartPole-v1": 475.0}
# env steps per run, the same for every agent (the zoo's own budgets are 5e4–1e6)
BUDGETS = {"CartPole-v1": 50_000, "Acrobot-v1": 100_000, "MountainCar-v0": 200_000,
           "Pendulum-v1": 200_000, "MaskedCartPole-v1": 50_000, "MaskedPendulum-v1": 200_000,
           "SparseCartPole-v1": 200_000}
# the peers' evaluation interval (env steps), close to our configs' (1,024–5,120)
PEER_EVAL_EVERY = {"CartPole-v1": 1_000, "Acrobot-v1": 2_000, "MountainCar-v0": 2_000,
                   "Pendulum-v1": 5_000, "MaskedCartPole-v1": 1_000, "MaskedPendulum-v1": 5_000,
                   "SparseCartPole-v1": 2_000}
EVAL_EPISODES, FINAL_EPISODES = 20, 100
UNREACHABLE = "1000000000"  # training.target_return: never stop early

# env -> our agents: (label, config file, extra --set overrides)
OURS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "CartPole-v1": [("reservoir PPO", "cartpole_ppo.yaml", ()),
                    ("reservoir BLQ", "cartpole_blq.yaml", ()),
                    # ARS updates take 16-32k steps once episodes are long: evaluate after each
                    ("reservoir ARS", "cartpole.yaml", ("training.eval_every=1",))],
    "Acrobot-v1": [("reservoir PPO", "acrobot_ppo.yaml", ()),
                   ("reservoir MPC (model-based)", "acrobot_mpc.yaml", ())],
    "MountainCar-v0": [("reservoir ARS", "mountaincar.yaml", ())],
    "Pendulum-v1": [("reservoir PPO", "pendulum.yaml", ())],
    "MaskedCartPole-v1": [("reservoir PPO", "masked_cartpole.yaml", ())],
    "MaskedPendulum-v1": [("reservoir PPO", "masked_pendulum.yaml", ())],
    "SparseCartPole-v1": [("reservoir PPO", "sparse_cartpole.yaml", ())],
}
# configs run on a budget of their own, below the env's: the model-based learner plans at every
# env step (about 16 ms of one core), so it runs to the Acrobot goal's horizon (30k steps)
OUR_BUDGETS = {"acrobot_mpc.yaml": 30_000}


# ---------------------------------------------------------------- runs
@dataclass
class Run:
    """One agent, one env, one seed: its evaluation records (or the error that stopped it)."""

    env: str
    agent: str
    ours: bool
    seed: int
    budget: int
    evals: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def run_ours(env: str, config: str, extra: tuple[str, ...], seed: int, budget: int,
             out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train one of our agents; its eval records from ``metrics.jsonl``."""
    from neuralalchemy.config import load_config
    from neuralalchemy.records import read_metrics
    from neuralalchemy.train import train

    overrides = [f"training.seed={seed}", f"reservoir.seed={seed}", f"training.steps={budget}",
                 f"training.target_return={UNREACHABLE}", *extra]
    cfg = load_config(CONFIGS / config, overrides, environ={})
    if cfg.env != env:
        raise ValueError(f"{config} trains {cfg.env}, not {env}")
    res = train(cfg, out=out, progress=False)
    evals = [r for r in read_metrics(res.run_dir / "metrics.jsonl") if r.get("kind") == "eval"]
    return evals, {"config": config, "overrides": overrides, "run_dir": str(res.run_dir),
                   "train_wall_s": res.summary.get("wall_s")}


def run_peer(peer: str, env: str, seed: int, budget: int) -> tuple[list[dict[str, Any]],
                                                                    dict[str, Any]]:
    """Train one SB3 peer; its eval records."""
    res = peers.train_peer(peer, env, seed, budget, PEER_EVAL_EVERY[env], EVAL_EPISODES,
                           FINAL_EPISODES)
    records = res.pop("records")
    return records, res


def attempt(run: Run, fn: Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]) -> Run:
    """Run one training; a failure is recorded on the run, never raised."""
    start = time.perf_counter()
    try:
        run.evals, run.info = fn()
        if not run.evals:
            run.error = "no evaluation recorded"
    except Exception as exc:  # noqa: BLE001 - one failing run must not stop the benchmark
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        run.info["traceback"] = traceback.format_exc()
    run.wall_s = time.perf_counter() - start
    return run


def execute(todo: list[tuple[Run, Any]], jobs: int,
            report: Callable[[Run], None]) -> dict[int, Run]:
    """Train every run not already failed, ``jobs`` at a time (separate processes when > 1);
    finished runs by their index in ``todo``."""
    out: dict[int, Run] = {}
    pending = [i for i, (run, _) in enumerate(todo) if run.error is None]
    if jobs <= 1:
        for i in pending:
            out[i] = attempt(*todo[i])
            report(out[i])
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(attempt, *todo[i]): i for i in pending}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                out[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died (memory, a crash)
                out[i] = todo[i][0]
                out[i].error = f"worker failed: {type(exc).__name__}: {exc}"
            report(out[i])
    return out


# ---------------------------------------------------------------- analysis
@dataclass
class Reach:
    """What one run did with respect to one threshold."""

    steps: float  # env steps at the first evaluation at/above the threshold (inf: never)
    wall_s: float  # training wall time then (inf: never)
    stays: bool  # every later evaluation at/above it (False if never reached)
    frac_after: float  # fraction of later evaluations at/above it (1 if none came later)
    final: float  # the last evaluation's mean (the 100-episode one)


def reach(evals: list[dict[str, Any]], threshold: float) -> Reach:
    """First reach, staying power and final return of one run's evaluations."""
    final = float(evals[-1]["mean"])
    for i, rec in enumerate(evals):
        if rec["mean"] >= threshold:
            later = [r["mean"] >= threshold for r in evals[i + 1:]]
            frac = sum(later) / len(later) if later else 1.0
            return Reach(float(rec["env_steps"]), float(rec["wall_s"]), all(later), frac, final)
    return Reach(math.inf, math.inf, False, 0.0, final)


def median_high(values: list[float]) -> float:
    """The median; for an even count the upper middle value (conservative with "> budget")."""
    return sorted(values)[len(values) // 2] if values else math.inf


def eval_interval(evals: list[dict[str, Any]]) -> float:
    """Median env steps between consecutive evaluations (the final one's repeat left out)."""
    steps = [r["env_steps"] for r in evals]
    gaps = [b - a for a, b in zip(steps, steps[1:]) if b > a]
    return statistics.median(gaps) if gaps else math.nan


@dataclass
class Row:
    """One agent on one env, over its seeds."""

    env: str
    agent: str
    ours: bool
    budget: int
    n: int
    errors: int
    reached: int = 0
    median_steps: float = math.inf
    median_wall: float = math.inf
    stays: int = 0
    frac_after: float = math.nan
    final_mean: float = math.nan
    final_std: float = math.nan
    interval: float = math.nan
    run_wall: float = math.nan
    ratio: str = "—"
    goal: str = "—"
    reaches: list[Reach] = field(default_factory=list)


def summarize(runs: list[Run], threshold: float) -> Row:
    """Aggregate one agent's runs on one env."""
    first = runs[0]
    ok = [r for r in runs if r.error is None]
    row = Row(first.env, first.agent, first.ours, first.budget, len(runs), len(runs) - len(ok))
    if not ok:
        return row
    row.reaches = [reach(r.evals, threshold) for r in ok]
    hit = [x for x in row.reaches if math.isfinite(x.steps)]
    row.reached, row.stays = len(hit), sum(x.stays for x in hit)
    row.median_steps = median_high([x.steps for x in row.reaches])
    row.median_wall = median_high([x.wall_s for x in row.reaches])
    row.frac_after = statistics.mean(x.frac_after for x in hit) if hit else math.nan
    finals = [x.final for x in row.reaches]
    row.final_mean = statistics.mean(finals)
    row.final_std = statistics.pstdev(finals)
    row.interval = statistics.median(eval_interval(r.evals) for r in ok)
    row.run_wall = statistics.median(r.wall_s for r in ok)
    return row


def ratio(ours: float, peer: float, budget: int) -> str:
    """Our median steps ÷ the best peer's, with "> budget" on either side."""
    if math.isfinite(ours) and math.isfinite(peer):
        return f"{ours / peer:.2f}×"
    if math.isfinite(ours):
        return f"< {ours / budget:.2f}×"  # the peer needs more than the budget
    if math.isfinite(peer):
        return f"> {budget / peer:.2f}×"
    return "—"


# goals of the issue, for our rows: env -> (description, check(row, runs, peer rows))
def _goal_cartpole(row: Row, runs: list[Run], others: list[Row]) -> str:
    return _status(row.median_steps <= 10_000, f"median {_steps(row.median_steps, row.budget)}")


def _goal_acrobot(row: Row, runs: list[Run], others: list[Row]) -> str:
    ok = [r for r in runs if r.error is None]
    med = median_high([reach(r.evals, -80.0).steps for r in ok])
    return _status(med <= 30_000, f"median to −80: {_steps(med, row.budget)}")


def _goal_mountaincar(row: Row, runs: list[Run], others: list[Row]) -> str:
    need = math.ceil(0.8 * row.n)
    return _status(row.reached >= need, f"{row.reached}/{row.n} seeds, need {need}")


def _goal_masked_cartpole(row: Row, runs: list[Run], others: list[Row]) -> str:
    rppo = [o for o in others if o.agent == peers.LABELS["recurrentppo"] and o.errors < o.n]
    if not rppo:
        return "n/a (RecurrentPPO not run)"
    theirs = rppo[0].median_steps
    met = math.isfinite(row.median_steps) and row.median_steps < theirs
    return _status(met, f"{_steps(row.median_steps, row.budget)} vs "
                        f"{_steps(theirs, rppo[0].budget)}")


GOALS: dict[str, tuple[str, Callable[[Row, list[Run], list[Row]], str]]] = {
    "CartPole-v1": ("solved (475) in ≤ 10k env steps, median of the seeds "
                    "(SB3 PPO needs 30k–40k)", _goal_cartpole),
    "Acrobot-v1": ("≥ −80 by 30k env steps (median first evaluation ≥ −80 at ≤ 30k)",
                   _goal_acrobot),
    "MountainCar-v0": ("≥ −110 reached in ≥ 4 of 5 seeds (≥ 80 % of the seeds)",
                       _goal_mountaincar),
    "MaskedCartPole-v1": ("solved (475) in fewer median env steps than RecurrentPPO",
                          _goal_masked_cartpole),
}


def _status(met: bool, detail: str) -> str:
    return f"{'met' if met else 'not met'} ({detail})"


def _steps(value: float, budget: int) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else f"> {budget:,}"


def finish_rows(rows: list[Row], runs: dict[tuple[str, str], list[Run]]) -> None:
    """Ratio (ours ÷ best peer, same env) and goal status of our rows."""
    for row in rows:
        if not row.ours:
            continue
        others = [o for o in rows if o.env == row.env and not o.ours and o.errors < o.n]
        if others and row.errors < row.n:
            best = min(o.median_steps for o in others)
            row.ratio = ratio(row.median_steps, best, row.budget)
        if row.env in GOALS:
            row.goal = GOALS[row.env][1](row, runs[(row.env, row.agent)], others) \
                if row.errors < row.n else "error"


# ---------------------------------------------------------------- output
HEADERS = ["env", "agent", "reached", "median steps to threshold", "median wall s to threshold",
           "stays (later evals ≥)", "final return", "eval every", "wall s / run",
           "ratio ours ÷ best peer", "goal"]


def cells(row: Row) -> list[object]:
    """One table row of strings."""
    name = f"**{row.agent}**" if row.ours else row.agent
    if row.errors == row.n:
        return [row.env, name, f"error ({row.n} runs)", *["—"] * 7, row.goal]
    reached = f"{row.reached}/{row.n - row.errors}" + (f" ({row.errors} error)"
                                                      if row.errors else "")
    stays = f"{row.stays}/{row.reached} ({row.frac_after:.0%})" if row.reached else "—"
    wall = f"{row.median_wall:.0f}" if math.isfinite(row.median_wall) else "—"
    interval = f"{row.interval:,.0f}" if math.isfinite(row.interval) else "—"
    return [row.env, name, reached, _steps(row.median_steps, row.budget), wall, stays,
            f"{row.final_mean:.1f} ± {row.final_std:.1f}", interval, f"{row.run_wall:.0f}",
            row.ratio, row.goal]


def caption(args: argparse.Namespace, budgets: dict[str, int], total: float,
            load: tuple[float, float]) -> str:
    """What the table measures, and how."""
    envs = ", ".join(f"{e} {THRESHOLDS[e]:g} / {budgets[e]:,}" for e in args.env_list)
    return (
        f"{args.seeds} seed(s) per agent and env (0…{args.seeds - 1}); env: threshold / budget "
        f"in env steps: {envs}. Evaluation: the greedy (deterministic) policy on "
        f"{EVAL_EPISODES} episodes seeded 1,000,000 + i, the same for every agent, and "
        f"{FINAL_EPISODES} episodes after training (the final return). Ours: the shipped "
        "config of the env with training.seed and reservoir.seed = the seed, training.steps = "
        "the budget (" + "; ".join(f"{c}: {b:,}, its own" for c, b in OUR_BUDGETS.items())
        + ", as it plans at every env step) and no early stop, evaluated every "
        "training.eval_every updates (ARS: every "
        "update); peers: rl-baselines3-zoo's published hyperparameters (benchmarks/"
        "_sb3_peers.py: zoo commit 22e3ff2; schedules over max(zoo n_timesteps, budget)), "
        "evaluated after the update that reaches each multiple of "
        + ", ".join(f"{PEER_EVAL_EVERY[e]:,}" for e in args.env_list)
        + " env steps; 'eval every' is the median interval observed. VecNormalize (zoo "
        "normalize: true) is evaluated with its training statistics, frozen. Reached: seeds "
        "whose evaluation mean reached the threshold; median steps / wall s: at the first such "
        "evaluation, a seed that never did counts as > budget (upper median for an even count); "
        "wall s: training time so far, evaluations included, one torch thread; a run ends "
        "after the update that crosses the budget (ARS: up to one iteration of 32 episodes), "
        "so its last evaluations may lie past the budget; stays: seeds "
        "with every later evaluation at or above the threshold (mean fraction of later "
        "evaluations at or above it); final return: mean ± std over seeds of the "
        f"{FINAL_EPISODES}-episode evaluation; ratio: our median steps ÷ the best peer's on the "
        "same env in this run (< / >: one side did not reach it within the budget). Peers: "
        "PPO and DQN (discrete actions) on the fully observed envs (SparseCartPole-v1 with "
        "CartPole-v1's hyperparameters), RecurrentPPO (zoo CartPoleNoVel-v1 / PendulumNoVel-v1) "
        f"on the masked ones. Machine: {machine()}; {args.jobs} run(s) at a time; whole run "
        f"{total / 60:.0f} min, load "
        f"average {load[0]:.1f} at start, {load[1]:.1f} at end (a load above the core count "
        "means other work shared the machine and wall times are noisy)."
        + (" QUICK MODE: budgets ÷ 10." if args.quick else "")
    )


def goals_text(args: argparse.Namespace) -> str:
    """The goals, one line each."""
    lines = [f"* {env}: {GOALS[env][0]}" for env in args.env_list if env in GOALS]
    return "Goals (our rows):\n\n" + "\n".join(lines) if lines else ""


def print_rich(rows: list[Row]) -> None:
    """The table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    tab = Table(title="RL sample efficiency", show_lines=False)
    for h in HEADERS:
        tab.add_column(h, overflow="fold")
    for row in rows:
        tab.add_row(*(str(c).replace("**", "") for c in cells(row)))
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # a log file: no wrapping at 80 columns
    console.print(tab)


# ---------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", default=",".join(ENVS),
                    help=f"comma-separated env ids (default: all: {','.join(ENVS)})")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per agent (default 5; "
                    "--quick: 2)")
    ap.add_argument("--quick", action="store_true", help="budgets ÷ 10, 2 seeds (smoke test)")
    ap.add_argument("--peers", default="ppo,dqn,recurrentppo",
                    help="comma-separated SB3 peers, each run where it applies ('' for none)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs in parallel, one process each (default 1; wall times are "
                    "comparable only when the machine has a free core per job)")
    args = ap.parse_args(argv)
    args.env_list = [e.strip() for e in args.envs.split(",") if e.strip()]
    unknown = [e for e in args.env_list if e not in ENVS]
    if unknown:
        ap.error(f"unknown env {unknown[0]!r}; known: {', '.join(ENVS)}")
    args.peer_list = [p.strip().lower() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in args.peer_list if p not in peers.PEERS]
    if bad:
        ap.error(f"unknown peer {bad[0]!r}; known: {', '.join(peers.PEERS)}")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 5
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be at least 1")
    return args


def plan(args: argparse.Namespace, budgets: dict[str, int], out: Path) -> list[tuple[Run, Any]]:
    """Every run of this invocation, with the function that trains it."""
    todo: list[tuple[Run, Any]] = []
    for env in args.env_list:
        for label, config, extra in OURS[env]:
            budget = budgets[env]
            if config in OUR_BUDGETS:
                budget = min(budget, OUR_BUDGETS[config] // (10 if args.quick else 1))
            for seed in range(args.seeds):
                fn = partial(run_ours, env, config, extra, seed, budget, out / "runs")
                todo.append((Run(env, label, True, seed, budget), fn))
        for peer in args.peer_list:
            if peers.zoo_entry(peer, env) is None:
                continue
            for seed in range(args.seeds):
                fn = partial(run_peer, peer, env, seed, budgets[env])
                todo.append((Run(env, peers.LABELS[peer], False, seed, budgets[env]), fn))
    return todo


def main(argv: list[str] | None = None) -> None:
    """Run every agent on every env and seed; print and (unless --no-write) record the table."""
    import torch
    from rich.console import Console

    args = parse(argv)
    torch.set_num_threads(1)
    console = Console(highlight=False, soft_wrap=True)
    budgets = {e: b // 10 if args.quick else b for e, b in BUDGETS.items()}
    out = OUT / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    missing = peers.available() if args.peer_list else None
    if missing:
        console.print(f"[yellow]peers not run: {missing}[/]")
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    todo = plan(args, budgets, out)
    if missing:
        for run, _ in todo:
            run.error = None if run.ours else missing
    done = 0

    def report(run: Run) -> None:
        nonlocal done
        done += 1
        head = f"[{done}/{len(todo)}] {run.env} {run.agent} seed {run.seed}:"
        if run.error:
            console.print(f"{head} [red]error[/] {run.error}")
            return
        r = reach(run.evals, THRESHOLDS[run.env])
        got = f"reached at {r.steps:,.0f} steps, {r.wall_s:.0f} s" \
            if math.isfinite(r.steps) else f"not reached in {run.budget:,}"
        console.print(f"{head} {got}; final {r.final:.1f}; {run.wall_s:.0f} s")

    for run, _ in todo:
        if run.error is not None:
            report(run)
    finished = execute(todo, args.jobs, report)
    runs: dict[tuple[str, str], list[Run]] = {}
    for i, (run, _) in enumerate(todo):
        runs.setdefault((run.env, run.agent), []).append(finished.get(i, run))
    rows = [summarize(rs, THRESHOLDS[env]) for (env, _), rs in runs.items()]
    finish_rows(rows, runs)
    total, load1 = time.perf_counter() - start, os.getloadavg()[0]
    raw = out / "rl_sample_efficiency.json"
    raw.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                               "budgets": budgets,
                               "runs": [asdict(r) for rs in runs.values() for r in rs]},
                              indent=1, default=str))
    print_rich(rows)
    console.print(goals_text(args))
    console.print(f"total {total / 60:.1f} min; raw curves: {raw.relative_to(ROOT)}")
    if not args.no_write:
        # one section per environment, so environments benchmarked in separate runs coexist
        for env in dict.fromkeys(env for env, _ in runs):
            mine = [r for (e, _), r in zip(runs, rows) if e == env]
            body = "\n\n".join([caption(args, budgets, total, (load0, load1)),
                                table(HEADERS, [cells(r) for r in mine]), goals_text(args)])
            write_section(f"rl_sample_efficiency {env}", f"RL sample efficiency: {env}", body)


if __name__ == "__main__":
    main()
