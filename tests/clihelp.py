"""Running the ``alchemy`` command in a subprocess, and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ALCHEMY = str(Path(sys.executable).parent / "alchemy")
TINY = ["--set", "reservoir.size=32", "--set", "training.eval_episodes=4", "--steps", "400",
        "--set", "encoder.calibration_episodes=2"]


def alchemy(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RESERVOIR_", "ALCHEMY_"))}
    full_env.update(env or {})
    return subprocess.run([ALCHEMY, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=full_env)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
