"""The pd workflow: exact transfer times, contention, backpressure without deadlock,
rejection of what can never fit, heterogeneous pools, outputs and determinism."""

from __future__ import annotations

import json
import math

import pytest
from frontier_pd_disagg import plugin as pd_plugin
from pdhelpers import flat_plugin, pd_config

from frontier_core import ConfigError
from frontier_core.app.metrics import request_table, summarize, write_outputs
from frontier_core.assemble import assemble

LLAMA70_KV_BYTES_PER_TOKEN = 2 * 80 * 8 * 128 * 2  # layers x KV heads x head_dim x (K,V) x bf16


@pytest.fixture
def registry(frontier_registry_factory):
    return frontier_registry_factory(pd_plugin, flat_plugin())


def _workflow(sim):
    return sim.controller.workflow


def _exact_config(n_requests: int, prompt: int, latency_us: float = 10.0):
    return pd_config(
        prefill={"gpu": "h100-sxm", "tp": 8},
        decode={"gpu": "h100-sxm", "tp": 8},
        model="llama-3.1-70b",
        workflow={"link": "scaleout", "bandwidth_gbs": 50, "latency_us": latency_us},
        transfer={"name": "links", "bandwidth_eff": 1.0},
        workload={"arrival": {"process": "fixed", "rate": 1000.0},
                  "prompt_len": {"dist": "fixed", "value": prompt},
                  "output_len": {"dist": "fixed", "value": 4},
                  "num_requests": n_requests},
    )


def test_one_transfer_is_bytes_over_aggregate_bandwidth_plus_latency(registry):
    n = 1000
    sim = assemble(_exact_config(1, n), registry).run()
    (t,) = _workflow(sim).transfers
    nbytes = n * LLAMA70_KV_BYTES_PER_TOKEN
    assert t.nbytes == nbytes
    assert t.end - t.start == pytest.approx(nbytes / (8 * 50e9) + 10e-6, rel=1e-9)
    r = sim.controller.requests[0]
    assert r.generated == r.output_len and r.cluster == "decode"
    # The second token comes after the transfer: TPOT includes it.
    assert r.stage_times["kv_transferred"] > r.first_token


def test_two_concurrent_transfers_on_one_link_take_twice_as_long(registry):
    n = 1000
    # Two identical requests at t=0 (two closed-loop clients), prefilled side by side on
    # two prefill replicas, leave together for the one decode replica: its receive link
    # is shared.
    cfg = _exact_config(2, n, latency_us=0.0)
    data = cfg.model_dump()
    data["workload"]["arrival"] = None
    data["workload"]["closed_loop"] = {"concurrency": 2}
    data["deployment"]["clusters"][0]["replicas"] = 2
    from frontier_core.config import RunConfig

    cfg = RunConfig.model_validate(data)
    sim = assemble(cfg, registry).run()
    ts = _workflow(sim).transfers
    assert len(ts) == 2
    one = n * LLAMA70_KV_BYTES_PER_TOKEN / (8 * 50e9)
    assert ts[1].start == ts[0].start
    for t in ts:
        assert t.end - t.start == pytest.approx(2 * one, rel=1e-9)


def _tiny_decode(requests: int, prompt: int, output: int, decode_slots: int, prefill_slots: int):
    """Llama-2-7B, P and D on A100s; decode KV holds ``decode_slots`` whole requests."""
    from frontier_core.builtin.hardware import HARDWARE
    from frontier_core.builtin.models import MODELS

    m = next(x for x in MODELS if x.name == "llama-2-7b")
    gib = 1024**3
    a100 = next(h for h in HARDWARE if h.name == "a100-80g-sxm")
    mem = a100.mem_bytes * 0.9  # the default gpu_memory_fraction

    def reserve(tokens: int) -> float:
        return (mem - m.weight_bytes() - tokens * m.kv_bytes_per_token(1)) / gib

    per = prompt + output
    return pd_config(
        prefill={"gpu": "a100-80g-sxm", "activation_reserve_gb": reserve(prefill_slots * per)},
        decode={"gpu": "a100-80g-sxm", "activation_reserve_gb": reserve(decode_slots * per + 16),
                "scheduler": {"name": "vllm", "watermark": 0.0}},
        workflow={"decode_watermark": 0.0},
        workload={"arrival": {"process": "fixed", "rate": 1e5},
                  "prompt_len": {"dist": "fixed", "value": prompt},
                  "output_len": {"dist": "fixed", "value": output},
                  "num_requests": requests},
    )


