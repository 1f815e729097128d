"""The reference backend: the PyTorch engine, one environment at a time, in closed loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from neuralalchemy.agent_io import DeployedAgent, act, episode_rng, update_features
from neuralalchemy.engine import Reservoir, engine_params, lif_step, synaptic_input, zero_state
from neuralalchemy.envs import make_env
from neuralalchemy.network import NetworkParams
from neuralalchemy.sim.backend import EpisodeRecord


def play(agent: DeployedAgent, seeds: Sequence[int],
         record_inputs: bool = False) -> list[EpisodeRecord]:
    """Play one episode per seed on the reference engine (the timing of ``Reservoir``).

    With ``record_inputs`` each record's ``extra["inputs"]`` holds the input of every timestep
    (T, C), T = 1 + K·steps, in :func:`record_spikes`' convention (row t drives timestep t + 1),
    so any backend can replay the episode open loop.
    """
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
            inputs: list[np.ndarray] = []
            prev = None
            while not done:
                win = agent.window(obs, rng, prev)
                prev = obs
                if record_inputs:
                    inputs.append(np.array(win))
                payload = torch.as_tensor(np.ascontiguousarray(win[:, None]))
                counts = res.run(payload, agent.steps_per_obs)[0].numpy()
                spikes += int(counts.sum())
                trace = update_features(trace, counts, agent.readout.trace_decay)
                action = act(trace, agent.readout)
                actions.append(action)
                obs, reward, term, trunc, _ = env.step(action)
                ret += float(reward)
                done = term or trunc
            rec = EpisodeRecord(int(seed), ret, len(actions), np.asarray(actions), spikes,
                                time.perf_counter() - start)
            if record_inputs:
                seq = np.concatenate(inputs)
                rec.extra["inputs"] = np.concatenate([seq, np.zeros_like(seq[:1])])
            records.append(rec)
    finally:
        env.close()
    return records


def record_spikes(network: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    """Open loop: spikes (T, N) with zero initial state; row ``t`` is driven by ``payloads[t−1]``
    and the spikes of ``t−1`` (row 0: no input), the convention of the Lava and Brian2 backends."""
    ep = engine_params(network)
    state = zero_state(ep, 1)
    out = np.zeros((payloads.shape[0], network.size), dtype=bool)
    prev = None
    for t in range(payloads.shape[0]):
        state = lif_step(synaptic_input(prev, state, ep), state, ep)
        out[t] = state.s[0].numpy()
        prev = torch.as_tensor(np.asarray(payloads[t])[None])
    return out
