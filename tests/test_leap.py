"""Iteration leaping (``frontier_core.engine.leap``) and the decode roster
(``frontier_core.engine.roster``) give what scheduling and stepping one iteration at a
time gives: the same summary, per-request table and per-iteration records, on random
small configs (dense and MoE, co-located and PD, chunked prefill with small token
budgets, preemptions, prefix caching), and a leap stops where stepping would see
something new (an arrival, a completion, a KV block it cannot take)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.plugins import load_registry
from frontier_core.testing import linear_test_plugin


@contextmanager
def leaping(on: bool) -> Iterator[None]:
    old = os.environ.get("FRONTIER_LEAP")
    os.environ["FRONTIER_LEAP"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["FRONTIER_LEAP"]
        else:
            os.environ["FRONTIER_LEAP"] = old


_REGISTRY: list[Any] = []


@pytest.fixture(autouse=True)
def every_batch_on_the_roster(monkeypatch) -> None:
    """The roster takes batches of any size here, and grows their KV in one step from one
    request at a block boundary (the engine's thresholds only save time), so that the
    small random configs below exercise both."""
    monkeypatch.setattr("frontier_core.engine.replica.ROSTER_MIN", 1)
    monkeypatch.setattr("frontier_core.engine.roster._GROW_EACH", 1)


def _registry() -> Any:
    if not _REGISTRY:
        _REGISTRY.append(load_registry(extra=[linear_test_plugin()]))
    return _REGISTRY[0]


def outputs(data: dict[str, Any], on: bool) -> tuple[str, str, list[bytes], int, int, list,
                                                      list]:
    """summary.json and requests.csv as written, each replica's iteration records, how
    many iterations leaps covered, how many the roster scheduled, each replica's
    scheduler state at the end (e.g. SGLang's new-token ratio) and each cluster's
    credited seconds per backend."""
    from frontier_core.app.metrics import request_table, requests_csv, summarize

    cfg = RunConfig.model_validate(data)
    with leaping(on):
        sim = assemble(cfg, _registry()).run()
    col = request_table(sim)
    summary = json.dumps(summarize(sim, col), sort_keys=True, default=str)
    reps = [r for cw in sim.clusters.values() for r in cw.replicas]
    return (summary, requests_csv(col), [bytes(r.iterations) for r in reps],
            sum(r.leapt for r in reps), sum(r.rostered for r in reps),
            [vars(r.scheduler) for r in reps],
            # every backend's credited seconds (the summary shows only their shares)
            [list(ex.credit) for ex in sim.executors.values()])


def assert_same(data: dict[str, Any]) -> int:
    step = outputs(data, on=False)
    leap = outputs(data, on=True)
    assert step[3] == 0 and step[4] == 0
    assert leap[0] == step[0]
    assert leap[1] == step[1]
    assert leap[2] == step[2]
    assert leap[5] == step[5]
    assert leap[6] == step[6]
    return leap[3]


def workload(n: int, rate: float, low: int, high: int, out_low: int, out_high: int,
             arrival: str = "poisson") -> dict[str, Any]:
    return {"arrival": {"process": arrival, "rate": rate},
            "prompt_len": {"dist": "uniform", "low": low, "high": high},
            "output_len": {"dist": "uniform", "low": out_low, "high": out_high},
            "num_requests": n}


SCHEDULERS = [{"name": "vllm"}, {"name": "sarathi", "token_budget": 256},
              {"name": "orca", "capacity": "max_utilization"}, {"name": "sglang"},
              {"name": "vllm", "max_num_seqs": 4}]


@st.composite
def dense_configs(draw) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": "main", "gpu": "a100-80g-sxm",
        "replicas": draw(st.sampled_from([1, 1, 2])),
        "block_size": draw(st.sampled_from([1, 4, 16])),
        "scheduler": draw(st.sampled_from(SCHEDULERS)),
        "router": {"name": draw(st.sampled_from(["round_robin", "least_outstanding", "least_kv"]))},
        "gpu_memory_fraction": 0.2,
        # 1.5 GB of activations leaves ~1700 tokens of KV: block limits, preemptions
        "activation_reserve_gb": draw(st.sampled_from([0.2, 1.5])),
        "prefix_cache": draw(st.booleans()),
    }
    engine = draw(st.sampled_from([None, "vllm", "sglang"]))
    if engine is not None:
        cluster["engine"] = {"name": engine}
        cluster.pop("scheduler")
    return {
        "model": "llama-2-7b", "deployment": {"clusters": [cluster]},
        # the roofline prices a leap's decode attention as one series
        "predictor": draw(st.sampled_from([["linear-test"], ["roofline"]])),
        "workload": workload(draw(st.integers(5, 30)), draw(st.sampled_from([2.0, 20.0, 200.0])),
                             16, draw(st.sampled_from([64, 2048])), 1,
                             draw(st.sampled_from([8, 120])),
                             draw(st.sampled_from(["poisson", "fixed"]))),
        "seed": draw(st.integers(0, 3)), "output": {"trace": False},
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_configs())
def test_dense_leaping_equals_stepping(data: dict[str, Any]) -> None:
    assert_same(data)


@st.composite
def chunked_configs(draw) -> dict[str, Any]:
    """Sarathi-Serve with token budgets small next to the prompts and sequence caps that
    keep prompts waiting: most iterations carry prefill chunks beside the decodes, and
    decode-only runs start and end at the iterations around them."""
    cluster: dict[str, Any] = {
        "name": "main", "gpu": "a100-80g-sxm",
        "replicas": draw(st.sampled_from([1, 1, 2])),
        "block_size": draw(st.sampled_from([1, 4, 16])),
        "scheduler": {"name": "sarathi", "token_budget": draw(st.sampled_from([8, 32, 100, 256])),
                      "max_num_seqs": draw(st.sampled_from([2, 4, 256]))},
        "gpu_memory_fraction": 0.2,
        "activation_reserve_gb": draw(st.sampled_from([0.2, 1.5])),
    }
    return {
        "model": "llama-2-7b", "deployment": {"clusters": [cluster]},
        "predictor": draw(st.sampled_from([["linear-test"], ["roofline"]])),
        "workload": workload(draw(st.integers(3, 25)), draw(st.sampled_from([2.0, 20.0, 200.0])),
                             16, draw(st.sampled_from([300, 1500])), 1,
                             draw(st.sampled_from([4, 60])),
                             draw(st.sampled_from(["poisson", "fixed"]))),
        "seed": draw(st.integers(0, 3)), "output": {"trace": False},
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_configs())
def test_chunked_leaping_equals_stepping(data: dict[str, Any]) -> None:
    assert_same(data)


@st.composite
def moe_configs(draw) -> dict[str, Any]:
    dp = draw(st.sampled_from([1, 2, 4]))
    cluster = {"name": "main", "gpu": "h100-sxm", "tp": 8 // dp, "dp": dp,
               "block_size": draw(st.sampled_from([4, 16])),
               "scheduler": draw(st.sampled_from(SCHEDULERS[:4])),
               "moe": {"name": "moe", "routing": draw(st.sampled_from(["uniform", "power_law:1.2"]))}}
    return {
        "model": "mixtral-8x7b", "deployment": {"clusters": [cluster]},
        "predictor": ["linear-test"],
        "workload": workload(draw(st.integers(4, 16)), draw(st.sampled_from([5.0, 50.0])),
                             16, 256, 1, draw(st.sampled_from([8, 60]))),
        "seed": draw(st.integers(0, 3)), "output": {"trace": False},
    }


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moe_configs())
def test_moe_leaping_equals_stepping(data: dict[str, Any]) -> None:
    pytest.importorskip("frontier_moe_ep")
    assert_same(data)


@st.composite
def moe_series_configs(draw) -> dict[str, Any]:
    """Balanced routing (the block memoises each batch shape) and the roofline (it prices
    a run of decode attention at once): a leap prices its MoE iterations as a series."""
    # kimi-k2.5 has a dense layer, gpt-oss windowed and full attention, qwen3-next
    # linear and full attention
    model, gpu = draw(st.sampled_from([("mixtral-8x7b", "h100-sxm"), ("kimi-k2.5", "h200"),
                                       ("gpt-oss-20b", "h100-sxm"),
                                       ("qwen3-next-80b-a3b", "h100-sxm")]))
    dp = draw(st.sampled_from([1, 1, 2, 4]))
    cluster: dict[str, Any] = {
        "name": "main", "gpu": gpu, "tp": 8 // dp, "dp": dp,
        "block_size": draw(st.sampled_from([4, 16])),
        "replicas": draw(st.sampled_from([1, 1, 2])),
        "moe": {"name": "moe", "routing": "balanced", "ep": draw(st.sampled_from([1, 8])),
                "two_batch_overlap": draw(st.booleans())}}
    engine = draw(st.sampled_from([None, "vllm", "sglang", "trtllm"]))
    if engine is not None:
        cluster["engine"] = {"name": engine}
        if engine == "trtllm":
            cluster["moe"]["two_batch_overlap"] = False
    else:
        cluster["scheduler"] = draw(st.sampled_from(SCHEDULERS[:4]))
    return {
        "model": model, "deployment": {"clusters": [cluster]}, "predictor": ["roofline"],
        "workload": workload(draw(st.integers(4, 16)), draw(st.sampled_from([5.0, 50.0])),
                             16, 256, 1, draw(st.sampled_from([8, 60]))),
        "seed": draw(st.integers(0, 3)), "output": {"trace": False},
    }


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moe_series_configs())
def test_moe_series_leaping_equals_stepping(data: dict[str, Any]) -> None:
    pytest.importorskip("frontier_moe_ep")
    assert_same(data)


def series_priced(monkeypatch) -> list[int]:
    """A counter, in a list, of the iterations the MoE block's ``step_series`` prices."""
    pytest.importorskip("frontier_moe_ep")
    from frontier_moe_ep.block import MoEBlock

    priced = [0]
    made = MoEBlock.step_series

    def counting(block, s):
        step = made(block, s)
        if step is None:
            return None

        def counted(other: float) -> float:
            priced[0] += 1
            return step(other)

        return counted

    monkeypatch.setattr(MoEBlock, "step_series", counting)
    return priced


def test_moe_leaps_price_their_iterations_as_a_series(monkeypatch) -> None:
    """Single-micro-batch schedules, with full, windowed and linear attention, with and
    without DP attention ranks: the block's series prices the leapt iterations (counted
    here), and the run is the same as stepping."""
    priced = series_priced(monkeypatch)
    for engine, model, dp in (("trtllm", "mixtral-8x7b", 1), ("vllm", "gpt-oss-20b", 1),
                              ("sglang", "qwen3-next-80b-a3b", 1),
                              ("trtllm", "mixtral-8x7b", 4), ("sglang", "gpt-oss-20b", 2)):
        data = {"model": model,
                "deployment": {"clusters": [{
                    "name": "main", "gpu": "h100-sxm", "tp": 8 // dp, "dp": dp,
                    "engine": {"name": engine},
                    "moe": {"name": "moe", "routing": "balanced", "ep": 8}}]},
                "predictor": ["roofline"],
                "workload": workload(6, 2.0, 16, 64, 100, 200), "seed": 1,
                "output": {"trace": False}}
        before = priced[0]
        leapt = assert_same(data)
        assert priced[0] - before > 100 and leapt > priced[0] - before


def test_a_series_declined_while_the_block_traces_is_asked_again(monkeypatch) -> None:
    """The MoE block traces its first iterations (``trace_iterations``) and declines a
    series meanwhile; a leap that starts then prices a stretch one by one and asks
    again, so the rest of it is priced as a series; the run is the same as stepping."""
    priced = series_priced(monkeypatch)
    data = {"model": "mixtral-8x7b",
            "deployment": {"clusters": [{
                "name": "main", "gpu": "h100-sxm", "tp": 8, "engine": {"name": "trtllm"},
                "moe": {"name": "moe", "routing": "balanced", "ep": 8,
                        "trace_iterations": 20}}]},
            "predictor": ["roofline"],
            "workload": workload(1, 1.0, 64, 64, 400, 400), "seed": 0,
            "output": {"trace": False}}
    leapt = assert_same(data)
    # one leap from the second iteration to the last: all but the traced iterations and
    # the first stretch after them come from a series
    assert leapt > 390 and priced[0] > 300


def test_sibling_replicas_price_unchanged_batches_as_a_series(monkeypatch) -> None:
    """Replicas stepping side by side stop each other's leaps; an iteration whose batch
    is the last one's, each sequence a token further, is still priced from a series
    (counted here beyond the leaps' iterations), and the run is the same as stepping."""
    priced = series_priced(monkeypatch)
    data = {"model": "mixtral-8x7b",
            "deployment": {"clusters": [{
                "name": "main", "gpu": "h100-sxm", "tp": 8, "replicas": 3,
                "engine": {"name": "trtllm"},
                "moe": {"name": "moe", "routing": "balanced", "ep": 8}}]},
            "predictor": ["roofline"],
            "workload": workload(9, 50.0, 16, 64, 150, 300), "seed": 2,
            "output": {"trace": False}}
    leapt = assert_same(data)
    assert priced[0] - leapt > 300


def test_a_running_series_declined_while_the_block_traces_is_asked_again(monkeypatch
                                                                        ) -> None:
    """Two replicas decoding one request each stop each other's leaps from the start,
    while the block still traces: each replica's running series, declined then, is
    asked again after a stretch priced one by one, and prices the rest."""
    priced = series_priced(monkeypatch)
    data = {"model": "mixtral-8x7b",
            "deployment": {"clusters": [{
                "name": "main", "gpu": "h100-sxm", "tp": 8, "replicas": 2,
                "router": {"name": "round_robin"}, "engine": {"name": "trtllm"},
                "moe": {"name": "moe", "routing": "balanced", "ep": 8,
                        "trace_iterations": 40}}]},
            "predictor": ["roofline"],
            "workload": workload(2, 1000.0, 64, 64, 400, 400, "fixed"), "seed": 0,
            "output": {"trace": False}}
    leapt = assert_same(data)
    assert priced[0] - leapt > 600


@st.composite
def pd_configs(draw) -> dict[str, Any]:
    moe = draw(st.booleans())
    model = "mixtral-8x7b" if moe else "llama-2-7b"
    gpu = "h100-sxm"
    tp = 8 if moe else draw(st.sampled_from([1, 2]))
    decode: dict[str, Any] = {"name": "decode", "gpu": gpu, "tp": tp,
                              "gpu_memory_fraction": draw(st.sampled_from([0.9, 0.5])),
                              "replicas": draw(st.sampled_from([1, 2])),
                              "block_size": draw(st.sampled_from([4, 16])),
                              "scheduler": draw(st.sampled_from(SCHEDULERS[:4]))}
    if draw(st.booleans()):
        decode["engine"] = {"name": "sglang"}
        decode.pop("scheduler")
    return {
        "model": model,
        "deployment": {"workflow": {"name": "pd"},
                       "clusters": [{"name": "prefill", "gpu": gpu, "tp": tp}, decode]},
        "predictor": draw(st.sampled_from([["linear-test"], ["roofline"]])),
        "workload": workload(draw(st.integers(4, 20)), draw(st.sampled_from([5.0, 50.0])),
                             16, 512, 1, draw(st.sampled_from([8, 80]))),
        "seed": draw(st.integers(0, 3)), "output": {"trace": False},
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pd_configs())
def test_pd_leaping_equals_stepping(data: dict[str, Any]) -> None:
    pytest.importorskip("frontier_pd_disagg")
    if "mixtral" in data["model"]:
        pytest.importorskip("frontier_moe_ep")
    assert_same(data)


# ---- where a leap stops ------------------------------------------------------------


def one_replica(n: int, rate: float, prompt: int, out: int, **cluster: Any) -> dict[str, Any]:
    return {"model": "llama-2-7b",
            "deployment": {"clusters": [{"name": "main", "gpu": "a100-80g-sxm", **cluster}]},
            "predictor": ["linear-test"],
            "workload": {"arrival": {"process": "fixed", "rate": rate},
                         "prompt_len": {"dist": "fixed", "value": prompt},
                         "output_len": {"dist": "fixed", "value": out}, "num_requests": n},
            "seed": 0, "output": {"trace": False}}


def iteration_records(data: dict[str, Any], on: bool) -> np.ndarray:
    from frontier_core.engine.replica import ITER_FIELDS

    cfg = RunConfig.model_validate(data)
    with leaping(on):
        sim = assemble(cfg, _registry()).run()
    rep = sim.clusters["main"].replicas[0]
    return np.frombuffer(rep.iterations, float).reshape(-1, len(ITER_FIELDS)), rep


def test_leap_stops_at_an_arrival() -> None:
    """Requests arrive while others decode: the prefill of each arrival starts at the
    same iteration boundary as when stepping, and leaps happen between arrivals."""
    data = one_replica(6, 40.0, 64, 200)
    a, _ = iteration_records(data, False)
    b, rep = iteration_records(data, True)
    assert rep.leaps > 0
    assert np.array_equal(a, b)
    # every prefill after the first starts the iteration after its arrival
    assert int((b[:, 2] > 0).sum()) == 6
    assert assert_same(data) > 0


def test_leap_ends_with_a_completion() -> None:
    """One request alone: the leaps end at its completion, none runs past it."""
    data = one_replica(1, 1.0, 64, 100)
    a, _ = iteration_records(data, False)
    b, rep = iteration_records(data, True)
    assert np.array_equal(a, b)
    assert len(b) == 100  # a prefill and 99 decodes
    assert rep.leaps >= 1 and rep.leapt <= 99
    assert assert_same(data) > 0


def test_leap_stops_at_a_block_it_cannot_take() -> None:
    """Block size 1 and barely enough KV: every decode grows by a block and the cache
    runs out, so leaps stop before the grow that would preempt; stepping and leaping
    preempt the same requests at the same times."""
    # ~1700 tokens of KV for 8 requests of up to 340
    data = one_replica(8, 1000.0, 40, 300, block_size=1, gpu_memory_fraction=0.2,
                       activation_reserve_gb=1.5, scheduler={"name": "vllm", "watermark": 0.0})
    a, _ = iteration_records(data, False)
    b, rep = iteration_records(data, True)
    assert np.array_equal(a, b)
    assert rep.preemptions > 0 and rep.leaps > 0
    assert_same(data)


def test_leap_off_switch() -> None:
    """``FRONTIER_LEAP=0`` steps one iteration at a time."""
    data = one_replica(3, 5.0, 64, 50)
    _, rep = iteration_records(data, False)
    assert rep.leaps == 0
    _, rep = iteration_records(data, True)
    assert rep.leaps > 0


# ---- the decode roster ---------------------------------------------------------------


def closed_loop_roster(cluster: dict[str, Any], concurrency: int, n: int,
                       seed: int, model: str = "llama-2-7b") -> tuple[str, int]:
    """Two replicas of ``cluster`` (of ``model``; on A100s unless it says) under a closed
    loop, with and without the roster: checks that both give the same outputs and
    scheduler states; returns the summary and how many iterations the roster
    scheduled."""
    data = {"model": model,
            "deployment": {"clusters": [{"name": "main", "gpu": "a100-80g-sxm",
                                         "replicas": 2, **cluster}]},
            "predictor": ["roofline"],
            "workload": {"closed_loop": {"concurrency": concurrency},
                         "prompt_len": {"dist": "uniform", "low": 16, "high": 400},
                         "output_len": {"dist": "uniform", "low": 20, "high": 120},
                         "num_requests": n},
            "seed": seed, "output": {"trace": False}}
    step = outputs(data, on=False)
    fast = outputs(data, on=True)
    assert fast[:3] == step[:3] and fast[5] == step[5]
    return step[0], fast[4]


@pytest.mark.parametrize("scheduler", SCHEDULERS[:4])
@pytest.mark.parametrize("kv", ["roomy", "tight", "cached"])
def test_roster_schedules_as_the_scheduler_would(scheduler, kv) -> None:
    """The other replica's events stop every leap, so decode-only iterations come from
    the roster (completions among them); with a tight KV cache some of its block grows
    fail and the scheduler preempts instead; with prefix caching the blocks of finished
    requests stay cached and evictable."""
    summary, rostered = closed_loop_roster(
        {"block_size": 4, "scheduler": scheduler, "gpu_memory_fraction": 0.2,
         "activation_reserve_gb": 1.5 if kv == "tight" else 0.2,
         "prefix_cache": kv == "cached"}, 24, 96, 1)
    assert rostered > 20  # the roster scheduled many of the iterations
    if kv == "tight":
        assert json.loads(summary)["clusters"]["main"]["preemptions"] > 0


def test_roster_takes_large_batches_at_its_default_threshold(monkeypatch) -> None:
    """At the engine's own threshold: a closed loop of 192 requests over two replicas."""
    from frontier_core.engine import replica, roster

    monkeypatch.setattr(replica, "ROSTER_MIN", roster.ROSTER_MIN)
    _, rostered = closed_loop_roster({"block_size": 16, "scheduler": {"name": "sglang"}},
                                     192, 400, 2)
    assert rostered > 50


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_grow_each_is_each_grow_in_order(data) -> None:
    """``PagedKVCache.grow_each`` against ``grow`` called for each request in order, on
    random holdings (cached blocks held by reference, a fixed part per sequence, DP
    ranks with their shares, free blocks that may run short): where it answers, the
    cache, the requests and the ranks' shares end as the grows leave them; where it
    declines, nothing changed, and a grow would have failed or needed more than a take."""
    from frontier_core.engine.kv import PagedKVCache
    from frontier_core.records import Request

    bs = data.draw(st.sampled_from([1, 4, 16]))
    seq = data.draw(st.sampled_from([0, 2]))
    n = data.draw(st.integers(1, 12))
    dp = data.draw(st.sampled_from([1, 3]))

    def make() -> tuple[PagedKVCache, list[Request]]:
        kv = PagedKVCache(num_blocks, bs, seq_blocks=seq)
        reqs = []
        for i, (c, b, sh, k) in enumerate(holdings):
            r = Request(i, 0.0, 8, 8, computed=c, blocks=b, dp_rank=k)
            r.shared_blocks = sh
            reqs.append(r)
        kv.free_blocks = free
        if dp > 1:
            kv.rank_used = [0] * dp
            for r in reqs:
                kv.rank_used[r.dp_rank] += r.blocks + r.shared_blocks
            kv.rank_cap = cap
        return kv, reqs

    holdings = []
    for _ in range(n):
        c = data.draw(st.integers(1, 80))
        sh = data.draw(st.integers(0, 2)) if c > 2 * bs else 0
        b = max(0, -(-c // bs) + seq - sh - data.draw(st.integers(0, 1)))
        holdings.append((c, b, sh, data.draw(st.integers(0, dp - 1))))
    num_blocks = 400
    cap = data.draw(st.integers(0, 40))  # a rank's share: binds on a request holding nothing
    free = data.draw(st.integers(0, 2 * n))
    one, reqs1 = make()
    ok = True
    for r in reqs1:
        if not one.grow(r, r.computed + 1):
            ok = False
            break
    each, reqs2 = make()
    a = np.array(holdings, np.int64).reshape(n, 4)
    after = each.grow_each(reqs2, a[:, 0] + 1, a[:, 1].copy(), a[:, 2].copy(),
                           a[:, 3].copy() if dp > 1 else None)
    if after is None:
        fresh, reqs3 = make()
        assert [r.blocks for r in reqs2] == [r.blocks for r in reqs3]
        assert (each.free_blocks, each.peak_used, each.rank_used) == (
            fresh.free_blocks, fresh.peak_used, fresh.rank_used)
        assert not ok or (dp > 1 and not (a[:, 1] + a[:, 2] > 0).all())
    else:
        assert ok
        assert after.tolist() == [r.blocks for r in reqs1] == [r.blocks for r in reqs2]
        assert (each.free_blocks, each.peak_used, each.rank_used) == (
            one.free_blocks, one.peak_used, one.rank_used)


@pytest.mark.parametrize(("dp", "kv"), [(1, "roomy"), (1, "tight"), (2, "roomy")])
def test_roster_grows_every_page_of_one_token_at_once(monkeypatch, dp, kv) -> None:
    """Pages of one token (SGLang's default): every decode takes a block at every
    iteration, and the roster takes them for the whole batch at once (counted here), as
    each request's ``grow`` in order would; on a tight cache the free blocks run short
    before the last request, so the grows go one by one and preempt; with DP ranks each
    rank's share counts the blocks its requests took."""
    from frontier_core.engine import roster
    from frontier_core.engine.kv import PagedKVCache

    monkeypatch.setattr(roster, "_GROW_EACH", 4)
    taken, short = [0], [0]
    grow_each = PagedKVCache.grow_each

    def counting(kv, reqs, *a):
        after = grow_each(kv, reqs, *a)
        taken[0] += after is not None
        short[0] += after is None
        return after

    monkeypatch.setattr(PagedKVCache, "grow_each", counting)
    cluster = {"block_size": 1, "scheduler": {"name": "sglang"}, "gpu_memory_fraction": 0.2,
               "activation_reserve_gb": 1.5 if kv == "tight" else 0.2}
    model = "llama-2-7b"
    if dp > 1:
        pytest.importorskip("frontier_moe_ep")
        model = "mixtral-8x7b"
        cluster.update(gpu="h100-sxm", dp=dp, tp=8 // dp, gpu_memory_fraction=0.9,
                       moe={"name": "moe", "routing": "balanced"})
    summary, rostered = closed_loop_roster(cluster, 64, 160, 3, model)
    assert taken[0] > 50 and rostered > taken[0]
    if kv == "tight":
        assert short[0] > 0
        assert json.loads(summary)["clusters"]["main"]["preemptions"] > 0


def pd_closed_loop_roster(scheduler: dict[str, Any], first_token: str) -> int:
    """A PD closed loop whose decode replica runs ``scheduler``, with and without the
    roster: checks that both give the same outputs and scheduler states; returns how
    many iterations the roster scheduled."""
    data = {"model": "llama-2-7b",
            "deployment": {"workflow": {"name": "pd", "first_token": first_token},
                           "clusters": [{"name": "prefill", "gpu": "h100-sxm", "replicas": 2},
                                        {"name": "decode", "gpu": "h100-sxm", "block_size": 4,
                                         "scheduler": scheduler}]},
            "predictor": ["roofline"],
            "workload": {"closed_loop": {"concurrency": 32},
                         "prompt_len": {"dist": "uniform", "low": 16, "high": 400},
                         "output_len": {"dist": "uniform", "low": 20, "high": 120},
                         "num_requests": 160},
            "seed": 3, "output": {"trace": False}}
    step = outputs(data, on=False)
    fast = outputs(data, on=True)
    assert fast[:3] == step[:3] and fast[5] == step[5]
    return fast[4]


@pytest.mark.parametrize("scheduler", SCHEDULERS[:4])
def test_roster_serves_the_scheduler_while_transfers_arrive(scheduler, monkeypatch) -> None:
    """A PD decode replica under a closed loop: requests arrive with their KV between
    almost every two iterations, so the scheduler is called each time, and its
    ``decode_running`` takes the batch from the roster (the roster's own schedule is
    switched off here, so every rostered iteration went through the scheduler), and the
    first token of each is streamed from the decode replica's first iteration with it.
    The same outputs and scheduler states as stepping."""
    pytest.importorskip("frontier_pd_disagg")
    from frontier_core.engine import replica

    monkeypatch.setattr(replica, "roster_batch", lambda rep: None)
    rostered = pd_closed_loop_roster(scheduler, "decode")
    assert rostered > 200  # iterations whose batch came from the roster


@pytest.mark.parametrize("scheduler", SCHEDULERS[:4])
def test_roster_decodes_beside_new_prompts(scheduler, monkeypatch) -> None:
    """Co-located under a closed loop, a prompt arrives whenever a request finishes: the
    scheduler admits it with the roster in place, and an iteration that prefills it
    beside the roster's decodes is priced from both (``mixed_step``) where the scheduler
    mixes them (Sarathi, Orca). The same outputs and scheduler states as stepping."""
    from frontier_core.engine import replica
    from frontier_core.execution.predictor import ExecutionPredictor

    mixed = [0]
    real = ExecutionPredictor.mixed_step

    def counted(self: Any, *args: Any) -> Any:
        mixed[0] += 1
        return real(self, *args)

    monkeypatch.setattr(ExecutionPredictor, "mixed_step", counted)
    monkeypatch.setattr(replica, "roster_batch", lambda rep: None)
    summary, rostered = closed_loop_roster(
        {"block_size": 4, "scheduler": scheduler, "gpu_memory_fraction": 0.2,
         "activation_reserve_gb": 0.2}, 24, 96, 1)
    assert rostered > 300
    if scheduler["name"] in ("sarathi", "orca"):
        assert mixed[0] > 10


@pytest.mark.parametrize("budget", [4, 8])
def test_roster_leaves_a_binding_sequence_cap_to_the_scheduler(budget) -> None:
    """Sarathi on a PD decode replica with a token budget below the requests it admits
    with their KV (admitting them takes no budget): its decode_running decodes only
    ``budget`` of them, so after such a schedule the roster's own schedule, which
    decodes every running request, must not start; the roster takes over once the cap
    no longer binds."""
    pytest.importorskip("frontier_pd_disagg")
    rostered = pd_closed_loop_roster({"name": "sarathi", "token_budget": budget,
                                      "max_num_seqs": 64}, "auto")
    assert rostered > 50
