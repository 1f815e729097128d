"""``alchemy tune``: hyperparameter search with Optuna over a space declared in the config file.

The study lives in a store (default: a journal file in ``OUT/tune/STUDY/``); ``--workers N`` runs N
local processes against it, and the same command with the same ``--study`` and ``--storage`` on
other machines joins it. Each trial's run folder, the optimization history plot and the best
configuration are written under ``OUT/tune/STUDY/``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
TRAIN_COMMAND = {"meta-adapt": "alchemy meta-train"}
"""The command that trains a best configuration, where it is not ``alchemy train``."""
MAX_ROWS = 25
"""Trials listed in the result table (the best ones when the study holds more)."""


def _tune_section(config_path: str | None, overrides: Sequence[str],
                  options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The file's ``tune`` section with ``--set tune.*`` and the options applied; other --set."""
    from neuralalchemy.config import ConfigError, parse_set, read_file

    raw = read_file(config_path).get("tune") if config_path else None
    rest = [o for o in overrides if not o.strip().startswith("tune.")]
    sets = [parse_set(o) for o in overrides if o.strip().startswith("tune.")]
    updates = [(_tune_path(k), v) for k, v in sets] + [
        ([k], v) for k, v in options.items() if v is not None]
    if not updates:
        return raw, rest
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"tune: expected a mapping of keys, got {raw!r}")
    for path, value in updates:
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"tune.{'.'.join(path)}: tune.{part} is not a mapping")
        node[path[-1]] = value
    return raw, rest


def _tune_path(key: str) -> list[str]:
    """``tune.space.reservoir.size.low`` -> ``[space, reservoir.size, low]``."""
    parts = key.split(".")[1:]
    if parts[0] == "space" and len(parts) > 2:
        return ["space", ".".join(parts[1:-1]), parts[-1]]
    return parts


def _study_name(study: str | None, config_path: str | None) -> str:
    from neuralalchemy.config import ConfigError

    name = study or (Path(config_path).stem if config_path else "tune")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"--study {name!r}: use letters, digits, '.', '_' and '-' "
                          "(at most 100 characters)")
    return name


@click.command(name="tune")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file: the base run configuration and a tune: section (space, sampler, "
                   "objective...); default: built-in defaults and the default space.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one config value, tune.* included (repeatable).")
@click.option("--study", default=None,
              help="Study name (default: the config file's name, else 'tune'); a study of that "
                   "name in the store is continued.")
@click.option("--storage", default=None,
              help="Study store: postgresql://..., mysql://..., sqlite:///FILE.db, or a journal "
                   "file path (default: OUT/tune/STUDY/journal.log).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine, all against the store.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials run by this command, spread over its workers (default tune.trials).")
@click.option("--sampler", default=None, help="tpe, gp, grid or random (default tune.sampler).")
@click.option("--objective", default=None,
              help="return, steps, meta-adapt, synthetic, or package.module:attribute "
                   "(default tune.objective).")
@click.option("--pruner", default=None, help="none, median or hyperband (default tune.pruner).")
@click.option("--seed", type=int, default=None, help="Sampler seed (default tune.seed).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Start no trial after this many seconds.")
@click.option("--out", default=None, help="Output folder (default: experiments).")
@click.option("--export", "export_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the best configuration here (loadable by alchemy train --config).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def tune(config_path: str | None, overrides: Sequence[str], study: str | None,
         storage: str | None, workers: int, trials: int | None, sampler: str | None,
         objective: str | None, pruner: str | None, seed: int | None, timeout: float | None,
         out: str | None, export_path: str | None, progress: bool) -> None:
    """Search hyperparameters with Optuna; the best configuration trains with `alchemy train`."""
    from neuralalchemy.config import load_config
    from neuralalchemy.tune import Plan, open_storage, parse_spec, run_study

    options = {"sampler": sampler, "objective": objective, "pruner": pruner, "trials": trials,
               "seed": seed}
    raw, rest = _tune_section(config_path, overrides, options)
    cfg = load_config(config_path, overrides=([f"out={out}"] if out else []) + rest)
    base = cfg.to_dict()
    spec = parse_spec(raw, base)
    name = _study_name(study, config_path)
    folder = Path(cfg.out) / "tune" / name
    plan = Plan(name, storage, folder, spec, base)
    open_storage(storage, folder)  # fails here, with one line, when the store cannot be opened
    con = _console()
    con.print(f"study {name}: {spec.objective} ({spec.resolved_direction}), sampler "
              f"{spec.sampler}, pruner {spec.pruner.kind}, {_n(spec.trials, 'trial')} on "
              f"{_n(workers, 'worker')}; store {storage or plan.journal()}")
    with _progress(progress and sys.stdout.isatty()) as bar:
        job = bar.add_task("tune", total=spec.trials, status="")
        result, codes = run_study(plan, spec.trials, workers, timeout,
                                  on_update=lambda ts: bar.update(job, **_status(ts, plan)))
    _report(plan, result, codes, export_path)


def _console():  # type: ignore[no-untyped-def]
    from neuralalchemy.cli import _console as console
    return console()


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("[bold]tune[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("trials  {task.fields[status]}"), TimeElapsedColumn(),
                    disable=not enabled)


def _status(trials: list[Any], plan: Any) -> dict[str, Any]:
    """Bar fields: this command's finished trials, the study's counts and best value."""
    mine = [t for t in trials
            if t.user_attrs.get("batch") == plan.batch and t.state.is_finished()]
    text = ", ".join(f"{n} {s}" for s, n in _counts(trials).items() if n)
    best = _best(trials, plan.spec.resolved_direction == "maximize")
    if best is not None:
        text += f"; best {best.value:.4g} (trial {best.number})"
    return {"completed": len(mine), "status": text}


