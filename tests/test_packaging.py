"""Packaging guard: every source package ends up in the built wheel under neuralalchemy.*."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# top-level source folder -> package it installs as
MAPPING = {"neuralalchemy": "neuralalchemy", "compile": "neuralalchemy/compile",
           "sim": "neuralalchemy/sim", "hardware": "neuralalchemy/hardware",
           "configs": "neuralalchemy/configs"}


def _source_packages() -> set[str]:
    found = set()
    for folder, target in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(str(Path(target) / rel) if str(rel) != "." else target)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(ROOT)], check=True, capture_output=True)
    wheels = list(out.glob("neuralalchemy-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_every_subpackage_is_in_the_wheel(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    missing = _source_packages() - packaged
    assert not missing, f"sub-packages missing from the wheel (add them to pyproject): {missing}"


def test_wheel_has_modules_and_entry_point(wheel):
    zf = zipfile.ZipFile(wheel)
    names = set(zf.namelist())
    for module in ("neuralalchemy/cli.py", "neuralalchemy/compile/compiler.py",
                   "neuralalchemy/sim/lava_backend.py", "neuralalchemy/hardware/profiles.py",
                   "neuralalchemy/py.typed"):
        assert module in names
    shipped = {Path(n).name for n in names if n.startswith("neuralalchemy/configs/")}
    assert {p.name for p in (ROOT / "configs").glob("*.yaml")} <= shipped
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "alchemy = neuralalchemy.cli:main" in zf.read(entry).decode()
    assert not any(n.startswith(("compile/", "sim/", "hardware/", "configs/")) for n in names)


def test_installed_layout_imports():
    import neuralalchemy.compile.compiler
    import neuralalchemy.hardware.profiles
    import neuralalchemy.sim.backend

    assert Path(neuralalchemy.sim.backend.__file__).parent.name == "sim"
