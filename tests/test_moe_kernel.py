"""The kernel's contract with per-iteration FFN blocks (``MoELayers``) and DP attention,
checked with a stand-in block, so it holds without any MoE distribution installed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from simhelpers import small_config

from frontier_core import ComponentSpec, WorkflowReport, hookimpl, load_registry
from frontier_core.app.metrics import report_lines, write_outputs
from frontier_core.assemble import assemble
from frontier_core.errors import ConfigError
from frontier_core.records import Batch, Request
from frontier_core.testing import linear_test_plugin


class FakeMoE:
    """Every MoE layer takes ``other_s`` + 1 ms; records what the kernel passed."""

    def __init__(self, options, ctx):
        self.calls = []
        self.gb = ctx.model.routed_expert_bytes() / 4

    def step(self, s):
        self.calls.append((s.tokens.copy(), s.layers, s.other_s, s.replica, s.now))
        return (s.other_s + 1e-3) * s.layers

    def weight_bytes_per_gpu(self):
        return self.gb

    def report(self, pid, name):
        return WorkflowReport(summary={"steps": len(self.calls)},
                              trace_events=[{"ph": "i", "pid": pid, "name": "fake-moe"}],
                              lines=[f"fake moe {name}"])


def fake_plugin():
    @hookimpl
    def frontier_ffn_blocks():
        return [ComponentSpec("moe", FakeMoE, summary="tests")]

    return SimpleNamespace(frontier_ffn_blocks=frontier_ffn_blocks)


@pytest.fixture
def reg():
    return load_registry(entry_points=False, extra=[linear_test_plugin(), fake_plugin()])


def moe_config(**cluster):
    return small_config(model="mixtral-8x7b", deployment={"clusters": [
        {"name": "main", "gpu": "h100-sxm", "tp": 2, **cluster}]})


def decode(ids, context=512):
    return Batch(decode=[Request(i, 0.0, context, 50, computed=context, generated=1,
                                 prefill_target=context, dp_rank=i) for i in ids])


def test_step_is_called_once_per_iteration_with_dp_token_counts(reg, tmp_path):
    sim = assemble(moe_config(dp=4, replicas=2), reg).run()
    b = sim.executors["main"].moe_ffn
    iters = sum(len(r.iterations) // 6 for r in sim.clusters["main"].replicas)
    assert len(b.calls) == iters
    assert all(len(t) == 4 and layers == 32 for t, layers, *_ in b.calls)
    assert {rep for *_, rep, _ in b.calls} == {0, 1}
    s = write_outputs(sim, tmp_path / "o")
    assert s["clusters"]["main"]["moe"] == {"steps": iters}
    assert s["clusters"]["main"]["dp"] == 4 and s["clusters"]["main"]["gpus"] == 16
    trace = json.loads((tmp_path / "o" / "trace.json").read_text())["traceEvents"]
    assert any(e.get("name") == "fake-moe" for e in trace)
    assert "fake moe main" in report_lines(sim)


def test_iteration_time_adds_the_block_and_the_slowest_rank(reg):
    sim = assemble(moe_config(dp=4), reg)
    ex = sim.executors["main"]
    b = ex.moe_ffn
    even = ex.iteration(decode(range(8)))
    t_even, _, other_even, *_ = b.calls[-1]
    assert t_even.tolist() == [2, 2, 2, 2]
    skew = ex.iteration(decode([0, 4, 8, 12, 16, 20, 1, 2]))  # six on rank 0
    t_skew, _, other_skew, *_ = b.calls[-1]
    assert t_skew.tolist() == [6, 1, 1, 0]
    assert other_skew > other_even
    assert skew.latency > even.latency
    # The block's seconds are the MoE layers' whole time: 1 ms more per layer than other_s.
    assert even.latency > 32 * 1e-3


def test_memory_plan_takes_expert_bytes_from_the_block_and_kv_from_dp(reg):
    one = assemble(moe_config(), reg).plans["main"]
    four = assemble(moe_config(dp=4), reg).plans["main"]
    m = assemble(moe_config(), reg).model
    expected = m.weight_bytes() / 2 - m.routed_expert_bytes() / 2 + m.routed_expert_bytes() / 4
    assert one.weight_bytes_per_gpu == pytest.approx(expected)
    assert four.kv_blocks == 4 * one.kv_blocks


def test_dp_needs_a_moe_model(reg):
    cfg = small_config(deployment={"clusters": [{"name": "main", "dp": 2}]})
    with pytest.raises(ConfigError, match="dp is 2"):
        assemble(cfg, reg)


def test_moe_options_without_name_name_the_moe_block():
    from frontier_core.config import ClusterConfig

    c = ClusterConfig.model_validate({"moe": {"ep": 8, "routing": "uniform"}})
    assert c.moe.name == "moe" and c.moe.options == {"ep": 8, "routing": "uniform"}


def test_tokens_per_rank_follow_the_requests_ranks(reg):
    sim = assemble(moe_config(dp=3), reg)
    ex = sim.executors["main"]
    reqs = [Request(i, 0.0, 100, 10, prefill_target=100, dp_rank=i % 3) for i in (0, 1, 5)]
    ex.iteration(Batch(prefill=reqs, chunks=[10, 20, 30]))
    assert ex.moe_ffn.calls[-1][0].tolist() == [10, 20, 30]
    assert np.issubdtype(ex.moe_ffn.calls[-1][0].dtype, np.integer)


def test_a_moe_block_of_another_name_does_not_need_frontier_moe_ep():
    def other_plugin():
        @hookimpl
        def frontier_ffn_blocks():
            return [ComponentSpec("my_moe", FakeMoE, summary="tests")]

        return SimpleNamespace(frontier_ffn_blocks=frontier_ffn_blocks)

    reg = load_registry(entry_points=False, extra=[linear_test_plugin(), other_plugin()])
    sim = assemble(moe_config(moe={"name": "my_moe"}), reg)
    assert isinstance(sim.executors["main"].moe_ffn, FakeMoE)
    with pytest.raises(ConfigError, match="frontier-moe-ep"):
        assemble(moe_config(), reg)


def test_mla_decode_attends_to_the_latent_prefill_to_decompressed_heads(reg):
    """DeepSeek's MLA: decode is priced absorbed (one 576-wide latent per token, shared by
    every head), prefill with per-head keys and values (128 + 64 wide)."""
    calls = []

    class Spy:
        def predict(self, call):
            if call.op.startswith("attention"):
                calls.append((call.op, call.num_heads, call.num_kv_heads, call.head_dim))
            return 1e-6

    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("spy", lambda o, ctx: Spy(), summary="tests")]

    class Spread(FakeMoE):  # the experts spread over 64 GPUs' worth of memory
        def __init__(self, options, ctx):
            super().__init__(options, ctx)
            self.gb = ctx.model.routed_expert_bytes() / 64

    @hookimpl
    def frontier_ffn_blocks():
        return [ComponentSpec("moe", Spread, summary="tests")]

    r = load_registry(entry_points=False, extra=[SimpleNamespace(
        frontier_predictors=frontier_predictors, frontier_ffn_blocks=frontier_ffn_blocks)])
    cfg = small_config(model="deepseek-v3", predictor=["spy"], deployment={"clusters": [
        {"name": "main", "gpu": "h800", "dp": 8, "tp": 1}]})
    ex = assemble(cfg, r).executors["main"]
    ex.iteration(decode(range(4)))
    ex.iteration(Batch(prefill=[Request(0, 0.0, 64, 4, prefill_target=64)], chunks=[64]))
    assert ("attention_decode", 128, 1, 576) in calls
    assert ("attention_prefill", 128, 128, 192) in calls
