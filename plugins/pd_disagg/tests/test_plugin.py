"""frontier-pd-disagg through its installed entry point and the CLI: discovery, a
whole run with every pd output, and bad options as one-paragraph errors (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def test_entry_point_provides_the_workflow_and_predictor():
    from frontier_core import load_registry

    reg = load_registry()
    assert "pd" in reg.names("workflow")
    assert "distserve" in reg.names("predictor")
    assert reg.items["workflow"]["pd"].distribution == "frontier-pd-disagg"


def _frontier(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "frontier_core.app.cli", *map(str, args)],
                          cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def test_cli_run_writes_pd_outputs(tmp_path):
    cfg = tmp_path / "pd.yaml"
    cfg.write_text(
        "model: opt-13b\n"
        "deployment:\n"
        "  workflow: {name: pd, prefill: [p], decode: [d]}\n"
        "  clusters:\n"
        "    - {name: p, gpu: a100-80g-sxm, tp: 2}\n"
        "    - {name: d, gpu: a100-80g-sxm, tp: 1}\n"
        "predictor: [distserve]\n"
        "workload:\n"
        "  arrival: {process: poisson, rate: 3}\n"
        "  prompt_len: {dist: uniform, low: 100, high: 1200}\n"
        "  output_len: {dist: uniform, low: 2, high: 300}\n"
        "  num_requests: 60\n"
    )
    r = _frontier("run", cfg, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "pd mean E2E (ms)" in r.stdout and "KV transfers 60 " in r.stdout
    out = tmp_path / "out"
    assert {"summary.json", "requests.csv", "trace.json", "pd_timeseries.csv"} <= {
        p.name for p in out.iterdir()}
    s = json.loads((out / "summary.json").read_text())
    assert s["workflow"]["transfers"]["links"] == ["nvlink"]  # 3 A100s share a node
    assert s["requests"]["completed"] == 60


@pytest.mark.parametrize(
    "override, words",
    [
        ("deployment.workflow.link=ethernet", ["deployment.workflow.link", "nvlink", "scaleout"]),
        ("deployment.workflow.decode=[x]", ["deployment.workflow.decode", "['x']"]),
        ("deployment.workflow.layerwize=true", ["layerwize", "layerwise"]),
    ],
)
def test_bad_pd_options_are_one_paragraph_errors(tmp_path, override, words):
    example = REPO / "examples" / "pd-hetero-h100-prefill-a100-decode.yaml"
    r = _frontier("run", example, "--set", override, "-o", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    text = " ".join(r.stderr.split())
    assert text.startswith("error:")
    for w in words:
        assert w in text
    assert not (tmp_path / "out").exists()
