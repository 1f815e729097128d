"""Agent checkpoints: spec + weights + learner state in one npz, versioned, written atomically.

The file loads without executing code (``numpy.load(allow_pickle=False)``): metadata is a JSON
string, everything else plain numeric arrays. Keys: ``meta`` (JSON: format version, config, env
info, learner counters), ``net.<field>`` (:class:`~neuralalchemy.network.NetworkParams`),
``encoder_ranges`` (D, 2), ``theta`` (A, F) readout on normalised features, ``feat_mean``,
``feat_std``, ``bias`` (A,), and ``extra.<name>`` arrays a learner keeps with the agent (the
meta-prior of :mod:`neuralalchemy.meta`, for instance).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.agent_io import DeployedAgent, ReadoutParams, encoder_for
from neuralalchemy.config import Config
from neuralalchemy.fsio import atomic_write_bytes
from neuralalchemy.network import NetworkParams

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or from an unsupported version; the message says which."""


@dataclass(eq=False)
class Checkpoint:
    """A trained (or partly trained) agent."""

    config: Config
    env: dict[str, Any]
    encoder_ranges: np.ndarray
    network: NetworkParams
    theta: np.ndarray
    feat_mean: np.ndarray
    feat_std: np.ndarray
    learner: dict[str, Any] = field(default_factory=dict)
    bias: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def agent(self) -> DeployedAgent:
        """The deployable agent: normalisation folded into the readout."""
        enc = encoder_for(self.config.encoder, self.encoder_ranges)
        w = self.theta / self.feat_std[None, :]
        b = -w @ self.feat_mean + (0.0 if self.bias is None else self.bias)
        ro = ReadoutParams(w=w, b=b, trace_decay=_trace_decay(self.config),
                           action_low=np.asarray(self.env["action_low"], dtype=np.float64),
                           action_high=np.asarray(self.env["action_high"], dtype=np.float64))
        return DeployedAgent(self.config.env, self.network, enc, ro,
                             self.config.reservoir.steps_per_obs)


def _trace_decay(cfg: Config) -> float:
    return cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically (a reader never sees a partial file)."""
    meta = {"format_version": FORMAT_VERSION, "kind": "neuralalchemy-checkpoint",
            "config": ckpt.config.to_dict(), "env": ckpt.env, "learner": ckpt.learner}
    arrays = {f"net.{k}": v for k, v in ckpt.network.to_arrays().items()}
    arrays.update(meta=np.array(json.dumps(meta)), encoder_ranges=ckpt.encoder_ranges,
                  theta=ckpt.theta, feat_mean=ckpt.feat_mean, feat_std=ckpt.feat_std,
                  bias=np.zeros(ckpt.theta.shape[0]) if ckpt.bias is None else ckpt.bias)
    arrays.update({f"extra.{k}": np.asarray(v) for k, v in ckpt.extras.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with `alchemy train`")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}  # our handle: closed on a damaged file
        meta = json.loads(str(arrays["meta"]))
    except Exception as exc:  # zip, npz and JSON errors all mean a damaged file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}); "
                              "re-run `alchemy train`") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a NeuralAlchemy checkpoint")
    version = meta.get("format_version")
    if meta.get("kind") == "neuralalchemy-task-checkpoint":
        raise CheckpointError(f"{path} is a supervised-task run ({meta['config']['task']['name']}"
                              "), not an agent; give a run of `alchemy train` without --task")
    if meta.get("kind") != "neuralalchemy-checkpoint" or not isinstance(version, int):
        raise CheckpointError(f"{path} is not a NeuralAlchemy checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version}, newer than this NeuralAlchemy "
                              f"reads ({FORMAT_VERSION}); upgrade neuralalchemy")
    try:
        network = NetworkParams.from_arrays(
            {k[4:]: v for k, v in arrays.items() if k.startswith("net.")})
        return Checkpoint(config=Config.from_dict(meta["config"]), env=meta["env"],
                          encoder_ranges=arrays["encoder_ranges"], network=network,
                          theta=arrays["theta"], feat_mean=arrays["feat_mean"],
                          feat_std=arrays["feat_std"], learner=meta.get("learner", {}),
                          bias=arrays.get("bias"),
                          extras={k[6:]: v for k, v in arrays.items() if k.startswith("extra.")})
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is incomplete or inconsistent ({exc}); "
                              "re-run `alchemy train`") from None
