"""Outputs written as streams (trace.json a chunk at a time, requests.csv from the compact
per-request log) equal what the in-memory way produced; finished requests are released."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from simhelpers import run_sim, small_config

from frontier_core.app import metrics
from frontier_core.app.metrics import ITER_FIELDS, block_reports, trace_pids, workflow_report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _reference_trace(sim) -> dict:
    """The trace document as it was built before streaming: every event a dict in one list."""
    events = []
    for pid, (name, cw) in enumerate(sim.clusters.items(), start=1):
        events.append({"ph": "M", "name": "process_name", "pid": pid,
                       "args": {"name": f"cluster {name}"}})
        for rep in cw.replicas:
            tid = rep.index + 1
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": f"replica {rep.index}"}})
            a = np.frombuffer(rep.iterations, dtype=float).reshape(-1, len(ITER_FIELDS))
            for start, lat, pf, dc, tok, kvu in a.tolist():
                events.append({
                    "ph": "X", "pid": pid, "tid": tid, "ts": round(start * 1e6, 3),
                    "dur": round(lat * 1e6, 3),
                    "name": f"P{int(pf)}+D{int(dc)}" if pf else f"D{int(dc)}",
                    "args": {"prefills": int(pf), "decodes": int(dc), "tokens": int(tok),
                             "kv_blocks_used": int(kvu)}})
    events.extend(workflow_report(sim).trace_events)
    for rep in block_reports(sim).values():
        events.extend(rep.trace_events)
    pids = trace_pids(sim)
    for pc in sim.config.deployment.expert_clusters:
        events.append({"ph": "M", "name": "process_name", "pid": pids[pc.name],
                       "args": {"name": f"expert cluster {pc.name}"}})
        fn = getattr(sim.expert_clusters.get(pc.name), "trace_events", None)
        if fn is not None:
            events.extend(fn(pids))
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _load(name: str, registry, n: int):
    from frontier_core.assemble import assemble
    from frontier_core.configfile import load_config

    cfg = load_config(EXAMPLES / name, [f"workload.num_requests={n}"])
    return assemble(cfg, registry).run()


@pytest.fixture(scope="module")
def sims():
    from frontier_core.plugins import load_registry
    from frontier_core.testing import linear_test_plugin

    registry = load_registry(extra=[linear_test_plugin()])
    return {
        "dense": run_sim(small_config(), registry),
        "pd": _load("pd-backpressure-tiny-decode.yaml", registry, 40),
        "moe": _load("moe-mixtral-8x7b-ep8-h100.yaml", registry, 20),
    }


@pytest.mark.parametrize("kind", ["dense", "pd", "moe"])
def test_streamed_trace_is_the_json_dump_of_the_whole_document(sims, kind, monkeypatch):
    sim = sims[kind]
    ref = io.StringIO()
    json.dump(_reference_trace(sim), ref, separators=(",", ":"))
    assert sum(len(r.iterations) for cw in sim.clusters.values() for r in cw.replicas) > 60
    for chunk in (3, metrics.TRACE_CHUNK):  # events split over many chunks, and few
        monkeypatch.setattr(metrics, "TRACE_CHUNK", chunk)
        out = io.StringIO()
        metrics.write_trace(sim, out)
        assert out.getvalue() == ref.getvalue()


def test_requests_csv_written_in_chunks_is_the_whole_text(sims, monkeypatch):
    col = metrics.request_table(sims["pd"])
    whole = metrics.requests_csv(col)
    monkeypatch.setattr(metrics, "CSV_CHUNK", 7)
    assert metrics.requests_csv(col) == whole
    assert whole.count("\n") == len(col["id"]) + 1 == 41