def _watch_kv(sim, wf, period: float, failures: list[str]):
    """A simpy process checking, every ``period``, that each replica's used blocks are
    exactly the blocks of the requests it holds plus its pending reservations: no
    request's KV is counted on two replicas."""
    env = sim.env

    def proc():
        while sim.controller.finished < sim.controller.total:
            holders: dict[tuple[str, int], int] = {}
            for r in sim.controller.requests:
                if r.blocks:
                    key = (r.cluster, r.replica)
                    holders[key] = holders.get(key, 0) + r.blocks
            for name, cw in sim.clusters.items():
                for rep in cw.replicas:
                    key = (name, rep.index)
                    want = holders.get(key, 0) + wf.reserved.get(key, 0)
                    if rep.kv.used_blocks != want:
                        failures.append(f"t={env.now}: {key} uses {rep.kv.used_blocks}, "
                                        f"holders+reserved {want}")
            yield env.timeout(period)

    env.process(proc())


def test_backpressure_burst_into_tiny_decode_memory_completes(registry):
    cfg = _tiny_decode(requests=200, prompt=512, output=64, decode_slots=2, prefill_slots=12)
    sim = assemble(cfg, registry)
    assert sim.plans["decode"].kv_blocks * 16 < 3 * (512 + 64)  # room for 2, not 3
    failures: list[str] = []
    wf = _workflow(sim)
    wf._bind(sim.controller)
    _watch_kv(sim, wf, 0.005, failures)
    sim.run()
    assert not failures, failures[:3]
    reqs = sim.controller.requests
    assert len(reqs) == 200
    assert all(r.rejected is None and r.generated == r.output_len for r in reqs)
    s = summarize(sim)
    bp = s["workflow"]["backpressure"]
    assert bp["requests_blocked"] > 150
    # Prefill is rate-matched to decode: it cannot run ahead while decode is full, so
    # the last prefill ends late in the run and the prefill pool is mostly idle.
    last_prefill = max(r.first_token for r in reqs)
    makespan = max(r.completion for r in reqs)
    assert last_prefill > 0.8 * makespan
    assert s["clusters"]["prefill"]["busy_fraction"] < 0.2
    # Busy while decode still had room (the first prefills) vs once it was full.
    ts = request_table(sim)  # noqa: F841  (columns exist; see test_outputs)
    for cw in sim.clusters.values():
        for rep in cw.replicas:
            assert rep.kv.free_blocks == rep.kv.num_blocks  # everything released
    assert all(v == 0 for v in wf.reserved.values())


def test_prefill_busy_fraction_drops_while_decode_is_full(registry, tmp_path):
    cfg = _tiny_decode(requests=120, prompt=512, output=64, decode_slots=2, prefill_slots=12)
    sim = assemble(cfg, registry).run()
    write_outputs(sim, tmp_path / "out")
    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "pd_timeseries.csv")))
    busy = [float(r["busy_prefill"]) for r in rows]
    blocked = [float(r["blocked_on_decode_memory"]) for r in rows]
    kv_dec = [float(r["kv_usage_decode"]) for r in rows]
    full = [b for b, k, q in zip(busy, kv_dec, blocked, strict=True) if q > 0 and k > 0.8]
    assert len(full) > len(rows) // 2
    # The burst's first prefills run at full speed; once decode is full, prefill mostly waits.
    assert max(busy[:5]) > 0.9
    assert sum(full) / len(full) < 0.2


def test_request_that_can_never_fit_decode_is_rejected_with_reason(registry):
    cfg = _tiny_decode(requests=20, prompt=512, output=64, decode_slots=2, prefill_slots=12)
    cfg.workload.prompt_len = type(cfg.workload.prompt_len)(dist="fixed", value=512)
    from frontier_core.config import UniformLength

    cfg.workload.output_len = UniformLength(dist="uniform", low=32, high=1500)
    sim = assemble(cfg, registry).run()
    rej = [r for r in sim.controller.requests if r.rejected]
    ok = [r for r in sim.controller.requests if not r.rejected]
    assert rej and ok
    for r in rej:
        assert "decode replica" in r.rejected
        assert r.prompt_len + r.output_len > 2 * 576
        assert math.isnan(r.first_token)  # rejected before wasting a prefill
    assert all(r.generated == r.output_len for r in ok)


