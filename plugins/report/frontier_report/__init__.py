"""Frontier reports (distribution frontier-report): plots of a run or a sweep directory
and an index.html that links them. ``build_report`` is the entry point from Python."""

from __future__ import annotations

from frontier_report.report import Report, build_report

__all__ = ["Report", "build_report"]
