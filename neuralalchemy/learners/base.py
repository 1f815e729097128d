"""What every readout learner offers the training loop, and what the loop offers it.

A learner owns its algorithm state and its environments; the loop (``neuralalchemy.train``) owns
the budget, evaluation, logging and checkpoints. Every learner's policy is a linear readout on
normalised reservoir features, ``logits = theta · (f − mean) / std + bias``, so every learner's
result compiles and deploys the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from neuralalchemy.agent_io import EncoderParams
from neuralalchemy.config import Config
from neuralalchemy.envs import EnvInfo
from neuralalchemy.network import NetworkParams
from neuralalchemy.rollout import FeatureStats, RolloutResult, run_episodes


@dataclass
class Context:
    """Everything a learner needs to act in the environment through the reservoir."""

    cfg: Config
    info: EnvInfo
    network: NetworkParams
    encoder: EncoderParams
    trace_decay: float

    @property
    def n_features(self) -> int:
        """Readout inputs: one per reservoir neuron."""
        return self.network.size

    def episodes(self, weights: np.ndarray, biases: np.ndarray, mean: np.ndarray,
                 std: np.ndarray, seed: int, stats: FeatureStats | None = None) -> RolloutResult:
        """One episode per readout row, all copies stepping together through the engine."""
        return run_episodes(self.cfg.env, self.info, self.network, self.encoder,
                            self.cfg.reservoir.steps_per_obs, weights, biases, mean, std,
                            self.trace_decay, seed, stats)


@dataclass
class Progress:
    """What one learner iteration produced: finished episodes and environment steps taken."""

    returns: np.ndarray
    lengths: np.ndarray
    env_steps: int


@dataclass
class Readout:
    """The greedy policy: ``logits = theta · (f − mean) / std + bias``."""

    theta: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray


class Learner(Protocol):
    """A readout learner."""

    iteration: int
    env_steps: int

    def step(self) -> Progress:
        """Run one iteration (collect experience, update); return what happened."""
        ...

    def readout(self) -> Readout:
        """The current greedy policy (a copy)."""
        ...

    def summary(self) -> dict[str, Any]:
        """Small JSON-ready description of the learner's state (stored in checkpoints)."""
        ...

    def warm_start(self, ro: Readout, freeze_norm: bool) -> None:
        """Start from a trained readout (transfer learning); ``freeze_norm`` keeps its feature
        normalisation fixed."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`step` reads or changes, as a tree of numbers, arrays and tensors
        (:mod:`neuralalchemy.train_state`): a learner built from the same config and given it
        by :meth:`load_state_dict` continues bit for bit."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        ...


LearnerFactory = Callable[[Context], Learner]
