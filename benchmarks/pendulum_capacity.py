"""How good a Pendulum-v1 policy can a linear readout of the reservoir represent?

PPO learns a linear readout of fixed reservoir features, so the best it can reach is bounded by
what such a readout can express. This benchmark measures that bound without any RL: a hand-made
swing-up controller (energy pumping far from the top, a linear balance near it) drives 16
Pendulum-v1 environments through the agent's own feature pipeline
(:class:`~neuralalchemy.vecfeatures.VecFeatures`, torque noise for wider coverage); a ridge
regression from the standardised features (the learners' normalisation) to the controller's
pre-tanh action gives a readout, which then plays the 20 greedy evaluation episodes training uses
(seeds 1,000,000 + i). Behaviour cloning of this kind compounds its errors, so its return is a
rough lower bound on what the features allow, not the best readout.

Rows: ``configs/pendulum.yaml`` as shipped and varied one setting at a time, each on three
reservoir seeds; controls: the controller itself, and the same regression on the raw
observation ``(cos θ, sin θ, θ̇)`` (a linear policy on the state, which cannot swing up).

    python benchmarks/pendulum_capacity.py [--samples 25600] [--seeds 3] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cloning import (
    context,  # noqa: E402
    ridge,  # noqa: E402
)
from _cloning import play as play_episodes  # noqa: E402
from _results import table, write_section  # noqa: E402

from neuralalchemy.learners.base import Context, Readout  # noqa: E402
from neuralalchemy.train import (  # noqa: E402
    evaluate_readout,
)
from neuralalchemy.vecfeatures import from_context, mean_std  # noqa: E402

MAX_TORQUE = 2.0
ENVS = 16
NOISE = 0.3  # std of the torque noise while collecting (N·m)
RIDGE = 1.0
EPISODES = 20

# label, overrides of configs/pendulum.yaml
SETTINGS: tuple[tuple[str, list[str]], ...] = (
    ("shipped: 512 neurons, trace 0.5", []),
    ("256 neurons", ["reservoir.size=256"]),
    ("128 neurons", ["reservoir.size=128"]),
    ("1024 neurons", ["reservoir.size=1024"]),
    ("512 neurons, 10 timesteps per step", ["reservoir.steps_per_obs=10"]),
    ("512 neurons, counts (no trace)", ["readout.features=counts"]),
)


def swing_up(obs: np.ndarray) -> np.ndarray:
    """The controller's torque for observations ``(cos θ, sin θ, θ̇)`` (…, 3), θ = 0 upright.

    Far from the top it pumps energy: with ``θ̈ = 15·sin θ + 3·u`` (Pendulum's g = 10, m = l = 1)
    the energy ``E = θ̇²/2 + 15·(cos θ − 1)`` is 0 at rest upright and ``Ė = 3·u·θ̇``, so
    ``u = −θ̇·E/2`` (clipped) raises it while ``E < 0``. Near the top (cos θ > 0.85) it balances
    with ``u = −(12·θ + 3·θ̇)``."""
    c, s, w = obs[..., 0], obs[..., 1], obs[..., 2]
    energy = 0.5 * w * w + 15.0 * (c - 1.0)
    pump = np.clip(-0.5 * w * energy, -MAX_TORQUE, MAX_TORQUE)
    balance = np.clip(-(12.0 * np.arctan2(s, c) + 3.0 * w), -MAX_TORQUE, MAX_TORQUE)
    return np.where(c > 0.85, balance, pump)


def pre_tanh(torque: np.ndarray) -> np.ndarray:
    """The readout output ``u`` whose greedy action ``2·tanh(u)`` is ``torque``."""
    return np.arctanh(np.clip(torque / MAX_TORQUE, -0.995, 0.995))


def play(policy, episodes: int = EPISODES) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Returns of ``policy(obs) -> torque`` on Pendulum-v1's evaluation episodes."""
    return play_episodes(
        "Pendulum-v1", lambda obs: np.array([policy(obs)], dtype=np.float32), episodes)


def collect(overrides: list[str], seed: int, samples: int
            ) -> tuple[Context, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Context, features (S, N), raw observations (S, 3), the controller's pre-tanh actions
    (S,) and the features' normalisation, from the noisy controller on ``samples`` steps."""
    ctx = context("pendulum", overrides, seed)
    vec = from_context(ctx, ENVS, seed)
    rng = np.random.default_rng(seed)
    feats, obs, target = [], [], []
    f = vec.reset()
    for _ in range(samples // ENVS):
        torque = swing_up(vec.obs)
        feats.append(f)
        obs.append(vec.obs.copy())
        target.append(pre_tanh(torque))
        noisy = np.clip(torque + NOISE * rng.standard_normal(ENVS), -MAX_TORQUE, MAX_TORQUE)
        f, *_ = vec.step(noisy[:, None])
    vec.close()
    mean, std = mean_std(vec.stats)
    return ctx, np.concatenate(feats), np.concatenate(obs), np.concatenate(target), \
        np.stack([mean, std])


def clone(overrides: list[str], seed: int, samples: int) -> tuple[float, float, int]:
    """Greedy mean return and R² of the cloned readout, and the feature count."""
    ctx, feats, _, target, (mean, std) = collect(overrides, seed, samples)
    z = (feats - mean) / std
    w = ridge(z, target, RIDGE)
    r2 = 1.0 - np.mean((z @ w[:-1] + w[-1] - target) ** 2) / target.var()
    ro = Readout(theta=w[None, :-1], bias=np.array([w[-1]]), mean=mean, std=std)
    return float(evaluate_readout(ctx, ro, EPISODES).mean()), float(r2), feats.shape[1]


def raw_control(samples: int) -> tuple[float, float]:
    """The same regression on the raw observation: greedy mean return and R². The steps come
    from the same pipeline (its features unused, so a 16-neuron reservoir keeps it cheap): the
    controller's observations and actions do not depend on the reservoir."""
    _, _, obs, target, _ = collect(["reservoir.size=16"], 0, samples)
    w = ridge(obs, target, RIDGE)
    r2 = 1.0 - np.mean((obs @ w[:-1] + w[-1] - target) ** 2) / target.var()
    ret = play(lambda o: MAX_TORQUE * np.tanh(o @ w[:-1] + w[-1]))
    return float(ret.mean()), float(r2)


def main(argv: list[str] | None = None) -> None:
    """Clone the controller onto every setting; print and (unless --no-write) record."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=25_600, help="controller steps to clone")
    ap.add_argument("--seeds", type=int, default=3, help="reservoir seeds per setting")
    ap.add_argument("--quick", action="store_true", help="two settings, one seed (a smoke test)")
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = 1 if args.quick else args.seeds
    settings = SETTINGS[:2] if args.quick else SETTINGS
    start = time.perf_counter()
    expert = play(swing_up)
    raw_ret, raw_r2 = raw_control(args.samples)
    rows = [["the controller itself", "—", "—", f"{expert.mean():.1f}", "—"],
            ["raw observation (cos θ, sin θ, θ̇)", 3, f"{raw_r2:.3f}", f"{raw_ret:.1f}", "—"]]
    print(f"controller {expert.mean():.1f}; raw observation R² {raw_r2:.3f}, {raw_ret:.1f}")
    for label, overrides in settings:
        t0 = time.perf_counter()
        runs = [clone(overrides, seed, args.samples) for seed in range(seeds)]
        rets, r2s = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
        rows.append([label, runs[0][2], f"{r2s.mean():.3f}", f"{rets.mean():.1f}",
                     " / ".join(f"{r:.0f}" for r in rets)])
        print(f"{label:40s} R² {r2s.mean():.3f}  return {rets.mean():7.1f}  "
              f"({' / '.join(f'{r:.0f}' for r in rets)}; {time.perf_counter() - t0:.0f} s)",
              flush=True)
    body = table(["features", "count", "R² (mean)", "greedy return (mean)",
                  "per reservoir seed"], rows)
    print(body)
    if args.no_write:
        return
    write_section("pendulum_capacity", "What a linear readout can express (Pendulum-v1)", (
        f"A swing-up controller (energy pumping, linear balance when cos θ > 0.85; "
        f"`swing_up` in the script) drives {ENVS} Pendulum-v1 environments for "
        f"{args.samples:,} steps through the agent's feature pipeline, its torque perturbed by "
        f"N(0, {NOISE}²); ridge regression (λ = {RIDGE}) from the standardised features to the "
        "controller's pre-tanh action gives a readout; greedy return: its mean over the "
        f"{EPISODES} evaluation episodes training uses (seeds 1,000,000 + i); R²: of the "
        f"regression on the collected steps; {seeds} reservoir seed(s) (0…{seeds - 1}) per "
        "row, each varying `configs/pendulum.yaml` as named. Behaviour cloning compounds its "
        "errors, so a row's return is a rough lower bound on what its features allow. The "
        "benchmark's threshold is −200. Whole run "
        f"{time.perf_counter() - start:.0f} s.\n\n{body}\n"))


if __name__ == "__main__":
    main()
