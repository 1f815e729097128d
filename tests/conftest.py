"""Shared fixtures: keep torch single-threaded (Lava forks workers) and runs in tmp folders."""

import pytest
import torch

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
