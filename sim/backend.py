"""The one backend interface: play episodes of a compiled agent in closed loop.

Every backend receives a :class:`~neuralalchemy.agent_io.DeployedAgent` (the artifact's explicit
weights; none re-draws a random number) and a list of episode seeds, and returns one
:class:`EpisodeRecord` per seed. Episode ``i`` resets the environment with ``seeds[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuralalchemy.agent_io import DeployedAgent


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says what is missing and how to get it."""


@dataclass
class EpisodeRecord:
    """One closed-loop episode."""

    seed: int
    ret: float
    length: int
    actions: np.ndarray
    spikes: int
    wall_s: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary (actions as a list)."""
        return {"seed": self.seed, "return": self.ret, "length": self.length,
                "spikes": self.spikes, "wall_s": self.wall_s,
                "actions": np.asarray(self.actions).tolist(), **self.extra}


PlayFn = Callable[[DeployedAgent, Sequence[int]], list[EpisodeRecord]]


def _torch(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    from neuralalchemy.sim.torch_backend import play
    return play(agent, seeds)


def _sim(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    from neuralalchemy.sim.lava_backend import play
    return play(agent, seeds, hardware=False)


def _loihi(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    from neuralalchemy.sim.lava_backend import play
    return play(agent, seeds, hardware=True)


def _brian2(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    from neuralalchemy.sim.brian2_backend import play
    return play(agent, seeds)


def _brian2_detailed(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    from neuralalchemy.sim.brian2_backend import play
    return play(agent, seeds, mode="detailed")


BACKENDS: dict[str, PlayFn] = {"torch": _torch, "sim": _sim, "loihi": _loihi, "brian2": _brian2,
                               "brian2-detailed": _brian2_detailed}
"""Backend name -> play function (imports its engine lazily). ``brian2-detailed`` plays the
continuous-time model (Brian2 mode ``detailed``), a different neuron rather than an engine of the
same one."""


def get_backend(name: str) -> PlayFn:
    """The play function of a backend, or a ValueError naming the choices."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None
