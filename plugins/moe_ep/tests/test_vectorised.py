"""The MoE block's vectorised hot path gives exactly what the plain formulation gives:
the same integers and the same floats, for the same seeded generator."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_moe_ep.arrays import last_count, last_sum
from frontier_moe_ep.placement import Placement, build_placement
from frontier_moe_ep.routing import ExpertRouting, apportion, parse_routing, power_law_loads


def reference_apportion(shares: np.ndarray, total: int, cap: int) -> np.ndarray:
    """Largest remainders ranked by a stable argsort (the formulation apportion replaces)."""
    want = shares / shares.sum(axis=1, keepdims=True) * total
    for _ in range(64):
        over = np.clip(want - cap, 0.0, None).sum(axis=1)
        if not (over > 1e-9).any():
            break
        want = np.minimum(want, cap)
        room = np.where(want < cap, shares, 0.0)
        want += over[:, None] * room / room.sum(axis=1, keepdims=True)
    want = np.minimum(want, cap)
    base = np.floor(want + 1e-9)
    rest = (total - base.sum(axis=1)).astype(np.int64)
    order = np.argsort(-(want - base), axis=1, kind="stable")
    place = np.empty_like(order)
    np.put_along_axis(place, order, np.arange(order.shape[1])[None, :], axis=1)
    return (base + (place < rest[:, None])).astype(np.int64)


def reference_draw(routing: ExpertRouting, rng: np.random.Generator, tokens: int) -> np.ndarray:
    """power_law's draw as first written: sort the loads, place them along each layer's
    order with put_along_axis, apportion with the stable argsort."""
    layers, e = routing.p.shape
    x = -np.sort(-power_law_loads(rng.random((layers, e)), routing.spec.alpha, tokens,
                                  routing.top_k), axis=1)
    shares = np.empty_like(x)
    np.put_along_axis(shares, routing.order, x, axis=1)
    return reference_apportion(shares, tokens * routing.top_k, tokens)


@pytest.mark.parametrize("seed", range(6))
def test_apportion_matches_the_stable_argsort_ranking(seed):
    rng = np.random.default_rng(seed)
    for trial in range(150):
        layers, e = int(rng.integers(1, 5)), int(rng.choice([3, 8, 16, 64, 256]))
        k = int(rng.integers(1, min(e, 8)))  # below e: the cap leaves room somewhere
        tokens = int(rng.integers(1, 400))
        form = trial % 4
        if form == 0:
            shares = rng.random((layers, e))
        elif form == 1:  # many equal remainders: ties broken by expert id
            shares = rng.integers(1, 4, (layers, e)).astype(float)
        elif form == 2:
            shares = np.ones((layers, e))
        else:  # skewed: hot experts above the cap get capped and spread
            shares = power_law_loads(rng.random((layers, e)), 1.2, tokens, k) ** 3
        got = apportion(shares, tokens * k, tokens)
        assert np.array_equal(got, reference_apportion(shares, tokens * k, tokens))
        assert (got <= tokens).all()


@pytest.mark.parametrize("seed", range(4))
def test_power_law_draws_match_the_reference_across_drift_steps(seed):
    spec = parse_routing("power_law:1.01")
    a = ExpertRouting(spec, 64, 8, 5, np.random.default_rng(seed))
    b = ExpertRouting(spec, 64, 8, 5, np.random.default_rng(seed))
    ref_rng = np.random.default_rng(seed)
    ExpertRouting(spec, 64, 8, 5, ref_rng)  # the same draws of the hot-expert order
    steps = np.random.default_rng(100 + seed).integers(1, 3000, 40)
    for i, tokens in enumerate(steps.tolist()):
        if i % 7 == 6:  # drift moves the order and draws from the same generator
            a.drift(0.25)
            b.drift(0.25)
            ref_rng.random((5, 64))
            ref_rng.random((5, max(2, round(0.25 * 64))))
        want = reference_draw(b, ref_rng, tokens)
        got = a.draw(tokens)
        assert np.array_equal(got, want)
        assert np.array_equal(got, b.draw(tokens))  # deterministic for a seed
        assert (got.sum(axis=1) == tokens * 8).all()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 15, 16, 24])
def test_short_axis_sums_and_counts_equal_numpy_reductions(n):
    rng = np.random.default_rng(n)
    # thirds and halves: tokens of experts split over copies, not exact in binary
    tok = rng.integers(0, 9, (7, 5, n)) / rng.integers(1, 4, (7, 5, n)) * 1e3 ** rng.random()
    assert np.array_equal(last_sum(tok), tok.sum(axis=2))
    assert np.array_equal(last_sum(tok[0]), tok[0].sum(axis=1))
    assert np.array_equal(last_count(tok), np.count_nonzero(tok > 0, axis=2))


def test_slot_tokens_gather_each_slot_its_share_of_its_expert():
    rng = np.random.default_rng(3)
    p = rng.random((4, 32))
    for pl in (build_placement("round_robin", p, 4),
               build_placement("eplb", p / p.sum(axis=1, keepdims=True), 4, redundant=8)):
        counts = rng.integers(0, 50, (4, 32))
        want = np.take_along_axis(counts, pl.slot_expert, axis=1) * pl.slot_share
        assert np.array_equal(pl.slot_tokens(counts), want.reshape(4, 4, -1))
        moved = Placement.from_slots(4, pl.slot_expert[:, ::-1].copy(), 32)
        want = np.take_along_axis(counts, moved.slot_expert, axis=1) * moved.slot_share
        assert np.array_equal(moved.slot_tokens(counts), want.reshape(4, 4, -1))


def test_load_histogram_counts_each_ratio_in_its_bin():
    from frontier_moe_ep.block import _Stats

    rng = np.random.default_rng(5)
    st = _Stats(8, 16, 0)
    want = np.zeros(len(st.hist), np.int64)
    for _ in range(20):
        rank_tok = rng.integers(0, 40, (6, 8)).astype(float)
        rank_tok[0] = [0.5, 1.5, 0.5, 1.5, 1, 1, 0.75, 1.25]  # mean 1: ratios on bin edges
        rank_tok[1] = 0.0  # a layer without tokens is left out
        st.add_loads(rng.integers(0, 9, (6, 16)), rank_tok[:, :, None], rank_tok)
        mean = rank_tok.mean(axis=1)
        rel = rank_tok[mean > 0] / mean[mean > 0, None]
        bins = np.searchsorted(st.BINS, rel.ravel(), side="right") - 1
        want += np.bincount(bins, minlength=len(want))[: len(want)]
    assert np.array_equal(st.hist, want)


def _walk_reference(schedule: str, ops, gemm_scale: float, shared_sms_scale: float) -> float:
    """The overlap walk as a plain loop over the compiled program's steps."""
    from frontier_moe_ep.overlap import _COLUMNS, _COMPUTE, _ISSUE, GEMM_OPS, _program

    layers = len(ops[0]["experts"])
    steps, owner, flat, starts = _program(schedule, layers, len(ops))
    table = np.stack([np.concatenate([o[c] for c in _COLUMNS]) for o in ops])
    gemm = np.repeat(np.array([c in GEMM_OPS for c in _COLUMNS]), layers)[flat]
    picked = table[owner, flat]
    bounds = [*starts.tolist(), len(flat)]
    width = len(_COLUMNS) * layers
    done: dict[int, float] = {}
    comp = comm = 0.0
    for b, kind, slot in steps:
        if kind == _COMPUTE:
            part = slice(bounds[slot], bounds[slot + 1])
            g = float(np.add.reduce(np.where(gemm[part], picked[part], 0.0))) * gemm_scale
            o = float(np.add.reduce(np.where(gemm[part], 0.0, picked[part])))
            run = g + o
            if shared_sms_scale != 1.0 and o and comm > comp:
                run += min(run, comm - comp) * o / run * (shared_sms_scale - 1.0)
            comp += run
        elif kind == _ISSUE:
            comm = max(comm, comp) + float(table.ravel()[b * width + slot])
            done[b * width + slot] = comm
        else:
            comp = max(comp, done.get(b * width + slot, 0.0))
    return max(comp, comm)


