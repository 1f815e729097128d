"""``alchemy meta-train``: learn a prior over readouts across a family's training tasks.

1. Draw ``meta.train_tasks`` tasks from the family's ``train`` split; fix one encoder.
   With ``meta.reservoir_candidates`` > 1, score that many reservoir hyperparameter vectors on
   every task's random-policy episodes and fit their prior with SVI
   (:mod:`neuralalchemy.meta.reservoir_prior`); the family's reservoir is the prior's mode (else
   the configured reservoir). Fix one feature normalisation (random-readout episodes pooled over
   the tasks).
2. On each task, learn a Bayesian linear Q readout (:class:`~neuralalchemy.learners.blq.Blq`,
   broad prior ``N(0, λ⁻¹I)``) for ``meta.task_steps`` environment steps; keep the sufficient
   statistics of its final fitted-Q regression.
3. Fit the hierarchical model of :mod:`neuralalchemy.meta.hierarchy` to all tasks with SVI.

The run folder holds a checkpoint like any other (the readout is the prior mean, so it compiles
and runs; its environment is the family's default task) with the meta-prior stored beside the
weights (``extra.prior.*``), plus ``summary.json`` and ``elbo.png``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralalchemy.config import Config, MetaConfig
from neuralalchemy.envs import format_env_spec
from neuralalchemy.fsio import atomic_write_json
from neuralalchemy.learners.base import Readout
from neuralalchemy.learners.blq import GaussianPrior
from neuralalchemy.learners.optim import l2_precision
from neuralalchemy.meta.core import (
    Agent,
    MetaPrior,
    Mixture,
    build_agent,
    family_of,
    new_blq,
    save_agent,
    shared_normalisation,
)
from neuralalchemy.meta.hierarchy import (
    HierarchyFit,
    HyperPrior,
    MixtureFit,
    SuffStats,
    fit_hierarchy,
    fit_mixture,
    pooled_readout,
    suff_stats,
)
from neuralalchemy.meta.reservoir_prior import (
    HYPER_NAMES,
    ReservoirPrior,
    candidate_config,
    candidates,
    episode_features,
    evidence_table,
    fit_reservoir_prior,
    half_widths,
    random_episodes,
    regression_targets,
    to_unconstrained,
)
from neuralalchemy.network import build_network
from neuralalchemy.records import new_run_dir, write_metrics, write_provenance
from neuralalchemy.train import evaluate_readout


@dataclass
class TaskFit:
    """One training task's Bayesian linear Q result."""

    task: dict[str, float]
    x: list[np.ndarray]
    y: list[np.ndarray]
    noise_var: float
    eval_return: float
    env_steps: int


@dataclass
class MetaResult:
    """Where the meta-trained agent lives and what the fit found."""

    run_dir: Path
    prior: MetaPrior
    summary: dict[str, Any]


def broad_prior(agent: Agent, n_actions: int, feat: tuple[np.ndarray, np.ndarray]) -> GaussianPrior:
    """``N(0, λ⁻¹I)`` with ``λ = training.prior_precision + 2·training.l2`` on ``feat``."""
    tr = agent.cfg.training
    dim = agent.network.size + 1
    lam = tr.prior_precision + l2_precision(tr.l2)
    return GaussianPrior(np.zeros((n_actions, dim)), np.full((n_actions, dim), lam), *feat)


def hyper_prior(m: MetaConfig) -> HyperPrior:
    """The fixed top of the readout hierarchy as ``meta.*`` sets it."""
    return HyperPrior(mu_scale=m.mu_scale, tau_loc=m.tau_loc, rank=m.prior_rank)


def fit_task(agent: Agent, task: dict[str, float], prior: GaussianPrior, steps: int, seed: int,
             eval_episodes: int) -> TaskFit:
    """Bayesian linear Q on one task for ``steps`` env steps from ``prior``."""
    ctx = agent.context(task, seed=seed)
    blq = new_blq(ctx, prior, None)
    try:
        while blq.env_steps < steps:
            blq.step()
        x, y = blq.regression_data()
        ret = evaluate_readout(ctx, blq.readout(), eval_episodes)
    finally:
        blq.vec.close()
    return TaskFit(task, x, y, float(blq.noise_var), float(ret.mean()), blq.env_steps)


