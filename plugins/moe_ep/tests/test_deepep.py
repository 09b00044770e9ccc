"""DeepEP's kernels: token copies by hand, node-limited routing, the kernel families and
the published figures."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from frontier_moe_ep.comm import DeepEP, pair_factors, token_bytes, traffic
from frontier_moe_ep.routing import token_experts
from moehelpers import block, build, config, decode_batch, prefill_batch

from frontier_core import Link

HERE = Path(__file__).parent
SHARED = HERE.parents[2].parent / "shared" / "data" / "reference" / "deepep_h800"


def test_normal_dispatch_copies_match_a_hand_count():
    """2 nodes × 2 GPUs, 2 experts per GPU; every rank sends two tokens: A to experts
    {0, 1, 2} (GPU 0 twice, GPU 1: node 0 only) and B to experts {3, 4, 5} (GPU 1, GPU 2
    twice: both nodes). Counted by hand from DeepEP's path (one RDMA copy per remote node
    to the GPU of the same local index, then one NVLink copy per destination GPU)."""
    expert_gpu = np.arange(8) // 2
    tokens = np.array([[0, 1, 2], [3, 4, 5]] * 4)  # 4 ranks × (A, B)
    phi_gpu, phi_node = pair_factors(expert_gpu[tokens], 4, 2)
    assert phi_gpu.tolist() == [0.5, 1.0, 0.5, 1.0]  # GPU 3 receives nothing
    assert phi_node.tolist() == [0.5, 0.5]
    rank_tok = np.bincount(expert_gpu[tokens].ravel(), minlength=4)[None, :].astype(float)
    d = DeepEP(4, 2, Link(1e9, 0.0), Link(1e9, 0.0))
    c = d.normal_copies(np.full(4, 2.0), rank_tok, phi_gpu[None], phi_node[None])
    # node 0's ranks send B to node 1; node 1's ranks send A and B to node 0
    assert c["rdma_send"][0].tolist() == [1, 1, 2, 2]
    # rank 0 receives A and B of rank 2; rank 2 receives B of rank 0
    assert c["rdma_recv"][0].tolist() == [2, 2, 1, 1]
    # a node-0 forwarder sends A to GPUs 0 and 1 and B to GPU 1 for two sources
    assert c["nvl_send"][0].tolist() == [6, 6, 2, 2]
    assert c["nvl_recv"][0].tolist() == [4, 8, 4, 0]
    nbytes = token_bytes(7168, "fp8")
    assert nbytes == 7168 + 224
    assert d.seconds(c, nbytes, False)[0] == pytest.approx(
        max(2 * nbytes / (1e9 * 0.88), 8 * nbytes / (1e9 * 0.8)))


def test_group_limited_routing_never_exceeds_its_groups():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(256))
    experts = token_experts(p, 8, 8, 3, 2000, rng)
    groups = experts // 32
    assert all(len(set(row)) == 8 for row in experts.tolist())  # distinct experts
    assert max(len(set(row)) for row in groups.tolist()) == 3
    # one group per node (32 experts per node over 4 GPUs): at most 3 nodes per token
    tr = traffic(np.full((1, 256), 1 / 256), np.arange(256)[None], 4, 8, 8, 8, 3, rng, 2000)
    free = traffic(np.full((1, 256), 1 / 256), np.arange(256)[None], 4, 8, 8, 1, 1, rng, 2000)
    assert tr.node.mean() < free.node.mean()  # fewer RDMA copies under the limit


def test_low_latency_kernels_use_rdma_inside_a_node_unless_nvlink_is_allowed():
    src = np.full(8, 128.0)
    rank_tok = np.full((1, 8), 128.0 * 8)
    rdma_only = DeepEP(8, 8, Link(200e9, 0.0), Link(50e9, 0.0), ll_nvlink=False)
    c = rdma_only.ll_copies(src, rank_tok)
    assert c["rdma_send"][0] == pytest.approx(np.full(8, 128 * 8 * 7 / 8))
    assert not c["nvl_send"].any()
    c = DeepEP(8, 8, Link(200e9, 0.0), Link(50e9, 0.0)).ll_copies(src, rank_tok)
    assert not c["rdma_send"].any() and c["nvl_send"][0, 0] == pytest.approx(128 * 8 * 7 / 8)


def _published() -> list[tuple[str, dict, bool]]:
    rows = [("low_latency", r, False) for r in
            csv.DictReader(open(HERE / "data" / "deepep_h800_ll_rdma_2025_02.csv"))]
    if SHARED.is_dir():
        rows += [("normal", r, True) for r in csv.DictReader(open(SHARED / "normal.csv"))]
        rows += [("low_latency", r, True) for r in
                 csv.DictReader(open(SHARED / "low_latency.csv"))]
    return rows


@pytest.mark.parametrize("kernels,row,nvlink", _published())
def test_deepep_published_figures(kernels, row, nvlink):
    """Every published figure within 15% (benchmarks/validate_deepep.py prints the table;
    three rows, EP16 of the normal kernels and the NVLink-era low-latency dispatch, lie
    between 10 and 14%)."""
    from frontier_moe_ep.deepep_check import reproduce

    got = reproduce(kernels, int(row["ep"]), int(row["tokens_per_rank"]),
                    Link(200e9, 3e-6), Link(50e9, 8e-6), ll_nvlink=nvlink)
    for phase in ("dispatch", "combine"):
        if kernels == "normal":
            model, measured = got[phase + "_bandwidth"] / 1e9, float(row[phase + "_gbps"])
        else:
            model, measured = got[phase + "_s"] * 1e6, float(row[phase + "_us"])
        assert model == pytest.approx(measured, rel=0.15), phase


def test_auto_picks_normal_for_prefill_and_low_latency_for_decode():
    sim = build(config(model="deepseek-v3", predictor="zero", cluster={
        "gpu": "h800", "tp": 1, "dp": 16, "moe": {"dispatch_dtype": "fp8"}}))
    b = block(sim)
    ex = sim.executors["main"]
    ex.iteration(prefill_batch(16, 512))
    ex.iteration(decode_batch(16 * 8))
    assert b.stats.kernels == {"normal": 1, "low_latency": 1, "simple": 0, "gather": 0}
    # forced families: all iterations alike
    sim = build(config(model="deepseek-v3", predictor="zero", cluster={
        "gpu": "h800", "tp": 1, "dp": 16, "moe": {"all_to_all": "low_latency"}}))
    sim.executors["main"].iteration(prefill_batch(16, 512))
    assert block(sim).stats.kernels["low_latency"] == 1


def test_node_limited_routing_cuts_normal_dispatch_time():
    """DeepSeek-V3's gating (4 of 8 groups) over 4 nodes (2 groups each) sends fewer
    RDMA copies than the same model without groups."""
    times = []
    for groups in ({}, {"n_group": 1, "topk_group": 1}):
        from frontier_core.builtin.models import MODELS

        spec = next(m for m in MODELS if m.name == "deepseek-v3").model_dump()
        spec.update(groups)
        sim = build(config(model={"spec": spec}, predictor="zero", cluster={
            "gpu": "h800", "tp": 1, "dp": 32, "moe": {"dispatch_dtype": "fp8"}}))
        ex = sim.executors["main"]
        times.append(ex.iteration(prefill_batch(32, 2048)).latency)
    assert times[0] < times[1] * 0.95


def test_auto_moves_nothing_under_tp_attention_and_gathers_for_a_named_engine():
    """TP attention (dp 1): every GPU holds every token, so no dispatch (vLLM runs no
    all2all with one DP rank). With DP attention and an engine named, the engines' default
    all-gather / reduce-scatter; without one, DeepEP's kernels."""
    def moves(cluster):
        return block(build(config(model="qwen3-30b-a3b", cluster=cluster))).moves

    assert moves({"tp": 8}) == "none"
    assert moves({"tp": 1, "dp": 8}) == "deepep"
    assert moves({"tp": 1, "dp": 8, "engine": "vllm"}) == "gather"
    assert moves({"tp": 8, "moe": {"all_to_all": "low_latency"}}) == "low_latency"
    sim = build(config(model="qwen3-30b-a3b", cluster={"tp": 8}))
    out = block(sim).phases(np.array([64]), 0.0, sim.executors["main"].answer, [0.0], False)
    assert not out[1].any() and not out[3].any()


@pytest.mark.parametrize("moe,match", [
    ({"all_to_all": "fast"}, "all_to_all"),
    ({"deepep_sms": -1}, "deepep_sms"),
    ({"overlap_schedule": "tensorrt"}, "overlap_schedule"),
    ({"overlap_schedule": "trtllm", "two_batch_overlap": True}, "two_batch_overlap"),
])
def test_bad_deepep_options_name_the_field(moe, match):
    from frontier_core import ConfigError

    with pytest.raises(ConfigError, match=match) as e:
        build(config(model="qwen3-30b-a3b", cluster={"tp": 1, "dp": 8, "moe": moe}))
    assert "deployment.clusters[0].moe" in str(e.value)
