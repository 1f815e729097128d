"""The ``alchemy`` command: parse, load config, call one API function, print.

Expected failures (bad config, unknown environment, damaged artifact, a network that does not fit,
a backend that is not installed) print one line ``error: ...`` and exit with code 2.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from neuralalchemy.checkpoint import CHECKPOINT_NAME
from neuralalchemy.fsio import latest

DEFAULT_OUT = "experiments"


class UserError(click.ClickException):
    """A one-line error for the user, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from neuralalchemy.checkpoint import CheckpointError
    from neuralalchemy.compile.artifact import ArtifactError
    from neuralalchemy.config import ConfigError
    from neuralalchemy.envs import EnvError
    from neuralalchemy.sim.backend import BackendUnavailable
    return (ConfigError, EnvError, CheckpointError, ArtifactError, BackendUnavailable,
            ValueError, FileExistsError, OSError)


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console
    return Console(stderr=False, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuralalchemy")
def cli() -> None:
    """NeuralAlchemy: spiking-reservoir RL agents from PyTorch training to Loihi through Lava.

    \b
    alchemy train                       train on CartPole-v1 with built-in defaults
    alchemy compile --target loihi      compile the latest run for Loihi 2
    alchemy run --backend sim           play the latest artifact on the Lava simulator
    """


# ---------------------------------------------------------------- train
@cli.command()
@click.option("--env", "env_id", default=None,
              help="Gymnasium environment id (default CartPole-v1); without --config (and "
                   "without --init or --task), an env with a shipped config (Acrobot-v1, "
                   "MountainCar-v0, Pendulum-v1, MaskedCartPole-v1, MaskedPendulum-v1, "
                   "SparseCartPole-v1) uses it.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML or INI config file, or the name of a shipped config (mountaincar).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one config value (repeatable).")
@click.option("--out", default=None, help="Output folder (default: experiments).")
@click.option("--seed", type=int, default=None, help="Seed of the reservoir and the learner.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Budget of environment steps.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--resume", "resume_run", type=click.Path(), default=None, metavar="RUN",
              help="Continue the killed run folder RUN from its train_state.npz, with its own "
                   "config and budget; it ends as the uninterrupted run would have.")
@click.option("--state-every", type=click.IntRange(min=0), default=None, metavar="N",
              help="Also save the training state every N updates (default 0: at each "
                   "evaluation only).")
@click.option("--init", "init_run", type=click.Path(), default=None, metavar="RUN",
              help="Transfer learning: start from the agent of run folder RUN (its network, "
                   "encoder and readout) and fine-tune on this environment.")
@click.option("--freeze", type=click.Choice(["none", "normalisation"]), default=None,
              help="With --init: keep the source's feature normalisation fixed "
                   "(training.init_freeze).")
@click.option("--plasticity", type=click.Choice(["none", "hebbian", "stdp"]), default=None,
              help="Adapt the reservoir with a local rule on the task's input stream before "
                   "the readout is trained (plasticity.rule).")
@click.option("--task", "task_name", default=None, metavar="TASK",
              help="Train a supervised reservoir task instead of an RL agent: narma10, "
                   "mackey_glass, memory_capacity, digits or delayed_recall (task.name).")
def train(env_id: str | None, config_path: str | None, overrides: Sequence[str],
          out: str | None, seed: int | None, steps: int | None, progress: bool,
          resume_run: str | None, state_every: int | None, init_run: str | None,
          freeze: str | None, plasticity: str | None, task_name: str | None) -> None:
    """Train a spiking-reservoir agent; writes a run folder under OUT/runs."""
    from neuralalchemy.config import load_config
    from neuralalchemy.train import resume as resume_api
    from neuralalchemy.train import train as train_api

    show = progress and sys.stdout.isatty()
    if resume_run is not None:
        if env_id or config_path or overrides or out or seed is not None or steps or \
                init_run or freeze or plasticity or task_name:
            raise UserError("--resume continues RUN with its own config and budget: drop "
                            "--env, --config, --set, --out, --seed, --steps, --init, --freeze, "
                            "--plasticity and --task")
        result = resume_api(Path(resume_run), progress=show, state_every=state_every)
        _print_summary(result.run_dir, result.summary)
        return
    extra = list(overrides)
    pre = []
    if env_id is not None:
        pre.append(f"env={env_id}")
    if seed is not None:
        pre += [f"training.seed={seed}", f"reservoir.seed={seed}"]
    if out is not None:
        pre.append(f"out={out}")
    for key, value in (("training.init", init_run), ("training.init_freeze", freeze),
                       ("plasticity.rule", plasticity), ("task.name", task_name)):
        if value is not None:
            pre.append(f"{key}={value}")
    if config_path is None:
        config_path = _shipped_for(load_config(None, overrides=pre + extra))
    cfg = load_config(config_path, overrides=pre + extra)
    with discard_failed_runs(Path(cfg.out) / "runs"):
        if cfg.task.name != "none":
            from neuralalchemy.supervised import train_task
            if steps is not None or state_every is not None:
                raise UserError("--steps and --state-every are for RL runs; a supervised task "
                                "sets its lengths in the task section")
            task_result = train_task(cfg, progress=show)
            _print_task_summary(task_result.run_dir, task_result.summary)
            return
        result = train_api(cfg, steps=steps, progress=show, state_every=state_every or 0)
    _print_summary(result.run_dir, result.summary)


def _shipped_for(cfg: Any) -> str | None:
    """No ``--config``: the shipped config of the env (set by ``--env``, ``ALCHEMY_ENV`` or
    ``--set env=``), announced, if it has one; not for transfer (``training.init``: the source's
    network and encoder) or a supervised task (``task.name``)."""
    from neuralalchemy.config import SHIPPED_FOR_ENV

    name = SHIPPED_FOR_ENV.get(cfg.env)
    if name is None or cfg.training.init or cfg.task.name != "none":
        return None
    click.echo(f"config: shipped {name}.yaml for {cfg.env} (--config PATH to use another)")
    return name


@contextlib.contextmanager
def discard_failed_runs(runs: Path) -> Iterator[None]:
    """Remove the run folders the block created when it fails before saving a checkpoint or a
    training state (a run that saved either stays: it can be resumed or compiled)."""
    before = set(runs.iterdir()) if runs.is_dir() else set()
    try:
        yield
    except BaseException:
        for folder in (set(runs.iterdir()) if runs.is_dir() else set()) - before:
            if not any((folder / name).exists() for name in ("checkpoint.npz",
                                                             "train_state.npz")):
                shutil.rmtree(folder, ignore_errors=True)
        raise


def run_or_latest(given: str | None, root: str, marker: str, none_found: str,
                  hint: str) -> Path:
    """``given`` (which must exist), or the newest run under ``ROOT/runs`` holding ``marker``."""
    if given is None:
        found = latest(Path(root) / "runs", marker)
        if found is None:
            raise UserError(f"{none_found} under {root}/runs; run `alchemy train` first")
        click.echo(f"using run {found}")
        return found
    if not Path(given).exists():
        raise UserError(f"{given} does not exist; {hint}")
    return Path(given)


def _print_summary(run_dir: Path, s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"training summary: {s['env']}", show_header=False)
    rows = [("run", str(run_dir)), ("solved", "yes" if s["solved"] else "no"),
            ("evaluation", f"{s['eval_mean']:.1f} ± {s['eval_std']:.1f} "
                           f"over {s['eval_episodes']} episodes (target {s['target_return']})"),
            ("env steps", f"{s['env_steps']:,} ({s['updates']} updates)"),
            ("wall time", f"{s['wall_s']:.1f} s"),
            ("reservoir", f"{s['neurons']} LIF neurons, {s['precision']} precision"),
            ("learning curve", str(run_dir / "learning_curve.png"))]
    for k, v in rows:
        table.add_row(k, v)
    _console().print(table)


def _print_task_summary(run_dir: Path, s: dict[str, Any]) -> None:
    from rich.table import Table

    better = "higher" if s["metric"] in ("accuracy", "memory_capacity") else "lower"
    table = Table(title=f"training summary: {s['task']}", show_header=False)
    rows = [("run", str(run_dir)), ("method", s["method"]),
            (s["metric"], f"{s['value']:.4g} on the test part ({better} is better)"),
            ("plasticity", s.get("plasticity", "none")),
            ("wall time", f"{s['wall_s']:.1f} s"),
            ("reservoir", f"{s['neurons']} LIF neurons, {s['precision']} precision")]
    for k, v in rows:
        table.add_row(k, v)
    _console().print(table)


# ---------------------------------------------------------------- compile
@cli.command(name="compile")
@click.argument("source", required=False, type=click.Path())
@click.option("--target", default="loihi2", show_default=True,
              help="loihi (= loihi2), loihi2, loihi1 or cpu.")
@click.option("--out", default=None, help="Artifact folder (default: experiments/artifacts/...).")
@click.option("--root", default=DEFAULT_OUT, show_default=True,
              help="Experiments folder searched for the latest run.")
def compile_cmd(source: str | None, target: str, out: str | None, root: str) -> None:
    """Compile a trained run (default: the latest) for a target."""
    from neuralalchemy.compile.compiler import canonical_target, compile_run
    from neuralalchemy.compile.placement import render_table

    target = canonical_target(target)
    src = run_or_latest(source, root, CHECKPOINT_NAME, "no trained run",
                        "pass a run folder or checkpoint.npz")
    dest = Path(out) if out else Path(root) / "artifacts" / f"{src.resolve().name}-{target}"
    folder, info = compile_run(src, target, dest)
    res, quant = info["resources"], info["quantization"]
    if quant and "candidates" in quant:
        click.echo(f"quantized float -> fixed point: scale 2^{quant['chosen_scale_bits']} per "
                   f"threshold, {quant['readout']}, action agreement "
                   f"{100 * quant['action_agreement']:.2f} % over {quant['steps_compared']} steps "
                   f"({100 * (quant['action_agreement_heldout'] or 0):.2f} % on "
                   f"{quant['heldout_steps']} held-out steps), spectral radius "
                   f"{quant['spectral_radius']['float']:.3f} -> "
                   f"{quant['spectral_radius']['fixed']:.3f}; the float agent agrees "
                   f"{100 * quant['float_sensitivity']['action_agreement']:.2f} % with itself "
                   f"under 1e-4 relative weight noise")
    manifest = info["manifest"]
    if manifest.get("kind") == "task":
        refit = manifest.get("refit")
        if refit:
            click.echo(f"{manifest['task']}: network converted to {manifest['precision']} "
                       f"precision; readout re-fitted on its features, test {refit['metric']} "
                       f"{refit['value']:.4g}")
    click.echo(f"artifact {folder}  ({res['neurons']} neurons, {res['synapses']:,} synapses, "
               f"{manifest['precision']} precision)")
    if "placement" in res:
        from neuralalchemy.compile.compiler import placement_for
        from neuralalchemy.compile.task_artifact import is_task_artifact, load_task_artifact

        if is_task_artifact(folder):
            network = load_task_artifact(folder)[1]
        else:
            from neuralalchemy.compile.artifact import load_artifact
            network = load_artifact(folder)[0].network  # type: ignore[assignment]
        _console().print(render_table(placement_for(network, target)))


# ---------------------------------------------------------------- run
@cli.command()
@click.argument("artifact", required=False, type=click.Path())
@click.option("--backend", default="sim", show_default=True,
              type=click.Choice(["sim", "torch", "loihi", "brian2", "brian2-detailed"]),
              help="Engine that runs the network.")
@click.option("--env", "env_id", default=None, help="Environment id (default: the artifact's).")
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first episode.")
@click.option("--compare", default="torch", show_default=True,
              help="Also play the same episodes on this backend and report action agreement "
                   "('none' to skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--root", default=DEFAULT_OUT, show_default=True,
              help="Experiments folder searched for the latest artifact.")
def run(artifact: str | None, backend: str, env_id: str | None, episodes: int, seed: int,
        compare: str, as_json: bool, root: str) -> None:
    """Play a compiled agent (default: the latest artifact) in closed loop.

    A supervised-task artifact runs its task's test part instead (EPISODES test sequences for
    digits) and reports the task's metric."""
    from neuralalchemy.compile.task_artifact import is_task_artifact, run_task_artifact
    from neuralalchemy.sim.runner import run_artifact

    folder = _artifact_or_latest(artifact, root, quiet=as_json)
    cmp = None if compare.lower() == "none" else compare
    if is_task_artifact(folder):
        if env_id is not None:
            raise UserError("--env: a supervised-task artifact has no environment; leave --env "
                            "out")
        task_result = run_task_artifact(folder, backend, episodes, compare=cmp)
        if as_json:
            click.echo(json.dumps(task_result, indent=2))
        else:
            _print_task_run(task_result)
        return
    result = run_artifact(folder, backend, episodes, seed, env_id=env_id, compare=cmp)
    if as_json:
        click.echo(json.dumps(_json_summary(result), indent=2))
    else:
        _print_run(result)


def _json_summary(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if k != "episodes"}
    out["episodes"] = [{k: v for k, v in e.items() if k != "actions"} for e in r["episodes"]]
    return out


def _print_run(r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{r['env_id']} on backend '{r['backend']}' ({r['precision']})")
    for col in ("episode", "seed", "return", "steps", "spikes"):
        table.add_column(col, justify="right")
    for i, e in enumerate(r["episodes"]):
        table.add_row(str(i), str(e["seed"]), f"{e['return']:.1f}", str(e["length"]),
                      f"{e['spikes']:,}")
    con = _console()
    con.print(table)
    con.print(f"mean return {r['mean_return']:.1f}   {r['ms_per_env_step']:.2f} ms per env step"
              f"   {r['total_spikes']:,} spikes")
    if "compare" in r:
        c = r["compare"]
        con.print(f"action agreement with '{c['backend']}': {100 * c['agreement']:.2f} % of "
                  f"{c['steps_compared']:,} steps; identical returns: "
                  f"{'yes' if c['identical_returns'] else 'no'}")


def _print_task_run(r: dict[str, Any]) -> None:
    con = _console()
    trained = r.get("trained")
    was = (f" (at training: {trained['value']:.4g})" if trained and
           trained.get("metric") == r["metric"] else "")
    con.print(f"{r['task']} on backend '{r['backend']}' ({r['precision']}): test {r['metric']} "
              f"{r['value']:.4g}{was} over {r['rows']:,} "
              f"{'sequences' if r['task'] == 'digits' else 'rows'}")
    con.print(f"{r['timesteps']:,} timesteps, {r['ms_per_timestep']:.3f} ms per timestep, "
              f"{r['total_spikes']:,} spikes")
    if "compare" in r:
        c = r["compare"]
        con.print(f"'{c['backend']}': {r['metric']} {c['value']:.4g}; identical features: "
                  f"{'yes' if c['identical_features'] else 'no'} (max difference "
                  f"{c['max_feature_difference']:.3g})")


# ---------------------------------------------------------------- crosscheck
@cli.command()
@click.argument("artifact", required=False, type=click.Path())
@click.option("--backends", default="torch,sim", show_default=True,
              help="Comma-separated backends; the first is the reference.")
@click.option("--episodes", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--spike-steps", type=click.IntRange(min=2), default=500, show_default=True,
              help="Timesteps of the first episode replayed open loop for spike metrics.")
@click.option("--min-agreement", type=float, default=0.99, show_default=True,
              help="Fail (exit 1) when a backend's action agreement is lower.")
@click.option("--min-spike-agreement", type=float, default=0.99, show_default=True)
@click.option("--out", default=None, help="Folder for the raster plot and JSON report.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--root", default=DEFAULT_OUT, show_default=True)
def crosscheck(artifact: str | None, backends: str, episodes: int, seed: int, spike_steps: int,
               min_agreement: float, min_spike_agreement: float, out: str | None,
               as_json: bool, root: str) -> None:
    """Play the same episodes on several backends and compare actions and spikes."""
    from neuralalchemy.compile.artifact import load_artifact
    from neuralalchemy.fsio import atomic_write_json
    from neuralalchemy.sim import crosscheck as xc
    from neuralalchemy.sim.backend import get_backend

    folder = _artifact_or_latest(artifact, root, quiet=as_json)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    for name in names:
        get_backend(name)
    agent, _ = load_artifact(folder)
    result = xc.crosscheck(agent, names, [seed + i for i in range(episodes)], spike_steps)
    dest = Path(out) if out else Path(root) / "crosscheck" / folder.resolve().name
    trains = result.pop("trains")
    plot = xc.raster_plot(trains, dest / "rasters.png")
    from neuralalchemy.compile.nir_export import write_spikes
    write_spikes(trains, dest / "spikes.nir")
    atomic_write_json(dest / "crosscheck.json", result)
    bad = xc.failures(result, min_agreement, min_spike_agreement)
    if as_json:
        click.echo(json.dumps({**result, "failures": bad}, indent=2))
    else:
        _print_crosscheck(result, plot)
    if bad:
        for line in bad:
            click.echo(f"below threshold: {line}", err=True)
        raise click.exceptions.Exit(1)


def _print_crosscheck(result: dict[str, Any], plot: Path) -> None:
    from rich.table import Table

    table = Table(title=f"crosscheck against '{result['reference']}' "
                        f"({len(result['seeds'])} episodes, {result['spike_steps']} timesteps)")
    cols = ("backend", "mean return", "action agr.", "spike agr.", "count corr.", "van Rossum",
            "first spike diff")
    for col in cols:
        table.add_column(col, justify="right")
    for name, e in result["backends"].items():
        cells = [_cell(e, k, f) for k, f in (("spike_agreement", "{:.4f}"),
                                              ("count_correlation", "{:.4f}"),
                                              ("van_rossum", "{:.3f}"),
                                              ("first_spike_divergence", "{}"))]
        table.add_row(name, f"{e['mean_return']:.1f}", f"{100 * e['agreement']:.2f} %", *cells)
    con = _console()
    con.print(table)
    con.print(f"rasters: {plot}")


def _cell(entry: dict[str, Any], key: str, fmt: str) -> str:
    return fmt.format(entry[key]) if entry.get(key) is not None else "–"


def _artifact_or_latest(artifact: str | None, root: str, quiet: bool = False) -> Path:
    from neuralalchemy.compile.artifact import MANIFEST

    if artifact is not None:
        return Path(artifact)
    found = latest(Path(root) / "artifacts", MANIFEST, by="written")
    if found is None:
        raise UserError(f"no artifact under {root}/artifacts; run `alchemy compile` first")
    if not quiet:
        click.echo(f"using artifact {found}")
    return found


# ---------------------------------------------------------------- info
@cli.command()
def info() -> None:
    """Versions, and which backends can run here (with the reason when not)."""
    from neuralalchemy.records import git_revision, versions

    con = _console()
    for name, ver in versions().items():
        con.print(f"{name:14s} {ver}")
    con.print(f"{'git revision':14s} {git_revision()}")
    for name, (ok, why) in backend_status().items():
        con.print(f"backend {name:7s} {'available' if ok else 'unavailable'}"
                  + (f": {why}" if why else ""))


def backend_status() -> dict[str, tuple[bool, str]]:
    """Availability of each backend with the reason when one is not available."""
    out: dict[str, tuple[bool, str]] = {"torch": (True, "")}
    try:
        importlib.import_module("lava.magma.core")
        out["sim"] = (True, "Lava CPU simulator (Loihi2SimCfg)")
    except ImportError as exc:
        out["sim"] = (False, f"lava-nc does not import ({exc}); pip install lava-nc==0.10.0")
    try:
        from neuralalchemy.sim.lava_backend import hardware_status
        out["loihi"] = hardware_status()
    except ImportError as exc:
        out["loihi"] = (False, f"lava-nc does not import ({exc})")
    try:
        brian2 = importlib.import_module("brian2")
        out["brian2"] = (True, f"brian2 {brian2.__version__}")
    except ImportError as exc:
        out["brian2"] = (False, f"brian2 does not import ({exc}); pip install brian2")
    return out


def _register_meta() -> None:
    from neuralalchemy.cli_meta import COMMANDS
    for command in COMMANDS:
        cli.add_command(command)
    cli.add_command(importlib.import_module("neuralalchemy.cli_tune").tune)
    cli.add_command(importlib.import_module("neuralalchemy.cli_report").report)


_register_meta()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and map expected errors to one line and exit code 2."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="alchemy",
                        standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except _expected_errors() as exc:
        if os.environ.get("ALCHEMY_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            message = ("no space left on device while writing; nothing was kept: free some "
                       "space (or write elsewhere with --out) and run again")
        click.echo(f"error: {message}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
