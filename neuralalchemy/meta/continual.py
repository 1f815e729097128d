"""``alchemy continual``: a sequence of tasks learned one after another without forgetting.

Each task is learned by Bayesian linear Q (:class:`~neuralalchemy.learners.blq.Blq`). Between
tasks, two switchable mechanisms carry what was learned:

* **posterior as prior** (variational continual learning, Nguyen et al. 2018; exact here, since
  the readout posterior is Gaussian): the posterior ``N(μ, P⁻¹)`` after task ``i`` is the prior of
  task ``i + 1``, so the new task's data move the readout only where the old tasks left it
  uncertain. ``strength`` β ∈ [0, 1] weighs the old tasks' evidence: the next prior is
  ``N(μ, P₀ + β·(P − P₀))`` with ``P₀`` the starting prior's precision (β = 1: exact VCL;
  β < 1: Bayesian forgetting in the sense of Kulhavý & Zarrop 1993, since fitted-Q targets move
  with the policy and an exact posterior over stale targets pins the next task; β = 0: the mean
  is carried under the broad prior, i.e. fine-tuning);
* **replay**: ``meta.replay_per_task`` transitions of every finished task stay in each later
  refit.

With both, the replayed transitions are a coreset in the sense of VCL: the posterior passed on
is the one from the task's own transitions less its coreset, so each transition counts once
(in the carried prior or in the replayed refits, never in both).

With neither, the learner starts from the last readout under a broad prior (naive fine-tuning).

**Task-specific heads** (``heads``; multi-head VCL, Nguyen et al. 2018, and the setting of
Continual World, where each task has its own output head): the reservoir is one fixed network for
every task, so each task gets its own readout and the finished ones are kept, untouched, for
when their task comes back (the task is known when it is run, as it is in training). What is
carried forward is the *prior over readouts*: after each task, the hierarchical model of
:mod:`~neuralalchemy.meta.hierarchy` is fitted by SVI to the regressions of every task so far,
and its predictive for a new readout is the next task's prior. The sequence is meta-learning
done one task at a time: the prior sharpens where the tasks agree and stays broad where they
differ, so a new task starts from what its predecessors share without pulling their readouts.

Metrics follow Continual World (Wołczyk et al. 2021) on performance ``p ∈ [0, 1]`` (the return
rescaled by the family's return range): with ``p_i(t)`` task ``i``'s performance after training
task ``t`` (``T`` tasks),

* average performance ``A = mean_i p_i(T)``;
* forgetting ``F = mean_{i<T} [p_i(i) − p_i(T)]``;
* forward transfer ``FT = mean_i (AUC_i − AUC_i^ref) / (1 − AUC_i^ref)``, ``AUC_i`` the mean
  performance over task ``i``'s training curve and ``ref`` the same task learned from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuralalchemy.config import MetaConfig
from neuralalchemy.learners.base import Readout
from neuralalchemy.learners.blq import Blq, GaussianPrior, merge, subsample, subsample_index
from neuralalchemy.meta.core import Agent, MetaPrior, new_blq, predictive_gaussian
from neuralalchemy.meta.hierarchy import HyperPrior, fit_hierarchy, pooled_readout, suff_stats
from neuralalchemy.meta.metatrain import hyper_prior
from neuralalchemy.train import evaluate_readout

RETURN_RANGE = {"cartpole": (0.0, 500.0), "cartpole_flip": (0.0, 500.0),
                "acrobot": (-500.0, 0.0)}
"""Return of a useless and of a perfect policy, per family (performance = rescaled return)."""

METHODS = {"posterior-prior": (True, False), "replay": (False, True), "both": (True, True),
           "fine-tune": (False, False)}
"""Name → (posterior as prior, replay) of the methods that share one readout."""

HEADS = "heads"
"""The method with one readout per task under a hierarchical prior refitted after each task."""

ALL_METHODS = (*METHODS, HEADS)


@dataclass(frozen=True)
class HeadsFit:
    """How ``heads`` fits the prior over readouts after each task."""

    svi_steps: int
    svi_lr: float
    hyper: HyperPrior

    @classmethod
    def from_meta(cls, m: MetaConfig | None = None) -> HeadsFit:
        """As ``meta.*`` sets it (``alchemy meta-train``'s fit; ``None``: the defaults)."""
        m = m or MetaConfig()
        return cls(m.svi_steps, m.svi_lr, hyper_prior(m))


@dataclass
class SequenceRun:
    """Performance matrix and training curves of one pass through the task sequence."""

    method: str
    perf: np.ndarray                       # (T, T): perf[t, i] = p_i after training task t
    curves: list[list[float]] = field(default_factory=list)  # p_i during task i's training
    final_readout: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (A, D) last μ
    heads: np.ndarray | None = None  # heads: (T, A, D) every task's readout
    prior: MetaPrior | None = None  # heads: the prior fitted to every task, for a further one

    def metrics(self, reference: list[list[float]] | None = None) -> dict[str, float]:
        """Average performance, forgetting and (given scratch curves) forward transfer."""
        t = self.perf.shape[0]
        out = {"average_performance": float(self.perf[-1].mean()),
               "forgetting": float(np.mean([self.perf[i, i] - self.perf[-1, i]
                                            for i in range(t - 1)]))}
        if reference is not None:
            ft = []
            for mine, ref in zip(self.curves, reference):
                auc, auc_ref = float(np.mean(mine)), float(np.mean(ref))
                ft.append((auc - auc_ref) / max(1.0 - auc_ref, 1e-6))
            out["forward_transfer"] = float(np.mean(ft))
        return out


def performance(family: str, returns: np.ndarray) -> float:
    """Mean return rescaled to [0, 1] by :data:`RETURN_RANGE`."""
    lo, hi = RETURN_RANGE.get(family, (0.0, 1.0))
    return float(np.clip((np.mean(returns) - lo) / (hi - lo), 0.0, 1.0))


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"prior strength {strength} is outside [0, 1]: use 1 for exact "
                         "posterior-as-prior, a smaller value to widen it")


