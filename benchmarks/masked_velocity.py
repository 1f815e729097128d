"""How much of CartPole's hidden velocity can a linear readout recover from the reservoir?

MaskedCartPole-v1 shows the agent the cart position x and the pole angle θ only; a policy needs
the velocities ẋ and θ̇ too, so they must come from memory. This benchmark measures how much of
them a linear readout can recover from the features the agent sees: random-policy CartPole-v1
episodes, the reservoir fed (x, θ) as the agent is, ridge regression (the supervised tasks'
readout: standardised features, the penalty chosen on held-back training rows) from the features
of each step to each true state dimension, R² on held-out episodes.

Two controls bound it: the raw (x, θ) alone (no memory), and the raw (x, θ) with the previous
step's beside them (exact one-step memory: ẋ ≈ Δx/τ). The rows in between vary the reservoir and
the encoder (without change channels: the reservoir's memory alone; 256 neurons), and one stacks
the previous step's spike counts beside the current ones (exact one-step memory of the spike
code). The last rows are the shipped ``configs/masked_cartpole.yaml``: its encoder also codes
the change of x and θ since the previous step (``encoder.changes``).

    python benchmarks/masked_velocity.py [--episodes 400] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import table, write_section  # noqa: E402

from neuralalchemy.agent_io import make_encoder  # noqa: E402
from neuralalchemy.config import load_config  # noqa: E402
from neuralalchemy.meta.reservoir_prior import (  # noqa: E402
    Episodes,
    episode_features,
    random_episodes,
)
from neuralalchemy.network import build_network  # noqa: E402
from neuralalchemy.supervised import fit_ridge, select_ridge  # noqa: E402

STATE = ("x", "ẋ", "θ", "θ̇")
SEEN = [0, 2]  # MaskedCartPole-v1 keeps x and θ

# label, overrides of the shipped config, fields per dimension (None: the config's), encoder
# kind (None: the config's), features: "trace" (the config's decay), "counts", "stack"
# (counts of this and the previous step) or "raw" / "raw+prev" (the controls)
MEMORY = ["encoder.changes=false", "encoder.change_ranges=[]", "reservoir.size=256"]
SETTINGS: tuple[tuple[str, list[str], int | None, str | None, str], ...] = (
    ("raw (x, θ): no memory", [], None, None, "raw"),
    ("raw (x, θ) and the previous step's", [], None, None, "raw+prev"),
    ("trace 0.5, 10 fields", MEMORY, None, None, "trace"),
    ("counts (no trace)", MEMORY, None, None, "counts"),
    ("slow neurons: du 0.1, dv 0.1", [*MEMORY, "reservoir.du=0.1", "reservoir.dv=0.1"], None,
     None, "trace"),
    ("20 fields per dimension", MEMORY, 20, None, "trace"),
    ("20 fields, 1024 neurons", [*MEMORY, "reservoir.size=1024"], 20, None, "trace"),
    ("current encoder", MEMORY, None, "current", "trace"),
    ("20 fields, counts with the previous step's", MEMORY, 20, None, "stack"),
    ("shipped: change channels, trace 0.5", [], None, None, "trace"),
    ("shipped, with counts (no trace)", [], None, None, "counts"),
)


def features(kind: str, overrides: list[str], per_dim: int | None, enc_kind: str | None,
             full: Episodes) -> list[np.ndarray]:
    """Per episode (L + 1, F): what the readout would see at each step."""
    seen = [o[:, SEEN] for o in full.obs]
    if kind in ("raw", "raw+prev"):
        return [np.hstack([o, np.vstack([o[:1], o[:-1]])]) if kind == "raw+prev" else o
                for o in seen]
    cfg = load_config("masked_cartpole", overrides=overrides, environ={})
    ranges = np.asarray(cfg.encoder.ranges, dtype=np.float64)
    if cfg.encoder.changes:
        ranges = np.vstack([ranges, np.asarray(cfg.encoder.change_ranges, dtype=np.float64)])
    enc = make_encoder(ranges, per_dim or cfg.encoder.neurons_per_dim, cfg.encoder.width,
                       enc_kind or cfg.encoder.kind, cfg.encoder.changes)
    net = build_network(cfg.reservoir, enc.n_channels, enc.binary)
    decay = cfg.readout.trace_decay if kind == "trace" else 0.0
    masked = Episodes(seen, full.actions, full.rewards)
    feats = episode_features(net, enc, cfg.reservoir.steps_per_obs, decay, masked, 0)
    if kind == "stack":
        feats = [np.hstack([f, np.vstack([f[:1], f[:-1]])]) for f in feats]
    return feats


def held_out_r2(feats: list[np.ndarray], full: Episodes, train_frac: float = 0.7) -> np.ndarray:
    """R² (4,) of ridge regressions from features to each state dimension
    (:func:`~neuralalchemy.supervised.fit_ridge`, penalty by
    :func:`~neuralalchemy.supervised.select_ridge`), fitted on the first ``train_frac`` of the
    episodes and scored on the rest."""
    cut = int(train_frac * len(feats))
    xtr, xte = np.concatenate(feats[:cut]), np.concatenate(feats[cut:])
    ytr, yte = np.concatenate(full.obs[:cut]), np.concatenate(full.obs[cut:])
    out = np.zeros(ytr.shape[1])
    for j in range(ytr.shape[1]):
        readout = fit_ridge(xtr, ytr[:, j], select_ridge(xtr, ytr[:, j]))
        out[j] = 1.0 - np.mean((readout(xte)[:, 0] - yte[:, j]) ** 2) / yte[:, j].var()
    return out


def reading(scores: dict[str, np.ndarray]) -> str:
    """What the table says about the velocities (ẋ, θ̇): the best reservoir row against the
    two controls."""
    raw, prev = scores[SETTINGS[0][0]], scores[SETTINGS[1][0]]
    memory = [label for label, overrides, *_ in SETTINGS if overrides[:1] == MEMORY[:1]]
    best = max(memory, key=lambda k: scores[k][[1, 3]].sum())
    gain = scores[best][[1, 3]] - raw[[1, 3]]
    shipped = scores[SETTINGS[-2][0]]
    return (f"Velocities (ẋ / θ̇): without any memory the current (x, θ) already give R² "
            f"{raw[1]:.2f} / {raw[3]:.2f} (under a random policy velocity correlates with "
            f"position); the best row that relies on the reservoir's memory ({best}) adds "
            f"{gain[0]:+.2f} / {gain[1]:+.2f}; exact memory of the previous raw observation "
            f"reaches {prev[1]:.2f} / {prev[3]:.2f}. The spike code's position error exceeds "
            "the step-to-step change, so memory of that code cannot give the velocity (compare "
            "the row that stacks the previous step's spike counts). The shipped encoder codes "
            f"the change itself (change channels): {shipped[1]:.2f} / {shipped[3]:.2f}.")


def main(argv: list[str] | None = None) -> None:
    """Score every setting; print and (unless --no-write) record the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=400, help="random-policy episodes")
    ap.add_argument("--quick", action="store_true", help="20 episodes (a smoke test)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n = 20 if args.quick else args.episodes
    start = time.perf_counter()
    full = random_episodes("CartPole-v1", n, 0)
    rows, scores = [], {}
    for label, overrides, per_dim, enc_kind, kind in SETTINGS:
        t0 = time.perf_counter()
        feats = features(kind, overrides, per_dim, enc_kind, full)
        r2 = scores[label] = held_out_r2(feats, full)
        rows.append([label, feats[0].shape[1], *(f"{v:.3f}" for v in r2)])
        print(f"{label:45s} " + "  ".join(f"{s} {v:.3f}" for s, v in zip(STATE, r2))
              + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    body = table(["features", "count", *(f"R² {s}" for s in STATE)], rows)
    body += "\n\n" + reading(scores)
    print(body)
    if args.no_write:
        return
    steps = sum(len(o) for o in full.obs)
    write_section("masked_velocity", "Hidden velocity in the reservoir (MaskedCartPole-v1)", (
        f"{n} random-policy CartPole-v1 episodes ({steps:,} states, seeds 0…{n - 1}); the "
        "reservoir of `configs/masked_cartpole.yaml` (or the variant named; the rows before the "
        "shipped ones: no change channels, 256 neurons) fed x and θ as the agent is; ridge "
        "regression (`fit_ridge` on standardised features, the penalty chosen "
        "per state dimension by `select_ridge` on the training rows) from each step's features "
        "to the true state; R² on the last 30 % of the episodes. The first two rows are "
        "controls without a reservoir: the raw (x, θ), and the raw (x, θ) beside the previous "
        "step's (exact one-step memory). Whole run "
        f"{time.perf_counter() - start:.0f} s.\n\n{body}\n"))


if __name__ == "__main__":
    main()