def fit_reservoir(agent: Agent, tasks: list[dict[str, float]], m: MetaConfig,
                  seed: int) -> tuple[Agent, ReservoirPrior]:
    """Score ``m.reservoir_candidates`` hyperparameter vectors on every task, fit their prior;
    the agent with the reservoir at the prior's mode, and the prior."""
    from dataclasses import replace

    cfg = agent.cfg
    res = cfg.reservoir
    cand = candidates(res, m.reservoir_candidates, seed)
    evidence, nets = score_candidates(agent, cand, tasks, m.hyper_episodes,
                                      [seed + 104_729 * (i + 1) for i in range(len(tasks))],
                                      seed)
    prior = fit_reservoir_prior(evidence, cand, to_unconstrained(res), half_widths(),
                                m.svi_steps, m.svi_lr, seed)
    if prior.chosen == 0:
        return agent, prior
    chosen = candidate_config(res, cand[prior.chosen])
    return replace(agent, cfg=replace(cfg, reservoir=chosen), network=nets[prior.chosen]), prior


def score_candidates(agent: Agent, cand: np.ndarray,
                     tasks: Sequence[dict[str, float] | None],
                     n_episodes: int, episode_seeds: list[int],
                     seed: int) -> tuple[np.ndarray, list[Any]]:
    """Log evidence (T, G) of each task's random-policy episodes under each candidate reservoir
    (``agent``'s reservoir with the candidate's hyperparameters), and the G networks."""
    res, gamma = agent.cfg.reservoir, agent.cfg.training.gamma
    n_actions = agent.context(None).info.n_actions
    episodes = [random_episodes(format_env_spec(agent.family_id, task), n_episodes, s)
                for task, s in zip(tasks, episode_seeds)]
    targets = [regression_targets(e, gamma) for e in episodes]
    evidence = np.zeros((len(tasks), len(cand)))
    nets = [build_network(candidate_config(res, u), agent.encoder.n_channels,
                          agent.encoder.binary) for u in cand]
    for g, net in enumerate(nets):
        feats = [episode_features(net, agent.encoder, res.steps_per_obs, agent.trace_decay, e,
                                  seed) for e in episodes]
        evidence[:, g] = evidence_table(feats, [e.actions for e in episodes], targets,
                                        n_actions)
    return evidence, nets


def task_kinds(family: Any, tasks: list[dict[str, float]]) -> tuple[list[dict[str, float]],
                                                                     np.ndarray]:
    """The kinds (values of the family's discrete task parameters) among ``tasks``, and each
    task's kind index (T,). No discrete parameters: one kind."""
    keys = sorted(family.env_class.TASK_CHOICES)
    values = [tuple(float(t[k]) for k in keys) for t in tasks]
    kinds = sorted(set(values), reverse=True)
    labels = np.array([kinds.index(v) for v in values], dtype=np.int64)
    return [dict(zip(keys, v)) for v in kinds], labels


def kind_returns(agent: Agent, tasks: list[dict[str, float]], labels: np.ndarray,
                 means: np.ndarray, feat: tuple[np.ndarray, np.ndarray],
                 episodes: int) -> np.ndarray:
    """(K, K, 2): mean and std of the greedy episode return of component ``j``'s mean readout
    on the training tasks of kind ``k`` (``episodes`` episodes per task). The std has a floor of
    5 % of the spread between the cells' means (at least 1): one task's episodes can agree
    closely, and a likelihood that sharp would decide on one episode's luck."""
    k = len(means)
    got: list[list[list[float]]] = [[[] for _ in range(k)] for _ in range(k)]
    for task, label in zip(tasks, labels):
        ctx = agent.context(task)
        for j, w in enumerate(means):
            ro = Readout(w[:, :-1].copy(), w[:, -1].copy(), feat[0], feat[1])
            got[j][label] += evaluate_readout(ctx, ro, episodes).tolist()
    mean = np.array([[np.mean(c) for c in row] for row in got])
    floor = max(1.0, 0.05 * float(mean.max() - mean.min()))
    std = np.array([[max(float(np.std(c)), floor) for c in row] for row in got])
    return np.stack([mean, std], axis=-1)


CENTRES = ("svi", "pooled")


