"""Determinism and output files."""

from __future__ import annotations

import csv
import json

from simhelpers import run_sim, small_config

from frontier_core.app.metrics import write_outputs


def test_same_seed_byte_identical_outputs(registry, tmp_path):
    for name in ("a", "b"):
        write_outputs(run_sim(small_config(seed=7), registry), tmp_path / name)
    for f in ("summary.json", "requests.csv", "trace.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    write_outputs(run_sim(small_config(seed=8), registry), tmp_path / "c")
    assert (tmp_path / "a" / "requests.csv").read_bytes() != (tmp_path / "c" / "requests.csv").read_bytes()


def test_summary_and_requests_agree(registry, tmp_path):
    cfg = small_config(slo={"ttft_s": 0.2, "tpot_s": 0.03})
    summary = write_outputs(run_sim(cfg, registry), tmp_path / "o")
    rows = list(csv.DictReader(open(tmp_path / "o" / "requests.csv")))
    assert len(rows) == summary["requests"]["total"] == 60
    ok = [r for r in rows if not r["rejected"]]
    met = [r for r in ok if float(r["ttft_s"]) <= 0.2 and (not r["tpot_s"] or float(r["tpot_s"]) <= 0.03)]
    assert summary["slo"]["attainment"] == len(met) / len(rows)
    for r in ok:
        assert float(r["ttft_s"]) <= float(r["e2e_s"])
    trace = json.loads((tmp_path / "o" / "trace.json").read_text())
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == summary["clusters"]["main"]["iterations"]
    assert all({"prefills", "decodes", "tokens"} <= set(e["args"]) for e in slices)
