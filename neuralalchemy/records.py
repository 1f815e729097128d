"""Run folders: where a run keeps its config, provenance, metrics and plots."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from neuralalchemy.config import Config
from neuralalchemy.fsio import atomic_write_bytes, atomic_write_json

PACKAGES = ("neuralalchemy", "numpy", "torch", "lava-nc", "brian2", "pyro-ppl", "gymnasium",
            "optuna", "nir")


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str:
    """The source tree's git revision (with ``-dirty``), or 'unknown' outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, check=True,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh, time-sortable folder ``root/YYYYmmdd-HHMMSS-label`` (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    for i in range(1000):
        path = root / (f"{stamp}-{safe}" + (f"-{i}" if i else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")


def write_provenance(run_dir: Path, cfg: Config, extra: dict[str, Any]) -> None:
    """Resolved config (YAML) and provenance (versions, git revision, seeds, command)."""
    atomic_write_bytes(run_dir / "config.yaml",
                       yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    atomic_write_json(run_dir / "provenance.json", {
        "versions": versions(), "git_revision": git_revision(), "platform": platform.platform(),
        "seeds": {"reservoir": cfg.reservoir.seed, "training": cfg.training.seed}, **extra})


class MetricsLog:
    """Append-only JSON lines, flushed per record."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")  # closed in close()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a whole metrics file at once (atomically): runs whose records exist only at the
    end (meta-training, adaptation, continual learning) use the same JSONL format."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
