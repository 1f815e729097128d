"""``alchemy run``: play a compiled agent in closed loop on one backend, optionally checked
against the torch reference on the same episodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.compile.artifact import load_artifact
from neuralalchemy.envs import env_info
from neuralalchemy.sim.backend import EpisodeRecord, get_backend


def action_agreement(a: list[EpisodeRecord], b: list[EpisodeRecord]) -> dict[str, Any]:
    """Fraction of steps with equal actions, over the steps both episodes reached."""
    same = total = 0
    first_diff: list[int | None] = []
    for ra, rb in zip(a, b):
        n = min(ra.length, rb.length)
        eq = np.all(np.isclose(np.asarray(ra.actions[:n], dtype=float),
                               np.asarray(rb.actions[:n], dtype=float)).reshape(n, -1), axis=1)
        same += int(eq.sum())
        total += n
        diff = np.flatnonzero(~eq)
        first_diff.append(int(diff[0]) if diff.size else None)
    return {"agreement": same / total if total else 1.0, "steps_compared": total,
            "first_divergence": first_diff,
            "identical_returns": all(ra.ret == rb.ret for ra, rb in zip(a, b))}


def run_artifact(folder: Path, backend: str, episodes: int, seed: int,
                 env_id: str | None = None, compare: str | None = None) -> dict[str, Any]:
    """Play ``episodes`` episodes (seeds ``seed + i``) and summarise them."""
    agent, manifest = load_artifact(folder)
    play = get_backend(backend)
    if env_id is not None and env_id != agent.env_id:
        env_info(env_id)  # a clear error for an unknown id
        agent = replace(agent, env_id=env_id)
    seeds = [seed + i for i in range(episodes)]
    records = play(agent, seeds)
    steps = sum(r.length for r in records)
    out: dict[str, Any] = {
        "artifact": str(folder), "backend": backend, "env_id": agent.env_id,
        "target": manifest.get("target"), "precision": manifest.get("precision"),
        "episodes": [r.to_dict() for r in records],
        "returns": [r.ret for r in records],
        "mean_return": float(np.mean([r.ret for r in records])),
        "ms_per_env_step": 1000.0 * sum(r.wall_s for r in records) / max(steps, 1),
        "total_spikes": int(sum(r.spikes for r in records)), "env_steps": steps,
    }
    if compare and compare != backend:
        reference = get_backend(compare)(agent, seeds)
        out["compare"] = {"backend": compare, **action_agreement(records, reference),
                          "returns": [r.ret for r in reference]}
    return out
