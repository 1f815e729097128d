"""The hidden-velocity benchmark's measurement: its controls bound what memory can add."""

from __future__ import annotations

import numpy as np
from benchscripts import load_benchmark


def test_one_step_memory_recovers_velocity_that_position_alone_does_not():
    mv = load_benchmark("masked_velocity")
    from neuralalchemy.meta.reservoir_prior import random_episodes

    full = random_episodes("CartPole-v1", 200, 0)
    raw = mv.held_out_r2(mv.features("raw", [], None, None, full), full)
    prev = mv.held_out_r2(mv.features("raw+prev", [], None, None, full), full)
    np.testing.assert_allclose(raw[[0, 2]], 1.0, atol=1e-6)  # the seen dims, exactly
    assert (prev[[1, 3]] > raw[[1, 3]] + 0.2).all() and (prev[[1, 3]] > 0.8).all(), (raw, prev)
    # a reservoir without change channels sees the same (x, θ): positions decode
    res = mv.features("trace", mv.MEMORY, None, None, full)
    assert res[0].shape == (len(full.obs[0]), 256)
    memory = mv.held_out_r2(res, full)
    assert memory[2] > 0.9
    # the shipped encoder's change channels carry the velocities the reservoir's memory does not
    shipped = mv.held_out_r2(mv.features("trace", [], None, None, full), full)
    assert (shipped[[1, 3]] > memory[[1, 3]] + 0.2).all(), (memory, shipped)