def carry(post: GaussianPrior, start: GaussianPrior, strength: float) -> GaussianPrior:
    """The next task's prior: ``post``'s mean, and ``start``'s precision plus ``strength`` times
    the evidence ``post`` gathered beyond it (see the module docstring)."""
    _check_strength(strength)
    p0 = start.joint_precision()
    precision = p0 + strength * (post.joint_precision() - p0)
    return GaussianPrior(post.mean, precision, post.feat_mean, post.feat_std)


def _learn(blq: Blq, family: str, steps: int, eval_episodes: int, points: int) -> list[float]:
    """Train ``blq`` for ``steps`` env steps; its performance at ``points`` even stages."""
    curve = []
    for k in range(1, points + 1):
        while blq.env_steps < steps * k // points:
            blq.step()
        curve.append(performance(family, evaluate_readout(blq.ctx, blq.readout(),
                                                          eval_episodes)))
    return curve


def run_sequence(agent: Agent, family: str, tasks: list[dict[str, float]], start: GaussianPrior,
                 noise_var: float | None, method: str, steps: int, eval_episodes: int,
                 seed: int, curve_points: int = 4, replay_per_task: int = 2000,
                 on_task: Callable[[int], None] | None = None,
                 strength: float = 1.0, heads: HeadsFit | None = None) -> SequenceRun:
    """Learn ``tasks`` in order with ``method`` (one of :data:`ALL_METHODS`); ``strength``
    weighs the carried posterior (see :func:`carry`), ``heads`` sets the ``heads`` method's
    prior fit."""
    if method == HEADS:
        return run_heads(agent, family, tasks, start, noise_var, steps, eval_episodes, seed,
                         curve_points, on_task, heads or HeadsFit.from_meta())
    posterior_prior, replay = METHODS[method]
    _check_strength(strength)  # before any training
    n = len(tasks)
    run = SequenceRun(method, np.zeros((n, n)))
    prior, kept = start, None
    rng = np.random.default_rng([seed, 0xC0])
    for i, task in enumerate(tasks):
        ctx = agent.context(task, seed=seed + i)
        blq = new_blq(ctx, prior, noise_var)
        if replay and kept is not None:
            blq.keep_transitions(kept)
        try:
            curve = _learn(blq, family, steps, eval_episodes, curve_points)
            run.curves.append(curve)
            ro = blq.readout()
            for j, other in enumerate(tasks):
                ret = curve[-1] if j == i else performance(
                    family, evaluate_readout(agent.context(other), ro, eval_episodes))
                run.perf[i, j] = ret
            post = blq.posterior()
            run.final_readout = post.mean
            coreset = subsample_index(blq.replay, replay_per_task, rng) if replay else None
            if posterior_prior and replay:
                post = blq.own_posterior(drop=coreset)
            prior = carry(post, start, strength if posterior_prior else 0.0)
            if replay:
                kept = merge(kept, subsample(blq.replay, replay_per_task, rng, idx=coreset))
        finally:
            blq.vec.close()
        if on_task is not None:
            on_task(i)
    return run


