"""``alchemy meta-train``, ``adapt``, ``continual`` and ``prior show``: Bayesian meta-learning.

Each writes a run folder under ``OUT/runs`` with a checkpoint in the usual format, so
``alchemy compile`` and ``alchemy run`` take a meta-trained or adapted agent like any other.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

DEFAULT_OUT = "experiments"


def _config(config_path: str | None, overrides: Sequence[str], env_id: str | None,
            seed: int | None, out: str | None) -> Any:
    from neuralalchemy.config import load_config
    from neuralalchemy.meta.core import defaults_for

    pre = [f"env={env_id}"] if env_id else []
    if seed is not None:
        pre += [f"training.seed={seed}", f"reservoir.seed={seed}"]
    if out is not None:
        pre.append(f"out={out}")
    base = None if config_path else defaults_for(env_id)
    return load_config(config_path, overrides=pre + list(overrides), base=base)


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    from neuralalchemy.cli import _console

    table = Table(title=title, show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    _console().print(table)


_common = [
    click.option("--env", "env_id", default=None,
                 help="Task family id (default CartPoleTask-v1)."),
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 help="YAML or INI config file (default: the shipped meta config)."),
    click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                 help="Override one config value (repeatable)."),
    click.option("--out", default=None, help="Output folder (default: experiments)."),
    click.option("--seed", type=int, default=None, help="Seed of the reservoir and learner."),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command(name="meta-train")
@_with_common
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def meta_train_cmd(env_id: str | None, config_path: str | None, overrides: Sequence[str],
                   out: str | None, seed: int | None, progress: bool) -> None:
    """Learn a Bayesian prior over readouts across a task family's training tasks."""
    from neuralalchemy.meta.metatrain import meta_train

    cfg = _config(config_path, overrides, env_id, seed, out)
    result = meta_train(cfg, progress=progress and sys.stdout.isatty())
    s = result.summary
    _table(f"meta-training summary: {s['family']} ({s['env']})", [
        ("run", str(result.run_dir)),
        ("training tasks", f"{s['train_tasks']} (returns after Bayesian linear Q: "
                           + ", ".join(f"{r:.0f}" for r in s["task_returns"]) + ")"),
        ("env steps", f"{s['env_steps']:,}"),
        ("prior", f"median std {s['prior_std_median']:.3f} per readout weight; "
                  f"final ELBO {s['final_elbo']:.1f}"),
        *_kind_rows(s.get("mixture")),
        *_centre_rows(s.get("centres"), s.get("mixture")),
        ("wall time", f"{s['wall_s']:.1f} s"),
        ("ELBO plot", str(result.run_dir / "elbo.png")),
        ("next", "alchemy adapt --task length=0.6,masspole=0.3,force_mag=8"
                 + (",direction=1" if s.get("mixture") else "")),
    ])


def _kind(kind: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in kind.items())


def _kind_rows(mix: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A mixture prior's kinds: how many training tasks each had, what each kind's policy earns
    on each kind's tasks (the likelihood adaptation infers a new task's kind from)."""
    if not mix:
        return []
    counts = [mix["task_kinds"].count(k) for k in range(len(mix["kinds"]))]
    rows = [("prior components", "; ".join(
        f"{_kind(kd)}: {n} task(s), weight {w:.2f}"
        for kd, n, w in zip(mix["kinds"], counts, mix["weights"])))]
    return rows + _earn_rows(mix["kinds"], mix["returns"])


def _centre_rows(centres: dict[str, Any] | None,
                 mix: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Which readout each prior component is centred on (``meta.centre``), with the training
    returns that chose it."""
    if not centres:
        return []
    names = [_kind(k) for k in mix["kinds"]] if mix else ["all tasks"]
    got = centres.get("returns")
    return [("prior mean", "; ".join(
        f"{n}: {c}" + (f" (training return svi {got['svi'][i]:.0f}, pooled "
                       f"{got['pooled'][i]:.0f})" if got else f" (meta.centre: {centres['rule']})")
        for i, (n, c) in enumerate(zip(names, centres["chosen"]))))]


def _earn_rows(kinds: list[dict[str, float]],
               returns: list[list[list[float]]]) -> list[tuple[str, str]]:
    return [(f"  {_kind(kd)} policy earns", "; ".join(
        f"{m:.0f} ± {sd:.0f} on {_kind(other)}" for other, (m, sd) in zip(kinds, row)))
        for kd, row in zip(kinds, returns)]


@click.command()
@click.argument("source", required=False, type=click.Path())
@click.option("--task", default=None,
              help="New task, e.g. length=0.6,masspole=0.3 (default: a held-out task).")
