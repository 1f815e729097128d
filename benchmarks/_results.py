"""Shared by the benchmarks: machine description and the RESULTS.md section writer.

Each benchmark owns one section of ``benchmarks/RESULTS.md`` (between ``<!-- begin NAME -->`` and
``<!-- end NAME -->``) and rewrites only that section, stamped with date, machine and commit.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """CPU model, cores and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}"


def commit() -> str:
    """Short git revision of the benchmarked code."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=RESULTS.parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md."""
    stamp = f"{time.strftime('%Y-%m-%d')} · {machine()} · commit {commit()}"
    section = (f"<!-- begin {name} -->\n## {title}\n\n_{stamp}_\n\n{body.strip()}\n"
               f"<!-- end {name} -->")
    text = RESULTS.read_text() if RESULTS.exists() else \
        "# Benchmark results\n\nWritten by `make bench`; each section by its script.\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->",
                         re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)