def test_heterogeneous_pools_use_the_slower_link(registry):
    cfg = pd_config(
        prefill={"gpu": "h100-sxm", "tp": 2, "replicas": 2},
        decode={"gpu": "a100-80g-sxm", "tp": 4},
        workflow={"latency_us": 0.0},
        transfer={"name": "links", "bandwidth_eff": 1.0},
        workload={"arrival": {"process": "poisson", "rate": 5.0},
                  "prompt_len": {"dist": "uniform", "low": 100, "high": 3000},
                  "output_len": {"dist": "uniform", "low": 2, "high": 50},
                  "num_requests": 60},
    )
    sim = assemble(cfg, registry).run()
    wf = _workflow(sim)
    hw = sim.plans  # noqa: F841
    from frontier_core.builtin.hardware import HARDWARE

    h100 = next(h for h in HARDWARE if h.name == "h100-sxm")
    a100 = next(h for h in HARDWARE if h.name == "a100-80g-sxm")
    bw = min(h100.scaleout_bw, a100.scaleout_bw)
    assert all(t.link == "scaleout" for t in wf.transfers)  # different GPU kinds
    per_token = sim.model.kv_bytes_per_token(4) * 4
    alone = [t for t in wf.transfers
             if not any(o is not t and o.start < t.end and t.start < o.end for o in wf.transfers)]
    assert alone
    for t in alone:  # streams = the sender's 2 GPUs (fewer than the receiver's 4)
        tokens = t.nbytes / per_token
        assert t.end - t.start == pytest.approx(tokens * per_token / (2 * bw), rel=1e-9)
    assert all(r.generated == r.output_len for r in sim.controller.requests)


def test_layerwise_streaming_hides_most_of_the_transfer(registry):
    def run(layerwise: bool):
        cfg = _exact_config(1, 4000)
        cfg.deployment.workflow = type(cfg.deployment.workflow)(
            name="pd", link="scaleout", bandwidth_gbs=5, latency_us=0, layerwise=layerwise)
        return _workflow(assemble(cfg, registry).run()).transfers[0]

    whole, streamed = run(False), run(True)
    assert streamed.nbytes == whole.nbytes
    assert streamed.end - streamed.start < 0.5 * (whole.end - whole.start)
    # At least the last layer's share is still sent after the prefill.
    assert streamed.end - streamed.start >= (whole.end - whole.start) / 80 * 0.999


def test_outputs_breakdown_timeseries_and_trace_flows(registry, tmp_path):
    cfg = _tiny_decode(requests=40, prompt=300, output=20, decode_slots=4, prefill_slots=20)
    sim = assemble(cfg, registry).run()
    s = write_outputs(sim, tmp_path / "o")
    out = tmp_path / "o"
    head = (out / "requests.csv").read_text().splitlines()[0].split(",")
    for c in ("prefill_queue_s", "prefill_s", "decode_memory_wait_s", "transfer_s", "decode_s"):
        assert c in head
    col = request_table(sim)
    e2e = col["e2e_s"]
    parts = sum(col[c] for c in ("prefill_queue_s", "prefill_s", "decode_memory_wait_s",
                                 "transfer_s", "decode_s"))
    assert parts == pytest.approx(e2e, rel=1e-9, abs=1e-12)
    wf = s["workflow"]
    assert wf["transfers"]["count"] == 40
    assert wf["transfers"]["bytes_total"] == pytest.approx(
        40 * 300 * sim.model.kv_bytes_per_token(1))
    assert {"prefill_waiting", "decoding"} <= set(wf["queues"])
    trace = json.loads((out / "trace.json").read_text())["traceEvents"]
    starts = [e for e in trace if e.get("ph") == "s"]
    ends = [e for e in trace if e.get("ph") == "f"]
    assert len(starts) == len(ends) == 40
    assert {e["pid"] for e in starts} != {e["pid"] for e in ends}


