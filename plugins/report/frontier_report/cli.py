"""``frontier report``: parse the arguments, build the report, print where it went."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def report_command(
    path: Annotated[Path, typer.Argument(help="A run directory (from `frontier run -o`) or a sweep directory (from `frontier sweep -o`).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the plots and index.html (default: PATH/report).")] = None,  # noqa: UP045
    fmt: Annotated[str, typer.Option("--format", "-f", help="Image format: png or svg.")] = "png",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind (a run's, a sweep's); never a folder Frontier did not write.")] = False,
) -> None:
    """Plot a run (latency CDFs, utilisation, KV usage, queues) or a sweep (throughput and
    goodput vs arrival rate, Pareto frontier of throughput per GPU vs latency)."""
    from rich.console import Console

    from frontier_report.report import build_report

    rep = build_report(path, output, fmt, overwrite)
    con = Console()
    con.print(f"{rep.kind} report: {len(rep.figures)} plots → {rep.index}", markup=False,
              highlight=False)
    for note in rep.notes:
        con.print(f"note: {note}", markup=False, highlight=False)
