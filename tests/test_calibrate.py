"""``frontier calibrate``: the robust non-negative fit of an engine's host constants,
the profile it writes, and its bad-input errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frontier_core.app.calibrate import fit_host

SAMPLE = Path(__file__).parent / "data" / "serving_sample.csv"


def test_fit_recovers_host_constants_despite_outliers() -> None:
    rng = np.random.default_rng(0)
    seqs = rng.uniform(1, 256, 300)
    gpu = rng.uniform(3e-3, 30e-3, 300)
    overlap = rng.random(300) < 0.7
    cpu = 1e-3 + 60e-6 * seqs  # outlasts the GPU on the small-step, many-sequence rows
    measured = np.where(overlap, np.maximum(gpu, cpu), gpu + cpu) + 0.5e-3
    measured *= rng.normal(1, 0.01, 300)
    measured[:15] *= 3  # rows the GPU model gets badly wrong must not drag the fit
    host = fit_host(gpu, seqs, seqs, measured, overlap)
    assert host["base_s"] == pytest.approx(1e-3, rel=0.3)
    assert host["per_seq_s"] == pytest.approx(60e-6, rel=0.2)
    assert host["gap_s"] == pytest.approx(0.5e-3, rel=0.3)
    assert host["per_token_s"] == 0.0


def test_fit_never_goes_negative() -> None:
    seqs = np.linspace(1, 128, 50)
    gpu = np.full(50, 10e-3)
    measured = gpu * 0.9  # the model is already slower than measured: no host time helps
    host = fit_host(gpu, seqs, seqs, measured, False)
    assert all(v >= 0 for v in host.values())
    assert sum(host.values()) == pytest.approx(0.0, abs=1e-9)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "frontier_core.app.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_cli_writes_a_profile_a_config_can_name(tmp_path: Path) -> None:
    for dist in ("frontier_moe_ep", "frontier_pd_disagg"):
        pytest.importorskip(dist)  # most of the sample's TRT-LLM rows are MoE, some PD
    prof = tmp_path / "trtllm.json"
    r = _cli("calibrate", str(SAMPLE), "--engine", "trtllm", "-o", str(prof), "--sample", "8",
             "--holdout", "0.25", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(prof.read_text())
    assert data["engine"] == "trtllm" and set(data["host"]) == {"base_s", "per_seq_s", "per_token_s", "gap_s"}
    assert data["rows_fit"] + data["rows_held_out"] <= 8 and data["rows_held_out"] >= 1
    assert set(data["held_out"]) == {"default", "no_host", "calibrated"}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: llama-3.1-8b\n"
        "deployment:\n  clusters:\n    - gpu: h200\n"
        "      engine: {name: trtllm, profile: trtllm.json}\n"
        "workload:\n  closed_loop: {concurrency: 4}\n"
        "  prompt_len: {dist: fixed, value: 128}\n  output_len: {dist: fixed, value: 16}\n"
        "  num_requests: 8\n"
        "output: {trace: false}\n")
    r = _cli("run", str(cfg), "--json", "--quiet", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    eng = json.loads(r.stdout)["clusters"]["main"]["engine"]
    assert eng["host"] == {"overlap": True, **data["host"]}


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "tgi"], "not an installed engine"),
    (["--engine", "vllm", "--holdout", "1.5"], "must lie in"),
])
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "p.json"
    r = _cli("calibrate", str(SAMPLE), *args, "-o", str(out), cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_cli_refuses_to_overwrite_or_write_a_folder(tmp_path: Path) -> None:
    existing = tmp_path / "p.json"
    existing.write_text("{}")
    r = _cli("calibrate", str(SAMPLE), "--engine", "vllm", "-o", str(existing), cwd=tmp_path)
    assert r.returncode == 2 and "--overwrite" in r.stderr and existing.read_text() == "{}"
    r = _cli("calibrate", str(SAMPLE), "--engine", "vllm", "-o", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "is a folder" in r.stderr


def test_calibrate_recovers_constants_from_rows_the_simulator_generated(tmp_path, registry):
    """Rows 'measured' by simulating with known host constants: calibrating on them gives
    the constants back (the fit sees only the rows, as it would a team's benchmarks)."""
    import csv

    from simhelpers import SERVING_ROW

    from frontier_core.app.benchrows import map_rows
    from frontier_core.app.calibrate import calibrate
    from frontier_core.app.validate import Row, simulate_row

    # CPU work per sequence that outlasts the forward pass of the larger batches.
    truth = {"host_base_s": 0.0, "host_per_seq_s": 300e-6, "host_per_token_s": 0.0,
             "host_gap_s": 1e-3}
    rows = [Row(i, {**SERVING_ROW, "id": f"c{c}", "backend_version": "0.18.0", "isl": "128",
                    "osl": "24", "concurrency": str(c)})
            for i, c in enumerate((2, 8, 24, 48, 96, 160))]
    for m in map_rows(rows, registry, ["linear-test"]):
        for cl in m.config["deployment"]["clusters"]:
            cl["engine"].update(truth)
        out = simulate_row(m.config, registry)
        m.row.fields["silicon_ttft_ms"] = str(out["pred_ttft_ms"])
        m.row.fields["silicon_tpot_ms"] = str(out["pred_tpot_ms"])
    path = tmp_path / "generated.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0].fields))
        w.writeheader()
        w.writerows(r.fields for r in rows)
    cal = calibrate(path, "vllm", holdout=0, predictor=["linear-test"], registry=registry)
    assert cal.host["gap_s"] == pytest.approx(1e-3, rel=0.3)
    assert cal.host["per_seq_s"] == pytest.approx(300e-6, rel=0.3)
