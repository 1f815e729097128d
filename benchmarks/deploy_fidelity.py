"""Deploy fidelity: what survives the way from a trained agent to Lava, Brian2 and Loihi.

Per environment (default CartPole-v1):

1. Float → fixed point. A float-precision agent is trained (``reservoir.precision=float``) and
   compiled for Loihi 2 with the project's compiler (``compile_run``), whose quantizer searches
   the voltage scale that best keeps the float agent's actions on recorded trajectories. Reported:
   its action agreement (on held-out episodes where the report has them), the relative RMS weight
   error of each matrix, the spectral radius before and after, and the closed-loop returns of the
   float agent and of the quantized one on the torch engine.
2. Returns per backend. The default agent (trained in fixed point, the deployed path) is compiled
   for Loihi 2 and crosschecked (``neuralalchemy.sim.crosscheck``) on torch, ``sim`` (Lava's CPU
   simulator, ``fixed_pt``), ``brian2`` (exact mode) and ``brian2-detailed`` when that backend
   exists: mean ± std return over the same episodes, action agreement with torch, identical
   returns.
3. Spikes. The crosscheck's open-loop metrics: the torch episode's input replayed on every
   backend; spike agreement over neuron-timesteps and the number of differing spikes.
4. Latency on Lava. Agents of 256 and 1024 neurons (the default agent where its size matches,
   else one trained with a small budget and ``reservoir.size`` set), ``K = 5`` timesteps per
   environment step, played in closed loop by ``lava_backend.play``: one untimed warm-up
   episode, then each episode timed without runtime build (reported apart), reset and telemetry
   reads. Bare: the same network's LIF and recurrent connection alone (no input, no environment,
   no host loop), ``create_runtime``, a warm-up run, then one ``run(RunSteps(T))`` per timed
   episode, T = its timesteps; ratio = closed loop ÷ bare ms per timestep, best of the episodes.
   Where the difference goes: the same chunks with the input Dense added (silent), and with
   ``PayloadPlayer`` driving it with zero input and with the timed episodes' input (the closed
   loop's spikes without environment, readout or pauses).

Agents are trained once and reused from ``benchmarks/out/deploy_fidelity/`` (``--retrain``
redraws them); episodes are seeded 100 + i, seeds that neither training (evaluation seeds
1,000,000 + i) nor the quantizer (0, 1, …) used.

Usage: ``python benchmarks/deploy_fidelity.py`` (~5 min on 2 cores with the agents reused, ~3
more to train them; writes the ``deploy_fidelity`` section of benchmarks/RESULTS.md),
``--envs CartPole-v1,Acrobot-v1``, ``--episodes 5``, ``--retrain``, ``--quick`` (32-neuron
agents, tiny budgets, nothing written: a smoke test), ``--no-write``, ``--out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as ty
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
OUT = Path(__file__).resolve().parent / "out" / "deploy_fidelity"
SHIPPED = {"CartPole-v1": "cartpole.yaml", "Acrobot-v1": "acrobot.yaml",
           "MountainCar-v0": "mountaincar.yaml", "Pendulum-v1": "pendulum.yaml",
           "MaskedCartPole-v1": "masked_cartpole.yaml",
           "MaskedPendulum-v1": "masked_pendulum.yaml",
           "SparseCartPole-v1": "sparse_cartpole.yaml"}
SEED0 = 100
K = 5
WARMUP = 50
DETAILED = "brian2-detailed"
GOAL_AGREEMENT, GOAL_SPIKES, GOAL_RATIO = 0.99, 0.99, 1.3


@dataclass(frozen=True)
class Settings:
    """Budgets of one run (full or quick)."""

    budget: int  # env steps to train the float and the default agent
    size_budget: int  # env steps to train a latency agent of another size
    episodes: int  # closed-loop episodes per backend (the crosscheck)
    float_episodes: int  # episodes of the float and the quantized agent on torch
    spike_steps: int  # open-loop timesteps for the spike metrics
    sizes: tuple[int, ...]  # reservoir sizes timed on Lava
    latency_steps: int  # env steps timed in closed loop (at least), after a warm-up episode
    latency_episodes: int  # episodes timed in closed loop (at least)
    extra: tuple[str, ...] = ()  # --set overrides of every agent


FULL = Settings(50_000, 10_000, 3, 5, 500, (256, 1024), 600, 3)
QUICK = Settings(400, 400, 2, 2, 100, (32, 64), 20, 2,
                 ("reservoir.size=32", "training.eval_episodes=4",
                  "encoder.calibration_episodes=2"))


# ---------------------------------------------------------------- agents
def trained(env: str, label: str, overrides: ty.Sequence[str], budget: int, root: Path,
            retrain: bool) -> tuple[Path, dict[str, ty.Any]]:
    """Run folder of a finished training (reused unless ``retrain``) and its summary."""
    from neuralalchemy.config import load_config
    from neuralalchemy.fsio import latest
    from neuralalchemy.train import train

    folder = root / env / f"{label}-{budget}"
    found = None if retrain else latest(folder / "runs", "summary.json")
    if found is not None:
        summary = json.loads((found / "summary.json").read_text())
        return found, {**summary, "reused": True}
    config = CONFIGS / SHIPPED[env] if env in SHIPPED else None
    cfg = load_config(config, overrides=[f"env={env}", f"out={folder}", *overrides], environ={})
    print(f"  training {label} on {env} ({budget:,} env steps) ...", flush=True)
    result = train(cfg, steps=budget, progress=False)
    return result.run_dir, {**result.summary, "reused": False}


def compiled(run_dir: Path) -> tuple[ty.Any, dict[str, ty.Any] | None, float]:
    """The run compiled for Loihi 2 (agent, quantization report, compile seconds)."""
    from neuralalchemy.compile.artifact import load_artifact
    from neuralalchemy.compile.compiler import compile_run

    start = time.perf_counter()
    folder, info = compile_run(run_dir, "loihi2", run_dir.parent.parent / "artifact-loihi2")
    wall = time.perf_counter() - start
    agent, _ = load_artifact(folder)
    return agent, info["quantization"], wall


def _returns(records: list[ty.Any]) -> dict[str, ty.Any]:
    rets = [r.ret for r in records]
    return {"returns": rets, "mean": float(np.mean(rets)), "std": float(np.std(rets))}


# ---------------------------------------------------------------- 1. float -> fixed
def float_to_fixed(env: str, s: Settings, root: Path, retrain: bool) -> dict[str, ty.Any]:
    """Train (or reuse) the float agent, quantize it for Loihi 2, compare returns on torch."""
    from neuralalchemy.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from neuralalchemy.sim.torch_backend import play

    run_dir, summary = trained(env, "float", ["reservoir.precision=float", *s.extra], s.budget,
                               root, retrain)
    fixed, quant, compile_s = compiled(run_dir)
    assert quant is not None, "a float agent compiled for Loihi carries a quantization report"
    seeds = [SEED0 + i for i in range(s.float_episodes)]
    float_agent = load_checkpoint(run_dir / CHECKPOINT_NAME).agent()
    held = quant.get("action_agreement_heldout")
    return {"run": str(run_dir), "training": summary, "compile_s": compile_s,
            "quantization": quant, "float_returns": _returns(play(float_agent, seeds)),
            "fixed_returns": _returns(play(fixed, seeds)),
            "agreement": held if held is not None else quant["action_agreement"],
            "agreement_kind": "held-out" if held is not None else "search episodes"}


# ---------------------------------------------------------------- 2. + 3. backends and spikes
def backends_present() -> list[str]:
    from neuralalchemy.sim.backend import BACKENDS

    return ["torch", "sim", "brian2"] + ([DETAILED] if DETAILED in BACKENDS else [])


def crosschecked(agent: ty.Any, s: Settings) -> dict[str, ty.Any]:
    """The crosscheck of ``agent`` on every backend present, with the differing spikes counted
    and the wall time."""
    from neuralalchemy.sim.crosscheck import crosscheck

    names, note = backends_present(), ""
    seeds = [SEED0 + i for i in range(s.episodes)]
    start = time.perf_counter()
    result = crosscheck(agent, names, seeds, s.spike_steps)
    result["wall_s"] = time.perf_counter() - start
    trains = result.pop("trains")
    ref = trains[result["reference"]]
    for name, entry in result["backends"].items():
        rets = entry["returns"]
        entry["std_return"] = float(np.std(rets))
        if name in trains:
            entry["differing_spikes"] = int(np.count_nonzero(trains[name] != ref))
            entry["neuron_steps"] = int(ref.size)
    result["note"] = note
    return result


# ---------------------------------------------------------------- 4. Lava latency
def latency_agent(env: str, n: int, default: ty.Any, s: Settings, root: Path,
                  retrain: bool) -> tuple[ty.Any, str, bool]:
    """An agent of ``n`` neurons and K timesteps per env step (the default one if it fits), a
    description, and whether it was trained in this run."""
    if default.network.size == n and default.steps_per_obs == K:
        return default, "default", False
    extra = [o for o in s.extra if not o.startswith("reservoir.size=")]
    run_dir, summary = trained(env, f"n{n}", [f"reservoir.size={n}",
                                              f"reservoir.steps_per_obs={K}", *extra],
                               s.size_budget, root, retrain)
    agent, _, _ = compiled(run_dir)
    return (agent, f"{summary['env_steps']:,} steps, eval {summary['eval_mean']:.0f}",
            not summary["reused"])


def _bare_graph(net: ty.Any) -> ty.Any:
    """The network's LIF and recurrent connection only (no input connection), the LIF returned:
    the process to run."""
    from neuralalchemy.sim.lava_backend import build_reservoir

    return build_reservoir(net, input_dense=False).lif


def time_lava(top: ty.Any, precision: str, chunks: list[int]) -> tuple[float, list[float]]:
    """(build s, ms per timestep of each chunk): ``create_runtime``, ``WARMUP`` untimed
    timesteps, then one ``run(RunSteps(c))`` per chunk ``c``; ``stop()`` in ``finally``."""
    from lava.magma.core.run_conditions import RunSteps

    from neuralalchemy.sim.lava_backend import _safe_stop, run_config

    try:
        start = time.perf_counter()
        top.create_runtime(run_cfg=run_config(precision))
        build = time.perf_counter() - start
        top.run(condition=RunSteps(num_steps=WARMUP))
        out = []
        for steps in chunks:
            start = time.perf_counter()
            top.run(condition=RunSteps(num_steps=steps))
            out.append(1000.0 * (time.perf_counter() - start) / steps)
        return build, out
    finally:
        _safe_stop(top)


def _timed_seeds(agent: ty.Any, s: Settings) -> tuple[list[int], list[ty.Any]]:
    """Seeds of one warm-up episode and of at least ``s.latency_episodes`` episodes and
    ``s.latency_steps`` env steps (at most 20 episodes), chosen with the torch engine (Lava plays
    the same episodes), and the torch records with their inputs."""
    from neuralalchemy.sim.torch_backend import play

    seeds, records, total = [SEED0 - 1], [], 0
    while (total < s.latency_steps or len(records) < s.latency_episodes) and len(records) < 20:
        seed = SEED0 + len(records)
        records += play(agent, [seed], record_inputs=True)
        seeds.append(seed)
        total += records[-1].length
    return seeds, records


def _replay_ms(net: ty.Any, payloads: np.ndarray, chunks: list[int]) -> list[float]:
    """ms per timestep of each chunk of the network driven open loop by ``PayloadPlayer`` with
    ``payloads`` (``WARMUP`` rows of zeros first)."""
    from neuralalchemy.sim.lava.process import PayloadPlayer
    from neuralalchemy.sim.lava_backend import build_reservoir

    res = build_reservoir(net)
    rows = np.vstack([np.zeros((WARMUP, payloads.shape[1]), payloads.dtype), payloads])
    player = PayloadPlayer(payloads=rows, n_neurons=net.size)
    player.x_out.connect(res.dense_in.s_in)
    res.lif.s_out.connect(player.s_in)
    return time_lava(player, net.precision, chunks)[1]


def _stats(ms: list[float]) -> dict[str, float]:
    return {"best": float(np.min(ms)), "median": float(np.median(ms))}


def lava_latency(agent: ty.Any, s: Settings) -> dict[str, ty.Any]:
    """Closed loop on Lava against the bare network, and the decomposition between them, each
    per timed episode (or chunk of the same length): best and median ms per timestep."""
    from neuralalchemy.sim.lava_backend import build_reservoir, play

    net, k = agent.network, agent.steps_per_obs
    seeds, torch_recs = _timed_seeds(agent, s)
    recs = play(agent, seeds)
    timed = recs[1:]
    run_s = [r.wall_s - r.extra["reset_s"] - r.extra["read_s"] for r in timed]
    chunks = [1 + k * r.length for r in timed]
    closed = [1000.0 * w / n for w, n in zip(run_s, chunks)]
    bare_build, bare = time_lava(_bare_graph(net), net.precision, chunks)
    _, with_in = time_lava(build_reservoir(net).lif, net.precision, chunks)
    inputs = np.concatenate([r.extra["inputs"] for r in torch_recs])  # one row per timestep
    zeros, replay = (_replay_ms(net, p, chunks) for p in (np.zeros_like(inputs), inputs))
    env_steps = sum(r.length for r in timed)
    out = {
        "neurons": net.size, "k": k, "episodes": len(timed), "env_steps": env_steps,
        "timesteps": sum(chunks), "timesteps_per_env_step": sum(chunks) / env_steps,
        "rate": sum(r.spikes for r in torch_recs) / (k * env_steps * net.size),
        "closed_ms_per_env_step": _stats([1000.0 * w / r.length for w, r in zip(run_s, timed)]),
        "build_s": recs[0].extra["build_s"], "bare_build_s": bare_build,
        "reset_read_ms": 1000.0 * float(np.mean([r.extra["reset_s"] + r.extra["read_s"]
                                                 for r in timed])),
        "returns_equal_torch": [r.ret for r in timed] == [r.ret for r in torch_recs],
    }
    for name, ms in (("closed", closed), ("bare", bare), ("with_input", with_in),
                     ("zeros", zeros), ("replay", replay)):
        out[name] = {**_stats(ms), "per_chunk": ms}
    out["ratio"] = {key: out["closed"][key] / out["bare"][key] for key in ("best", "median")}
    return out


# ---------------------------------------------------------------- one environment
def _stage(stages: dict[str, float], name: str, start: float) -> None:
    stages[name] = time.perf_counter() - start
    print(f"  {name}: {stages[name]:.0f} s", flush=True)


def run_env(env: str, s: Settings, root: Path, retrain: bool) -> dict[str, ty.Any]:
    """The four measurements on one environment, with the wall time of each stage."""
    stages: dict[str, float] = {}
    print(f"{env}: float -> fixed", flush=True)
    start = time.perf_counter()
    quant = float_to_fixed(env, s, root, retrain)
    _stage(stages, "float -> fixed", start)
    print(f"{env}: default agent on {', '.join(backends_present())}", flush=True)
    start = time.perf_counter()
    run_dir, summary = trained(env, "fixed", list(s.extra), s.budget, root, retrain)
    agent, _, _ = compiled(run_dir)
    xc = crosschecked(agent, s)
    _stage(stages, "backends", start)
    latency = []
    trained_here = [label for label, info in (("float", quant["training"]), ("fixed", summary))
                    if not info["reused"]]
    for n in s.sizes:
        print(f"{env}: Lava latency, {n} neurons", flush=True)
        start = time.perf_counter()
        lat_agent, origin, fresh = latency_agent(env, n, agent, s, root, retrain)
        latency.append({**lava_latency(lat_agent, s), "agent": origin})
        trained_here += [f"n{n}"] if fresh else []
        _stage(stages, f"latency {n}", start)
    return {"env": env, "float_to_fixed": quant, "default": {"run": str(run_dir),
            "training": summary, "crosscheck": xc}, "latency": latency, "stages": stages,
            "trained_here": trained_here}


# ---------------------------------------------------------------- tables
def _pm(r: dict[str, ty.Any]) -> str:
    return f"{r['mean']:.1f} ± {r['std']:.1f}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


QUANT_HEADERS = ["env", "float agent eval", "scale", "readout", "action agreement",
                 "weight error w_in / w_rec", "spectral radius float → fixed",
                 "return float (torch)", "return quantized (torch)"]


def quant_rows(results: list[dict[str, ty.Any]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in results:
        q, f = r["float_to_fixed"]["quantization"], r["float_to_fixed"]
        we, sr = q["weight_error"], q["spectral_radius"]
        rows.append([r["env"], f"{f['training']['eval_mean']:.1f}",
                     f"2^{q['chosen_scale_bits']}", q.get("readout", "float readout"),
                     f"{_pct(f['agreement'])} ({f['agreement_kind']})",
                     f"{100 * we['w_in']:.2f} % / {100 * we['w_rec']:.2f} %",
                     f"{sr['float']:.3f} → {sr['fixed']:.3f}", _pm(f["float_returns"]),
                     _pm(f["fixed_returns"])])
    return rows


BACKEND_HEADERS = ["env", "backend", "return", "identical returns to torch",
                   "action agreement with torch", "spike agreement", "differing spikes",
                   "first spike divergence"]


def backend_rows(results: list[dict[str, ty.Any]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in results:
        for name, e in r["default"]["crosscheck"]["backends"].items():
            diff = e.get("differing_spikes")
            rows.append([r["env"], name, f"{e['mean_return']:.1f} ± {e['std_return']:.1f}",
                         "yes" if e["identical_returns"] else "no",
                         f"{_pct(e['agreement'])} of {e['steps_compared']:,}",
                         _pct(e.get("spike_agreement"), 3),
                         "—" if diff is None else f"{diff:,} of {e['neuron_steps']:,}",
                         "none" if diff == 0 else e.get("first_spike_divergence", "—")])
    return rows


LATENCY_HEADERS = ["env", "N", "agent", "timed env steps (episodes)", "rate %",
                   "timesteps / env step",
                   "ms / env step", "ms / timestep", "bare ms / timestep", "closed ÷ bare",
                   "build s (closed, bare)", "reset + reads ms / episode", "returns = torch"]


def _bm(x: dict[str, float], digits: int = 3, unit: str = "") -> str:
    """Best (median) of a timing."""
    return f"{x['best']:.{digits}f}{unit} ({x['median']:.{digits}f}{unit})"


def latency_rows(results: list[dict[str, ty.Any]]) -> list[list[object]]:
    return [[r["env"], x["neurons"], x["agent"], f"{x['env_steps']:,} ({x['episodes']})",
             f"{100 * x['rate']:.1f}", f"{x['timesteps_per_env_step']:.3f}",
             _bm(x["closed_ms_per_env_step"], 2),
             _bm(x["closed"]), _bm(x["bare"]), _bm(x["ratio"], 2, "×"),
             f"{x['build_s']:.2f}, {x['bare_build_s']:.2f}", f"{x['reset_read_ms']:.0f}",
             "yes" if x["returns_equal_torch"] else "no"]
            for r in results for x in r["latency"]]


SPLIT_HEADERS = ["env", "N", "LIF + recurrent, silent (2 processes)",
                 "+ input Dense, silent (3)", "+ PayloadPlayer, zero input (4)",
                 "PayloadPlayer replaying the episodes' input (4)", "closed loop (play)"]


def split_rows(results: list[dict[str, ty.Any]]) -> list[list[object]]:
    return [[r["env"], x["neurons"], *(_bm(x[key]) for key in
                                       ("bare", "with_input", "zeros", "replay", "closed"))]
            for r in results for x in r["latency"]]


def goal_rows(results: list[dict[str, ty.Any]]) -> list[list[object]]:
    rows: list[list[object]] = []

    def add(goal: str, value: str, met: bool | None) -> None:
        rows.append([goal, value, "—" if met is None else ("met" if met else "missed")])

    for r in results:
        env, xc = r["env"], r["default"]["crosscheck"]["backends"]
        sim, b2 = xc.get("sim", {}), xc.get("brian2", {})
        diff = sim.get("differing_spikes")
        add(f"{env}: 0 differing spikes, torch fixed vs Lava fixed_pt",
            "—" if diff is None else f"{diff:,}", None if diff is None else diff == 0)
        agr = r["float_to_fixed"]["agreement"]
        add(f"{env}: float → fixed action agreement ≥ 99 %", _pct(agr), agr >= GOAL_AGREEMENT)
        same = sim.get("identical_returns")
        add(f"{env}: identical returns torch vs Lava",
            "—" if same is None else ("yes" if same else "no"), same)
        spk = b2.get("spike_agreement")
        add(f"{env}: Brian2 exact ≥ 99 % spike agreement", _pct(spk, 3),
            None if spk is None else spk >= GOAL_SPIKES)
        for x in r["latency"]:
            add(f"{env}: Lava closed loop ≤ 1.3× bare, N = {x['neurons']} (best of episodes)",
                _bm(x["ratio"], 2, "×"), x["ratio"]["best"] <= GOAL_RATIO)
    return rows


TABLES = (("1. Float → fixed point (compile for Loihi 2)", QUANT_HEADERS, quant_rows),
          ("2–3. Compiled default agent on every backend", BACKEND_HEADERS, backend_rows),
          ("4. Lava closed-loop latency: best (median) over the timed episodes",
           LATENCY_HEADERS, latency_rows),
          ("4. Where the Lava time goes: ms per timestep, best (median)", SPLIT_HEADERS,
           split_rows))


def print_rich(results: list[dict[str, ty.Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 200))
    for title, headers, fn in (*TABLES, ("Goals", ["goal", "value", "met"], goal_rows)):
        t = Table(title=title)
        for h in headers:
            t.add_column(h, justify="left" if h in ("env", "backend", "agent", "goal")
                         else "right")
        for row in fn(results):
            t.add_row(*map(str, row))
        console.print(t)
    for line in notes(results):
        console.print(f"  {line}")


def notes(results: list[dict[str, ty.Any]]) -> list[str]:
    """Footnotes: backends measured rather than held to a goal, backends left out."""
    out = []
    for r in results:
        xc = r["default"]["crosscheck"]
        measured = [n for n, e in xc["backends"].items() if not e.get("thresholded", True)]
        if measured:
            out.append(f"{r['env']}: {', '.join(measured)} runs a different neuron model "
                       "(continuous-time LIF): its differences are measured, not held to a goal")
        if xc["note"]:
            out.append(f"{r['env']}: {xc['note']}")
    return out


def markdown(results: list[dict[str, ty.Any]], s: Settings, wall: float,
             load: tuple[float, float]) -> str:
    xc = results[0]["default"]["crosscheck"]
    trained = ", ".join(f"{r['env']} {x}" for r in results for x in r["trained_here"])
    parts = [
        f"Agents: the shipped config of the env, trained with ARS on the torch engine for "
        f"{s.budget:,} env steps (early stop at the env's threshold): a float-precision one "
        "(`reservoir.precision=float`) and the default (fixed point); latency agents of other "
        f"sizes {s.size_budget:,} env steps with `reservoir.size` set. Each compiled with "
        "`compile_run(..., \"loihi2\")`. Episodes seeded 100 + i; "
        f"{s.episodes} per backend, {s.float_episodes} for the float and the quantized agent "
        f"on torch; spike metrics over the first {xc['spike_steps']} timesteps "
        "of the first episode replayed open loop (the crosscheck's). Quantization: the chosen "
        "voltage scale per threshold, the quantizer's action agreement with the float agent "
        "(held-out episodes where reported), relative RMS weight error, spectral radius in "
        "threshold units.",
    ]
    for title, headers, fn in TABLES:
        parts += ["", f"**{title}**", "", table(headers, fn(results))]
    parts += ["", *(f"* {line}" for line in notes(results))] if notes(results) else []
    parts += [
        "",
        f"Latency protocol: K = {K} timesteps per env step (plus one warm-up timestep per "
        "episode), one untimed warm-up episode, then whole episodes (at least "
        f"{s.latency_episodes} and {s.latency_steps} env steps), each timed: its wall time "
        "less the per-episode reset (`Var.set` of u, v, refractory ends, recurrent buffer) and "
        "telemetry reads, which are shown apart. Build = `create_runtime` (compile + process "
        "start), not in the per-step times. Bare: the LIF and recurrent connection of the same "
        f"network alone (no input, silent), {WARMUP} warm-up timesteps, then one "
        "`run(RunSteps(T))` per timed episode with T = that episode's timesteps; the "
        "decomposition runs the same chunks. Best = the fastest episode or chunk (other work on "
        "the machine only adds time), median in parentheses; the goal is judged on the best. "
        "Lava's CPU simulator runs each process as an OS process that synchronises with the "
        "others every timestep; this machine has 2 cores.",
        "", "Stage wall times (s): " + "; ".join(
            f"{r['env']}: " + ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items())
            for r in results) + ".",
        "", table(["goal", "value", "met"], goal_rows(results)), "",
        f"Whole run {wall:.0f} s (agents trained in it: {trained or 'none, all reused'}); "
        "load average "
        f"{load[0]:.1f} at start, {load[1]:.1f} at end (above the core count: other work shared "
        "the machine and timings are noisy).",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="CartPole-v1", help="comma-separated env ids")
    parser.add_argument("--episodes", type=int, help="episodes per backend (default 3, quick 2)")
    parser.add_argument("--quick", action="store_true", help="tiny agents and budgets")
    parser.add_argument("--retrain", action="store_true", help="train again, reuse nothing")
    parser.add_argument("--out", type=Path, help=f"agents and JSON (default {OUT}[-quick])")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write benchmarks/RESULTS.md (default: yes, no with --quick)")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.episodes:
        s = replace(s, episodes=args.episodes)
    root = args.out or (OUT.with_name(OUT.name + "-quick") if args.quick else OUT)
    write = (not args.quick) if args.write is None else args.write

    import torch

    torch.set_num_threads(1)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    results = [run_env(env, s, root, args.retrain) for env in envs]
    wall, load1 = time.perf_counter() - start, os.getloadavg()[0]
    print_rich(results)
    print(f"total {wall:.0f} s; load average {load0:.1f} at start, {load1:.1f} at end")
    root.mkdir(parents=True, exist_ok=True)
    (root / "deploy_fidelity.json").write_text(json.dumps(results, indent=1, default=str))
    if write:
        write_section("deploy_fidelity", "Deploy fidelity: float → fixed, backends, Lava latency",
                      markdown(results, s, wall, (load0, load1)))


if __name__ == "__main__":
    main()
