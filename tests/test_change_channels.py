"""Change channels (``encoder.changes``): the encoder codes each observed dimension and its change
since the previous environment step. What must hold: the coding itself, the previous
observation reaching the encoder on every path (training, deployment, compiled artifact, NIR),
clear errors on inconsistent ranges, and that they let a reservoir agent learn MaskedCartPole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuralalchemy.agent_io import (
    DeployedAgent,
    ReadoutParams,
    channel_values,
    make_encoder,
    window,
)
from neuralalchemy.config import ConfigError, ReservoirConfig, load_config, shipped_config
from neuralalchemy.envs import calibrate_ranges, env_info, make_env
from neuralalchemy.network import build_network
from neuralalchemy.sim import torch_backend
from neuralalchemy.train import encoder_ranges

OBS = np.array([[-2.4, 2.4], [-0.21, 0.21]])
CHANGES = np.array([[-0.06, 0.06], [-0.07, 0.07]])
finite = st.floats(-3.0, 3.0, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(obs=arrays(np.float64, (3, 2), elements=finite),
       prev=arrays(np.float64, (3, 2), elements=finite),
       kind=st.sampled_from(["population", "current", "poisson"]))
def test_change_channels_code_the_observation_then_its_change(obs, prev, kind):
    both = make_encoder(np.vstack([OBS, CHANGES]), 5, 1.0, kind, changes=True)
    seen, change = make_encoder(OBS, 5, 1.0, kind), make_encoder(CHANGES, 5, 1.0, kind)
    assert both.obs_dim == 2 and both.n_channels == seen.n_channels + change.n_channels
    values = channel_values(obs, both, prev)
    n = seen.n_channels
    np.testing.assert_array_equal(values[..., :n], channel_values(obs, seen))
    np.testing.assert_array_equal(values[..., n:], channel_values(obs - prev, change))
    # an episode's first step (no previous observation) codes zero change
    np.testing.assert_array_equal(channel_values(obs, both), channel_values(obs, both, obs))


def test_without_change_channels_prev_is_ignored():
    enc = make_encoder(OBS, 5, 1.0)
    obs, prev = np.array([0.3, 0.01]), np.array([-1.0, 0.2])
    np.testing.assert_array_equal(window(obs, enc, 255, 3, None, prev),
                                  window(obs, enc, 255, 3, None))


def test_an_odd_number_of_coded_dimensions_is_refused():
    with pytest.raises(ValueError, match="2·D dimensions"):
        make_encoder(np.vstack([OBS, CHANGES[:1]]), 5, 1.0, changes=True)


# ---------------------------------------------------------------- ranges from the config
def test_ranges_are_given_or_calibrated_per_part():
    info = env_info("MaskedCartPole-v1")
    cfg = load_config(shipped_config("masked_cartpole"), environ={})
    shipped = np.array([[-0.03, 0.03], [-0.035, 0.035]])
    np.testing.assert_array_equal(encoder_ranges(cfg, info), np.vstack([OBS, shipped]))
    calibrated = calibrate_ranges("MaskedCartPole-v1", 3, 0, changes=True)
    assert calibrated.shape == (4, 2)
    np.testing.assert_array_equal(calibrated[:2], calibrate_ranges("MaskedCartPole-v1", 3, 0))
    assert (calibrated[2:, 0] < 0).all() and (calibrated[2:, 1] > 0).all()
    # a random policy's changes are far smaller than the observed ranges
    assert (calibrated[2:, 1] < calibrated[:2, 1]).all()
    half = load_config(shipped_config("masked_cartpole"), environ={},
                       overrides=["encoder.change_ranges=[]", "encoder.calibration_episodes=3",
                                  "training.seed=0"])
    ranges = encoder_ranges(half, info)
    np.testing.assert_array_equal(ranges[:2], OBS)
    np.testing.assert_array_equal(ranges[2:], calibrated[2:])


@pytest.mark.parametrize("overrides, message", [
    (["encoder.changes=false"], "encoder.change_ranges is set but encoder.changes is off"),
    (["encoder.change_ranges=[[-1, 1]]"], "encoder.change_ranges: MaskedCartPole-v1 has 2"),
])
def test_inconsistent_change_ranges_are_config_errors(overrides, message):
    cfg = load_config(shipped_config("masked_cartpole"), environ={}, overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        encoder_ranges(cfg, env_info("MaskedCartPole-v1"))


def test_cli_reports_inconsistent_change_ranges_in_one_line(tmp_path):
    alchemy = str(Path(sys.executable).parent / "alchemy")
    proc = subprocess.run([alchemy, "train", "--env", "MaskedCartPole-v1", "--no-progress",
                           "--out", str(tmp_path), "--set", "encoder.changes=false"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "set encoder.changes=true, or drop change_ranges" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------- the previous observation
def test_deployment_feeds_each_step_its_predecessor():
    """torch_backend.play's recorded inputs, replayed against the environment: step t's window
    is the encoding of (obs_t, obs_t − obs_{t−1}), zero change on the first step."""
    enc = make_encoder(np.vstack([OBS, CHANGES]), 6, 1.0, changes=True)
    net = build_network(ReservoirConfig(size=24, seed=2), enc.n_channels)
    w = np.random.default_rng(0).normal(size=(2, net.size))
    agent = DeployedAgent("MaskedCartPole-v1", net, enc,
                          ReadoutParams(w=w, b=np.zeros(2), trace_decay=0.0,
                                        action_low=np.zeros(0), action_high=np.zeros(0)), 4)
    rec = torch_backend.play(agent, [5], record_inputs=True)[0]
    inputs = rec.extra["inputs"][:-1].reshape(rec.length, agent.steps_per_obs, -1)
    env = make_env("MaskedCartPole-v1")
    obs, _ = env.reset(seed=5)
    prev = None
    changed = 0
    for t, action in enumerate(rec.actions):
        expected = window(obs, enc, net.payload_levels, agent.steps_per_obs, None, prev)
        np.testing.assert_array_equal(inputs[t], expected, err_msg=f"step {t}")
        changed += prev is not None and not np.array_equal(
            expected, window(obs, enc, net.payload_levels, agent.steps_per_obs, None))
        prev = obs
        obs, *_ = env.step(int(action))
    env.close()
    assert changed >= rec.length - 2, "the change channels should differ from zero change"


@pytest.mark.slow
def test_trained_agent_keeps_its_change_channels_through_compile_and_nir(tmp_path):
    """Train briefly, compile for Loihi 2: the artifact and its NIR graph keep the change
    channels, and Lava's closed loop plays the compiled agent as the torch engine does."""
    from neuralalchemy.compile.artifact import load_artifact
    from neuralalchemy.compile.compiler import compile_run
    from neuralalchemy.compile.nir_export import from_nir
    from neuralalchemy.sim import lava_backend
    from neuralalchemy.train import train

    cfg = load_config(shipped_config("masked_cartpole"), environ={},
                      overrides=["reservoir.size=32", "training.eval_episodes=2"])
    run = train(cfg, out=tmp_path, steps=512, progress=False).run_dir
    folder, _ = compile_run(run, "loihi2", tmp_path / "compiled")
    agent, _ = load_artifact(folder)
    assert agent.encoder.changes and agent.encoder.obs_dim == 2
    assert from_nir(folder / "network.nir").encoder.changes
    ref = torch_backend.play(agent, [0, 1])
    got = lava_backend.play(agent, [0, 1])
    for a, b in zip(ref, got, strict=True):
        assert (a.ret, a.length, a.spikes) == (b.ret, b.length, b.spikes)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_plasticity_stream_codes_changes_within_episodes():
    """Pre-adaptation sees the observations as the agent does: zero change on each episode's
    first observation, the step's change on every other."""
    from neuralalchemy.plasticity import observation_payloads

    cfg = load_config(shipped_config("masked_cartpole"), environ={},
                      overrides=["reservoir.precision=float"])
    info = env_info("MaskedCartPole-v1")
    enc = make_encoder(np.vstack([OBS, CHANGES]), 5, 1.0, changes=True)
    stream = observation_payloads(cfg, info, enc, 3, seed=4)
    zero = channel_values(np.zeros(2), make_encoder(CHANGES, 5, 1.0))
    firsts = np.flatnonzero(np.all(np.isclose(stream[:, 10:], zero), axis=1))
    assert stream.shape[1] == enc.n_channels and firsts[0] == 0
    assert 3 <= len(firsts) < len(stream) // 4  # the episodes' first steps (and a rare still one)
