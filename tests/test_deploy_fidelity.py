"""The deploy-fidelity benchmark end to end in its quick mode (tiny agents, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "deploy_fidelity.py"


@pytest.mark.slow
@pytest.mark.lava
@pytest.mark.brian2
def test_quick_run_prints_every_table_and_leaves_results_alone(tmp_path):
    results_md = SCRIPT.parent / "RESULTS.md"
    before = results_md.read_text() if results_md.exists() else None
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-write", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in ("Float → fixed point", "on every backend", "Lava closed-loop latency",
                  "Goals"):
        assert title in proc.stdout
    assert (results_md.read_text() if results_md.exists() else None) == before
    (result,) = json.loads((tmp_path / "deploy_fidelity.json").read_text())
    sim = result["default"]["crosscheck"]["backends"]["sim"]
    assert sim["differing_spikes"] == 0 and sim["identical_returns"]
    assert [x["neurons"] for x in result["latency"]] == [32, 64]
    assert all(x["returns_equal_torch"] for x in result["latency"])
