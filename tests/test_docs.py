"""The documentation: the Sphinx build is clean with warnings as errors (what `make docs` runs),
every command has its user-guide page, and the Loihi page quotes the backend's own message."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _guide_page(command: str) -> Path:
    return DOCS / "guide" / f"{command}.md"


def test_every_command_has_a_guide_page():
    from neuralalchemy.cli import cli

    missing = []
    for name, command in cli.commands.items():
        subs = getattr(command, "commands", None)
        names = [f"{name}-{sub}" for sub in subs] if subs else [name]
        missing += [n for n in names if not _guide_page(n).is_file()]
    assert not missing, f"commands without a page in docs/guide/: {missing}"
    toc = (DOCS / "guide" / "index.md").read_text(encoding="utf-8")
    for page in sorted((DOCS / "guide").glob("*.md")):
        if page.stem != "index":
            assert f"\n{page.stem}\n" in toc, f"docs/guide/index.md: {page.stem} not in the toctree"


def test_loihi_page_quotes_the_hardware_message():
    from neuralalchemy.sim.lava_backend import HARDWARE_MESSAGE

    page = (DOCS / "loihi.md").read_text(encoding="utf-8")
    assert f"error: {HARDWARE_MESSAGE}\n" in page


@pytest.mark.slow
def test_sphinx_build_is_clean(tmp_path):
    for module in ("sphinx", "myst_parser"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[docs]' (make docs does)")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stderr[-8000:]}"
    for page in ("index", "install", "quickstart", "loihi", "benchmarks", "artifact",
                 "neuron-model", "configuration", "meta-learning", "guide/train",
                 "guide/tune", "api/core", "api/sim"):
        assert (out / f"{page}.html").is_file(), page