def test_same_seed_same_outputs(registry, tmp_path):
    def go(d):
        cfg = _tiny_decode(requests=60, prompt=400, output=30, decode_slots=3, prefill_slots=10)
        cfg.workload.arrival.process = "poisson"
        cfg.workload.arrival.rate = 50.0
        write_outputs(assemble(cfg, registry).run(), tmp_path / d)
        return [(tmp_path / d / f).read_bytes()
                for f in ("summary.json", "requests.csv", "pd_timeseries.csv", "trace.json")]

    assert go("a") == go("b")


@pytest.mark.parametrize(
    "workflow, words",
    [
        ({"prefill": ["nope"]}, ["deployment.workflow.prefill", "nope", "defined"]),
        ({"prefill": ["prefill"], "decode": ["prefill"]}, ["both prefill and decode"]),
        ({"decode": ["decode"], "prefill": ["decode2"]}, ["decode2"]),
    ],
)
def test_bad_stage_lists_are_config_errors(registry, workflow, words):
    from frontier_core.errors import FrontierError

    cfg = _exact_config(1, 100)
    data = cfg.model_dump()
    data["deployment"]["workflow"] = {"name": "pd", **workflow}
    from frontier_core.config import RunConfig

    with pytest.raises((ConfigError, FrontierError)) as e:
        assemble(RunConfig.model_validate(data), registry)
    for w in words:
        assert w in str(e.value)


def test_a_cluster_without_a_stage_is_an_error(registry):
    cfg = _exact_config(1, 100)
    data = cfg.model_dump()
    data["deployment"]["clusters"].append({**data["deployment"]["clusters"][1], "name": "spare"})
    from frontier_core.config import RunConfig

    with pytest.raises(ConfigError, match="spare"):
        assemble(RunConfig.model_validate(data), registry)


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi", "orca"])
def test_decode_cluster_decodes_with_every_builtin_scheduler(registry, scheduler):
    # Regression: with sarathi or orca the decode replica moved transferred requests into
    # ``running`` with an empty batch and then slept, so nothing ever decoded.
    cfg = pd_config(
        prefill={"gpu": "h100-sxm"}, decode={"gpu": "h100-sxm", "scheduler": scheduler},
        # One request at a time, so nothing else wakes an idle decode replica.
        workload={"arrival": {"process": "fixed", "rate": 0.5},
                  "prompt_len": {"dist": "fixed", "value": 256},
                  "output_len": {"dist": "fixed", "value": 16}, "num_requests": 3},
    )
    sim = assemble(cfg, registry).run()
    reqs = sim.controller.requests
    assert len(reqs) == 3 and all(r.generated == 16 and r.rejected is None for r in reqs)
    assert summarize(sim)["clusters"]["decode"]["iterations"] == 3 * 15


def test_a_hybrid_models_transfer_carries_its_recurrent_state(registry):
    """A dense Gated DeltaNet hybrid (Qwen3.5-27B's layout): the KV of its 16 full layers
    for every prompt token plus the fixed state of its 48 linear layers."""
    spec = {"name": "hybrid-27b", "num_layers": 64, "hidden_size": 5120, "num_heads": 24,
            "num_kv_heads": 4, "head_dim": 256, "intermediate_size": 17408,
            "vocab_size": 248320, "max_context": 32768, "attn_output_gate": True,
            "linear_layers": 48, "linear_num_key_heads": 16, "linear_num_value_heads": 48}
    cfg = pd_config(prefill={"gpu": "h100-sxm", "tp": 4}, decode={"gpu": "h100-sxm", "tp": 4},
                    model={"spec": spec},
                    workload={"arrival": {"process": "fixed", "rate": 10.0},
                              "prompt_len": {"dist": "fixed", "value": 1000},
                              "output_len": {"dist": "fixed", "value": 4},
                              "num_requests": 1})
    sim = assemble(cfg, registry).run()
    (t,) = _workflow(sim).transfers
    m = sim.model
    assert m.seq_bytes(4) * 4 > 40e6  # 48 layers x 48 heads x 128 x 128 fp32, and more
    assert t.nbytes == pytest.approx(1000 * m.kv_bytes_per_token(4) * 4 + m.seq_bytes(4) * 4)