def choose_centres(agent: Agent, tasks: list[dict[str, float]], labels: np.ndarray,
                   svi: np.ndarray, stats: SuffStats, lam: float,
                   feat: tuple[np.ndarray, np.ndarray], episodes: int,
                   rule: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Each component's mean (K, A, D) by ``rule`` (``meta.centre``), and what was measured.

    The candidates of component ``k`` are the hierarchical model's mean ``svi[k]`` and the ridge
    readout on the pooled data of the training tasks of kind ``k``. The first averages the
    tasks' readouts; the second fits one readout to the union of their visited states, which
    can be the better estimate of the values on states no single task's data covered. Which
    earns more varies by family, so ``best`` measures both (greedy, ``episodes`` per task of
    the kind) and keeps the higher."""
    chosen, picked = svi.copy(), []
    table: dict[str, list[float]] = {c: [] for c in CENTRES}
    for k in range(len(svi)):
        mine = torch.as_tensor(labels == k)
        cand = {"svi": svi[k],
                "pooled": pooled_readout({key: v[mine] for key, v in stats.items()}, lam)}
        if rule == "best":
            for name, w in cand.items():
                ro = Readout(w[:, :-1].copy(), w[:, -1].copy(), feat[0], feat[1])
                got = [evaluate_readout(agent.context(t), ro, episodes).mean()
                       for t, lab in zip(tasks, labels) if lab == k]
                table[name].append(round(float(np.mean(got)), 2))
        picked.append(rule if rule != "best" else max(CENTRES, key=lambda c: table[c][k]))
        chosen[k] = cand[picked[k]]
    return chosen, {"rule": rule, "chosen": picked,
                    **({"returns": table} if rule == "best" else {})}


def task_stats(fits: list[TaskFit]) -> SuffStats:
    """Sufficient statistics of every task's regression."""
    return suff_stats([f.x for f in fits], [f.y for f in fits],
                      np.array([f.noise_var for f in fits]))


STATS_NAME = "task_stats.npz"
"""The training tasks' sufficient statistics, kept so a prior can be refitted without new data."""


def save_stats(path: Path, stats: SuffStats) -> None:
    """Write ``stats`` atomically (npz, no pickles)."""
    import io

    from neuralalchemy.fsio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.numpy() for k, v in stats.items()})
    atomic_write_bytes(path, buf.getvalue())


def load_stats(path: Path) -> SuffStats:
    """Read statistics written by :func:`save_stats`."""
    with np.load(path, allow_pickle=False) as data:
        return {k: torch.as_tensor(data[k]) for k in data.files}