@click.option("--split", type=click.Choice(["within", "extrapolation"]), default="within",
              show_default=True, help="Split of the held-out task drawn when --task is not given.")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Episodes on the new task (default meta.adapt_episodes).")
@click.option("--select/--no-select", default=None,
              help="Adapted readout: the one acted on with the highest mean episode return, or "
                   "the posterior mean (default meta.adapt_select of the meta-trained agent).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--root", default=DEFAULT_OUT, show_default=True,
              help="Folder searched for the newest meta-trained run.")
def adapt(source: str | None, task: str | None, split: str, episodes: int | None,
          select: bool | None, seed: int, root: str) -> None:
    """Adapt a meta-trained agent (SOURCE, default the newest) to a new task."""
    from dataclasses import replace

    from neuralalchemy.meta.adapt import adapt as adapt_api
    from neuralalchemy.meta.core import (
        MetaPrior,
        agent_from_checkpoint,
        family_of,
        find_prior_checkpoint,
        parse_task,
    )

    path, ckpt = find_prior_checkpoint(source, root)
    agent = agent_from_checkpoint(ckpt)
    if select is not None:
        agent = replace(agent, cfg=replace(agent.cfg, meta=replace(agent.cfg.meta,
                                                                   adapt_select=select)))
    prior = MetaPrior.from_checkpoint(ckpt, str(path))
    chosen = parse_task(task, agent)
    if chosen is None:
        chosen = family_of(agent.family_id).tasks(split, 1, 10_000 + seed)[0]
    m = agent.cfg.meta
    run_dir, s = adapt_api(agent, prior, chosen, episodes or m.adapt_episodes, m.eval_episodes,
                           seed, Path(root))
    c = s["calibration"]
    curve = ", ".join(f"{k}: {r:.1f}" for k, r in zip(s["episodes"], s["returns"]))
    _table(f"adaptation: {s['env']}", [
        ("run", str(run_dir)), ("prior", str(path)),
        ("greedy return after k episodes", curve),
        ("Thompson episodes", ", ".join(f"{r:.0f}" for r in s["online_returns"])),
        ("Q uncertainty", f"median posterior std {c['q_sd_epistemic_median']:.2f}, "
                          f"noise std {c['noise_sd']:.2f}"),
        ("calibration", f"{c['coverage_one_step']:.1%} of {c['steps']} one-step fitted-Q "
                        f"targets and {c['coverage']:.1%} of the discounted returns inside the "
                        f"{c['level']:.0%} predictive interval"),
        *_reservoir_posterior_rows(s["reservoir_posterior"]),
        *([("task kind", "; ".join(
            f"p({_kind(kd)}) = {p:.3f}" for kd, p in zip(s["kinds"], s["kind_posterior"][-1]))
            + f" after {len(s['kind_posterior']) - 1} episode(s)")] if "kinds" in s else []),
        ("plot", str(run_dir / "adaptation.png")),
    ])