def run_heads(agent: Agent, family: str, tasks: list[dict[str, float]], start: GaussianPrior,
              noise_var: float | None, steps: int, eval_episodes: int, seed: int,
              curve_points: int = 4, on_task: Callable[[int], None] | None = None,
              fit: HeadsFit | None = None) -> SequenceRun:
    """Learn ``tasks`` in order, each with its own readout; the first from ``start``, each later
    one from the hierarchical prior fitted to the tasks before it (module docstring). A task
    not yet learned is scored with the mean of the prior it would start from."""
    fit = fit or HeadsFit.from_meta()
    n = len(tasks)
    run = SequenceRun(HEADS, np.zeros((n, n)))
    prior, heads = start, []
    xs: list[list[np.ndarray]] = []
    ys: list[list[np.ndarray]] = []
    noise: list[float] = []
    for i, task in enumerate(tasks):
        blq = new_blq(agent.context(task, seed=seed + i), prior, noise_var)
        try:
            run.curves.append(_learn(blq, family, steps, eval_episodes, curve_points))
            x, y = blq.regression_data()
            heads.append(blq.mu.copy())
        finally:
            blq.vec.close()
        xs.append(x)
        ys.append(y)
        noise.append(float(blq.noise_var))
        stats = suff_stats(xs, ys, np.array(noise))
        h = fit_hierarchy(stats, fit.svi_steps, fit.svi_lr, seed + i, fit.hyper)
        mean, std, factor = h.predictive()
        prior = predictive_gaussian(mean, std, factor, start.feat_mean, start.feat_std)
        for j, other in enumerate(tasks):
            if j == i:
                run.perf[i, j] = run.curves[i][-1]
                continue
            w = heads[j] if j < i else prior.mean
            ro = Readout(w[:, :-1].copy(), w[:, -1].copy(), start.feat_mean, start.feat_std)
            run.perf[i, j] = performance(family, evaluate_readout(agent.context(other), ro,
                                                                  eval_episodes))
        if on_task is not None:
            on_task(i)
    lam = float(np.asarray(start.precision).ravel()[0])
    info = {"family": family, "family_env": agent.family_id, "train_tasks": tasks,
            "task_returns": [_return(family, run.perf[-1, j]) for j in range(n)],
            "svi_steps": fit.svi_steps, "svi_lr": fit.svi_lr, "tau_loc": fit.hyper.tau_loc,
            "mu_scale": fit.hyper.mu_scale, "task_steps": steps, "prior_rank": fit.hyper.rank,
            "continual": HEADS}
    run.prior = MetaPrior(mean, std, factor, h.mu_std, h.tau, start.feat_mean, start.feat_std,
                          h.task_mean, h.elbo, pooled_readout(stats, lam),
                          float(np.median(noise)), info)
    run.heads, run.final_readout = np.stack(heads), heads[-1]
    return run


def _return(family: str, perf: float) -> float:
    """Performance back to a return (:func:`performance` inverted)."""
    lo, hi = RETURN_RANGE.get(family, (0.0, 1.0))
    return float(lo + perf * (hi - lo))


def scratch_curves(agent: Agent, family: str, tasks: list[dict[str, float]],
                   start: GaussianPrior, noise_var: float | None, steps: int,
                   eval_episodes: int, seed: int, curve_points: int = 4) -> list[list[float]]:
    """Each task learned alone from ``start`` (the forward-transfer reference)."""
    curves = []
    for i, task in enumerate(tasks):
        one = run_sequence(agent, family, [task], start, noise_var, "fine-tune", steps,
                           eval_episodes, seed + i, curve_points)
        curves.append(one.curves[0])
    return curves


def summary(run: SequenceRun, reference: list[list[float]] | None,
            tasks: list[dict[str, float]]) -> dict[str, Any]:
    """JSON-ready metrics, matrix and curves."""
    return {"method": run.method, **run.metrics(reference), "tasks": tasks,
            "performance_matrix": np.round(run.perf, 4).tolist(),
            "curves": [[round(c, 4) for c in cs] for cs in run.curves],
            "reference_curves": reference}