def meta_train(cfg: Config, out: Path | None = None, progress: bool = True) -> MetaResult:
    """Steps 1–3 of the module docstring; returns the run folder and the prior."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    torch.set_num_threads(1)
    start = time.perf_counter()
    agent = build_agent(cfg)
    family = family_of(cfg.env)
    m, tr = cfg.meta, cfg.training
    tasks = family.tasks("train", m.train_tasks, tr.seed)
    n_actions = agent.context(None).info.n_actions
    fits: list[TaskFit] = []
    with Bar(TextColumn("[bold]meta-train[/]"), BarColumn(), MofNCompleteColumn(),
             TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
             disable=not progress) as bar:
        job = bar.add_task("tasks", total=m.train_tasks + 1, status="reservoir prior")
        rprior = None
        if m.reservoir_candidates > 1:
            agent, rprior = fit_reservoir(agent, tasks, m, tr.seed)
        bar.update(job, status="feature normalisation")
        feat = shared_normalisation(agent, tasks, m.norm_episodes, tr.seed)
        prior = broad_prior(agent, n_actions, feat)
        for i, task in enumerate(tasks):
            bar.update(job, completed=i, status=f"task {i + 1}: Bayesian linear Q")
            fits.append(fit_task(agent, task, prior, m.task_steps, tr.seed + 1 + i,
                                 m.eval_episodes))
        bar.update(job, completed=m.train_tasks, status="SVI")
        stats = task_stats(fits)
        kinds, labels = task_kinds(family, tasks) if m.mixture else ([], np.zeros(0))
        lam = float(prior.precision[0, 0])
        mixture = None
        fit: MixtureFit | HierarchyFit
        weights = np.ones(1)
        if len(kinds) > 1:
            fit = fit_mixture(stats, labels, m.svi_steps, m.svi_lr, tr.seed, hyper_prior(m))
            means, std, factor = fit.predictive()
            weights = fit.weights
            top = int(np.argmax(weights))
            mu_std = fit.mu_std[top]
        else:
            labels = np.zeros(len(tasks), dtype=np.int64)
            fit = fit_hierarchy(stats, m.svi_steps, m.svi_lr, tr.seed, hyper_prior(m))
            mean, std, factor = fit.predictive()
            means, top, mu_std = mean[None], 0, fit.mu_std
        bar.update(job, status="prior means")
        means, centres = choose_centres(agent, tasks, labels, means, stats, lam, feat,
                                        m.eval_episodes, m.centre)
        mean = means[top]
        if len(kinds) > 1:
            bar.update(job, status="kinds' returns")
            mixture = Mixture(means, weights,
                              kind_returns(agent, tasks, labels, means, feat, m.eval_episodes),
                              kinds)
        bar.update(job, completed=m.train_tasks + 1, status="done")
    noise_var = float(np.median([f.noise_var for f in fits]))
    info = {"family": family.name, "family_env": family.env_id, "train_tasks": tasks,
            "task_returns": [f.eval_return for f in fits],
            "svi_steps": m.svi_steps, "svi_lr": m.svi_lr, "tau_loc": m.tau_loc,
            "mu_scale": m.mu_scale, "task_steps": m.task_steps, "prior_rank": m.prior_rank,
            "centres": centres}
    meta_prior = MetaPrior(mean, std, factor, mu_std, fit.tau, feat[0], feat[1], fit.task_mean,
                           fit.elbo, pooled_readout(stats, lam), noise_var, info, rprior, mixture)
    run_dir = new_run_dir(Path(out or cfg.out) / "runs", f"meta-{family.name}")
    write_provenance(run_dir, cfg, {"kind": "meta-train", "tasks": tasks})
    ro = Readout(mean[:, :-1].copy(), mean[:, -1].copy(), feat[0], feat[1])
    learner = {"algorithm": "meta-prior", "family": family.name, "tasks": len(tasks),
               "env_steps": int(sum(f.env_steps for f in fits))}
    save_agent(run_dir, agent.checkpoint(None, ro, learner, meta_prior.to_extras()))
    save_stats(run_dir / STATS_NAME, stats)
    write_metrics(run_dir / "metrics.jsonl", [
        *({"kind": "task", "task": f.task, "eval_return": f.eval_return,
           "env_steps": f.env_steps, "noise_var": f.noise_var} for f in fits),
        *({"kind": "svi", "step": i + 1, "elbo": float(e)} for i, e in enumerate(fit.elbo)),
        *({"kind": "svi_reservoir", "step": i + 1, "elbo": float(e)}
          for i, e in enumerate(rprior.elbo if rprior is not None else []))])
    _plot_elbo(fit.elbo, run_dir / "elbo.png", family.name)
    summary = {"family": family.name, "env": family.env_id, "train_tasks": len(tasks),
               "task_returns": [round(f.eval_return, 2) for f in fits],
               "env_steps": learner["env_steps"], "final_elbo": float(fit.elbo[-1]),
               "prior_std_median": float(np.median(std)), "noise_var": noise_var,
               "reservoir": _reservoir_summary(agent, rprior), "centres": centres,
               "mixture": None if mixture is None else {
                   "kinds": mixture.kinds, "weights": mixture.weights.round(4).tolist(),
                   "task_kinds": labels.tolist(),
                   "returns": mixture.returns.round(2).tolist()},
               "wall_s": round(time.perf_counter() - start, 2), "checkpoint": "checkpoint.npz"}
    atomic_write_json(run_dir / "summary.json", summary)
    return MetaResult(run_dir, meta_prior, summary)


def _reservoir_summary(agent: Agent, rprior: ReservoirPrior | None) -> dict[str, Any]:
    """The reservoir the agent runs and, when fitted, what the hyperparameter prior found."""
    res = agent.cfg.reservoir
    out: dict[str, Any] = {k: getattr(res, k) for k in HYPER_NAMES}
    if rprior is not None:
        post = rprior.task_posteriors()
        out.update({"candidates": len(rprior.candidates), "chosen": rprior.chosen,
                    "chosen_prior_probability": round(float(rprior.predictive()[rprior.chosen]),
                                                      4),
                    "task_choices": [int(g) for g in post.argmax(1)]})
    return out


def _plot_elbo(elbo: np.ndarray, path: Path, family: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralalchemy.plots import save_png

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(elbo) + 1), elbo, lw=1)
    lo = np.percentile(elbo, 5)
    ax.set_ylim(lo, elbo.max() + 0.05 * (elbo.max() - lo + 1))
    ax.set_xlabel("SVI step")
    ax.set_ylabel("ELBO")
    ax.set_title(f"meta-prior fit: {family}")
    save_png(fig, path)
