"""The af block: the ping-pong timeline, GPUs and memory of both sides, composition."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from frontier_af_pingpong.schedule import pingpong, steady_state

from frontier_core import ComponentSpec, ConfigError, hookimpl, load_registry
from frontier_core.app.metrics import report_lines, write_outputs
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.records import Batch, Request
from frontier_core.testing import linear_test_plugin

# ---- validation 1: the timeline against the closed form -----------------------------


@pytest.mark.parametrize("t_f,t_c,layers", [(1e-3, 0.4e-3, 5), (2e-3, 0.1e-3, 7),
                                              (0.5e-3, 0.5e-3, 3)])
def test_pingpong_meets_the_closed_form_exactly_past_the_threshold(t_f, t_c, layers):
    threshold = 2 * (1 + t_c / t_f)
    for m in range(1, 9):
        ones = np.ones((layers, m))
        tl = pingpong(ones * t_f, ones * t_c, ones * t_f, ones * t_c)
        closed = steady_state(t_f, t_f, t_c, layers, m)
        if m >= threshold:
            assert tl.makespan == pytest.approx(closed, rel=1e-12)
            assert tl.busy[2] == pytest.approx(m * layers * t_f)  # the FFN never waits
            # The critical path covers the whole iteration without gaps (which resources
            # it runs through is not unique when both sides are saturated).
            assert tl.critical.sum() == pytest.approx(tl.makespan)
        else:
            assert tl.makespan > closed * (1 + 1e-9)
            # Bubbles: the FFN side idles for part of the iteration.
            assert tl.busy[2] / tl.makespan < 1 - 0.05


def test_pingpong_respects_dependencies_and_resources():
    rng = np.random.default_rng(0)
    a, a2f, f, f2a = (rng.uniform(1e-4, 1e-3, (4, 3)) for _ in range(4))
    tl = pingpong(a, a2f, f, f2a, keep=True)
    st = tl.starts
    dur = np.stack([a, a2f, f, f2a])
    assert tl.critical.sum() == pytest.approx(tl.makespan)  # the path has no gaps here
    end = st + dur
    assert (st[1] >= end[0] - 1e-15).all() and (st[2] >= end[1] - 1e-15).all()
    assert (st[3] >= end[2] - 1e-15).all()
    assert (st[0, 1:] >= end[3, :-1] - 1e-15).all()  # next layer after the results are back
    for r in range(4):  # one task at a time per resource, in (layer, micro-batch) order
        order = st[r].ravel()
        assert (order[1:] >= (end[r].ravel())[:-1] - 1e-15).all()
    assert tl.makespan == pytest.approx(end[3].max())
    serial = dur.sum()
    assert max(dur.sum(axis=(1, 2))) <= tl.makespan <= serial


def test_uneven_micro_batches_leave_bubbles():
    even = pingpong(*(np.ones((4, 2)) * 1e-3 for _ in range(4)))
    skew = np.array([[1.5e-3, 0.5e-3]] * 4)
    uneven = pingpong(skew, np.ones((4, 2)) * 1e-3, skew, np.ones((4, 2)) * 1e-3)
    assert uneven.makespan > even.makespan


# ---- the block in runs ----------------------------------------------------------------


def registry(*more: Any):
    import frontier_af_pingpong.plugin as af
    import frontier_moe_ep.plugin as moe

    return load_registry(entry_points=False, extra=[af, moe, linear_test_plugin(), *more])


def config(model: str = "mixtral-8x7b", cluster: dict | None = None, ffn: dict | None = None,
           **extra: Any) -> RunConfig:
    c = {"name": "main", "gpu": "h100-sxm", "dp": 4, "tp": 1,
         "ffn": {"name": "af", "ffn_gpus": 8, "micro_batches": 2, **(ffn or {})}, **(cluster or {})}
    data: dict[str, Any] = {
        "model": model, "predictor": "linear-test",
        "deployment": {"clusters": [c]},
        "workload": {"closed_loop": {"concurrency": 64},
                     "prompt_len": {"dist": "fixed", "value": 128},
                     "output_len": {"dist": "fixed", "value": 32}, "num_requests": 128},
        "seed": 0, **extra,
    }
    return RunConfig.model_validate(data)


def decode(n: int, context: int = 512) -> Batch:
    return Batch(decode=[Request(i, 0.0, context, 50, computed=context, generated=1,
                                 prefill_target=context, dp_rank=i) for i in range(n)])


def test_gpus_and_memory_of_both_sides():
    sim = assemble(config(), registry())
    plan, m = sim.plans["main"], sim.model
    assert plan.gpus == 4 + 8
    assert plan.weight_bytes_per_gpu == pytest.approx(m.weight_bytes() - m.ffn_bytes())
    co = assemble(config(cluster={"ffn": None, "dp": 1, "tp": 4}), registry()).plans["main"]
    # The attention GPUs hold no FFN weights: more KV bytes per GPU than co-located TP4.
    af_kv = plan.kv_blocks / 4 * plan.block_size * plan.kv_bytes_per_token_per_gpu
    co_kv = co.kv_blocks * co.block_size * co.kv_bytes_per_token_per_gpu
    assert af_kv > 1.3 * co_kv


def test_more_micro_batches_fill_the_bubbles_of_a_balanced_pair():
    ex = assemble(config(ffn={"micro_batches": 1}), registry()).executors["main"]
    one = ex.iteration(decode(1024)).latency
    ex2 = assemble(config(ffn={"micro_batches": 2}), registry()).executors["main"]
    two = ex2.iteration(decode(1024)).latency
    assert two < one * 0.8
    b = ex2.moe_ffn
    assert b.stats.steps == 1
    util = np.frombuffer(b.stats.busy) / b.stats.makespan[0]
    assert (util <= 1 + 1e-12).all()


def test_report_trace_and_line(tmp_path):
    sim = assemble(config(ffn={"trace_iterations": 2}), registry()).run()
    s = write_outputs(sim, tmp_path / "o")
    af = s["clusters"]["main"]["moe"]
    assert af["ffn_gpus"] == 8 and af["attention_gpus"] == 4 and af["micro_batches"] == 2
    assert 0 < af["utilisation"]["attention"] <= 1 and 0 < af["utilisation"]["ffn"] <= 1
    assert af["critical_resource"] in ("attention", "ffn", "a2f", "f2a")
    assert sum(af["critical_path_share"].values()) == pytest.approx(1.0)
    assert af["experts"]["ep"] == 8
    assert af["experts"]["straggler_ratio"]["mean"] >= 1.0
    trace = json.loads((tmp_path / "o" / "trace.json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in trace if e.get("name") == "thread_name"}
    assert {"replica 0 · attention", "replica 0 · FFN", "replica 0 · A→F",
            "replica 0 · F→A"} <= names
    tid = {e["args"]["name"]: e["tid"] for e in trace if e.get("name") == "thread_name"}
    att = [e for e in trace if e.get("tid") == tid["replica 0 · attention"] and e["ph"] == "X"]
    ffn = [e for e in trace if e.get("tid") == tid["replica 0 · FFN"] and e["ph"] == "X"]
    # Ping-pong: attention works on one micro-batch while the FFN side works on another.
    overlap = any(a["ts"] < f["ts"] + f["dur"] and f["ts"] < a["ts"] + a["dur"]
                  and a["name"][-3:] != f["name"][-3:] for a in att for f in ffn)
    assert overlap
    assert any(line.startswith("af main: 4 attention + 8 FFN GPUs") for line in report_lines(sim))


def test_unbalanced_sides_show_the_idle_one():
    few_ffn = assemble(config(ffn={"ffn_gpus": 1}, model="qwen3-30b-a3b",
                              cluster={"dp": 8}), registry())
    few_ffn.executors["main"].iteration(decode(2048))
    busy = np.frombuffer(few_ffn.executors["main"].moe_ffn.stats.busy)
    assert busy[2] > 3 * busy[0]  # FFN-bound: attention idles
    crit = np.frombuffer(few_ffn.executors["main"].moe_ffn.stats.critical)
    assert crit[2] > 5 * crit[0]  # the critical path runs through the FFN side (and links)
    few_att = assemble(config(ffn={"ffn_gpus": 16}, model="qwen3-30b-a3b",
                              cluster={"dp": 1}), registry())
    few_att.executors["main"].iteration(decode(2048))
    busy = np.frombuffer(few_att.executors["main"].moe_ffn.stats.busy)
    assert busy[0] > 3 * busy[2]  # attention-bound: the FFN side idles
    crit = np.frombuffer(few_att.executors["main"].moe_ffn.stats.critical)
    assert crit[0] > 5 * crit[2]


def test_dense_model_and_another_gpu_kind_for_the_ffn_side():
    sim = assemble(config(model="llama-3.1-8b", ffn={"ffn_gpus": 2, "ffn_gpu": "a100-80g-sxm"}),
                   registry())
    ex = sim.executors["main"]
    ex.iteration(decode(64))
    b = ex.moe_ffn
    assert b.moe is None and b.dev_f.name == "a100-80g-sxm" and b.link_kind == "scaleout"
    assert sim.plans["main"].gpus == 6


def test_same_seed_same_run(tmp_path):
    cfg = config(ffn={"moe": {"routing": "power_law:1.2"}})
    for name in ("a", "b"):
        write_outputs(assemble(cfg, registry()).run(), tmp_path / name)
    for f in ("summary.json", "requests.csv", "trace.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


@pytest.mark.parametrize("ffn,match", [
    ({"ffn_gpu": "tpu-v9"}, "not a GPU kind"),
    ({"moe": {"ep": 4}}, "decides itself"),
    ({"moe": {"routing": "zipf"}}, "routing"),
    ({"ffn_gpus": 1}, "spread the experts over more FFN GPUs"),
    ({"micro_batches": 0}, "micro_batches"),
    ({"moe": {"dispatch_dtype": "fp8"}}, "af's own options"),
    ({"moe": {"all_to_all": "deepep"}}, "attention-FFN link"),
    ({"moe": {"placement": "eplb", "eplb_interval": 100}}, "live EPLB"),
    ({"ffn_gpus": 3}, "ep = ffn_gpus = 3"),
])
def test_bad_af_options_are_config_errors(ffn, match):
    cfg = config(model="mixtral-8x22b", ffn=ffn)
    if ffn.get("ffn_gpus") == 3:
        cfg = config(model="qwen3-30b-a3b", ffn=ffn)
    with pytest.raises(ConfigError, match=match) as e:
        assemble(cfg, registry())
    assert "\n" not in str(e.value)


def test_af_with_pipeline_stages_is_refused():
    with pytest.raises(ConfigError, match="pp is 2"):
        assemble(config(cluster={"pp": 2}), registry())


def test_dense_ffn_time_is_credited_for_every_layer():
    sim = assemble(config(model="llama-3.1-8b", ffn={"ffn_gpus": 2, "micro_batches": 1}),
                   registry())
    ex = sim.executors["main"]
    t = ex.iteration(decode(64)).latency
    assert sum(ex.credit) == pytest.approx(t, rel=0.35)  # not a small fraction of it


def test_a_block_without_step_cannot_be_the_ffn():
    cfg = config(cluster={"ffn": {"name": "dense"}})
    with pytest.raises(ConfigError, match="no per-iteration step"):
        assemble(cfg, registry())


def test_deepseek_pd_with_af_decode_and_ep_experts(tmp_path):
    """Composition: PD prefill (EP) feeding an AF decode group whose experts are EP."""
    pytest.importorskip("frontier_pd_disagg")
    import frontier_pd_disagg.plugin as pd

    data = {
        "model": "deepseek-v3", "predictor": "linear-test",
        "deployment": {"workflow": {"name": "pd"}, "clusters": [
            {"name": "prefill", "gpu": "h800", "dp": 16, "tp": 1,
             "moe": {"routing": "power_law:1.01", "placement": "eplb",
                     "redundant_experts": 16}},
            {"name": "decode", "gpu": "h800", "dp": 8, "tp": 1,
             "ffn": {"name": "af", "ffn_gpus": 32, "micro_batches": 3,
                     "moe": {"routing": "power_law:1.01", "placement": "eplb",
                             "redundant_experts": 32}}},
        ]},
        "workload": {"arrival": {"process": "poisson", "rate": 8},
                     "prompt_len": {"dist": "fixed", "value": 1024},
                     "output_len": {"dist": "fixed", "value": 64}, "num_requests": 40},
        "seed": 0,
    }
    sim = assemble(RunConfig.model_validate(data), registry(pd)).run()
    s = write_outputs(sim, tmp_path / "ds")
    assert s["requests"]["completed"] == 40
    assert s["gpus"] == 16 + 8 + 32
    dec = s["clusters"]["decode"]["moe"]
    assert dec["experts"]["slots"] == 288 and dec["ffn_gpus"] == 32
    assert s["workflow"]["transfers"]["count"] == 40


class _StepCounter:
    def __init__(self, options, ctx):
        self.layers = []

    def step(self, s):
        self.layers.append(s.layers)
        return s.other_s * s.layers


def test_kernel_ffn_block_covers_every_layer_of_a_dense_model():
    @hookimpl
    def frontier_ffn_blocks():
        return [ComponentSpec("count", _StepCounter, summary="tests")]

    reg = registry(SimpleNamespace(frontier_ffn_blocks=frontier_ffn_blocks))
    sim = assemble(config(model="llama-3.1-8b", cluster={"ffn": {"name": "count"}, "dp": 2}),
                   reg)
    sim.executors["main"].iteration(decode(8))
    assert sim.executors["main"].moe_ffn.layers == [32]


def test_an_mtp_pass_through_af_is_one_mean_layer_and_records_nothing():
    cfg = config(cluster={"speculative": {"method": "mtp", "k": 1, "acceptance": 0.8}})
    ex = assemble(cfg, registry()).executors["main"]
    b = ex.moe_ffn
    target = ex.iteration(decode(256)).latency  # the target's pass, then one MTP pass
    loads = len(b.moe.stats.ratio)  # the experts' per-iteration load records
    assert b.stats.steps == 1 and loads == 1
    ids = np.arange(256)
    draft = ex.spec.drafter.run(None, None, None, np.full(256, 513), None, None, ids).latency
    assert b.stats.steps == 1 and len(b.moe.stats.ratio) == loads
    assert 0 < draft < 2.5 * target / ex.model.num_layers
