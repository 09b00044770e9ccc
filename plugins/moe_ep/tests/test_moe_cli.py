"""``frontier run`` with the moe block: bad MoE options are one paragraph, exit 2, and
leave no output behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "frontier_core.app.cli"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
CONFIG = """model: qwen3-30b-a3b
deployment:
  clusters:
    - name: main
      gpu: h100-sxm
      dp: 8
      tp: 1
      moe: {MOE}
workload:
  arrival: {process: poisson, rate: 5}
  prompt_len: {dist: fixed, value: 200}
  output_len: {dist: fixed, value: 20}
  num_requests: 20
"""


def run(tmp_path: Path, moe: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("{MOE}", moe))
    return subprocess.run([*CLI, "run", cfg, "-o", tmp_path / "out"], env=ENV, text=True,
                          capture_output=True, timeout=120, cwd=tmp_path)


def test_a_good_run_prints_the_moe_line(tmp_path):
    r = run(tmp_path, '{routing: "power_law:1.2", two_batch_overlap: true}')
    assert r.returncode == 0, r.stderr
    assert "moe main: EP8 · power_law:1.2" in r.stdout.replace("\n", " ")
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("moe,needle", [
    ('{routing: "zipf"}', "power_law:<alpha>"),
    ("{ep: 3}", "ep is 3"),
    ("{placement: eplb, redundant_experts: 5}", "multiple of 8"),
    ("{routing: replay:missing.csv}", "does not exist"),
    ("{placement: random}", "placement"),
])
def test_bad_moe_options_exit_2_in_one_paragraph(tmp_path, moe, needle):
    r = run(tmp_path, moe)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n\n") == 0
    assert not (tmp_path / "out").exists()
