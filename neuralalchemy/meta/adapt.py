"""``alchemy adapt``: a new task learned from a few episodes, starting from the meta-prior.

The readout prior ``N(m, diag s²)`` from meta-training becomes a closed-form posterior after each
episode (Bayesian linear Q, :class:`~neuralalchemy.learners.blq.Blq` with an informative prior);
the agent explores by Thompson sampling, acting greedily on one posterior draw per episode. After
``k`` episodes for each ``k`` in the schedule, the adapted readout is evaluated: with
``meta.adapt_select`` (the default) the readout acted on (posterior means and posterior draws, in
turn) with the highest mean episode return; otherwise the posterior mean.

When meta-training fitted a prior over reservoir hyperparameters, the new task's own posterior
over the candidate reservoirs (``∝ π_g · exp E_g``, :func:`reservoir_posterior`) is reported:
whether the task agrees with the reservoir the family runs. It is scored as the training tasks
were, on ``meta.hyper_episodes`` random-policy episodes of the new task (G candidate networks
× that many episodes: extra environment episodes and time, not counted in the adaptation's
budget); the agent keeps its reservoir (one network on one chip for the whole family).

Uncertainty is exposed per action: ``E[Q(s, a)]`` and its posterior std, and checked for
calibration on fresh greedy episodes (:func:`calibration`): the fraction of one-step fitted-Q
targets, and of discounted returns ``G_t``, inside the central ``level`` interval of the
predictive of the action taken. A calibrated posterior covers ``level`` of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import torch

from neuralalchemy.config import ConfigError
from neuralalchemy.fsio import atomic_write_json
from neuralalchemy.learners.base import Readout
from neuralalchemy.learners.blq import Blq, GaussianPrior
from neuralalchemy.meta.core import Agent, MetaPrior, Mixture, new_blq, save_agent
from neuralalchemy.meta.reservoir_prior import ReservoirPrior
from neuralalchemy.records import new_run_dir, write_metrics, write_provenance
from neuralalchemy.train import evaluate_readout

SCHEDULE = (0, 1, 2, 5, 10)
"""Episodes of experience after which the adapted readout is evaluated."""


@dataclass
class Adaptation:
    """One adaptation run: greedy returns per stage and what Thompson sampling earned."""

    episodes: list[int]
    returns: list[float]          # greedy evaluation mean after each stage
    online: list[float]           # return of each adaptation (Thompson) episode
    learner: Blq
    final: Readout                # the adapted readout (after the last stage)
    kinds: KindPosterior | None = None  # the posterior over a mixture prior's kinds

    def summary(self) -> dict[str, Any]:
        """JSON-ready curve (and, with a mixture prior, the kind posterior after each episode)."""
        out: dict[str, Any] = {"episodes": self.episodes,
                               "returns": [round(r, 2) for r in self.returns],
                               "online_returns": [round(r, 2) for r in self.online]}
        if self.kinds is not None:
            out["kinds"] = self.kinds.mixture.kinds
            out["kind_posterior"] = [[round(p, 4) for p in row] for row in self.kinds.trace]
        return out


def adapt_blq(agent: Agent, task: dict[str, float] | None, prior: GaussianPrior,
              noise_var: float | None, schedule: tuple[int, ...], eval_episodes: int,
              seed: int, select: bool = False, mixture: Mixture | None = None) -> Adaptation:
    """Adapt from ``prior`` on ``task``, evaluating after every stage of ``schedule``
    (exploration as ``exploration.thompson`` says: Thompson sampling by default).

    ``select``: return-guided selection (:class:`_Selection`); otherwise the readout after ``k``
    episodes is the posterior mean. ``mixture``: ``prior`` is centred on the most probable kind
    (its precision is every kind's); after each episode the task's posterior over the kinds is
    updated from that episode's return (:class:`KindPosterior`) and, when another kind becomes
    the most probable, the prior is re-centred on it and refitted on the data so far."""
    torch.set_num_threads(1)
    if select and not agent.cfg.exploration.thompson:
        raise ConfigError("meta.adapt_select acts on posterior draws, which needs "
                          "exploration.thompson: true; set it, or use --no-select")
    ctx = agent.context(task, seed=seed, num_envs=1, refit_every=10**7)
    blq = new_blq(ctx, prior, noise_var)
    kinds = KindPosterior(mixture) if mixture is not None else None
    if kinds is not None:
        blq.recentre(kinds.mixture.means[kinds.current])
    returns: list[float] = []
    online: list[float] = []
    done = 0
    chooser = _Selection(blq, kinds.current if kinds is not None else 0) if select else None
    ro = blq.readout()
    for k in sorted(set(schedule)):
        if kinds is not None:               # one episode at a time: the kind may change
            while len(online) < k:
                ret = chooser.episode() if chooser is not None else float(
                    blq.run_episodes(1).returns[0])
                online.append(ret)
                if kinds.observe(ret):
                    blq.recentre(kinds.mixture.means[kinds.current])
                    if chooser is not None:
                        chooser.switch(kinds.current)
        elif k > done:
            if chooser is not None:
                online += [chooser.episode() for _ in range(k - done)]
            else:
                online += [float(r) for r in blq.run_episodes(k - done).returns]
        done = max(done, k)
        ro = blq.readout() if chooser is None else chooser.best(blq.readout())
        returns.append(float(evaluate_readout(ctx, ro, eval_episodes).mean()))
    return Adaptation(sorted(set(schedule)), returns, online, blq, ro, kinds)


class KindPosterior:
    """A new task's posterior over the kinds of a mixture prior, from its episode returns.

    Starts at the kinds' prior weights; an episode that acted on kind ``j``'s readout and
    returned ``G`` multiplies kind ``k``'s probability by ``N(G; m_jk, s_jk²)``, the returns kind
    ``j``'s policy earned on kind ``k``'s training tasks (:class:`~neuralalchemy.meta.core.
    Mixture`). The readout acted on is the current kind's posterior mean or a draw around it,
    taken as that kind's policy."""

    def __init__(self, mixture: Mixture):
        self.mixture = mixture
        self.log_p = np.log(np.asarray(mixture.weights, dtype=np.float64))
        self.log_p -= np.logaddexp.reduce(self.log_p)
        self.current = int(np.argmax(self.log_p))
        self.trace: list[list[float]] = [self.probabilities.tolist()]

    @property
    def probabilities(self) -> np.ndarray:
        """p(kind | the returns so far), (K,)."""
        return np.exp(self.log_p)

    def observe(self, ret: float) -> bool:
        """Weigh in one episode's return (acted on the current kind); True when the most
        probable kind changes (then it is the current one)."""
        mean, std = self.mixture.returns[self.current].T
        self.log_p += -0.5 * ((ret - mean) / std) ** 2 - np.log(std)
        self.log_p -= np.logaddexp.reduce(self.log_p)
        self.trace.append(self.probabilities.tolist())
        best = int(np.argmax(self.log_p))
        changed, self.current = best != self.current, best
        return changed


class _Selection:
    """Return-guided adaptation. Every episode acts greedily on one readout and the posterior is
    updated in closed form after it. The readouts acted on alternate between the current
    posterior mean (first) and a fresh posterior draw (Thompson sampling), except that a readout
    whose single return puts it ahead is acted on once more before it can be chosen by one lucky
    episode. The adapted readout is the one with the highest mean return over its episodes,
    among those acted on at least twice and the first one acted on (the posterior mean the task
    started from): the posterior proposes policies and the task's returns choose, so a fit to a
    few episodes' Bellman targets cannot displace a policy that already does well, nor can one
    lucky episode."""

    def __init__(self, blq: Blq, kind: int = 0):
        self.blq = blq
        self.tried: list[tuple[np.ndarray, list[float]]] = []
        self.draw_next = False
        self.kind = kind  # the task's most probable kind (0 without a mixture prior)
        self.kind_of: list[int] = []  # the kind each tried readout was proposed under

    def switch(self, kind: int) -> None:
        """The task's most probable kind is now ``kind``: readouts proposed under another kind
        no longer compete, and the next episode acts on the new posterior mean."""
        self.kind, self.draw_next = kind, False

    def _leader(self, confirmed: bool = False) -> tuple[np.ndarray, list[float]] | None:
        """The current kind's readout with the highest mean return; ``confirmed``: among those
        acted on at least twice and the kind's first one."""
        mine = [t for t, k in zip(self.tried, self.kind_of) if k == self.kind]
        if confirmed:
            mine = [t for i, t in enumerate(mine) if i == 0 or len(t[1]) > 1]
        return max(mine, key=lambda t: float(np.mean(t[1])), default=None)

    def episode(self) -> float:
        """Act for one episode, update the posterior; that episode's return."""
        blq, lead = self.blq, self._leader()
        if lead is not None and len(lead[1]) == 1 and self.kind_of.count(self.kind) > 1:
            entry = lead                                    # confirm a new leader
        else:
            entry = (blq.sampled[0].copy() if self.draw_next else blq.mu.copy(), [])
            self.tried.append(entry)
            self.kind_of.append(self.kind)
            self.draw_next = not self.draw_next
        blq.sampled[0] = entry[0]
        ret = float(blq.run_episodes(1).returns[0])
        entry[1].append(ret)
        return ret

    def best(self, fallback: Readout) -> Readout:
        """The confirmed readout with the highest mean return (``fallback`` before any
        episode)."""
        lead = self._leader(confirmed=True)
        if lead is None:
            return fallback
        w = lead[0]
        return Readout(w[:, :-1].copy(), w[:, -1].copy(), fallback.mean, fallback.std)


def calibration(blq: Blq, episodes: int, seed: int, level: float = 0.9) -> dict[str, float]:
    """Coverage of what Q predicts by its posterior predictive, on fresh greedy episodes.

    Two checks, each the share of observations inside the central ``level`` interval:

    * one step, what the model states: the fitted-Q target ``y_t = r_t + γ·max_a E[Q(s_t+1, a)]``
      (``r_t`` alone at termination) against ``N(E[Q(s_t, a_t)], sd[Q]² + σ²)``;
    * the return: the discounted return ``G_t`` (bootstrapped at truncation) against
      ``N(E[Q(s_t, a_t)], sd[Q]² + σ²/(1 − γ²))``: the one-step noise of every later step,
      discounted and independent, adds up along the trajectory.
    """
    z = NormalDist().inv_cdf(0.5 + level / 2)
    gamma = blq.tr.gamma
    err_g, err_y, sd_epistemic = [], [], []
    for ep in range(episodes):
        q, sd = blq.q_stats(blq.vec.reset(seed + ep))
        means, sds, rewards, nexts = [], [], [], []
        while True:
            a = int(np.argmax(q[0]))
            f, r, term, trunc, info = blq.vec.step(np.array([a]))
            means.append(q[0, a])
            sds.append(sd[0, a])
            rewards.append(float(r[0]))
            if term[0] or trunc[0]:
                tail = 0.0 if term[0] else float(blq.q_stats(info["final_features"])[0].max())
                nexts.append(tail)
                break
            q, sd = blq.q_stats(f)
            nexts.append(float(q[0].max()))
        g = np.empty(len(rewards))
        acc = tail
        for t in range(len(rewards) - 1, -1, -1):
            acc = rewards[t] + gamma * acc
            g[t] = acc
        mean, var_q = np.asarray(means), np.asarray(sds) ** 2
        err_g.append((g - mean) / np.sqrt(var_q + blq.noise_var / (1 - gamma ** 2)))
        y = np.asarray(rewards) + gamma * np.asarray(nexts)
        err_y.append((y - mean) / np.sqrt(var_q + blq.noise_var))
        sd_epistemic += sds
    blq.vec.pop_finished()
    eg, ey = np.concatenate(err_g), np.concatenate(err_y)
    return {"level": level, "coverage": float(np.mean(np.abs(eg) <= z)),
            "mean_z2": float(np.mean(eg ** 2)),
            "coverage_one_step": float(np.mean(np.abs(ey) <= z)),
            "mean_z2_one_step": float(np.mean(ey ** 2)), "steps": len(eg),
            "q_sd_epistemic_median": float(np.median(sd_epistemic)),
            "noise_sd": float(np.sqrt(blq.noise_var))}


def reservoir_posterior(agent: Agent, rprior: ReservoirPrior, task: dict[str, float] | None,
                        seed: int) -> dict[str, Any]:
    """The new task's posterior over the candidate reservoirs, and where it puts its mode."""
    from neuralalchemy.meta.metatrain import score_candidates
    from neuralalchemy.meta.reservoir_prior import task_posterior

    n = agent.cfg.meta.hyper_episodes
    evidence, _ = score_candidates(agent, rprior.candidates, [task], n, [seed + 7_919],
                                   agent.cfg.training.seed)  # the features' seed, as in training
    post = task_posterior(rprior, evidence[0])
    mode = int(np.argmax(post))
    return {"episodes": n, "posterior": [round(float(p), 6) for p in post],
            "chosen": rprior.chosen, "p_chosen": float(post[rprior.chosen]),
            "prior_p_chosen": float(rprior.predictive()[rprior.chosen]),
            "mode": mode, "p_mode": float(post[mode]), "mode_values": rprior.values(mode)}


def adapt(agent: Agent, prior: MetaPrior, task: dict[str, float] | None, episodes: int,
          eval_episodes: int, seed: int, out: Path) -> tuple[Path, dict[str, Any]]:
    """``alchemy adapt``: adapt, check calibration, save a deployable checkpoint and a plot."""
    start = time.perf_counter()
    schedule = tuple(k for k in SCHEDULE if k < episodes) + (episodes,)
    run = adapt_blq(agent, task, prior.gaussian(), prior.noise_var, schedule, eval_episodes, seed,
                    agent.cfg.meta.adapt_select, prior.mixture)
    calib = calibration(run.learner, max(2, eval_episodes // 2), seed + 10_000)
    ro = run.final
    run.learner.vec.close()
    ctx = agent.context(task)
    run_dir = new_run_dir(out / "runs", f"adapt-{prior.info.get('family', 'task')}")
    learner = {"algorithm": "blq-adapted", "episodes": episodes,
               "selected_by_return": agent.cfg.meta.adapt_select,
               "env_steps": int(run.learner.env_steps)}
    write_provenance(run_dir, agent.cfg, {"kind": "adapt", "task": task, "seed": seed})
    save_agent(run_dir, agent.checkpoint(task, ro, learner, prior.to_extras()))
    write_metrics(run_dir / "metrics.jsonl", [
        *({"kind": "stage", "episodes": k, "eval_mean": float(r)}
          for k, r in zip(run.episodes, run.returns)),
        *({"kind": "episode", "episode": i + 1, "return": float(r)}
          for i, r in enumerate(run.online))])
    _plot(run, run_dir / "adaptation.png", ctx.info.env_id, ctx.info.reward_threshold)
    rpost = None if prior.reservoir is None else reservoir_posterior(agent, prior.reservoir,
                                                                     task, seed)
    summary = {"env": ctx.info.env_id, "task": task, **run.summary(), "calibration": calib,
               "reservoir_posterior": rpost,
               "env_steps": int(run.learner.env_steps),
               "wall_s": round(time.perf_counter() - start, 2), "checkpoint": "checkpoint.npz"}
    atomic_write_json(run_dir / "summary.json", summary)
    return run_dir, summary


def _plot(run: Adaptation, path: Path, env: str, threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralalchemy.plots import save_png

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(run.episodes, run.returns, "o-", label="greedy (posterior mean)")
    if run.online:
        ax.plot(np.arange(1, len(run.online) + 1), run.online, ".", alpha=0.6,
                label="Thompson episodes")
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label="threshold")
    ax.set_xlabel("episodes on the new task")
    ax.set_ylabel("return")
    ax.set_title(f"adaptation from the meta-prior: {env}", fontsize=9)
    ax.legend(fontsize=8)
    save_png(fig, path)
