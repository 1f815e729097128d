"""``alchemy report``: render a run folder's records as PNG figures and one offline HTML page."""

from __future__ import annotations

import json

import click

DEFAULT_OUT = "experiments"


@click.command()
@click.argument("run", required=False, type=click.Path())
@click.option("--out", default=None, help="Report folder (default: RUN/report).")
@click.option("--root", default=DEFAULT_OUT, show_default=True,
              help="Experiments folder searched for the newest run.")
def report(run: str | None, out: str | None, root: str) -> None:
    """Report on RUN (default: the newest run): learning curves, spike raster, readout weights,
    uncertainty and resource usage, as PNG files and an index.html that opens offline."""
    from neuralalchemy.cli import UserError, run_or_latest
    from neuralalchemy.report import MANIFEST, build_report, is_run_dir

    src = run_or_latest(run, root, "provenance.json", "no run",
                        f"pass a run folder under {root}/runs")
    if run is not None and not is_run_dir(src):
        raise UserError(f"{run} is not a run folder (no provenance.json or checkpoint.npz); "
                        f"pass a folder under {root}/runs")
    index = build_report(src, out)
    click.echo(f"report {index}")
    for section in json.loads((index.parent / MANIFEST).read_text(encoding="utf-8"))["sections"]:
        figures = ", ".join(section["figures"]) or "no figure"
        click.echo(f"  {section['title']}: {figures}")
