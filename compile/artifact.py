"""The compiled-agent artifact: a self-contained folder that any backend runs.

Layout (format version 1; documented for other tools in ``docs/artifact.md``)::

    manifest.json   format, format_version, target, precision, env_id, steps_per_obs,
                    source checkpoint path and SHA-256, SHA-256 of every other file
    network.npz     NetworkParams arrays (integers in Lava's fixed-point formats, or floats)
    agent.npz       encoder kind, centers (D, M) and sigma (D,), changes (bool: the last half
                    of the D coded dimensions are changes since the previous step); readout
                    w (A, N), b (A,), trace_decay, action_low / action_high (empty for
                    discrete actions)
    resources.json  placement on the target's cores and the limits used, with sources
    network.nir     NIR graph of the same network (float equivalent; dt, reset, delays in metadata)

Every file loads without executing code (``numpy.load(allow_pickle=False)``, JSON).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.agent_io import DeployedAgent, EncoderParams, ReadoutParams
from neuralalchemy.fsio import sha256_file
from neuralalchemy.network import NetworkParams

FORMAT = "neuralalchemy-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


REQUIRED_FILES = frozenset({"network.npz", "agent.npz"})
"""Files every artifact has, whose hashes its manifest must list."""


class ArtifactError(ValueError):
    """An artifact is missing, tampered with, truncated or too new; the message says which."""


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """Compressed npz of plain arrays, in memory."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def agent_arrays(agent: DeployedAgent) -> dict[str, np.ndarray]:
    """The encoder and readout of an agent as named arrays (``agent.npz``)."""
    ro = agent.readout
    return {"encoder_centers": agent.encoder.centers, "encoder_sigma": agent.encoder.sigma,
            "encoder_kind": np.array(agent.encoder.kind),
            "encoder_changes": np.array(agent.encoder.changes),
            "readout_w": ro.w, "readout_b": ro.b, "trace_decay": np.float64(ro.trace_decay),
            "action_low": ro.action_low, "action_high": ro.action_high}


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}  # our handle: closed on a damaged file
    except Exception as exc:  # any zip/npz failure is a damaged artifact
        raise ArtifactError(f"{path.name} in {path.parent} is unreadable "
                            f"({type(exc).__name__}); re-run `alchemy compile`") from None


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, checked for format and version."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not an artifact (no {MANIFEST}); "
                            "make one with `alchemy compile`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"{path} is not valid JSON; re-run `alchemy compile`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a NeuralAlchemy artifact manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(f"{folder} has artifact format version {version}, newer than this "
                            f"NeuralAlchemy reads ({FORMAT_VERSION}); upgrade neuralalchemy")
    return manifest


def verify(folder: Path, manifest: dict[str, Any],
           required: frozenset[str] = REQUIRED_FILES) -> None:
    """Every file listed in the manifest exists and has its recorded SHA-256; the ``required``
    files are listed."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not required <= set(files):
        raise ArtifactError(f"{folder}/{MANIFEST} does not list the hashes of "
                            f"{', '.join(sorted(required))}; re-run `alchemy compile`")
    for name, digest in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{folder} is missing {name}; re-run `alchemy compile`")
        if sha256_file(path) != digest:
            raise ArtifactError(f"{name} in {folder} does not match its hash in {MANIFEST} "
                                "(modified or truncated); re-run `alchemy compile`")


def load_artifact(folder: str | Path) -> tuple[DeployedAgent, dict[str, Any]]:
    """Verified agent and manifest of an artifact folder."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("kind") == "task":
        raise ArtifactError(f"{folder} holds a supervised task ({manifest.get('task')}), not an "
                            "agent; run it with `alchemy run` (it reports the task's metric)")
    verify(folder, manifest)
    try:
        net = NetworkParams.from_arrays(_load_npz(folder / "network.npz"))
        a = _load_npz(folder / "agent.npz")
        enc = EncoderParams(centers=a["encoder_centers"], sigma=a["encoder_sigma"],
                            kind=str(a["encoder_kind"]),
                            changes=bool(a["encoder_changes"]) if "encoder_changes" in a else False)
        ro = ReadoutParams(w=a["readout_w"], b=a["readout_b"],
                           trace_decay=float(a["trace_decay"]), action_low=a["action_low"],
                           action_high=a["action_high"])
        agent = DeployedAgent(str(manifest["env_id"]), net, enc, ro,
                              int(manifest["steps_per_obs"]))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{folder} is inconsistent ({exc}); re-run `alchemy compile`") \
            from None
    if agent.encoder.n_channels != net.n_inputs or agent.readout.w.shape[1] != net.size:
        raise ArtifactError(f"{folder}: encoder, network and readout sizes disagree")
    return agent, manifest
