"""Hook implementations of frontier-report: registration only, no logic."""

from __future__ import annotations

from frontier_core import CommandSpec, hookimpl
from frontier_report.cli import report_command


@hookimpl
def frontier_commands() -> list[CommandSpec]:
    return [
        CommandSpec(name="report", command=report_command,
                    summary="Plot a run or a sweep directory into PNG/SVG figures and an index.html."),
    ]
