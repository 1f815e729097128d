"""The reference backend: the PyTorch engine, one environment at a time, in closed loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from neuralalchemy.agent_io import DeployedAgent, act, episode_rng, update_features
from neuralalchemy.engine import Reservoir
from neuralalchemy.envs import make_env
from neuralalchemy.sim.backend import EpisodeRecord


def play(agent: DeployedAgent, seeds: Sequence[int]) -> list[EpisodeRecord]:
    """Play one episode per seed on the reference engine (the timing of ``Reservoir``)."""
    env = make_env(agent.env_id)
    res = Reservoir(agent.network, 1)  # type: ignore[arg-type]
    records = []
    try:
        for seed in seeds:
            start = time.perf_counter()
            obs, _ = env.reset(seed=int(seed))
            rng = episode_rng(seed) if agent.encoder.binary else None
            res.reset()
            trace = np.zeros(res.size)
            actions, ret, spikes, done = [], 0.0, 0, False
            while not done:
                payload = torch.as_tensor(np.ascontiguousarray(agent.window(obs, rng)[:, None]))
                counts = res.run(payload, agent.steps_per_obs)[0].numpy()
                spikes += int(counts.sum())
                trace = update_features(trace, counts, agent.readout.trace_decay)
                action = act(trace, agent.readout)
                actions.append(action)
                obs, reward, term, trunc, _ = env.step(action)
                ret += float(reward)
                done = term or trunc
            records.append(EpisodeRecord(int(seed), ret, len(actions), np.asarray(actions),
                                         spikes, time.perf_counter() - start))
    finally:
        env.close()
    return records
