"""The engines' overlap schedules as data, and the SMs DeepEP's normal kernels take."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_moe_ep.overlap import SCHEDULES, staged
from moehelpers import block, build, config, decode_batch, prefill_batch


def ops(**seconds: float) -> dict[str, np.ndarray]:
    keys = ("attn_prepare", "attn_core", "gate", "shared", "dispatch", "experts", "combine")
    return {k: np.array([seconds.get(k, 0.0)]) for k in keys}


def test_decode_schedule_by_hand():
    """One layer of SGLang's decode schedule (delta 2). Stages per micro-batch:
    [prepare] [core, gate] [dispatch_a, shared] [dispatch_b, experts, combine_a]
    [combine_b]; issue order a0 a1 (a2 b0) (a3 b1) (a4 b2) b3 b4."""
    one = ops(attn_prepare=1, attn_core=2, gate=0, shared=1, dispatch=5, experts=3, combine=4)
    # compute stream: a.prep 0-1, a.core 1-3; a.dispatch 3-8 on the network; a.shared 3-4,
    # b.prep 4-5; a waits for its dispatch (8), experts 8-11, a.combine 11-15; b.core
    # 11-13; a.combine_b holds the stream until 15; b.dispatch 15-20, b.shared 15-16; b
    # waits for its dispatch (20), experts 20-23, b.combine 23-27; b.combine_b: 27.
    assert staged("sglang_decode", [one, one]) == pytest.approx(27.0)
    # one micro-batch: only the shared expert hides behind its own dispatch
    assert staged("sglang_decode", [one]) == pytest.approx(1 + 2 + 5 + 3 + 4)


def test_prefill_schedule_hides_communication_behind_the_other_micro_batch():
    heavy = ops(attn_prepare=2, attn_core=2, dispatch=4, experts=4, combine=4)
    t = staged("sglang_prefill", [heavy, heavy])
    serial = 2 * (2 + 2 + 4 + 4 + 4)
    assert max(2 * 8, 2 * 8) <= t < serial


def test_gemm_share_slows_only_gemms():
    """SGLang's prefill schedule gives DeepGEMM the SMs left by DeepEP: GEMMs take
    SMs ÷ (SMs − deepep_sms) longer, attention does not."""
    no_comm = ops(attn_prepare=1, attn_core=2, gate=0.5, shared=0.5, experts=3)
    scale = 132 / (132 - 20)
    t = staged("sglang_prefill", [no_comm, no_comm], scale)
    assert t == pytest.approx(2 * (2 + (1 + 0.5 + 0.5 + 3) * scale))


def test_schedules_are_sglangs():
    delta, layer = SCHEDULES["sglang_decode"]
    assert delta == 2 and layer.count("|") == 5 and layer.index("shared") == \
        layer.index("dispatch_a") + 1
    delta, layer = SCHEDULES["sglang_prefill"]
    assert delta == 0 and layer.index("shared") > layer.index("combine_a")


def _deepseek(tbo: bool, **moe):
    return build(config(model="deepseek-v3", predictor="roofline", cluster={
        "gpu": "h800", "tp": 1, "dp": 32, "moe": {
            "two_batch_overlap": tbo, "shared_experts": "routed", "dispatch_dtype": "fp8",
            "all_to_all": "deepep", **moe}}), _registry())


def _registry():
    from frontier_core import load_registry

    return load_registry()


def test_tbo_decode_gain_changes_sign_with_the_batch():
    """Each micro-batch reads the weights again: at a few sequences per GPU overlap
    costs more than it hides, at hundreds it pays (SGLang PR #9660: on H20 "a positive
    throughput gain is only observed at larger batch sizes (e.g., 64, 128)")."""
    def gain(per_gpu):
        t = [_deepseek(tbo).executors["main"].iteration(decode_batch(32 * per_gpu, 2048)).latency
             for tbo in (False, True)]
        return t[0] / t[1] - 1

    assert gain(4) < -0.1
    assert gain(256) > 0.05


def test_deepep_sms_slow_prefill_overlap_but_not_decode():
    def t(sms, batch):
        return _deepseek(True, deepep_sms=sms).executors["main"].iteration(batch).latency

    pre = prefill_batch(32, 2048)
    assert t(20, pre) > t(0, pre) * 1.02
    dec = decode_batch(32 * 64, 2048)
    assert t(20, dec) == t(0, dec)  # the low-latency kernels take no SMs


def test_deepep_sms_beyond_the_gpu_is_a_config_error():
    from frontier_core import ConfigError

    with pytest.raises(ConfigError, match="deepep_sms"):
        _deepseek(True, deepep_sms=132)


def test_non_gemm_work_beside_a_transfer_shares_the_sms():
    """Prefill schedule, one layer: a's attention 0-5, its dispatch 5-6; b's attention
    starts at 5 beside that dispatch, so its first second runs at SMs ÷ (SMs − 20)."""
    one = ops(attn_core=5, dispatch=1)
    scale = 132 / (132 - 20)
    assert staged("sglang_prefill", [one, one]) == pytest.approx(11.0)
    assert staged("sglang_prefill", [one, one], 1.0, scale) == pytest.approx(11 + scale - 1)


def test_trtllm_schedule_hides_the_shared_experts_behind_the_dispatch():
    """TensorRT-LLM runs one batch with the shared experts beside the routed path: they
    cost nothing while the dispatch is in flight, and delay the routed experts by what
    outlasts it."""
    short = ops(attn_prepare=1, attn_core=2, gate=0.5, shared=1, dispatch=3, experts=2,
                combine=1)
    assert staged("trtllm", [short]) == pytest.approx(1 + 2 + 0.5 + 3 + 2 + 1)
    long = ops(attn_prepare=1, attn_core=2, gate=0.5, shared=4, dispatch=3, experts=2,
               combine=1)
    assert staged("trtllm", [long]) == pytest.approx(1 + 2 + 0.5 + 4 + 2 + 1)


def test_trtllm_engine_picks_its_schedule_and_saves_the_shared_experts():
    """``overlap_schedule: auto`` follows the engine, and TensorRT-LLM's decode step is
    shorter than the sequential one by at most the shared experts' time per layer."""
    def latency(schedule):
        sim = _deepseek(False, overlap_schedule=schedule, shared_experts="local",
                        all_to_all="low_latency")
        return sim.executors["main"].iteration(decode_batch(32 * 64, 2048)).latency

    seq, trt = latency("sglang"), latency("trtllm")
    assert seq > trt
    sim = build(config(model="deepseek-v3", cluster={"gpu": "h800", "tp": 1, "dp": 32,
                                                      "engine": "trtllm"}))
    assert block(sim).schedule == "trtllm"
    assert block(_deepseek(False)).schedule == "sglang"
