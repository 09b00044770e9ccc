"""The request's path as the engines run disaggregated serving: the decode server streams
the first token, the decode side's batch limit and KV reservation (before the prefill
under SGLang, after it under TensorRT-LLM), and TTFT by segment."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_pd_disagg import plugin as pd_plugin
from frontier_pd_disagg.report import SEGMENTS, segments, ttft_segments
from pdhelpers import flat_plugin, pd_config

from frontier_core.app.metrics import request_table, summarize
from frontier_core.assemble import assemble

LLAMA70_KV_BYTES_PER_TOKEN = 2 * 80 * 8 * 128 * 2


@pytest.fixture
def registry(frontier_registry_factory):
    return frontier_registry_factory(pd_plugin, flat_plugin())


def _config(engine: str | None, n: int = 1, prompt: int = 1000, output: int = 4,
            decode_seqs: int | None = None, arrival: dict | None = None, **wf):
    extra = {"engine": engine} if engine else {}
    dec = dict(extra)
    if decode_seqs is not None:
        name = {"sglang": "prefill_first", "trtllm": "inflight_batching"}.get(engine or "",
                                                                             "prefill_priority")
        dec["scheduler"] = {"name": name, "max_num_seqs": decode_seqs}
    return pd_config(
        prefill={"gpu": "h100-sxm", "tp": 8, **extra},
        decode={"gpu": "h100-sxm", "tp": 8, **dec},
        model="llama-3.1-70b",
        workflow={"link": "scaleout", "bandwidth_gbs": 50, "latency_us": 10, **wf},
        transfer={"name": "links", "bandwidth_eff": 1.0},
        workload={"arrival": arrival or {"process": "fixed", "rate": 1000.0},
                  "prompt_len": {"dist": "fixed", "value": prompt},
                  "output_len": {"dist": "fixed", "value": output},
                  "num_requests": n},
    )


def _iteration_starts(sim, cluster: str, replica: int = 0) -> np.ndarray:
    from frontier_core import ITER_FIELDS

    rep = sim.clusters[cluster].replicas[replica]
    return np.frombuffer(rep.iterations, dtype=float).reshape(-1, len(ITER_FIELDS))


@pytest.mark.parametrize("engine", ["trtllm", "sglang", "vllm"])
def test_one_request_ttft_is_the_sum_of_its_path(registry, engine):
    """Idle pools: no queue anywhere. TTFT = the prefill replica's iteration(s) + the
    KV transfer (bytes over 8 GPUs' links + latency) + nothing until the idle decode
    replica takes it into its first iteration, which streams token 1."""
    sim = assemble(_config(engine), registry).run()
    wf = sim.controller.workflow
    assert wf.first_token == "decode"
    assert wf.reserve_rule == ("before_prefill" if engine == "sglang" else "after_prefill")
    r = sim.controller.requests[0]
    pre = _iteration_starts(sim, "prefill")
    prefill = float(pre[:, 1].sum())  # its one prefill iteration(s), back to back
    transfer = 1000 * LLAMA70_KV_BYTES_PER_TOKEN / (8 * 50e9) + 10e-6
    ingress = 1000 * 1e-6  # the API server tokenises the prompt first (engines.py)
    assert pre[0, 0] == pytest.approx(r.arrival + ingress, rel=1e-12)
    dec = _iteration_starts(sim, "decode")
    assert dec[0, 0] == pytest.approx(pre[0, 0] + prefill + transfer, rel=1e-9)
    assert r.first_token == dec[0, 0]  # the decode server's first iteration streams token 1
    assert r.first_token - r.arrival == pytest.approx(ingress + prefill + transfer, rel=1e-9)
    col = request_table(sim)
    seg = {k: float(col[k][0]) for k in SEGMENTS}
    assert seg["prefill_s"] == pytest.approx(prefill, rel=1e-9)
    assert seg["transfer_s"] == pytest.approx(transfer, rel=1e-9)
    assert seg["prefill_queue_s"] == pytest.approx(ingress, rel=1e-9)
    assert seg["decode_memory_wait_s"] == seg["decode_queue_s"] == 0
    assert sum(seg[k] for k in ttft_segments(wf)) == pytest.approx(float(col["ttft_s"][0]),
                                                                    rel=1e-12)
    # TPOT counts from the token the client saw first.
    assert col["tpot_s"][0] == pytest.approx((r.completion - r.first_token) / 3, rel=1e-12)


def test_without_an_engine_the_prefill_streams_the_first_token(registry):
    sim = assemble(_config(None), registry).run()
    wf = sim.controller.workflow
    assert wf.first_token == "prefill" and wf.reserve_rule == "after_prefill"
    r = sim.controller.requests[0]
    assert r.first_token == r.stage_times["prefill_end"] < r.stage_times["kv_transferred"]


@pytest.mark.parametrize("engine", ["trtllm", "sglang"])
def test_a_full_decode_batch_holds_requests_back_and_lets_them_in_as_it_frees(registry,
                                                                               engine):
    """Decode takes 2 requests at a time (its engine's max batch): 6 requests sent at
    once all complete; never more than 2 are on the decode side; the later ones wait
    for decode room, which shows in their TTFT."""
    sim = assemble(_config(engine, n=6, prompt=200, output=50, decode_seqs=2,
                           arrival={"process": "fixed", "rate": 1e6}), registry).run()
    reqs = sorted(sim.controller.requests, key=lambda r: r.id)
    assert all(r.completion == r.completion and r.generated == r.output_len for r in reqs)
    reserved = np.array([r.stage_times["kv_reserved"] for r in reqs])
    done = np.sort([r.completion for r in reqs])
    for i, t in enumerate(np.sort(reserved)):
        # At a reservation, at most one other request is between reservation and completion.
        held = int(np.sum(np.sort(reserved) < t)) - int(np.sum(done <= t))
        assert held <= 1, (i, held)
    col = request_table(sim)
    wait = col["decode_memory_wait_s"]
    assert np.sum(wait > 1e-9) >= 3  # four of six cannot get a slot at once
    assert np.max(col["ttft_s"]) > 3 * np.min(col["ttft_s"])
    if engine == "sglang":
        # Reserved before the prefill: a request waiting for decode room has not started
        # its prefill either.
        first = np.array([r.first_scheduled for r in reqs])
        assert np.all(first >= reserved - 1e-12)
    else:
        # Prefilled first, then waiting for decode room while holding prefill memory.
        ends = np.array([r.stage_times["prefill_end"] for r in reqs])
        assert np.all(reserved >= ends - 1e-12)


def test_ttft_breakdown_adds_up_exactly(registry):
    cfg = _config("trtllm", n=40, prompt=300, output=20, decode_seqs=8,
                  arrival={"process": "poisson", "rate": 200.0})
    sim = assemble(cfg, registry).run()
    s = summarize(sim)
    b = s["workflow"]["ttft_breakdown_mean_s"]
    parts = [v for k, v in b.items() if k != "ttft_s"]
    assert sum(parts) == pytest.approx(b["ttft_s"], rel=1e-9)
    assert b["ttft_s"] == pytest.approx(s["latency_s"]["ttft_s"]["mean"], rel=1e-9)
    wf = sim.controller.workflow
    col = request_table(sim)
    seg = segments(wf, {k: v for k, v in _stamps(sim).items()})
    total = sum(seg[k] for k in ttft_segments(wf))
    assert np.allclose(total, col["ttft_s"], rtol=1e-12, atol=1e-12)
    assert all(np.all(seg[k] >= -1e-12) for k in SEGMENTS)


def _stamps(sim):
    from frontier_pd_disagg.report import _times

    return _times(sim)


def test_explicit_options_override_the_engine(registry):
    sim = assemble(_config("sglang", first_token="prefill", reserve="after_prefill"),
                   registry).run()
    wf = sim.controller.workflow
    assert wf.first_token == "prefill" and wf.reserve_rule == "after_prefill"
    r = sim.controller.requests[0]
    assert r.first_token == r.stage_times["prefill_end"]


def test_trtllm_pools_take_requests_in_turn(registry):
    """TensorRT-LLM's disaggregated server routes each pool round robin by default
    (tensorrt_llm/serve/router.py, RoundRobinRouter; disagg_utils.py: type
    "round_robin"): with room everywhere, context and generation workers take requests
    in turn."""
    cfg = _config("trtllm", n=6, prompt=200, output=8,
                  arrival={"process": "fixed", "rate": 20.0})
    data = cfg.model_dump()
    for c in data["deployment"]["clusters"]:
        c["replicas"] = 2
    from frontier_core.config import RunConfig

    sim = assemble(RunConfig.model_validate(data), registry).run()
    wf = sim.controller.workflow
    reqs = sorted(sim.controller.requests, key=lambda r: r.id)
    assert [t.dst_replica for t in sorted(wf.transfers, key=lambda t: t.request)] == [0, 1] * 3
    assert [t.src_replica for t in sorted(wf.transfers, key=lambda t: t.request)] == [0, 1] * 3
    assert all(r.generated == r.output_len for r in reqs)


def test_sglang_router_policy_takes_the_smallest_record_on_both_stages(registry):
    """SGLang's router (``cache_aware``) on prompts that share nothing sends each to the
    worker it has sent the fewest prompt tokens, on the prefill and the decode stage."""
    cfg = _config("sglang", n=6, prompt=200, output=8,
                  arrival={"process": "fixed", "rate": 20.0})
    data = cfg.model_dump()
    for c in data["deployment"]["clusters"]:
        c["replicas"] = 2
        c["router"] = {"name": "cache_aware"}
    from frontier_core.config import RunConfig

    sim = assemble(RunConfig.model_validate(data), registry).run()
    wf = sim.controller.workflow
    moves = sorted(wf.transfers, key=lambda t: t.request)
    assert [t.src_replica for t in moves] == [0, 1] * 3
    assert [t.dst_replica for t in moves] == [0, 1] * 3
    assert all(r.generated == r.output_len for r in sim.controller.requests)


def test_a_reservation_made_before_the_prefill_is_given_back_when_the_request_ends_there(
        registry):
    """SGLang reserves decode room before the prefill; a one-token request finishes at
    the prefill and must give the room and the slot back."""
    sim = assemble(_config("sglang", n=3, prompt=200, output=1, decode_seqs=1), registry).run()
    wf = sim.controller.workflow
    assert all(r.generated == 1 and r.completion == r.completion
               for r in sim.controller.requests)
    assert set(wf.reserved.values()) == {0} and set(wf.reserved_requests.values()) == {0}
    rep = sim.clusters["decode"].replicas[0]
    assert rep.kv.free_blocks == rep.kv.num_blocks and not wf._queue