def _counts(trials: list[Any]) -> dict[str, int]:
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
    for t in trials:
        if t.state.name in names:
            out[names[t.state.name]] += 1
    return out


def _best(trials: list[Any], maximize: bool) -> Any:
    done = [t for t in trials if t.state.name == "COMPLETE"]
    if not done:
        return None
    return (max if maximize else min)(done, key=lambda t: t.value)


# ---------------------------------------------------------------- the report
def _report(plan: Any, study: Any, codes: list[int], export_path: str | None) -> None:
    from neuralalchemy.fsio import atomic_write_json

    trials = study.get_trials(deepcopy=False)
    maximize = study.direction.name == "MAXIMIZE"
    best = _best(trials, maximize)
    con = _console()
    con.print(_table(plan, trials, best, maximize))
    plot = history_plot(trials, maximize, plan.folder / "history.png", f"study {plan.study}",
                        f"{plan.spec.objective} ({'maximize' if maximize else 'minimize'})")
    atomic_write_json(plan.folder / "study.json", {
        "study": plan.study, "objective": plan.spec.objective,
        "direction": "maximize" if maximize else "minimize", "counts": _counts(trials),
        "best": None if best is None else {"trial": best.number, "value": best.value,
                                           "params": best.params}})
    con.print(f"optimization history: {plot}")
    for i, code in enumerate(codes):
        if code:
            click.echo(f"worker {i} exited with code {code}", err=True)
    if best is None:
        click.echo("error: no trial completed; the table's note column says why", err=True)
        raise click.exceptions.Exit(1)
    paths = [plan.folder / "best.yaml"] + ([Path(export_path)] if export_path else [])
    for path in paths:
        export_best(plan, best, path)
    con.print(f"best trial {best.number}: {best.value:.6g}  "
              + "  ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
    command = TRAIN_COMMAND.get(plan.spec.objective, "alchemy train")
    con.print(f"best configuration: {', '.join(map(str, paths))} "
              f"({command} --config {paths[-1]})")
    if any(codes):
        raise click.exceptions.Exit(1)


def export_best(plan: Any, best: Any, path: Path) -> Path:
    """Write the base configuration with ``best``'s parameters as a full YAML config."""
    import yaml

    from neuralalchemy.fsio import atomic_write_bytes
    from neuralalchemy.tune import apply_params

    cfg = apply_params(plan.base, best.params)
    command = TRAIN_COMMAND.get(plan.spec.objective, "alchemy train")
    head = (f"# best trial {best.number} of study {plan.study} ({plan.spec.objective} "
            f"{best.value:.6g}); train it with: {command} --config {path.name}\n")
    atomic_write_bytes(path, (head + yaml.safe_dump(cfg.to_dict(), sort_keys=False)).encode())
    return path


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _note(t: Any) -> str:
    if t.state.name == "FAIL":
        return str(t.user_attrs.get("error", "failed"))
    if t.state.name == "PRUNED" and t.intermediate_values:
        step = max(t.intermediate_values)
        return f"step {step}: {t.intermediate_values[step]:.4g}"
    if "solved" in t.user_attrs:
        return "solved" if t.user_attrs["solved"] else "unsolved"
    return ""


def _table(plan: Any, trials: list[Any], best: Any, maximize: bool) -> Any:
    from rich.table import Table

    finished = [t for t in trials if t.state.is_finished()]
    shown = sorted(finished, key=lambda t: t.number)
    if len(shown) > MAX_ROWS:
        sign = -1 if maximize else 1
        shown = sorted(shown, key=lambda t: (t.value is None, sign * (t.value or 0.0)))[:MAX_ROWS]
    counts = _counts(trials)
    title = (f"study {plan.study}: {_n(len(trials), 'trial')} ({counts['complete']} complete, "
             f"{counts['pruned']} pruned, {counts['failed']} failed)"
             + (f", best {len(shown)} shown" if len(finished) > MAX_ROWS else ""))
    table = Table(title=title)
    keys = [p.key for p in plan.spec.space]
    short = [k.rpartition(".")[2] for k in keys]
    heads = [s if short.count(s) == 1 else k for s, k in zip(short, keys)]
    for col in ("trial", "state", plan.spec.objective, *heads, "seconds"):
        table.add_column(col, justify="right", no_wrap=col in ("trial", "state"))
    table.add_column("note")
    for t in shown:
        secs = t.duration.total_seconds() if t.duration is not None else None
        mark = " *" if best is not None and t.number == best.number else ""
        table.add_row(f"{t.number}{mark}", t.state.name.lower(),
                      "" if t.value is None else f"{t.value:.4g}",
                      *[_fmt(t.params[k]) if k in t.params else "" for k in keys],
                      "" if secs is None else f"{secs:.1f}", _note(t))
    return table


def history_plot(trials: list[Any], maximize: bool, path: Path, title: str,
                 ylabel: str = "objective value") -> Path:
    """Objective value of each completed trial and the best so far, against the trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralalchemy.plots import save_png

    done = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.number)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if done:
        x = [t.number for t in done]
        y = [t.value for t in done]
        pick = max if maximize else min
        running = [pick(y[: i + 1]) for i in range(len(y))]
        ax.scatter(x, y, s=14, color="tab:blue", label="completed trial")
        ax.step(x, running, where="post", color="tab:red", label="best so far")
        ax.legend(loc="best", fontsize=8)
    counts = _counts(trials)
    ax.set_title(f"{title}: {counts['complete']} complete, {counts['pruned']} pruned, "
                 f"{counts['failed']} failed", fontsize=10)
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


COMMANDS = (tune,)
