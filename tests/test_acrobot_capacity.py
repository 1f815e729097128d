"""The Acrobot capacity benchmark's measurement: its test teacher, DAgger and controls."""

from __future__ import annotations

import numpy as np
from benchscripts import load_benchmark


def test_pump_teacher_pushes_along_the_second_joint_and_mostly_reaches_the_line():
    ac = load_benchmark("acrobot_capacity")
    obs = np.zeros((2, 6))
    obs[:, 0] = obs[:, 2] = 1.0
    obs[:, 5] = [2.0, -2.0]
    assert np.argmax(ac.pump(obs), axis=1).tolist() == [2, 0]
    returns = ac.play(ac.pump, 5)  # measured: -72, -500 (a limit cycle), -73, -73, -98
    assert np.median(returns) > -100 and returns.mean() > -200, returns


def test_readout_cloned_by_dagger_follows_its_teacher():
    """On the shipped reservoir the DAgger clone agrees with the pump teacher on most steps
    and plays as well as it or better (measured here: agreement 0.949, return −86.2 on these
    10 episodes, where the teacher scores −130.3); every collected step is labelled."""
    ac = load_benchmark("acrobot_capacity")
    ctx, ro, obs, feats, labels, agree = ac.dagger(ac.pump, [], 0, 2, 4_096)
    assert len(obs) == len(feats) == len(labels) == 2 * 4_096
    assert feats.shape[1] == 128 and ro.theta.shape == (3, 128)
    assert np.allclose(labels.sum(axis=1), 0.0)  # centred logits
    assert agree > 0.9, agree
    ret = float(ac.evaluate_readout(ctx, ro, 10).mean())
    assert ret >= -115, ret
