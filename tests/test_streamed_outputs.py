"""Outputs written as streams (trace.json a chunk at a time, requests.csv from the compact
per-request log) equal what the in-memory way produced; finished requests are released."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from simhelpers import run_sim, small_config

from frontier_core import ITER_FIELDS
from frontier_core.app import metrics
from frontier_core.app.metrics import block_reports, trace_pids, workflow_report

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


def _config(name: str, n: int):
    from frontier_core.configfile import load_config

    return load_config(EXAMPLES / name, [f"workload.num_requests={n}"])


#: the plugin an example needs beyond the kernel (the core tox env has none)
PLUGIN_OF = {"pd-backpressure-tiny-decode.yaml": "frontier_pd_disagg",
             "moe-mixtral-8x7b-ep8-h100.yaml": "frontier_moe_ep"}


def _installed(name: str) -> bool:
    import importlib.util

    return name not in PLUGIN_OF or importlib.util.find_spec(PLUGIN_OF[name]) is not None


def _needs(name: str | None) -> None:
    if name is not None and not _installed(name):
        pytest.skip(f"{name} needs {PLUGIN_OF[name]}")


def _load(name: str, registry, n: int):
    from frontier_core.assemble import assemble

    _needs(name)
    return assemble(_config(name, n), registry).run()


@pytest.fixture(scope="module")
def sims():
    from frontier_core.plugins import load_registry
    from frontier_core.testing import linear_test_plugin

    registry = load_registry(extra=[linear_test_plugin()])
    out = {"dense": run_sim(small_config(), registry)}
    for kind, name, n in (("pd", "pd-backpressure-tiny-decode.yaml", 40),
                          ("moe", "moe-mixtral-8x7b-ep8-h100.yaml", 20)):
        if _installed(name):
            out[kind] = _load(name, registry, n)
    return out


@pytest.mark.parametrize("kind", ["dense", "pd", "moe"])
def test_streamed_trace_is_the_json_dump_of_the_whole_document(sims, kind, monkeypatch):
    if kind not in sims:
        pytest.skip(f"the {kind} case needs its plugin")
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
    if "pd" not in sims:
        pytest.skip("the pd case needs frontier-pd-disagg")
    col = metrics.request_table(sims["pd"])
    whole = metrics.requests_csv(col)
    monkeypatch.setattr(metrics, "CSV_CHUNK", 7)
    assert metrics.requests_csv(col) == whole
    assert whole.count("\n") == len(col["id"]) + 1 == 41


def _reference_table(reqs, sim) -> dict[str, np.ndarray]:
    """The kernel's columns of the per-request table the way they were built before the
    log: from every Request object, sorted by id."""
    reqs = sorted(reqs, key=lambda r: r.id)
    n = len(reqs)
    col = {
        "id": np.fromiter((r.id for r in reqs), np.int64, n),
        "arrival_s": np.fromiter((r.arrival for r in reqs), float, n),
        "prompt_tokens": np.fromiter((r.prompt_len for r in reqs), np.int64, n),
        "output_tokens": np.fromiter((r.output_len for r in reqs), np.int64, n),
        "generated": np.fromiter((r.generated for r in reqs), np.int64, n),
        "cluster": np.array([r.cluster for r in reqs], dtype=object),
        "replica": np.fromiter((r.replica for r in reqs), np.int64, n),
        "first_scheduled_s": np.fromiter((r.first_scheduled for r in reqs), float, n),
        "first_token_s": np.fromiter((r.first_token for r in reqs), float, n),
        "completion_s": np.fromiter((r.completion for r in reqs), float, n),
        "preemptions": np.fromiter((r.preemptions for r in reqs), np.int64, n),
        "rejected": np.array([r.rejected or "" for r in reqs], dtype=object),
        "cached_tokens": np.fromiter((r.cached_tokens for r in reqs), np.int64, n),
        "conversation": np.fromiter((r.conversation for r in reqs), np.int64, n),
        "turn": np.fromiter((r.turn for r in reqs), np.int64, n),
    }
    return col


def _snapshots(monkeypatch):
    """Patch the controller to keep a copy of each request as it finishes."""
    import copy

    from frontier_core.engine.controller import GlobalController

    kept = []
    done = GlobalController._done

    def spy(self, r):
        c = copy.copy(r)
        c.stage_times = dict(r.stage_times)
        kept.append(c)
        done(self, r)

    monkeypatch.setattr(GlobalController, "_done", spy)
    return kept


@pytest.mark.parametrize("name", ["pd-backpressure-tiny-decode.yaml",
                                  "conversations-llama-8b.yaml"])
def test_logged_columns_and_rebuilt_requests_equal_the_request_objects(
        registry, monkeypatch, name):
    _needs(name)
    kept = _snapshots(monkeypatch)
    sim = _load(name, registry, 40)
    assert len(kept) == len(sim.controller.log) > 0 and not sim.controller.active
    col = metrics.request_table(sim)
    ref = _reference_table(kept, sim)
    for k, v in ref.items():
        if k in col:
            np.testing.assert_array_equal(col[k], v, err_msg=k)
    # The rebuilt objects: the same fields, the same stage stamps, in admission order.
    from dataclasses import fields

    listed = sim.controller.requests
    rebuilt = {r.id: r for r in listed}
    assert len(rebuilt) == len(listed) == len(kept)
    arrivals = [r.arrival for r in listed]  # admitted as they arrive
    assert arrivals == sorted(arrivals)
    for r in kept:
        b = rebuilt[r.id]
        for f in fields(r):
            if f.name not in ("done", "held", "pending"):
                assert getattr(b, f.name) == getattr(r, f.name) or (
                    getattr(r, f.name) != getattr(r, f.name)), f.name  # NaN == NaN


def test_every_request_field_is_logged_or_named_as_not_kept():
    from dataclasses import fields

    from frontier_core.engine import requestlog as rl
    from frontier_core.records import Request

    kept = {*rl.FLOAT_FIELDS, *rl.INT_FIELDS, *rl.BOOL_FIELDS, *rl.OBJECT_FIELDS, *rl.NOT_KEPT}
    assert {f.name for f in fields(Request)} == kept


def test_finished_requests_are_released(registry, monkeypatch):
    import gc

    from frontier_core.assemble import assemble
    from frontier_core.engine.controller import GlobalController
    from frontier_core.records import Request

    done = GlobalController._done
    marked = []

    def spy(self, r):
        done(self, r)
        r.prefix_block = -777  # marks it (after it was logged) to find it below
        marked.append(r.id)

    monkeypatch.setattr(GlobalController, "_done", spy)
    names = [n for n in ("pd-backpressure-tiny-decode.yaml", "conversations-llama-8b.yaml")
             if _installed(n)]
    for cfg in (small_config(), *(_config(n, 40) for n in names)):
        marked.clear()
        sim = assemble(cfg, registry).run()
        metrics.summarize(sim)
        gc.collect()
        assert len(marked) == len(sim.controller.log) > 0
        alive = {o.id for o in gc.get_objects()
                 if isinstance(o, Request) and o.prefix_block == -777}
        # Each replica's loop may still hold the last batch it ran (a local): a few
        # requests, never the run's.
        assert len(alive) <= len(marked) // 5, sorted(alive)
        del sim


@pytest.mark.parametrize("name", ["pd-backpressure-tiny-decode.yaml", None])
def test_outputs_are_the_same_with_iterations_spilled_to_files(
        registry, monkeypatch, tmp_path, name):
    from frontier_core.app.metrics import write_outputs
    from frontier_core.assemble import assemble
    from frontier_core.engine import iterlog

    _needs(name)
    cfg = small_config() if name is None else _config(name, 40)
    write_outputs(assemble(cfg, registry).run(), tmp_path / "kept")
    monkeypatch.setattr(iterlog, "SPILL_EVERY", 3)
    monkeypatch.setattr(iterlog, "SPILL_MIN", 1)
    sim = assemble(cfg, registry).run()
    spill = sim.controller.iterlog
    reps = [r for cw in sim.clusters.values() for r in cw.replicas]
    # Spilled more than once, and some records still in memory at the end.
    assert spill._files and all(spill._files[id(r)][2] > 12 for r in reps)
    write_outputs(sim, tmp_path / "spilled")
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert "trace.json" in kept and "requests.csv" in kept
    for f in kept:
        if f != "simulator.json":
            assert (tmp_path / "kept" / f).read_bytes() == (tmp_path / "spilled" / f).read_bytes(), f
