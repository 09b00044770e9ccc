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


def test_iteration_slices_format_times_as_repr_of_round():
    """The trace's iteration slices print times as ``repr(round(us, 3))`` (what
    json.dumps gives), on the fast path and past it (times over ``_FAST_US``)."""
    import numpy as np

    from frontier_core.app import metrics as m

    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.random(2000) * s for s in (1e-3, 1, 1e3, 1e6, 1e9, 9e11)])
    xs = np.concatenate([xs, np.arange(4000) * 0.0005, np.arange(2000) / 1024])
    assert m._us3(xs.tolist()) == [repr(round(x, 3)) for x in xs.tolist()]
    rows = np.array([[1e-7, 2.5e-4, 1, 3, 515, 40], [2e9, 0.0123456, 0, 7, 7, 41]])
    got = json.loads("[" + ",".join(m._iteration_events(1, 2, rows)) + "]")
    want = [{"ph": "X", "pid": 1, "tid": 2, "ts": round(s * 1e6, 3), "dur": round(d * 1e6, 3),
             "name": f"P{p}+D{k}" if p else f"D{k}",
             "args": {"prefills": p, "decodes": k, "tokens": t, "kv_blocks_used": u}}
            for s, d, p, k, t, u in [(r[0], r[1], *map(int, r[2:])) for r in rows.tolist()]]
    assert got == want
