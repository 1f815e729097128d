"""Batched closed-loop episodes on the reference engine: B environments, B readouts, one reservoir.

Each copy ``b`` runs one episode with its own linear readout ``(w[b], bias[b])`` on normalised
features ``(f − mean) / std``. Copies whose episode ended keep stepping (masked) until all end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neuralalchemy.agent_io import EncoderParams, select_action, window
from neuralalchemy.engine import Reservoir
from neuralalchemy.envs import EnvInfo, make_vec
from neuralalchemy.network import NetworkParams


@dataclass
class FeatureStats:
    """Running sums of features for normalisation (ARS V2)."""

    n: float
    total: np.ndarray
    total_sq: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> FeatureStats:
        """No samples yet."""
        return cls(0.0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def from_mean_std(cls, mean: np.ndarray, std: np.ndarray, n: float) -> FeatureStats:
        """Sums of ``n`` samples with the given mean and standard deviation."""
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        return cls(float(n), n * mean, n * (std * std + mean * mean))

    def add(self, feats: np.ndarray) -> None:
        """Accumulate rows of ``feats``."""
        self.n += feats.shape[0]
        self.total += feats.sum(0)
        self.total_sq += (feats * feats).sum(0)

    def state_dict(self) -> dict[str, Any]:
        """The running sums (for a training state)."""
        return {"n": self.n, "total": self.total.copy(), "total_sq": self.total_sq.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the running sums of :meth:`state_dict`."""
        self.n = float(state["n"])
        self.total, self.total_sq = state["total"].copy(), state["total_sq"].copy()

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (std floored at 1e-2 so silent neurons do not blow up)."""
        if self.n < 2:
            return np.zeros_like(self.total), np.ones_like(self.total)
        mean = self.total / self.n
        var = np.maximum(self.total_sq / self.n - mean * mean, 0.0)
        return mean, np.maximum(np.sqrt(var), 1e-2)


@dataclass
class RolloutResult:
    """Per-copy returns and lengths, env steps taken, total spikes."""

    returns: np.ndarray
    lengths: np.ndarray
    env_steps: int
    spikes: int


def run_episodes(env_id: str, info: EnvInfo, network: NetworkParams, enc: EncoderParams,
                 steps_per_obs: int, w: np.ndarray, b: np.ndarray, mean: np.ndarray,
                 std: np.ndarray, trace_decay: float, seed: int,
                 stats: FeatureStats | None = None) -> RolloutResult:
    """One episode per readout row of ``w`` (B, A, F), all stepping together."""
    batch = w.shape[0]
    envs = make_vec(env_id, batch)
    res = Reservoir(network, batch)
    w_t = torch.as_tensor(w / std[None, None, :], dtype=torch.float64)
    b_t = torch.as_tensor(b - np.einsum("baf,f->ba", w, mean / std), dtype=torch.float64)
    alive = np.ones(batch, dtype=bool)
    returns, lengths = np.zeros(batch), np.zeros(batch, dtype=np.int64)
    spikes = 0
    rng = np.random.default_rng([seed, 0x5EED]) if enc.binary else None
    try:
        obs, _ = envs.reset(seed=seed)
        res.reset()
        trace = torch.zeros(batch, network.size, dtype=torch.float64)
        prev = None
        while alive.any():
            payload = torch.as_tensor(np.ascontiguousarray(
                window(obs, enc, network.payload_levels, steps_per_obs, rng, prev)))
            prev = obs
            counts = res.run(payload, steps_per_obs)
            spikes += int(counts[torch.as_tensor(alive)].sum())
            trace = counts.to(torch.float64) if trace_decay == 0 else trace * trace_decay + counts
            if stats is not None:
                stats.add(trace.numpy()[alive])
            logits = torch.einsum("baf,bf->ba", w_t, trace) + b_t
            actions = select_action(logits.numpy(), info.action_low, info.action_high)
            obs, reward, term, trunc, _ = envs.step(actions)
            returns += np.where(alive, reward, 0.0)
            lengths += alive
            alive &= ~(term | trunc)
    finally:
        envs.close()
    return RolloutResult(returns, lengths, int(lengths.sum()), spikes)