def _reservoir_posterior_rows(rp: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Whether the new task agrees with the family's reservoir (none without a reservoir prior)."""
    if rp is None:
        return []
    values = ", ".join(f"{k} {v:.3g}" for k, v in rp["mode_values"].items())
    return [("reservoir posterior", f"candidate {rp['chosen']} (the agent's): "
                                    f"{rp['p_chosen']:.2f} (prior {rp['prior_p_chosen']:.2f}); "
                                    f"mode candidate {rp['mode']} at {rp['p_mode']:.2f} "
                                    f"({values}); {rp['episodes']} random-policy episodes")]


@click.command()
@_with_common
@click.option("--method", type=click.Choice(["config", "posterior-prior", "replay", "both",
                                             "fine-tune", "heads"]), default="config",
              show_default=True,
              help="How knowledge carries between tasks ('config': meta.heads, "
                   "meta.posterior_prior and meta.replay).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def continual(env_id: str | None, config_path: str | None, overrides: Sequence[str],
              out: str | None, seed: int | None, method: str, progress: bool) -> None:
    """Learn a sequence of tasks one after another; report forgetting and transfer."""
    from neuralalchemy.meta.continual_run import continual as continual_api

    cfg = _config(config_path, overrides, env_id, seed, out)
    run_dir, s = continual_api(cfg, method, progress and sys.stdout.isatty())
    _table(f"continual learning: {s['family']}, {len(s['tasks'])} tasks ({s['method']})", [
        ("run", str(run_dir)),
        ("average performance", f"{s['average_performance']:.3f}"),
        ("forgetting", f"{s['forgetting']:.3f}"),
        ("forward transfer", f"{s['forward_transfer']:.3f}"),
        ("wall time", f"{s['wall_s']:.1f} s"),
        ("plot", str(run_dir / "continual.png")),
        *([("next", f"alchemy adapt {run_dir} (a further task from the prior over the "
                    f"{len(s['tasks'])} heads)")] if s["method"] == "heads" else []),
    ])


@click.group()
def prior() -> None:
    """Inspect a meta-prior."""


@prior.command()
@click.argument("source", required=False, type=click.Path())
@click.option("--root", default=DEFAULT_OUT, show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=8, show_default=True,
              help="Most certain and least certain weights to list per action.")
def show(source: str | None, root: str, top: int) -> None:
    """Summarise the meta-prior of SOURCE (default: the newest meta-trained run)."""
    import numpy as np

    from neuralalchemy.meta.core import MetaPrior, find_prior_checkpoint

    path, ckpt = find_prior_checkpoint(source, root)
    p = MetaPrior.from_checkpoint(ckpt, str(path))
    info = p.info
    rows = [("run", str(path)), ("family", f"{info.get('family')} ({info.get('family_env')})"),
            ("training tasks", str(len(info.get("train_tasks", [])))),
            ("readout", f"{p.mean.shape[0]} actions × {p.mean.shape[1]} weights "
                        "(reservoir features + bias)"),
            ("noise variance", f"{p.noise_var:.3g}"),
            ("task directions", _factor_text(p)),
            ("final ELBO", f"{float(p.elbo[-1]):.1f} after {len(p.elbo)} SVI steps")]
    if p.mixture is not None:
        mix = p.mixture
        likeliest = mix.kinds[int(np.argmax(mix.weights))]
        rows.append(("prior components", "; ".join(
            f"{_kind(kd)}: weight {w:.2f}" for kd, w in zip(mix.kinds, mix.weights))
            + f" (the rows below describe the most probable, {_kind(likeliest)})"))
        rows += _earn_rows(mix.kinds, mix.returns.tolist())
    rows += _centre_rows(info.get("centres"), None if p.mixture is None else {
        "kinds": p.mixture.kinds})
    for a in range(p.mean.shape[0]):
        sd = p.std[a]
        rows.append((f"action {a} prior std", f"median {np.median(sd):.3f}, "
                     f"range {sd.min():.3f}–{sd.max():.3f}; bias N({p.mean[a, -1]:.2f}, "
                     f"{sd[-1]:.2f}²)"))
        order = np.argsort(sd[:-1])
        rows.append((f"action {a} most certain", ", ".join(
            f"n{i}: {p.mean[a, i]:+.2f}±{sd[i]:.2f}" for i in order[:top])))
        rows.append((f"action {a} least certain", ", ".join(
            f"n{i}: {p.mean[a, i]:+.2f}±{sd[i]:.2f}" for i in order[::-1][:top])))
    for t, r in zip(info.get("train_tasks", []), info.get("task_returns", [])):
        rows.append(("task " + ",".join(f"{k}={v:.3g}" for k, v in t.items()), f"{r:.1f}"))
    rows += _reservoir_rows(p.reservoir, ckpt.config.reservoir)
    _table("meta-prior", rows)


def _reservoir_rows(rp: Any, res: Any) -> list[tuple[str, str]]:
    """The hyperparameter prior: per hyperparameter its value in the agent's reservoir, the
    prior's median for a new task and its 80 % interval; which candidate each task preferred."""
    import numpy as np

    from neuralalchemy.meta.reservoir_prior import from_unconstrained

    if rp is None:
        return [("reservoir prior", "not fitted (meta.reservoir_candidates ≤ 1): the "
                                    "configured reservoir")]
    spread = np.sqrt(rp.s ** 2 + rp.m_scale ** 2)
    lo, mid, hi = (from_unconstrained(rp.m_loc + z * spread) for z in (-1.2816, 0.0, 1.2816))
    rows = [("reservoir prior", f"{len(rp.candidates)} candidates; the agent runs candidate "
                                f"{rp.chosen} (prior probability "
                                f"{rp.predictive()[rp.chosen]:.2f} for a new task)")]
    for name in rp.names:
        rows.append((f"  {name}", f"{getattr(res, name):.4g} in the agent; prior median "
                                  f"{mid[name]:.4g}, 80 % {min(lo[name], hi[name]):.4g}–"
                                  f"{max(lo[name], hi[name]):.4g}"))
    choices = np.argmax(rp.task_posteriors(), 1)
    rows.append(("  tasks' own candidates", ", ".join(str(int(g)) for g in choices)))
    return rows


def _factor_text(p: Any) -> str:

    k = p.factor.shape[-1]
    if k == 0:
        return "none (diagonal prior)"
    along = float((p.factor ** 2).sum())
    total = along + float((p.std ** 2).sum())
    return f"rank {k}: {along / total:.0%} of the prior variance lies along them"


COMMANDS = (meta_train_cmd, adapt, continual, prior)
