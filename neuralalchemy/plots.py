"""Plots a user would rather see than read (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.fsio import atomic_write_bytes


def learning_curve(metrics: list[dict[str, Any]], path: Path, title: str,
                   threshold: float | None) -> Path:
    """Training-episode returns and evaluation means against environment steps, as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [m for m in metrics if m.get("kind") == "train"]
    evals = [m for m in metrics if m.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        x = np.array([m["env_steps"] for m in train])
        y = np.array([m["return"] for m in train])
        ax.scatter(x, y, s=4, alpha=0.25, color="tab:blue", label="training episodes")
    if evals:
        x = np.array([m["env_steps"] for m in evals])
        mean = np.array([m["mean"] for m in evals])
        std = np.array([m["std"] for m in evals])
        ax.errorbar(x, mean, yerr=std, fmt="o-", color="tab:red", ms=4, capsize=3,
                    label="evaluation mean ± std")
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="gray", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def save_png(fig: Any, path: Path) -> Path:
    """Lay out ``fig``, write it as PNG atomically, close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
