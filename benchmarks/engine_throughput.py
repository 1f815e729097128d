"""Engine throughput: recurrent LIF reservoirs driven by a constant bias, on every engine.

Networks (drawn once per size with ``draw_float_network``, quantized with ``quantize_network``,
and shared by every backend): N = 1k, 10k, 100k neurons at 1 % connectivity and N = 4k at
p = 0.1 (Brian2's own comparison network, 1.6M synapses). Dale's law with balanced excitation
and inhibition (``inhibitory_gain`` 4), spectral radius 0.5·vth, ``du`` 0.5, ``dv`` 0.1, no
input, and a bias drawn per neuron uniform in [0.10, 0.12]·vth (``bias/dv`` straddles the
threshold: activity is sustained, asynchronous and sparse, ~4–5 % of neurons per step).

Backends: the reference engine (torch, float and fixed point, B = 1 and B = 64 independent
copies), Lava's CPU simulator (``Loihi2SimCfg``; 1k and 4k, fewer steps), Brian2 on the cython
runtime and as cpp_standalone (float; run time without compilation, compilation reported apart).

Figures: steps/s (per network; at B = 64 the copies' steps count, "network-steps/s"), synaptic
events/s (spikes × out-degree of the spiking neuron, counted exactly), the firing rate, and the
memory-bandwidth bound of the event-driven sparse update (streaming read bandwidth measured with
numpy / 16 bytes per event: int64 target index + 8-byte weight).

Protocol: every run starts from the zero state. The reference engine and the Brian2 runtime
first run ``WARMUP`` untimed steps (the first ~17 steps are silent while the voltages charge;
the Brian2 warm-up also compiles), then time up to ``steps`` steps or ``--budget`` seconds,
whichever comes first (the table says how many ran). cpp_standalone and Lava time one run of
``steps`` steps from the zero state (the silent start included: ~2 % of 1000 steps).

Usage: ``python benchmarks/engine_throughput.py`` (full, ~10 min on 2 cores; writes the
``engine_throughput`` section of benchmarks/RESULTS.md) or ``--quick`` (small networks, few
steps, no cpp_standalone, nothing written; under a minute once Brian2's Cython cache is warm).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tempfile
import time
import typing as ty
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import table, write_section  # noqa: E402

from neuralalchemy.config import ReservoirConfig  # noqa: E402
from neuralalchemy.network import NetworkParams, draw_float_network, quantize_network  # noqa: E402

WARMUP = 30
BATCH = 64
SEED = 1
BYTES_PER_EVENT = 16  # event-driven kernel: int64 target index + 8-byte weight per synapse
STANDALONE_DIR = Path(tempfile.gettempdir()) / "neuralalchemy-brian2-standalone"


@dataclass(frozen=True)
class Case:
    """One network size and what runs on it."""

    name: str
    n: int
    p: float
    steps: int  # timesteps per measurement (an upper bound for the budgeted ones)
    batch: bool = True  # also the reference engine with B = 64
    lava_steps: int = 0  # 0: Lava not run
    brian2: bool = True
    standalone: bool = True


FULL = (
    Case("1k", 1_000, 0.01, 1000, lava_steps=200),
    Case("4k p=0.1", 4_000, 0.1, 1000, lava_steps=200),
    Case("10k", 10_000, 0.01, 1000),
    Case("100k", 100_000, 0.01, 100, batch=False),
)
QUICK = (
    Case("300", 300, 0.05, 50, lava_steps=20, standalone=False),
    Case("4k", 4_000, 0.01, 50, standalone=False),  # > 3000: spectral radius estimated, fast
)


@dataclass
class Row:
    """One measurement."""

    case: str
    backend: str
    precision: str
    batch: int
    n: int
    steps: int
    wall_s: float
    spikes: int
    events: int
    setup_s: float = 0.0
    compile_s: float | None = None
    note: str = ""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s

    @property
    def net_steps_per_s(self) -> float:
        return self.batch * self.steps / self.wall_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def rate(self) -> float:
        return self.spikes / max(1, self.steps * self.n * self.batch)


# ---------------------------------------------------------------- networks
def make_networks(case: Case) -> tuple[NetworkParams, NetworkParams]:
    """The float network of a case and its fixed-point quantization (same draw)."""
    cfg = ReservoirConfig(size=case.n, connectivity=case.p, spectral_radius=0.5,
                          inhibitory_gain=4.0, du=0.5, dv=0.1, precision="float", seed=SEED)
    net = draw_float_network(cfg, 1)
    bias = np.random.default_rng(SEED).uniform(0.10, 0.12, case.n) * net.vth
    net = dataclasses.replace(net, bias=bias)
    return net, quantize_network(net)


def out_degree(w: ty.Any) -> np.ndarray:
    """Nonzero outgoing synapses of each neuron (columns of ``w[post, pre]``)."""
    import scipy.sparse as sp

    if sp.issparse(w):
        csr = sp.csr_matrix(w)
        return np.bincount(csr.indices[csr.data != 0], minlength=w.shape[1]).astype(np.int64)
    return (np.asarray(w) != 0).sum(axis=0).astype(np.int64)


# ---------------------------------------------------------------- backends
def bench_engine(case: Case, net: NetworkParams, deg: np.ndarray, batch: int,
                 budget_s: float) -> Row:
    """The reference engine: ``lif_step(synaptic_input(None, …))`` in a Python loop."""
    import torch

    from neuralalchemy.engine import engine_params, lif_step, synaptic_input, zero_state

    start = time.perf_counter()
    ep = engine_params(net)
    setup = time.perf_counter() - start
    state = zero_state(ep, batch)
    for _ in range(WARMUP):
        state = lif_step(synaptic_input(None, state, ep), state, ep)
    counts = torch.zeros(net.size, dtype=torch.int64)
    steps, start = 0, time.perf_counter()
    while steps < case.steps:
        state = lif_step(synaptic_input(None, state, ep), state, ep)
        counts += state.s.sum(0)
        steps += 1
        if time.perf_counter() - start > budget_s:
            break
    wall = time.perf_counter() - start
    c = counts.numpy()
    return Row(case.name, "reference", net.precision, batch, net.size, steps, wall,
               int(c.sum()), int(c @ deg), setup)


def engine_counts(net: NetworkParams, steps: int) -> np.ndarray:
    """Spike counts per neuron of ``steps`` steps from the zero state (for Lava's events)."""
    import torch

    from neuralalchemy.engine import engine_params, lif_step, synaptic_input, zero_state

    ep = engine_params(net)
    state = zero_state(ep, 1)
    counts = torch.zeros(net.size, dtype=torch.int64)
    for _ in range(steps):
        state = lif_step(synaptic_input(None, state, ep), state, ep)
        counts += state.s[0]
    return counts.numpy()


def bench_brian2_runtime(case: Case, net: NetworkParams, deg: np.ndarray,
                         budget_s: float) -> Row:
    """Brian2, cython target: warm-up (compiles), two probes (10 and 40 steps) separate the
    per-step cost from the fixed cost of a ``run`` call and size the timed run."""
    from neuralalchemy.sim import brian2_backend

    start = time.perf_counter()
    res = brian2_backend.build(net, "cython")
    setup = time.perf_counter() - start
    zeros = np.zeros((1, net.n_inputs))
    start = time.perf_counter()
    res.run(np.repeat(zeros, WARMUP, axis=0))
    compile_s = time.perf_counter() - start
    probes = []
    for n in (10, 40):
        start = time.perf_counter()
        res.run(np.repeat(zeros, n, axis=0))
        probes.append(time.perf_counter() - start)
    per_step = max((probes[1] - probes[0]) / 30, 1e-6)
    per_run = max(probes[0] - 10 * per_step, 0.0)
    steps = int(max(10, min(case.steps, (budget_s - per_run) / per_step)))
    start = time.perf_counter()
    counts = res.run(np.repeat(zeros, steps, axis=0))
    wall = time.perf_counter() - start
    return Row(case.name, "brian2 cython", net.precision, 1, net.size, steps,
               max(wall - per_run, 1e-9), int(counts.sum()), int(counts @ deg), setup, compile_s,
               note=f"compile: warm-up incl. Cython compilation (cached between runs); the "
               f"fixed cost of a run() call, {per_run:.2f} s here (code objects, spike-queue "
               "set-up, gc.collect), is left out of steps/s")


def bench_brian2_standalone(case: Case, net: NetworkParams, deg: np.ndarray) -> Row:
    """Brian2 cpp_standalone: one binary runs ``steps`` steps; its own timer gives the run
    time; compilation is incremental in a project folder shared by every case."""
    from neuralalchemy.sim import brian2_backend

    STANDALONE_DIR.mkdir(parents=True, exist_ok=True)
    with brian2_backend.standalone():
        start = time.perf_counter()
        res = brian2_backend.build(net, "cpp_standalone", directory=str(STANDALONE_DIR))
        setup = time.perf_counter() - start
        counts = res.run_steps(case.steps)
    t = res.timing
    return Row(case.name, "brian2 standalone", net.precision, 1, net.size, case.steps,
               t["run_s"], int(counts.sum()), int(counts @ deg), setup, t["compile_s"],
               note=f"binary wall {t['run_wall_s']:.2f} s incl. loading arrays")


def bench_lava(case: Case, net: NetworkParams, deg: np.ndarray) -> Row:
    """Lava's CPU simulator: PayloadPlayer (zero input) → Dense → LIF → Sparse/Dense."""
    from lava.magma.core.run_conditions import RunSteps

    from neuralalchemy.sim.lava.process import PayloadPlayer
    from neuralalchemy.sim.lava_backend import _safe_stop, build_reservoir, run_config

    steps = case.lava_steps
    res = build_reservoir(net)
    dtype = np.int64 if net.precision == "fixed" else np.float64
    player = PayloadPlayer(payloads=np.zeros((steps, net.n_inputs), dtype=dtype),
                           n_neurons=net.size)
    player.x_out.connect(res.dense_in.s_in)
    res.lif.s_out.connect(player.s_in)
    try:
        start = time.perf_counter()
        player.create_runtime(run_cfg=run_config(net.precision))
        setup = time.perf_counter() - start
        start = time.perf_counter()
        player.run(condition=RunSteps(num_steps=steps))
        wall = time.perf_counter() - start
    finally:
        _safe_stop(player)
    counts = engine_counts(net, steps)  # Lava matches the engine spike for spike
    return Row(case.name, "lava sim", net.precision, 1, net.size, steps, wall,
               int(counts.sum()), int(counts @ deg), setup,
               note="events from the reference engine's identical run")


# ---------------------------------------------------------------- machine figures
def stream_bandwidth(gib: float) -> dict[str, float]:
    """Streaming bandwidth (GB/s): numpy copy (read + write) and sum (read), best of 3."""
    a = np.ones(int(gib * 2**30) // 8)
    b = np.empty_like(a)
    best_copy = best_sum = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        np.copyto(b, a)
        best_copy = min(best_copy, time.perf_counter() - start)
        start = time.perf_counter()
        a.sum()
        best_sum = min(best_sum, time.perf_counter() - start)
    return {"copy": 2 * a.nbytes / best_copy / 1e9, "read": a.nbytes / best_sum / 1e9}


def step_overhead(reps: int = 300) -> dict[str, float]:
    """Per-step cost (µs) of the engine at B = 1 on a 64-neuron network, where the arithmetic
    is negligible: the Python/dispatch floor of ``synaptic_input`` and ``lif_step``."""
    from neuralalchemy.engine import engine_params, lif_step, synaptic_input, zero_state

    net = draw_float_network(ReservoirConfig(size=64, precision="float", seed=SEED,
                                             refractory=0), 1)
    out = {}
    for precision, p in (("float", net), ("fixed", quantize_network(net))):
        ep = engine_params(p)
        state = zero_state(ep, 1)
        t_syn = t_lif = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            a = synaptic_input(None, state, ep)
            t1 = time.perf_counter()
            state = lif_step(a, state, ep)
            t_syn += t1 - t0
            t_lif += time.perf_counter() - t1
        out[f"{precision} synaptic_input"] = 1e6 * t_syn / reps
        out[f"{precision} lif_step"] = 1e6 * t_lif / reps
    return out


# ---------------------------------------------------------------- orchestration
def _attempt(label: str, fn: ty.Callable[..., Row], *args: ty.Any) -> Row | None:
    """Run one measurement; a failure (memory, a missing backend) is reported, not fatal."""
    try:
        row = fn(*args)
    except Exception as exc:  # noqa: BLE001 - one backend failing must not end the benchmark
        print(f"  {label}: FAILED {type(exc).__name__}: {exc}", flush=True)
        return None
    print(f"  {label}: {row.steps} steps, {row.steps_per_s:,.1f} steps/s, "
          f"{row.events_per_s / 1e6:,.1f} M events/s, rate {100 * row.rate:.1f} %", flush=True)
    gc.collect()
    return row


def run_case(case: Case, args: argparse.Namespace) -> tuple[list[Row], float]:
    """Every backend on one network (drawn once, shared); returns the rows and draw time."""
    start = time.perf_counter()
    nets = dict(zip(("float", "fixed"), make_networks(case), strict=True))
    draw_s = time.perf_counter() - start
    degs = {k: out_degree(v.w_rec) for k, v in nets.items()}
    print(f"{case.name}: N={case.n}, p={case.p}, {int(degs['float'].sum()):,} synapses, "
          f"drawn and quantized in {draw_s:.1f} s", flush=True)
    found: list[Row | None] = []
    for prec, net in nets.items():
        found.append(_attempt(f"reference {prec} B=1", bench_engine, case, net, degs[prec], 1,
                              args.budget))
        if case.batch:
            found.append(_attempt(f"reference {prec} B={BATCH}", bench_engine, case, net,
                                  degs[prec], BATCH, args.budget))
    if case.lava_steps and args.lava:
        for prec, net in nets.items():
            found.append(_attempt(f"lava {prec}", bench_lava, case, net, degs[prec]))
    brian2_precisions = ("float", "fixed") if args.brian2_fixed else ("float",)
    for prec in brian2_precisions if case.brian2 else ():
        found.append(_attempt(f"brian2 cython {prec}", bench_brian2_runtime, case, nets[prec],
                              degs[prec], args.budget))
        if case.standalone and args.standalone:
            found.append(_attempt(f"brian2 standalone {prec}", bench_brian2_standalone, case,
                                  nets[prec], degs[prec]))
    del nets
    gc.collect()
    return [r for r in found if r is not None], draw_s


def _find(rows: list[Row], case: str, backend: str, precision: str, batch: int = 1) -> Row | None:
    for r in rows:
        if (r.case, r.backend, r.precision, r.batch) == (case, backend, precision, batch):
            return r
    return None


def _verdict(ratio: float | None, target: float, percent: bool = False) -> tuple[str, str]:
    if ratio is None:
        return "not measured", "—"
    shown = f"{100 * ratio:.1f} % of the bound" if percent else f"{ratio:,.2f}×"
    return shown, "yes" if ratio >= target else "no"


def goal_rows(rows: list[Row], bound: float) -> list[list[object]]:
    """The issue's goals: each ratio and whether it is met."""
    out: list[list[object]] = []
    sa_cases = [r.case for r in rows if r.backend == "brian2 standalone" and r.precision == "float"]
    ref_case = "10k" if "10k" in sa_cases else (sa_cases[-1] if sa_cases else "10k")
    sa = _find(rows, ref_case, "brian2 standalone", "float")
    for prec in ("float", "fixed"):
        ref1 = _find(rows, ref_case, "reference", prec)
        ratio = ref1.steps_per_s / sa.steps_per_s if ref1 and sa else None
        out.append([f"reference {prec} B=1 ≥ Brian2 cpp_standalone, {ref_case}", *
                    _verdict(ratio, 1.0)])
        ref64 = _find(rows, ref_case, "reference", prec, BATCH)
        ratio = ref64.net_steps_per_s / sa.steps_per_s if ref64 and sa else None
        out.append([f"reference {prec} B={BATCH} ≥ 20× Brian2 cpp_standalone per network, "
                    f"{ref_case}", *_verdict(ratio, 20.0)])
    for case in dict.fromkeys(r.case for r in rows if r.backend == "lava sim"):
        for prec in ("float", "fixed"):
            lava = _find(rows, case, "lava sim", prec)
            for batch in (1, BATCH):
                ref = _find(rows, case, "reference", prec, batch)
                ratio = ref.net_steps_per_s / lava.steps_per_s if ref and lava else None
                out.append([f"reference {prec} B={batch} ≥ 1000× Lava CPU per network-step, "
                            f"{case}", *_verdict(ratio, 1000.0)])
    for r in rows:
        if r.backend == "reference" and r.n >= 2048:  # event-driven sparse synapses
            out.append([f"reference {r.precision} B={r.batch} within 2× of the bandwidth bound, "
                        f"{r.case}", *_verdict(r.events_per_s / bound, 0.5, percent=True)])
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def result_rows(rows: list[Row]) -> list[list[object]]:
    return [[r.case, r.backend, r.precision, str(r.batch), str(r.steps),
             _fmt(r.steps_per_s), _fmt(r.net_steps_per_s), _fmt(r.events_per_s / 1e6),
             f"{100 * r.rate:.1f}", _fmt(r.setup_s), _fmt(r.compile_s), r.note] for r in rows]


HEADERS = ["network", "backend", "precision", "B", "steps", "steps/s", "network-steps/s",
           "M events/s", "rate %", "setup s", "compile s", "note"]


def print_rich(rows: list[Row], goals: list[list[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    t = Table(title="Engine throughput (single thread)")
    for h in HEADERS[:-1]:
        t.add_column(h, justify="left" if h in ("network", "backend") else "right")
    for r in result_rows(rows):
        t.add_row(*map(str, r[:-1]))
    console.print(t)
    for note in (f"{r.case} {r.backend} {r.precision}: {r.note}" for r in rows if r.note):
        console.print(f"  {note}")
    g = Table(title="Goals")
    for h in ("goal", "ratio", "met"):
        g.add_column(h)
    for r in goals:
        g.add_row(*map(str, r))
    console.print(g)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small networks, few steps")
    parser.add_argument("--budget", type=float, help="seconds per budgeted measurement "
                        "(default 8, quick 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-lava", dest="lava", action="store_false")
    parser.add_argument("--standalone", action=argparse.BooleanOptionalAction, default=None,
                        help="run Brian2 cpp_standalone (default: yes, no with --quick)")
    parser.add_argument("--brian2-fixed", action="store_true",
                        help="also run the fixed-point model on Brian2")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write benchmarks/RESULTS.md (default: yes, no with --quick)")
    args = parser.parse_args(argv)
    args.budget = args.budget or (1.0 if args.quick else 8.0)
    args.standalone = (not args.quick) if args.standalone is None else args.standalone
    write = (not args.quick) if args.write is None else args.write

    import os

    import torch

    torch.set_num_threads(args.threads)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    bw = stream_bandwidth(0.25 if args.quick else 1.0)
    bound = bw["read"] * 1e9 / BYTES_PER_EVENT
    overhead = step_overhead()
    print(f"stream bandwidth: copy {bw['copy']:.1f} GB/s, read {bw['read']:.1f} GB/s -> bound "
          f"{bound / 1e6:,.0f} M events/s; engine B=1 per-step floor (µs): "
          + ", ".join(f"{k} {v:.0f}" for k, v in overhead.items()), flush=True)
    rows: list[Row] = []
    draws = {}
    for case in QUICK if args.quick else FULL:
        case_rows, draws[case.name] = run_case(case, args)
        rows += case_rows
    goals = goal_rows(rows, bound)
    print_rich(rows, goals)
    total, load1 = time.perf_counter() - start, os.getloadavg()[0]
    print(f"total {total:.0f} s; load average {load0:.1f} at start, {load1:.1f} at end")
    if write:
        write_section("engine_throughput", "Engine throughput",
                      _markdown(rows, goals, bw, bound, overhead, draws, total, (load0, load1)))


def _markdown(rows: list[Row], goals: list[list[object]], bw: dict[str, float], bound: float,
              overhead: dict[str, float], draws: dict[str, float], total: float,
              load: tuple[float, float]) -> str:
    lines = [
        "Recurrent LIF reservoirs (balanced Dale's-law weights, spectral radius 0.5, per-neuron "
        "bias U[0.10, 0.12]·vth, no input), drawn once per size and shared by every backend; "
        "single thread. Budgeted runs stop after --budget seconds (column "
        "'steps'). Events = spikes × out-degree. setup = building the engine's/simulator's "
        "objects; compile = Brian2 code generation and compilation.",
        "",
        table(HEADERS, result_rows(rows)),
        "",
        f"Streaming bandwidth: copy {bw['copy']:.1f} GB/s, read {bw['read']:.1f} GB/s; bound of "
        f"the event-driven update at {BYTES_PER_EVENT} B/event: {bound / 1e6:,.0f} M events/s. "
        "Engine per-step floor at B = 1 (64 neurons, µs): "
        + ", ".join(f"{k} {v:.0f}" for k, v in overhead.items()) + ". Network draw + "
        "quantization (s): " + ", ".join(f"{k} {v:.1f}" for k, v in draws.items()) + ".",
        "",
        table(["goal", "ratio", "met"], goals),
        "",
        f"Whole run {total:.0f} s; load average {load[0]:.1f} at start, {load[1]:.1f} at end "
        "(a load above the core count means other work shared the machine: timings are noisy).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
