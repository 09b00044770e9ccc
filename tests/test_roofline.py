"""The roofline predictor, a kernel built-in: physics checks on the algorithm alone,
the hookimpl registered on a fresh plugin manager, then discovery (the kernel's own)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pluggy
import pytest
from pydantic import ValidationError

import frontier_core.hookspecs
from frontier_core.builtin import plugin
from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.builtin.roofline import (
    DEFAULT_EFFICIENCY,
    EFFICIENCY,
    RooflineOptions,
    RooflinePredictor,
    collective_time,
    efficiency_for,
)
from frontier_core.components import BuildContext, ComponentSpec, Link
from frontier_core.errors import ConfigError
from frontier_core.model.catalog import HardwareSpec
from frontier_core.model.dtypes import DTYPE_BYTES
from frontier_core.records import OPS, OpCall

HW = {h.name: h for h in HARDWARE}
MODEL = {m.name: m for m in MODELS}


def roofline(hw: str = "h100-sxm", **opts: object) -> RooflinePredictor:
    return RooflinePredictor(RooflineOptions(**opts), HW[hw])


def decode_gemms(model_name: str) -> list[OpCall]:
    """The GEMMs of one batch-1 decode step of a dense Llama-style model (TP 1)."""
    m = MODEL[model_name]
    h, f = m.hidden_size, m.intermediate_size
    qkv = (m.num_heads + 2 * m.num_kv_heads) * m.hd
    per_layer = [
        OpCall("gemm", "qkv_proj", m=1, n=qkv, k=h),
        OpCall("gemm", "o_proj", m=1, n=m.num_heads * m.hd, k=h),
        OpCall("gemm", "mlp_gate_up", m=1, n=2 * f, k=h),
        OpCall("gemm", "mlp_down", m=1, n=h, k=f),
    ]
    return per_layer * m.num_layers + [OpCall("gemm", "lm_head", m=1, n=m.vocab_size, k=h)]


def lens(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


# ---- GEMM ---------------------------------------------------------------------


@pytest.mark.parametrize("hw, expected_ms", [("h100-sxm", 4.0), ("a100-80g-sxm", 6.6)])
def test_decode_step_gemms_are_bound_by_weight_streaming(hw: str, expected_ms: float) -> None:
    calls = decode_gemms("llama-2-7b")
    weight_bytes = sum(c.n * c.k for c in calls) * DTYPE_BYTES["bf16"]
    floor = weight_bytes / HW[hw].mem_bw
    assert floor == pytest.approx(expected_ms * 1e-3, rel=0.03)
    pred = roofline(hw)
    total = sum(pred.predict(c) for c in calls)
    assert floor <= total < 2 * floor


def test_big_gemm_is_compute_bound() -> None:
    hw = HW["h100-sxm"]
    pred = roofline("h100-sxm")
    m = n = k = 8192
    t = pred.predict(OpCall("gemm", m=m, n=n, k=k))
    ce, _ = EFFICIENCY["h100"]
    assert t == pytest.approx(2 * m * n * k / (hw.peak_flops("bf16") * ce) + 4e-6, rel=1e-12)


def test_options_override_the_efficiency_table() -> None:
    hw = HW["a100-80g-sxm"]
    m = n = k = 8192
    t = roofline("a100-80g-sxm", compute_eff=0.5).predict(OpCall("gemm", m=m, n=n, k=k))
    assert t == pytest.approx(2 * m * n * k / (hw.peak_flops("bf16") * 0.5) + 4e-6, rel=1e-12)
    # bandwidth side: a GEMV streams its weights
    gemv = OpCall("gemm", m=1, n=16384, k=16384)
    slow = roofline("a100-80g-sxm", bw_eff=0.4, launch_s=0.0).predict(gemv)
    fast = roofline("a100-80g-sxm", bw_eff=0.8, launch_s=0.0).predict(gemv)
    assert slow == pytest.approx(2 * fast, rel=1e-12)


def test_fp8_gemm_uses_the_fp8_peak_and_one_byte_elements() -> None:
    big = OpCall("gemm", m=8192, n=8192, k=8192)
    gemv = OpCall("gemm", m=1, n=16384, k=16384)
    pred = roofline("h100-sxm", launch_s=0.0)
    assert pred.predict(OpCall("gemm", dtype="fp8", m=8192, n=8192, k=8192)) == pytest.approx(
        pred.predict(big) / 2, rel=1e-3
    )
    assert pred.predict(OpCall("gemm", dtype="fp8", m=1, n=16384, k=16384)) == pytest.approx(
        pred.predict(gemv) / 2, rel=1e-3
    )


# ---- attention ----------------------------------------------------------------


def _decode(kv: np.ndarray) -> OpCall:
    return OpCall(
        "attention_decode",
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        q_lens=np.ones_like(kv),
        kv_lens=kv,
    )


def test_decode_attention_scales_linearly_with_total_kv() -> None:
    pred = roofline("h100-sxm")
    t1, t2, t3 = (pred.predict(_decode(lens(*[c] * 16))) for c in (1000, 2000, 3000))
    # affine in sum(kv) at a fixed batch (the constant is launch + Q/O traffic)
    assert t2 - t1 == pytest.approx(t3 - t2, rel=1e-9)
    launch = 4e-6
    assert (t2 - launch) / (t1 - launch) == pytest.approx(2.0, rel=0.01)
    # memory-bound: the KV read at the HBM roofline
    kv_bytes = 2 * 16 * 2000 * 8 * 128 * 2
    assert t2 - launch == pytest.approx(kv_bytes / (HW["h100-sxm"].mem_bw * 0.85), rel=0.01)


def test_decode_attention_reads_the_cache_as_laid_out() -> None:
    pred = roofline("h100-sxm")
    kv = lens(*[4000] * 16)
    launch = 4e-6
    plain = pred.predict(_decode(kv)) - launch
    call = _decode(kv)
    fp8 = pred.predict(replace(call, extra={"kv_bytes": 1})) - launch
    latent = pred.predict(replace(call, extra={"kv_planes": 1, "kv_bytes": 2})) - launch
    qo = 2 * 16 * 32 * 128 * 2 / (HW["h100-sxm"].mem_bw * 0.85)  # Q in, O out
    # An fp8 cache moves half the bytes; one shared latent (MLA) is read once, not twice.
    assert fp8 - qo == pytest.approx((plain - qo) / 2, rel=1e-9)
    assert latent - qo == pytest.approx((plain - qo) / 2, rel=1e-9)


def _prefill(q: np.ndarray, kv: np.ndarray | None = None) -> OpCall:
    return OpCall(
        "attention_prefill",
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        q_lens=q,
        kv_lens=q if kv is None else kv,
    )


def test_prefill_attention_is_quadratic_in_sequence_length() -> None:
    pred = roofline("h100-sxm")
    one_long = pred.predict(_prefill(lens(4096)))
    four_short = pred.predict(_prefill(lens(1024, 1024, 1024, 1024)))
    assert one_long > 3 * four_short
    # causal FLOPs of a full prompt of n tokens: 4·heads·hd·n(n+1)/2
    n = 4096
    flops = 4 * 32 * 128 * n * (n + 1) / 2
    peak = HW["h100-sxm"].peak_flops("bf16") * EFFICIENCY["h100"][0]
    assert one_long == pytest.approx(flops / peak + 4e-6, rel=1e-9)


def test_chunked_prefill_counts_the_earlier_context() -> None:
    pred = roofline("h100-sxm", launch_s=0.0)
    # a 512-token chunk after 3584 cached tokens sees more keys than a fresh prompt of 512
    fresh = pred.predict(_prefill(lens(512)))
    late = pred.predict(_prefill(lens(512), lens(4096)))
    assert late > 7 * fresh
    # the whole prompt in chunks costs what it costs in one piece (same score entries)
    chunks = [pred.predict(_prefill(lens(1024), lens(c))) for c in (1024, 2048, 3072, 4096)]
    assert sum(chunks) == pytest.approx(pred.predict(_prefill(lens(4096))), rel=1e-9)


# ---- MoE, elementwise, host -------------------------------------------------------


def _moe(**extra: object) -> OpCall:
    return OpCall("moe_experts", extra={"hidden_size": 4096, "inter_size": 14336, **extra})


def test_moe_reads_only_the_experts_that_received_tokens() -> None:
    pred = roofline("h100-sxm", launch_s=0.0)
    spread = pred.predict(_moe(num_local_experts=8, tokens_per_expert=[1] * 8))
    packed = pred.predict(_moe(num_local_experts=8, tokens_per_expert=[8] + [0] * 7))
    assert spread == pytest.approx(8 * packed, rel=0.01)
    # without counts, num_tokens assignments spread evenly: same as the spread case
    even = pred.predict(_moe(num_local_experts=8, num_tokens=8))
    assert even == pytest.approx(spread, rel=1e-12)


def test_moe_large_batch_is_compute_bound() -> None:
    pred = roofline("h100-sxm", launch_s=0.0)
    t = np.full(8, 4096, dtype=np.int64)
    got = pred.predict(_moe(num_local_experts=8, tokens_per_expert=t))
    flops = 6 * t.sum() * 4096 * 14336
    assert got == pytest.approx(flops / (HW["h100-sxm"].peak_flops("bf16") * 0.72), rel=1e-9)


def test_non_gated_experts_read_and_compute_two_matrices_of_three() -> None:
    pred = roofline("h100-sxm", launch_s=0.0)
    few = dict(num_local_experts=8, tokens_per_expert=[1] * 8)  # weight-bound
    many = dict(num_local_experts=8, tokens_per_expert=np.full(8, 4096))  # compute-bound
    for ex in (few, many):
        gated, plain = pred.predict(_moe(**ex)), pred.predict(_moe(gated=False, **ex))
        assert plain == pytest.approx(gated * 2 / 3, rel=0.01)
    assert pred.predict(_moe(gated=True, **few)) == pred.predict(_moe(**few))


def test_elementwise_and_cpu_overhead() -> None:
    hw = HW["b200"]
    pred = roofline("b200")
    got = pred.predict(OpCall("elementwise", bytes=1e9, flops=1e9))
    assert got == pytest.approx(1e9 / (hw.mem_bw * EFFICIENCY["b200"][1]) + 4e-6)
    assert pred.predict(OpCall("cpu_overhead", num_seqs=8)) == pytest.approx(0.9e-3 + 8 * 3.7e-5)
    custom = roofline("b200", cpu_overhead_base_s=1e-3, cpu_overhead_per_seq_s=0.0)
    assert custom.predict(OpCall("cpu_overhead", num_seqs=100)) == pytest.approx(1e-3)


# ---- collectives ----------------------------------------------------------------


def test_collective_formulas() -> None:
    link = Link(bandwidth=450e9, latency=3e-6)
    nbytes = 64 * 2**20
    assert collective_time("all_reduce", nbytes, 1, link) == 0.0
    assert collective_time("all_reduce", nbytes, 8, link) == pytest.approx(
        2 * 7 / 8 * nbytes / 450e9 + 14 * 3e-6
    )
    assert collective_time("all_to_all", nbytes, 8, link) == pytest.approx(
        7 / 8 * nbytes / 450e9 + 7 * 3e-6
    )
    assert collective_time("send_recv", nbytes, 2, link) == pytest.approx(nbytes / 450e9 + 3e-6)
    # through a switch: the same bytes, one latency per phase whatever the GPU count
    switch = Link(bandwidth=450e9, latency=3e-6, switched=True)
    for n in (2, 4, 8):
        assert collective_time("all_reduce", nbytes, n, switch) == pytest.approx(
            2 * (n - 1) / n * nbytes / 450e9 + 2 * 3e-6)
        assert collective_time("all_to_all", nbytes, n, switch) == pytest.approx(
            (n - 1) / n * nbytes / 450e9 + 3e-6)
    with pytest.raises(ValueError, match="unknown collective"):
        collective_time("broadcast", nbytes, 2, link)


def test_collectives_pick_the_link_by_scope() -> None:
    hw = HW["h100-sxm"]
    pred = roofline("h100-sxm")
    nbytes = 16 * 2**20
    intra = pred.predict(OpCall("all_reduce", bytes=nbytes, num_gpus=8, scope="intra"))
    inter = pred.predict(OpCall("all_reduce", bytes=nbytes, num_gpus=8, scope="inter"))
    # an HGX node's NVSwitch: two phases; the scale-out network: a ring of 2(n-1) steps
    assert intra == pytest.approx(2 * 7 / 8 * nbytes / hw.nvlink_bw + 2 * hw.nvlink_latency)
    assert inter == pytest.approx(2 * 7 / 8 * nbytes / hw.scaleout_bw + 14 * hw.scaleout_latency)
    assert pred.predict(OpCall("all_reduce", bytes=nbytes, num_gpus=1)) == 0.0


def test_a_given_transfer_model_times_the_collectives() -> None:
    seen: list[tuple[str, float, int, Link]] = []

    class Fixed:
        def transfer(self, kind: str, nbytes: float, num_gpus: int, link: Link) -> float:
            seen.append((kind, nbytes, num_gpus, link))
            return 0.5

    hw = HW["h100-sxm"]
    pred = RooflinePredictor(RooflineOptions(), hw, Fixed())
    assert pred.predict(OpCall("all_to_all", bytes=10.0, num_gpus=4, scope="inter")) == 0.5
    assert seen == [("all_to_all", 10.0, 4, Link(hw.scaleout_bw, hw.scaleout_latency))]
    assert pred.predict(OpCall("send_recv", bytes=10.0, num_gpus=1)) == 0.0
    assert len(seen) == 1


# ---- completeness, options, table -----------------------------------------------


def _one_of_each(op: str, num_gpus: int) -> OpCall:
    q = lens(128, 1, 1)
    kv = lens(512, 300, 2000)
    return OpCall(
        op,
        m=64,
        n=4096,
        k=4096,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        q_lens=q,
        kv_lens=kv,
        bytes=1e6,
        flops=1e6,
        num_gpus=num_gpus,
        num_seqs=3,
        extra={"hidden_size": 4096, "inter_size": 1408, "num_local_experts": 8, "num_tokens": 12},
    )


@pytest.mark.parametrize("hw", sorted(HW))
@pytest.mark.parametrize("op", OPS)
def test_every_op_gets_a_positive_finite_float(hw: str, op: str) -> None:
    pred = roofline(hw)
    t = pred.predict(_one_of_each(op, num_gpus=4))
    assert type(t) is float and math.isfinite(t) and t > 0
    single = pred.predict(_one_of_each(op, num_gpus=1))
    assert type(single) is float
    if op in ("all_reduce", "all_to_all", "send_recv", "reduce_scatter", "all_gather"):
        assert single == 0.0
    else:
        assert math.isfinite(single) and single > 0


def test_empty_batches_cost_one_launch_and_unknown_ops_are_not_covered() -> None:
    pred = roofline("h100-sxm")
    empty = lens()
    assert pred.predict(_prefill(empty)) == pytest.approx(4e-6)
    assert pred.predict(_decode(empty)) == pytest.approx(4e-6)
    assert pred.predict(OpCall("attention_decode")) == pytest.approx(4e-6)
    assert pred.predict(OpCall("conv2d")) is None
    with pytest.raises(ValueError, match="unknown dtype"):
        pred.predict(OpCall("gemm", dtype="fp64", m=1, n=1, k=1))


@pytest.mark.parametrize(
    "bad", [{"compute_eff": 0.0}, {"bw_eff": 1.5}, {"launch_s": -1.0}, {"mfu": 0.5}]
)
def test_options_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RooflineOptions(**bad)


def test_efficiency_table_lookup() -> None:
    assert efficiency_for("h100-sxm") == EFFICIENCY["h100"]
    assert efficiency_for("A100-80G-SXM") == EFFICIENCY["a100"]
    assert efficiency_for("mi300x") == DEFAULT_EFFICIENCY
    assert all(0 < ce <= 1 and 0 < be <= 1 for ce, be in EFFICIENCY.values())
    pred = roofline("h200")
    assert (pred.compute_eff, pred.bw_eff) == EFFICIENCY["h200"]
    # a GPU entry's own figures win over the family table (B300 and the NVL72 racks)
    pred = roofline("gb300")
    assert (pred.compute_eff, pred.bw_eff) == HW["gb300"].efficiency == (0.65, 0.85)


def test_a_gpu_without_flops_is_a_config_error() -> None:
    hw = HardwareSpec(
        name="blank", flops={}, mem_bytes=1e9, mem_bw=1e12, nvlink_bw=1e11, scaleout_bw=1e10
    )
    with pytest.raises(ConfigError, match="no FLOP/s"):
        RooflinePredictor(RooflineOptions(), hw)


# ---- the hookimpl on a fresh plugin manager -----------------------------------------


@pytest.fixture
def pm() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("frontier")
    manager.add_hookspecs(frontier_core.hookspecs)
    manager.register(plugin)
    manager.check_pending()
    return manager


def test_plugin_provides_the_roofline_spec(pm: pluggy.PluginManager) -> None:
    specs = [s for group in pm.hook.frontier_predictors() for s in group]
    assert [s.name for s in specs] == ["roofline"]
    spec = specs[0]
    assert isinstance(spec, ComponentSpec)
    assert spec.options is RooflineOptions and spec.summary
    ctx = BuildContext(
        config=None,  # type: ignore[arg-type]  # the factory reads only device and transfer
        model=MODEL["llama-2-7b"],
        rng=np.random.default_rng(0),
        device=HW["h100-sxm"],
    )
    pred = spec.factory(spec.options(), ctx)
    assert isinstance(pred, RooflinePredictor)
    assert pred.predict(OpCall("gemm", m=1, n=4096, k=4096)) > 0
    no_device = BuildContext(config=None, model=MODEL["llama-2-7b"], rng=np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no device"):
        spec.factory(spec.options(), no_device)


def test_nvfp4_gemms_stream_half_a_byte_and_a_scale_per_weight_and_use_fp4_tensor_cores() -> None:
    """A decode GEMM in nvfp4 reads 0.5625 B per weight (fp8: 1 B); a large one runs at
    the fp4 tensor-core rate on B200 and at the bf16 rate on H100 (no fp4 cores)."""
    b200 = roofline("b200")
    small = OpCall("gemm", dtype="nvfp4", m=1, n=8192, k=8192)
    fp8 = OpCall("gemm", dtype="fp8", m=1, n=8192, k=8192)
    ratio = (b200.predict(small) - b200.launch_s) / (b200.predict(fp8) - b200.launch_s)
    assert ratio == pytest.approx(0.5625, rel=1e-3)
    big = OpCall("gemm", dtype="nvfp4", m=16384, n=16384, k=16384)
    flops = 2 * 16384**3
    assert b200.predict(big) - b200.launch_s == pytest.approx(
        flops / (HW["b200"].flops["fp4"] * b200.compute_eff))
    h100 = roofline("h100-sxm")
    assert h100.predict(big) - h100.launch_s == pytest.approx(
        flops / (HW["h100-sxm"].flops["bf16"] * h100.compute_eff))


def test_sliding_window_attention_reads_and_scores_only_the_window() -> None:
    """A windowed decode reads min(context, window) keys; a windowed prefill chunk scores
    each query against at most the window, so a long chunk costs about q·w pairs, not
    q²/2, and its first w queries the same as causal attention."""
    rp = roofline("h100-sxm")
    kw = dict(num_heads=64, num_kv_heads=8, head_dim=64)
    win = {"kv_planes": 2, "kv_bytes": 2, "window": 128}
    dec = OpCall("attention_decode", q_lens=np.ones(4, np.int64), kv_lens=np.full(4, 8192), **kw)
    capped = replace(dec, kv_lens=np.full(4, 128))
    assert rp.predict(replace(dec, extra=win)) == pytest.approx(rp.predict(capped))
    short = OpCall("attention_prefill", q_lens=np.array([100]), kv_lens=np.array([100]), **kw)
    assert rp.predict(replace(short, extra=win)) == pytest.approx(rp.predict(short))
    long = OpCall("attention_prefill", q_lens=np.array([65536]), kv_lens=np.array([65536]),
                  **kw)
    full, windowed = rp.predict(long), rp.predict(replace(long, extra=win))
    s_flop = 1 / (HW["h100-sxm"].flops["bf16"] * rp.compute_eff)
    band = 4 * 64 * 64 * (128 * 65536 - 128 * 127 / 2) * s_flop  # the window's scores
    assert band < windowed < full / 50


def test_a_decode_series_is_predict_step_by_step() -> None:
    """``predict_series`` gives each decode step's ``predict`` (step i: every context + i)
    bit for bit: full attention, a window that the contexts cross during the series,
    an MLA-style cache, and linear attention (the same every step); other ops: None."""
    rp = roofline("h100-sxm")
    rng = np.random.default_rng(5)
    kw = dict(num_heads=32, num_kv_heads=8, head_dim=64)
    for extra in (None, {"window": 128}, {"window": 4096}, {"kv_planes": 1, "kv_bytes": 1}):
        for _ in range(5):
            kv = rng.integers(1, 300, int(rng.integers(1, 40)))
            call = OpCall("attention_decode", q_lens=np.ones(len(kv), np.int64), kv_lens=kv,
                          extra=extra, **kw)
            got = rp.predict_series(call, 200)
            want = [rp.predict(replace(call, kv_lens=kv + i)) for i in range(200)]
            assert got.tolist() == want
    lin = OpCall("linear_attention", "linear_decode", "bf16", num_heads=32, num_kv_heads=16,
                 head_dim=128, q_lens=np.ones(7, np.int64))
    assert rp.predict_series(lin, 5).tolist() == [rp.predict(lin)] * 5
    gemm = OpCall("gemm", "qkv", "bf16", 8, 4096, 4096)
    assert rp.predict_series(gemm, 5) is None


# ---- discovery: the kernel's own, with no plugin installed ------------------------------


def test_the_kernel_alone_provides_the_roofline_and_runs_with_it() -> None:
    """Without any entry point loaded, ``roofline`` is the kernel's built-in and the
    default predictor chain prices a whole co-located run."""
    from simhelpers import run_sim, small_config

    from frontier_core.app.metrics import summarize
    from frontier_core.plugins import load_registry

    reg = load_registry(entry_points=False)
    found = reg.items["predictor"]["roofline"]
    assert found.builtin and found.distribution == "frontier-core"
    cfg = small_config(predictor=["roofline"])
    s = summarize(run_sim(cfg, reg))
    assert s["requests"]["completed"] == 60
    assert s["predictor_time_share"] == {"roofline": 1.0}
    again = summarize(run_sim(small_config(predictor=["roofline"]), load_registry(entry_points=False)))
    assert again["latency_s"] == s["latency_s"]


def test_the_plugin_author_fixtures_run_with_the_kernel_alone(
        frontier_registry_factory, frontier_config) -> None:
    """docs/plugins.md: ``frontier_config``'s default chain is the built-in roofline, so a
    plugin's test runs with no predictor distribution installed."""
    from frontier_core.assemble import assemble

    sim = assemble(frontier_config(), frontier_registry_factory()).run()
    assert all(r.generated == r.output_len for r in sim.controller.requests)