@pytest.mark.parametrize("seed", range(6))
def test_staged_walk_equals_a_loop_over_the_program_steps(seed):
    from frontier_moe_ep.overlap import SCHEDULES, staged

    rng = np.random.default_rng(seed)
    cols = ("attn_prepare", "attn_core", "gate", "shared", "experts", "dispatch", "combine")
    for schedule in SCHEDULES:
        layers = int(rng.integers(1, 70))
        for micro_batches in (1, 2):
            ops = [{c: rng.random(layers) * rng.choice([0.0, 1.0, 1e-3]) for c in cols}
                   for _ in range(micro_batches)]
            for scales in ((1.0, 1.0), (1.2, 1.2), (1.0, 1.17)):
                assert staged(schedule, ops, *scales) == _walk_reference(schedule, ops, *scales)


@pytest.mark.parametrize("ll_nvlink", [True, False])
def test_low_latency_busiest_copies_equal_the_per_rank_copies(ll_nvlink):
    from frontier_moe_ep.comm import DeepEP, busiest

    from frontier_core import Link

    rng = np.random.default_rng(7)
    for ep in (8, 32, 144):
        d = DeepEP(ep, 8, Link(200e9, 1e-6), Link(50e9, 3e-6), ll_nvlink)
        src = rng.integers(0, 9, ep).astype(float)
        src[0] += 1
        for _ in range(3):  # the same token vector again: its shares from the memo
            rank_tok = rng.random((5, ep)) * 100
            want = busiest(d.ll_copies(src, rank_tok))
            got = d.ll_busiest(src, rank_tok)
            assert all(np.array_equal(w, g) for w, g in zip(want, got, strict=True))


