"""Sweeps: grid parsing, the same rows serially / in a process pool / on Ray, resume
after a killed sweep, failed runs recorded, and CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simhelpers import small_yaml

from frontier_core.app import outdir
from frontier_core.app.sweep import expand, parse_grid, sweep
from frontier_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMALL = small_yaml("PREDICTOR")
GRID = ["workload.arrival.rate=2,8", "deployment.clusters.0.replicas=1,2",
        "deployment.clusters.0.scheduler=vllm,sarathi"]


def _config(tmp_path: Path, predictor: str = "linear-test") -> Path:
    p = tmp_path / "small.yaml"
    p.write_text(SMALL.replace("PREDICTOR", predictor))
    return p


def _strip(rows):
    return [{k: v for k, v in r.items()} for r in rows]


def test_grid_parsing_and_product():
    axes = parse_grid(["a.b=1,2,3", "predictor=[x,y],[z]", "c=vllm"])
    assert axes == [("a.b", ["1", "2", "3"]), ("predictor", ["[x,y]", "[z]"]), ("c", ["vllm"])]
    specs = expand([None], axes)
    assert len(specs) == 6 and len({s.run_id for s in specs}) == 6
    with pytest.raises(ConfigError, match="path.to.field=v1,v2"):
        parse_grid(["nonsense"])
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["a=1", "a=2"])


def test_serial_and_pool_give_the_same_table(tmp_path, registry):
    cfg = _config(tmp_path)
    serial = sweep([cfg], GRID, tmp_path / "serial", jobs=1, registry=registry)
    pool = sweep([cfg], GRID, tmp_path / "pool", jobs=2, registry=registry)
    assert len(serial.rows) == 8 and not serial.failed()
    assert _strip(serial.rows) == _strip(pool.rows)
    csv1 = (tmp_path / "serial" / "results.csv").read_text()
    assert csv1 == (tmp_path / "pool" / "results.csv").read_text()
    header = csv1.splitlines()[0].split(",")
    for col in ("run_id", "status", "workload.arrival.rate", "latency_s.ttft_s.p90",
                "slo.goodput_requests_per_s", "clusters.main.busy_fraction"):
        assert col in header
    # Each run has its own output folder.
    for r in serial.rows:
        assert (tmp_path / "serial" / "runs" / r["run_id"] / "summary.json").is_file()


def test_failed_runs_are_recorded_not_lost(tmp_path, registry):
    cfg = _config(tmp_path)
    res = sweep([cfg], ["deployment.clusters.0.tp=1,3"], tmp_path / "s", registry=registry)
    ok, bad = res.rows
    assert ok["status"] == "ok"
    assert bad["status"] == "failed" and "does not divide" in bad["error"]
    assert "failed" in (tmp_path / "s" / "results.csv").read_text()
    [(message, n)] = res.failures()
    assert n == 1 and message.startswith("deployment.clusters[0].tp is 3")


def test_cli_exits_1_when_runs_failed_and_groups_their_errors(tmp_path):
    pytest.importorskip("frontier_predictors")
    cfg = _config(tmp_path, "roofline")
    r = subprocess.run([sys.executable, "-m", "frontier_core.app.cli", "sweep", str(cfg), "-o",
                        str(tmp_path / "s"), "-q", "--grid", "deployment.clusters.0.tp=1,3",
                        "--grid", "seed=1,2"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: 2 of 4 runs failed")
    assert len(lines) == 2 and lines[1].split()[:2] == ["2", "×"] and "does not divide" in lines[1]
    assert (tmp_path / "s" / "results.csv").read_text().count(",failed,") == 2


def test_resume_after_kill_loses_nothing_and_repeats_nothing(tmp_path):
    cfg = _config(tmp_path, "roofline")
    out = tmp_path / "sw"
    grid = ["workload.arrival.rate=1,2,3,4,5,6,7,8", "workload.num_requests=400"]
    cmd = [sys.executable, "-m", "frontier_core.app.cli", "sweep", str(cfg), "-o", str(out), "-q",
           *[x for g in grid for x in ("--grid", g)]]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list(out.glob("runs/*/summary.json"))
        if len(done) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")
              if not p.parent.name.startswith(".")}
    assert before, "no run finished before the kill"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    assert len(after) == 8  # and no half-written (hidden) run folder is left behind
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]
    assert all(after[k] == v for k, v in before.items())  # finished runs not repeated
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 9 and all(",ok," in line for line in rows[1:])


def test_ray_local_gives_the_same_table(tmp_path):
    ray = pytest.importorskip("ray")
    cfg = _config(tmp_path, "roofline")
    grid = GRID[:2]
    serial = sweep([cfg], grid, tmp_path / "serial")
    try:
        on_ray = sweep([cfg], grid, tmp_path / "ray", ray="local")
    finally:
        ray.shutdown()
    assert _strip(serial.rows) == _strip(on_ray.rows)


def test_cli_bad_grid_is_one_paragraph_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "frontier_core.app.cli", "sweep", "--grid", "tp",
                        "-o", str(tmp_path / "x")], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error:") and "path.to.field=v1,v2" in r.stderr
    assert not (tmp_path / "x").exists()


def test_sweep_json_lists_every_run(tmp_path, registry):
    cfg = _config(tmp_path)
    res = sweep([cfg], GRID[:1], tmp_path / "s", registry=registry)
    meta = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert [r["run_id"] for r in meta["runs"]] == [r["run_id"] for r in res.rows]



def test_half_written_run_folders_are_cleared_on_resume(tmp_path, registry):
    cfg = _config(tmp_path)
    res = sweep([cfg], GRID[:1], tmp_path / "s", registry=registry)
    rid = res.rows[0]["run_id"]
    # as frontier_core.app.outdir names (and marks) the temporary folder of a run's outputs
    partial = tmp_path / "s" / "runs" / f".{rid}.frontier-tmp.abc123"
    partial.mkdir()
    (partial / "summary.json").write_text("{}")
    (partial / outdir.PARTIAL).touch()
    # a hidden folder Frontier did not make (no PARTIAL file) is never deleted
    mine = tmp_path / "s" / "runs" / f".{rid}.mine"
    mine.mkdir()
    sweep([cfg], GRID[:1], tmp_path / "s", registry=registry)
    assert not partial.exists() and mine.is_dir()


def test_sweep_folder_is_marked_and_refuses_foreign_folders(tmp_path, registry):
    cfg = _config(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="Frontier did not write: notes.txt"):
        sweep([cfg], GRID[:1], tmp_path / "d", registry=registry)
    assert os.listdir(tmp_path / "d") == ["notes.txt"]
    sweep([cfg], GRID[:1], tmp_path / "s", registry=registry)
    marker = outdir.read_marker(tmp_path / "s")
    assert marker.kind == "sweep" and {"runs", "sweep.json", "results.csv"} <= set(marker.entries)
    for run in (tmp_path / "s" / "runs").iterdir():
        assert outdir.read_marker(run).kind == "run"
