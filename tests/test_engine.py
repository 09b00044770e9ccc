"""Engine invariants: conservation, KV capacity, monotone time, closed loop, PP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simhelpers import run_sim, small_config

from frontier_core.engine.replica import ITER_FIELDS


def check_invariants(sim) -> None:
    reqs = sim.controller.requests
    assert len(reqs) == sim.controller.total == sim.controller.finished
    for r in reqs:
        if r.rejected:
            assert isinstance(r.rejected, str) and r.rejected
            continue
        assert r.generated == r.output_len, (r.id, r.generated, r.output_len)
        assert r.blocks == 0
        assert r.arrival <= r.first_scheduled <= r.first_token <= r.completion
        assert r.first_token - r.arrival <= r.completion - r.arrival
    for cw in sim.clusters.values():
        for rep in cw.replicas:
            assert rep.kv.free_blocks == rep.kv.num_blocks  # everything released
            assert rep.kv.peak_used <= rep.kv.num_blocks
            it = np.frombuffer(rep.iterations, dtype=float).reshape(-1, len(ITER_FIELDS))
            if len(it):
                assert (it[:, 5] <= rep.kv.num_blocks).all()
                assert (np.diff(it[:, 0]) >= 0).all()  # time is monotone
                assert (it[:, 1] > 0).all()
            assert not rep.waiting and not rep.running and rep.outstanding == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheduler=st.sampled_from(["vllm", "sarathi", "orca"]),
    router=st.sampled_from(["round_robin", "least_outstanding", "least_tokens", "least_kv",
                           "cache_aware"]),
    replicas=st.integers(1, 3),
    tp=st.sampled_from([1, 2]),
    pp=st.sampled_from([1, 2]),
    block_size=st.sampled_from([1, 16, 32]),
    reserve_gb=st.sampled_from([None, 52.0, 54.0]),  # None: roomy; else tight KV memory
    rate=st.floats(0.5, 200.0),
    n=st.integers(1, 40),
    max_prompt=st.integers(1, 3000),
    max_out=st.integers(1, 300),
    seed=st.integers(0, 10_000),
)
def test_conservation(registry, scheduler, router, replicas, tp, pp, block_size, reserve_gb,
                      rate, n, max_prompt, max_out, seed):
    cfg = small_config(
        deployment={"clusters": [{
            "name": "main", "gpu": "a100-80g-sxm", "replicas": replicas, "tp": tp, "pp": pp,
            "scheduler": {"name": scheduler}, "router": {"name": router},
            "block_size": block_size, "activation_reserve_gb": reserve_gb,
        }]},
        workload={
            "arrival": {"process": "poisson", "rate": rate},
            "prompt_len": {"dist": "uniform", "low": 1, "high": max_prompt},
            "output_len": {"dist": "uniform", "low": 1, "high": max_out},
            "num_requests": n,
        },
        seed=seed,
    )
    sim = run_sim(cfg, registry)
    check_invariants(sim)


def test_tight_memory_preempts_and_rejects(registry):
    # ~1 GiB of KV per GPU (tp1): a few thousand tokens; long prompts must queue,
    # decodes preempt, and a request larger than the cache is rejected with a reason.
    cfg = small_config(
        deployment={"clusters": [{"name": "main", "gpu": "a100-80g-sxm", "activation_reserve_gb": 53.5}]},
        workload={
            "arrival": {"process": "poisson", "rate": 50.0},
            "prompt_len": {"dist": "uniform", "low": 200, "high": 1500},
            "output_len": {"dist": "uniform", "low": 100, "high": 800},
            "num_requests": 80,
        },
    )
    sim = run_sim(cfg, registry)
    check_invariants(sim)
    rep = sim.clusters["main"].replicas[0]
    assert rep.preemptions > 0
    assert sum(r.preemptions for r in sim.controller.requests) == rep.preemptions
    cap = rep.kv.num_blocks * rep.kv.block_size
    for r in sim.controller.requests:
        assert bool(r.rejected) == (r.prompt_len + r.output_len > cap)


def test_closed_loop_bounds_concurrency(registry):
    cfg = small_config(workload={
        "closed_loop": {"concurrency": 4, "think_time_s": 0.01},
        "prompt_len": {"dist": "fixed", "value": 300},
        "output_len": {"dist": "fixed", "value": 20},
        "num_requests": 30,
    })
    sim = run_sim(cfg, registry)
    check_invariants(sim)
    events = sorted([(r.arrival, 1) for r in sim.controller.requests]
                    + [(r.completion, -1) for r in sim.controller.requests])
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak == 4
    # Each client waits think time after a completion before its next request.
    arrivals = sorted(r.arrival for r in sim.controller.requests)
    assert arrivals[:4] == [0.0] * 4 and arrivals[4] > 0.01


def test_pipeline_parallel_overlaps_batches(registry):
    """With pp=2 two batches are in flight, so a saturated replica finishes sooner than
    one whose stage time is the whole iteration."""
    wl = {"arrival": {"process": "poisson", "rate": 1000.0},
          "prompt_len": {"dist": "fixed", "value": 256}, "output_len": {"dist": "fixed", "value": 64},
          "num_requests": 200}
    base = {"name": "main", "gpu": "a100-80g-sxm", "scheduler": {"name": "vllm", "max_num_seqs": 32}}
    pp1 = run_sim(small_config(deployment={"clusters": [base | {"pp": 1}]}, workload=wl), registry)
    pp2 = run_sim(small_config(deployment={"clusters": [base | {"pp": 2}]}, workload=wl), registry)
    check_invariants(pp2)
    end1 = max(r.completion for r in pp1.controller.requests)
    end2 = max(r.completion for r in pp2.controller.requests)
    assert end2 < 0.8 * end1


def test_single_request_accounting(registry):
    """One request alone: prefill iteration, then output_len-1 decode iterations."""
    cfg = small_config(workload={
        "arrival": {"process": "fixed", "rate": 1.0},
        "prompt_len": {"dist": "fixed", "value": 100},
        "output_len": {"dist": "fixed", "value": 10},
        "num_requests": 1,
    })
    sim = run_sim(cfg, registry)
    rep = sim.clusters["main"].replicas[0]
    it = np.frombuffer(rep.iterations, dtype=float).reshape(-1, len(ITER_FIELDS))
    assert len(it) == 10
    assert it[0, 2] == 1 and it[0, 4] == 100  # one prefill of 100 tokens
    assert (it[1:, 3] == 1).all() and (it[1:, 4] == 1).all()
    r = sim.controller.requests[0]
    assert math.isclose(r.first_token, it[0, 1])
    assert math.isclose(r.completion, it[:, 1].sum())
    assert rep.kv.peak_used == math.ceil(109 / 16)


def test_a_stalled_run_warns_about_unfinished_requests(registry) -> None:
    import pytest

    from frontier_core.assemble import assemble
    from frontier_core.errors import FrontierWarning
    from frontier_core.records import Batch

    sim = assemble(small_config(), registry)
    for rep in sim.clusters["main"].replicas:
        rep.scheduler.schedule = lambda view: Batch()  # nothing ever runs
        rep._unblock = lambda: False
    with pytest.warns(FrontierWarning, match="60 of 60 requests never finished"):
        sim.run()


def test_orca_admits_a_prompt_as_long_as_its_budget_while_decodes_run(registry):
    # Regression: a prompt of at least max_num_batched_tokens waited for an iteration
    # without decodes, which never came while requests kept arriving (starvation).
    cfg = small_config(
        deployment={"clusters": [{"name": "main", "gpu": "a100-80g-sxm", "scheduler":
                                  {"name": "orca", "max_num_batched_tokens": 512}}]},
        workload={"arrival": {"process": "fixed", "rate": 20.0},
                  "prompt_len": {"dist": "fixed", "value": 512},
                  "output_len": {"dist": "fixed", "value": 64}, "num_requests": 40},
    )
    sim = run_sim(cfg, registry)
    reqs = sim.controller.requests
    assert all(r.generated == 64 and r.rejected is None for r in reqs)
    # Prompts join iterations that also decode: some batch mixes one prefill with decodes.
    it = sim.clusters["main"].replicas[0].iterations
    rows = [it[i:i + 6] for i in range(0, len(it), 6)]
    assert any(r[2] == 1 and r[3] > 0 for r in rows)


def _closed_loop(registry, **closed):
    cfg = small_config(workload={
        "closed_loop": {"concurrency": 8, **closed},
        "prompt_len": {"dist": "fixed", "value": 128},
        "output_len": {"dist": "fixed", "value": 16}, "num_requests": 32,
        "warmup_requests": 8})
    return run_sim(cfg, registry)


def test_closed_loop_clients_ramp_up_and_stay_apart(registry):
    together = _closed_loop(registry)
    first = [r.arrival for r in together.controller.requests[:8]]
    assert first == [0.0] * 8
    # Fixed lengths and one shared start: every wave arrives in lockstep.
    later = [r.arrival for r in together.controller.requests[8:16]]
    assert np.ptp(later) == 0.0
    # Clients started further apart than an iteration keep apart.
    apart = _closed_loop(registry, ramp_up_s=1.6)
    arrivals = [r.arrival for r in apart.controller.requests]
    for k in range(8):  # client k's first request
        assert min(abs(a - 0.2 * k) for a in arrivals) < 1e-12
    after = [r.arrival for r in apart.controller.requests if not r.warmup]
    assert len(after) == 24 and len(set(after)) > 12


def test_warmup_requests_run_but_are_not_measured(registry):
    from frontier_core.app.metrics import request_table, summarize

    sim = _closed_loop(registry)
    col = request_table(sim)
    assert col["warmup"].tolist() == [1] * 8 + [0] * 24
    s = summarize(sim, col)
    assert s["requests"]["total"] == 24 and s["requests"]["warmup"] == 8
    measured = col["ttft_s"][8:]
    assert s["latency_s"]["ttft_s"]["mean"] == pytest.approx(float(measured.mean()))


def test_warmup_must_leave_requests_to_measure(registry):
    from frontier_core.assemble import assemble
    from frontier_core.errors import ConfigError

    cfg = small_config(workload={"closed_loop": {"concurrency": 4},
                                 "prompt_len": {"dist": "fixed", "value": 64},
                                 "output_len": {"dist": "fixed", "value": 4},
                                 "num_requests": 4, "warmup_requests": 4})
    with pytest.raises(ConfigError, match="warmup_requests is 4"):
        assemble(cfg, registry)
