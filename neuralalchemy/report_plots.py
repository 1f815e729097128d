"""The figures of ``alchemy report`` (matplotlib, headless, written as PNG atomically).

Every function takes plain arrays or metric records, draws one figure, and returns its path; the
run-specific reading and arithmetic live in :mod:`neuralalchemy.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.plots import save_png


def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---------------------------------------------------------------- learning curves
def meta_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Meta-training: each training task's evaluation return, and the ELBO per SVI step."""
    plt = _plt()
    tasks = [m for m in metrics if m.get("kind") == "task"]
    svi = [m for m in metrics if m.get("kind") == "svi"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    if tasks:
        ax1.bar(np.arange(1, len(tasks) + 1), [m["eval_return"] for m in tasks], color="tab:blue")
        ax1.set_xticks(np.arange(1, len(tasks) + 1))
    ax1.set_xlabel("training task")
    ax1.set_ylabel("evaluation return (Bayesian linear Q)")
    if svi:
        elbo = np.array([m["elbo"] for m in svi], dtype=np.float64)
        ax2.plot([m["step"] for m in svi], elbo, lw=1, color="tab:red")
        lo = np.percentile(elbo, 5)
        ax2.set_ylim(lo, elbo.max() + 0.05 * (elbo.max() - lo + 1))
    ax2.set_xlabel("SVI step")
    ax2.set_ylabel("ELBO")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def adapt_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Adaptation: greedy evaluation after k episodes, and each Thompson episode's return."""
    plt = _plt()
    stages = [m for m in metrics if m.get("kind") == "stage"]
    episodes = [m for m in metrics if m.get("kind") == "episode"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if stages:
        ax.plot([m["episodes"] for m in stages], [m["eval_mean"] for m in stages], "o-",
                color="tab:red", label="greedy evaluation (posterior mean)")
    if episodes:
        ax.plot([m["episode"] for m in episodes], [m["return"] for m in episodes], ".",
                color="tab:blue", alpha=0.6, label="Thompson episodes")
    ax.set_xlabel("episodes on the new task")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)


def continual_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Continual learning: the performance on every task after training each one in turn."""
    plt = _plt()
    rows = [m for m in metrics if m.get("kind") == "after_task"]
    perf = np.array([m["performance"] for m in rows], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if perf.size:
        after = np.arange(1, perf.shape[0] + 1)
        for j in range(perf.shape[1]):
            ax.plot(after, perf[:, j], "o-", label=f"task {j + 1}")
        ax.set_xticks(after)
        ax.legend(fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("after training task")
    ax.set_ylabel("performance (return rescaled to [0, 1])")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


# ---------------------------------------------------------------- spikes
def spike_raster(raster: np.ndarray, excitatory: np.ndarray, steps_per_obs: int, path: Path,
                 title: str) -> Path:
    """Raster (neuron × timestep; excitatory black, inhibitory red) over the population rate."""
    plt = _plt()
    t_max, n = raster.shape
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    t, i = np.nonzero(raster)
    exc = excitatory[i]
    ax1.scatter(t[exc], i[exc], s=1.5, color="black", marker="|", label="excitatory")
    ax1.scatter(t[~exc], i[~exc], s=1.5, color="tab:red", marker="|", label="inhibitory")
    ax1.set_ylim(-0.5, n - 0.5)
    ax1.set_ylabel("neuron")
    ax1.set_title(title, fontsize=10)
    if exc.any() and (~exc).any():
        ax1.legend(fontsize=7, loc="upper right", markerscale=4)
    rate = raster.mean(axis=1)
    ax2.plot(np.arange(t_max), rate, lw=0.8, color="tab:blue")
    for edge in range(1, t_max, max(steps_per_obs, 1) * 10):
        ax2.axvline(edge, color="gray", lw=0.3, alpha=0.5)
    ax2.set_ylabel("fraction\nspiking")
    ax2.set_xlabel(f"timestep ({steps_per_obs} per environment step)")
    ax2.set_xlim(-0.5, t_max - 0.5)
    return save_png(fig, path)


def rate_histogram(rates: np.ndarray, path: Path) -> Path:
    """Histogram of per-neuron firing rates (spikes per timestep) over the episode."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(rates, bins=min(40, max(len(rates) // 4, 5)), range=(0.0, max(float(rates.max()),
            1e-3)), color="tab:blue")
    ax.axvline(float(rates.mean()), color="tab:red", ls="--", lw=1,
               label=f"mean {rates.mean():.3f}")
    ax.set_xlabel("firing rate (spikes per timestep)")
    ax.set_ylabel("neurons")
    ax.set_title(f"{int((rates == 0).sum())} of {len(rates)} neurons silent", fontsize=10)
    ax.legend(fontsize=8)
    return save_png(fig, path)


