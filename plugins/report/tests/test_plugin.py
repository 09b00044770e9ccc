"""frontier-report as a plugin: the hookimpl on a fresh manager, discovery through the
installed entry point, and `frontier report` through the kernel's CLI (exit 0, and
exit 2 with one paragraph for bad input)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def _installed() -> bool:
    try:
        importlib.metadata.distribution("frontier-report")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_install = pytest.mark.skipif(not _installed(),
                                   reason="pip install -e plugins/report for the entry point")


def test_hookimpl_registers_the_command_on_a_fresh_manager():
    from frontier_report import plugin
    from frontier_report.cli import report_command

    from frontier_core import load_registry

    reg = load_registry(entry_points=False, extra=[plugin])
    spec = reg.items["command"]["report"].item
    assert spec.name == "report" and spec.command is report_command and spec.summary


@needs_install
def test_entry_point_provides_the_command():
    from frontier_core import load_registry

    reg = load_registry()
    assert reg.items["command"]["report"].distribution == "frontier-report"


def _frontier(*args):
    return subprocess.run([sys.executable, "-m", "frontier_core.app.cli", *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


@needs_install
def test_cli_report_of_a_run_and_a_sweep(run_dir, sweep_dir, tmp_path):
    r = _frontier("report", run_dir, "-o", tmp_path / "run-report")
    assert r.returncode == 0, r.stderr
    assert "run report: 3 plots" in r.stdout
    assert {"index.html", "latency_cdf.png", "utilisation.png", "queues.png"} <= {
        p.name for p in (tmp_path / "run-report").iterdir()}
    r = _frontier("report", sweep_dir, "-o", tmp_path / "sweep-report", "--format", "svg")
    assert r.returncode == 0, r.stderr
    assert {"index.html", "throughput.svg", "pareto.svg"} <= {
        p.name for p in (tmp_path / "sweep-report").iterdir()}


@needs_install
def test_cli_bad_input_exits_2_with_one_paragraph(tmp_path):
    r = _frontier("report", tmp_path)
    assert r.returncode == 2
    assert "error:" in r.stderr and "neither a run directory" in r.stderr
    assert "Traceback" not in r.stderr


@needs_install
def test_cli_output_folder_frontier_did_not_write_exits_2(run_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = _frontier("report", run_dir, "-o", tmp_path, "--overwrite")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error:" in r.stderr and "Frontier did not write: notes.txt" in r.stderr
    assert os.listdir(tmp_path) == ["notes.txt"]


@needs_install
def test_help_lists_report_without_importing_matplotlib():
    code = ("import sys; from frontier_core.app.cli import _add_plugin_commands, app; "
            "_add_plugin_commands(); "
            "print('report' in [c.name for c in app.registered_commands]); "
            "print('matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.stdout.split() == ["True", "False"], r.stderr