def test_trtllm_one_batch_sum_is_the_walk(monkeypatch):
    """TensorRT-LLM's schedule on one batch, summed layer by layer, gives the walk's float
    bit for bit (the walk runs under another name, which takes the general path)."""
    from frontier_moe_ep import overlap

    monkeypatch.setitem(overlap.SCHEDULES, "trtllm_walk", overlap.SCHEDULES["trtllm"])
    rng = np.random.default_rng(3)
    for trial in range(400):
        layers = int(rng.integers(1, 70))
        o = {c: rng.random(layers) * rng.choice([1e-6, 1e-3, 1.0]) for c in overlap._COLUMNS}
        if trial % 3 == 0:
            o["shared"] = np.zeros(layers)  # no shared experts: the dispatch alone
        scale = float(rng.choice([1.0, 1.3]))
        assert overlap.staged("trtllm", [o], scale) == overlap.staged("trtllm_walk", [o], scale)


@pytest.mark.parametrize("cluster", [
    # DP attention with DeepEP's kernels and two-batch overlap (uneven ranks)
    {"model": "deepseek-v3", "gpu": "h800", "tp": 1, "dp": 16,
     "moe": {"two_batch_overlap": True, "all_to_all": "deepep"}},
    # TensorRT-LLM: one batch, its own overlap schedule, gathered tokens
    {"model": "deepseek-v3", "gpu": "h200", "tp": 1, "dp": 8, "engine": {"name": "trtllm"}},
    # TP attention, experts over the TP group (no transfer)
    {"model": "mixtral-8x7b", "gpu": "h100-sxm", "tp": 8, "moe": {}},
])
def test_memoised_token_parts_replay_what_pricing_gives(monkeypatch, cluster):
    """With balanced routing the block keeps each batch shape's pricing and replays it;
    the run is the same, to the last bit, as pricing every micro-batch anew."""
    import frontier_moe_ep.block as block_mod
    from moehelpers import build, config

    from frontier_core.app.metrics import summarize

    def run() -> tuple[dict, list[float]]:
        c = dict(cluster)
        sim = build(config(model=c.pop("model"), predictor="roofline", cluster=c))
        sim.run()
        return summarize(sim), list(sim.executors["main"].credit)

    memo, memo_credit = run()
    assert block_mod.TOKEN_MEMO_SIZE > 0
    monkeypatch.setattr(block_mod, "TOKEN_MEMO_SIZE", 0)  # no memo: every part priced
    plain, plain_credit = run()
    assert memo == plain
    assert memo_credit == plain_credit