# ---------------------------------------------------------------- readout
def readout_heatmap(theta: np.ndarray, path: Path) -> Path:
    """Readout weights (actions × neurons, neuron index order) and each action's sorted weights."""
    plt = _plt()
    a, n = theta.shape
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 2.2 + 0.5 * a + 2.6), dpi=100,
                                   gridspec_kw={"height_ratios": [max(a, 1), 3]})
    lim = float(np.abs(theta).max()) or 1.0
    im = ax1.imshow(theta, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                    interpolation="nearest")
    ax1.set_yticks(range(a))
    ax1.set_yticklabels([f"action {k}" for k in range(a)])
    ax1.set_xlabel("neuron")
    fig.colorbar(im, ax=ax1, fraction=0.03, pad=0.01, label="weight")
    for k in range(a):
        ax2.plot(np.arange(n), np.sort(theta[k])[::-1], lw=1, label=f"action {k}")
    ax2.axhline(0.0, color="gray", lw=0.5)
    ax2.set_xlabel("neurons, sorted by weight (per action)")
    ax2.set_ylabel("weight")
    ax2.legend(fontsize=7, ncol=min(a, 6))
    ax2.grid(alpha=0.3)
    return save_png(fig, path)


def weight_histogram(theta: np.ndarray, path: Path) -> Path:
    """Distribution of the readout weights, one histogram per action."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    lim = float(np.abs(theta).max()) or 1.0
    for k in range(theta.shape[0]):
        ax.hist(theta[k], bins=40, range=(-lim, lim), histtype="step", lw=1.2,
                label=f"action {k}")
    ax.set_xlabel("weight on the normalised feature")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=7)
    return save_png(fig, path)


# ---------------------------------------------------------------- uncertainty
def q_uncertainty(sd: np.ndarray, path: Path, title: str) -> Path:
    """Per-action std of Q over the visited states: along the episode and as a box per action."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100,
                                   gridspec_kw={"width_ratios": [3, 1]})
    for k in range(sd.shape[1]):
        ax1.plot(np.arange(len(sd)), sd[:, k], lw=1, label=f"action {k}")
    ax1.set_xlabel("environment step of the greedy episode")
    ax1.set_ylabel("std of Q(s, a)")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.boxplot([sd[:, k] for k in range(sd.shape[1])], showfliers=False)
    ax2.set_xticks(range(1, sd.shape[1] + 1))
    ax2.set_xticklabels([str(k) for k in range(sd.shape[1])])
    ax2.set_xlabel("action")
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def prior_spread(std: np.ndarray, path: Path) -> Path:
    """The meta-prior's std of every readout weight (bias excluded), one histogram per action."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    hi = float(std.max()) or 1.0
    for k in range(std.shape[0]):
        ax.hist(std[k], bins=40, range=(0.0, hi), histtype="step", lw=1.2,
                label=f"action {k} (median {np.median(std[k]):.3f})")
    ax.set_xlabel("prior std of a readout weight")
    ax.set_ylabel("weights")
    ax.legend(fontsize=7)
    return save_png(fig, path)


# ---------------------------------------------------------------- resources
def core_usage(rows: list[dict[str, Any]], columns: dict[str, str], path: Path,
               title: str) -> Path:
    """Per core, the % of each per-core limit used (grouped bars; 100 % dashed)."""
    plt = _plt()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(min(3 + 0.6 * n, 14), 3.8), dpi=100)
    width = 0.8 / max(len(columns), 1)
    x = np.arange(n)
    for j, (key, label) in enumerate(columns.items()):
        ax.bar(x + (j - (len(columns) - 1) / 2) * width, [float(r.get(key, 0.0)) for r in rows],
               width, label=label)
    ax.axhline(100.0, color="gray", ls="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r.get('chip', 0)}:{r.get('core', i)}" for i, r in enumerate(rows)],
                       rotation=90 if n > 20 else 0, fontsize=7)
    ax.set_xlabel("chip:core")
    ax.set_ylabel("% of the per-core limit")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return save_png(fig, path)
