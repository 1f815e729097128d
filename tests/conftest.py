"""Shared fixtures: keep torch single-threaded (Lava forks workers) and runs in tmp folders."""

from pathlib import Path

import pytest
import torch
from clihelp import TINY, alchemy

torch.set_num_threads(1)


@pytest.fixture
def clean_env(monkeypatch):
    """Remove config-overriding environment variables for the test."""
    import os

    for key in list(os.environ):
        if key.startswith(("ALCHEMY_", "RESERVOIR_", "ENCODER_", "READOUT_", "TRAINING_",
                           "EXPLORATION_")):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A 32-neuron CartPole agent trained for 400 steps and compiled for Loihi 2."""
    root = tmp_path_factory.mktemp("tiny")
    assert alchemy("train", "--no-progress", *TINY, cwd=root).returncode == 0
    proc = alchemy("compile", "--target", "loihi", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return next((root / "experiments" / "artifacts").iterdir())
