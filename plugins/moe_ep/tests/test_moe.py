"""The moe block: routing, placement, all-to-all, stragglers, overlap, memory, reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from frontier_moe_ep.comm import AllToAll, copies, deepseek_bound
from frontier_moe_ep.overlap import sequential, two_batch
from frontier_moe_ep.placement import build_placement
from frontier_moe_ep.routing import ExpertRouting, parse_routing
from moehelpers import block, build, config, decode_batch, prefill_batch

from frontier_core import ConfigError, ModelSpec

# ---- routing ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["balanced", "uniform", "power_law:1.2", "zipf:1.1",
                                  "hot:0.1:0.5", "replay:loads.csv"])
def test_routing_forms_round_trip(text):
    assert str(parse_routing(text)) == text


@pytest.mark.parametrize("text", ["zipf", "power_law", "power_law:-1", "power_law:1",
                                  "hot:0.1", "hot:2:0.5", "balanced:3", "replay:", "pareto:2"])
def test_bad_routing_names_the_forms(text):
    with pytest.raises(ValueError, match="power_law:<alpha>"):
        parse_routing(text)


def test_balanced_routing_is_exact_and_deterministic():
    r = ExpertRouting(parse_routing("balanced"), 8, 2, 4, np.random.default_rng(0))
    c = r.draw(13)
    assert c.shape == (4, 8)
    assert (c.sum(axis=1) == 26).all()
    assert c.max() - c.min() <= 1


def test_balanced_leftovers_spread_over_ranks():
    """16 tokens × top-8 over 256 experts: 128 assignments, so every EP16 rank gets 8."""
    r = ExpertRouting(parse_routing("balanced"), 256, 8, 2, np.random.default_rng(0))
    for kind in ("contiguous", "round_robin"):
        pl = build_placement(kind, r.p, 16)
        r.spread_over(pl.rank_interleaved())
        per_rank = pl.slot_tokens(r.draw(16)).sum(axis=2)
        assert (per_rank == 8).all(), kind


def test_random_routing_keeps_top_k_assignments_and_caps_at_tokens():
    r = ExpertRouting(parse_routing("uniform"), 64, 8, 10, np.random.default_rng(1))
    c = r.draw(4096)
    assert (c.sum(axis=1) == 4096 * 8).all()
    assert np.allclose(c.mean(axis=0), 4096 * 8 / 64, rtol=0.1)


def test_zipf_shares_follow_the_exponent_in_a_per_layer_order():
    r = ExpertRouting(parse_routing("zipf:1.2"), 16, 2, 5, np.random.default_rng(2))
    for row in r.p:
        s = np.sort(row)[::-1]
        assert s / s[0] == pytest.approx(np.arange(1, 17) ** -1.2)
    assert len({int(np.argmax(row)) for row in r.p}) > 1  # hot experts differ by layer


def test_power_law_follows_aiconfigurator_and_keeps_hot_experts_hot():
    """Loads from the density ∝ x^-alpha on [1, 0.8·T], scaled to T·k assignments, capped
    at T with the excess re-routed; a layer's order of hot experts is fixed for the run."""
    from frontier_moe_ep.routing import power_law_loads

    u = np.linspace(0.0, 1.0, 11)[None, :]
    x = power_law_loads(u, 1.2, 1000, 8)
    assert x[0, 0] == pytest.approx(1.0) and x[0, -1] == pytest.approx(800.0)
    a = 1 - 1.2  # the CDF of the truncated density inverts u
    assert ((x[0] ** a - 1) / (800**a - 1)) == pytest.approx(u[0])
    r = ExpertRouting(parse_routing("power_law:1.2"), 64, 8, 6, np.random.default_rng(4))
    for tokens in (3, 100, 4096):
        c = r.draw(tokens)
        assert (c.sum(axis=1) == tokens * 8).all()
        assert c.max() <= tokens
    draws = np.stack([r.draw(4096) for _ in range(20)])
    first = np.take_along_axis(draws, np.tile(r.order[:, :1], (20, 1, 1)), axis=2)[..., 0]
    assert (first == draws.max(axis=2)).all()  # the layer's first expert is always hottest
    skew = [np.mean([r.draw(t).max() / (t * 8 / 64) for _ in range(10)]) for t in (64, 4096)]
    assert skew[1] > skew[0]  # AIConfigurator's skew grows with the number of tokens


def test_capped_assignments_are_rerouted_not_dropped():
    r = ExpertRouting(parse_routing("zipf:3"), 8, 4, 6, np.random.default_rng(1))
    c = r.draw(100)
    assert (c.sum(axis=1) == 400).all() and c.max() <= 100


def test_hot_expert_fraction_gets_its_share():
    r = ExpertRouting(parse_routing("hot:0.25:0.6"), 16, 2, 3, np.random.default_rng(0))
    top = np.sort(r.p, axis=1)[:, ::-1][:, :4].sum(axis=1)
    assert top == pytest.approx([0.6] * 3)


def test_replay_reads_loads_and_repeats_layers(tmp_path):
    f = tmp_path / "loads.csv"
    f.write_text("layer,expert,count\n0,0,30\n0,1,10\n1,3,5\n")
    r = ExpertRouting(parse_routing(f"replay:{f}"), 4, 1, 3, np.random.default_rng(0))
    assert r.p[0] == pytest.approx([0.75, 0.25, 0, 0])
    assert r.p[1] == pytest.approx([0, 0, 0, 1])
    assert r.p[2] == pytest.approx(r.p[0])
    assert (r.draw(50)[1] == [0, 0, 0, 50]).all()


def test_same_seed_same_draws():
    a = ExpertRouting(parse_routing("power_law:1.01"), 32, 4, 3, np.random.default_rng(7))
    b = ExpertRouting(parse_routing("power_law:1.01"), 32, 4, 3, np.random.default_rng(7))
    assert (a.draw(500) == b.draw(500)).all()


# ---- placement ----------------------------------------------------------------------


def test_contiguous_and_round_robin_layouts():
    p = np.full((1, 8), 1 / 8)
    c = build_placement("contiguous", p, 4)
    assert c.slot_expert[0].reshape(4, 2).tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    r = build_placement("round_robin", p, 4)
    assert r.slot_expert[0].reshape(4, 2).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    counts = np.arange(8)[None, :]
    assert c.slot_tokens(counts).sum(axis=2).tolist() == [[1, 5, 9, 13]]
    assert r.slot_tokens(counts).sum(axis=2).tolist() == [[4, 6, 8, 10]]


def test_eplb_copies_hot_experts_and_splits_their_tokens():
    p = np.array([[0.55, 0.15, 0.1, 0.1, 0.05, 0.05]])
    pl = build_placement("eplb", p, 4, redundant=2)
    se = pl.slot_expert[0]
    assert sorted(se.tolist()) == [0, 0, 0, 1, 2, 3, 4, 5]  # expert 0 gets both copies
    counts = np.array([[90, 30, 20, 20, 10, 10]])
    tok = pl.slot_tokens(counts)
    assert tok.sum() == pytest.approx(counts.sum())  # nothing lost or invented
    assert tok[0][tok[0] > 0].max() == pytest.approx(30)  # each copy takes a third of 90


def test_more_redundant_slots_balance_ranks_monotonically():
    """Validation 3: redundant experts lower the max/mean expected load, monotonically."""
    for experts, ep in ((64, 16), (256, 64)):
        r = ExpertRouting(parse_routing("zipf:1.2"), experts, 8, 8, np.random.default_rng(0))
        ratios = []
        for extra in (0, ep, 2 * ep, 4 * ep, 8 * ep):
            pl = build_placement("eplb", r.p, ep, extra)
            load = pl.slot_tokens(r.p).sum(axis=2)
            ratios.append(float((load.max(axis=1) / load.mean(axis=1)).mean()))
        assert ratios == sorted(ratios, reverse=True)
        assert ratios[0] > 4 and ratios[-1] < 1.01


# ---- communication ------------------------------------------------------------------


def test_deepseek_bound_numbers():
    """Validation 1: "Insights into DeepSeek-V3" §2.3.2."""
    t = deepseek_bound(32, 9, 7000, 1, 2, 50e9)
    assert t == pytest.approx(120.96e-6, rel=1e-12)
    assert 2 * t * 61 == pytest.approx(14.757e-3, rel=1e-4)  # ≈ 67 tokens/s
    fast = deepseek_bound(32, 9, 7000, 1, 2, 900e9)
    assert fast == pytest.approx(6.72e-6, rel=1e-12)
    assert 2 * fast * 61 == pytest.approx(0.82e-3, rel=0.01)


def test_copies_balanced_and_skewed():
    src = np.full(4, 10.0)
    bal = copies(src, np.full(4, 20.0), 40, 2)  # each rank keeps 1/4 of its assignments
    assert bal == pytest.approx([15.0] * 4)
    hot = copies(src, np.array([50.0, 10, 10, 10]), 40, 2)
    assert hot[0] == pytest.approx(50 * 0.75)  # the hot rank receives most
    assert hot[1:] == pytest.approx([10 * (80 - 10) / 40] * 3)


def test_all_to_all_splits_nvlink_and_network():
    from frontier_core import Link

    a = AllToAll(16, 8, Link(400e9, 0.0), Link(50e9, 0.0))
    assert a.off_node == pytest.approx(8 / 15)
    t = a.seconds(np.array([1.5e6, 0.0]))
    assert t[0] == pytest.approx(max(1.5e6 * 7 / 15 / 400e9, 1.5e6 * 8 / 15 / 50e9))
    assert t[1] == 0.0
    assert AllToAll(8, 8, Link(400e9, 0.0), Link(50e9, 0.0)).off_node == 0.0


# ---- two-batch overlap --------------------------------------------------------------


def test_two_batch_overlap_lies_between_max_and_sum():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, d, e, c = (rng.uniform(0, 1e-3, (2, 5)) for _ in range(4))
        t = two_batch(a, d, e, c)
        comp, comm = a.sum() + e.sum(), d.sum() + c.sum()
        assert max(comp, comm) - 1e-12 <= t <= comp + comm + 1e-12


def test_two_batch_overlap_extremes():
    z = np.zeros((2, 3))
    x = np.full((2, 3), 1e-4)
    assert two_batch(x, z, x, z) == pytest.approx(12 * 1e-4)  # compute only
    assert two_batch(z, x, z, x) == pytest.approx(12 * 1e-4)  # communication only
    # Equal compute and communication hide each other after the first layer's ramp-up.
    assert two_batch(x, x, x, x) < sequential(x[0], x[0], x[0], x[0]) * 2 * 0.7


# ---- the block inside a run ----------------------------------------------------------


def deepseek_like(layers: int = 61) -> dict:
    """DeepSeek's bound setting: hidden 7000, 256 experts (one per GPU), 8 routed + 1 shared."""
    spec = ModelSpec(name="ds-bound", num_layers=layers, hidden_size=7000, num_heads=8,
                     num_kv_heads=8, head_dim=64, intermediate_size=64, vocab_size=1024,
                     max_context=4096, num_experts=256, top_k=8, moe_intermediate_size=64,
                     num_shared_experts=1)
    return {"spec": spec.model_dump()}


@pytest.mark.parametrize("bw,per_layer", [(50e9, 241.92e-6), (900e9, 13.44e-6)])
def test_simulated_deepseek_layer_is_comm_bound(bw, per_layer):
    """Validation 1 in a simulated iteration: compute takes no time, 64 tokens per GPU in
    two micro-batches of 32, 256 ranks: each layer costs the bound × (1 − 1/256), the
    share of copies that stay on their own GPU."""
    hw = {"name": "ib-only", "flops": {"bf16": 1e15}, "mem_bytes": 80e9, "mem_bw": 3e12,
          "nvlink_bw": bw, "nvlink_latency": 0.0, "scaleout_bw": bw,
          "scaleout_latency": 0.0, "gpus_per_node": 1}
    cfg = config(model=deepseek_like(), predictor="zero", hardware=[hw],
                 transfer={"name": "links", "bandwidth_eff": 1.0},
                 cluster={"gpu": "ib-only", "tp": 1, "dp": 256,
                          "moe": {"shared_experts": "routed", "dispatch_dtype": "fp8",
                                  "two_batch_overlap": True, "all_to_all": "simple"}})
    sim = build(cfg)
    t = sim.executors["main"].iteration(decode_batch(256 * 64)).latency
    assert t == pytest.approx(61 * per_layer * (1 - 1 / 256), rel=1e-9)


def qwen_ep8(routing: str, model: str = "qwen3-30b-a3b", **moe):
    cfg = config(model=model, predictor=["linear-test"],
                 cluster={"tp": 1, "dp": 8, "moe": {"routing": routing, **moe}})
    return build(cfg)


def expert_layers(sim, tokens: int, reps: int = 3) -> float:
    b = block(sim)
    ex = sim.executors["main"]
    credit = [0.0] * len(ex.chain)
    tok = np.full(b.dp, tokens // b.dp, np.int64)
    return float(np.mean([b.phases(tok, 0.0, ex.answer, credit, False)[2].mean()
                          for _ in range(reps)]))


def test_power_law_stragglers_at_many_tokens_not_at_few():
    """Validation 2: EP8, α = 1.2: ≥ 1.2× the balanced expert time at 4096 tokens. At 16
    tokens reading weights dominates: with one expert per rank (Mixtral) the difference
    vanishes; with 16 per rank (Qwen3-30B-A3B) skew even helps, as fewer distinct experts
    receive tokens than under perfectly balanced routing."""
    for model, few in (("mixtral-8x7b", (0.9, 1.1)), ("qwen3-30b-a3b", (0.3, 1.1))):
        skew, bal = qwen_ep8("power_law:1.2", model), qwen_ep8("balanced", model)
        big = expert_layers(skew, 4096) / expert_layers(bal, 4096)
        small = expert_layers(skew, 16) / expert_layers(bal, 16)
        assert big >= 1.2, model
        assert few[0] <= small <= few[1], model


def test_layer_waits_for_the_slowest_rank():
    sim = qwen_ep8("power_law:1.2")
    b, ex = block(sim), sim.executors["main"]
    state = b.rng.bit_generator.state
    counts = b.routing.draw(4096)
    b.rng.bit_generator.state = state
    credit = [0.0] * len(ex.chain)
    got = b.phases(np.full(8, 512, np.int64), 0.0, ex.answer, credit, False)[2]
    slot = b.placement.slot_tokens(counts)
    every = b._expert_times(slot.reshape(-1, slot.shape[2]), 4096, ex.answer)[0]
    every = every.reshape(len(slot), 8)
    assert got == pytest.approx(np.max(every, axis=1))
    assert (got > np.mean(every, axis=1) * 1.2).all()  # never the mean


def ep32(r, predictor="linear-test", reg=None):
    return build(config(model="qwen3-30b-a3b", predictor=predictor, cluster={
        "tp": 1, "dp": 32, "moe": {"routing": "power_law:1.2", "placement": "eplb",
                                   "redundant_experts": r}}), reg)


def test_redundant_experts_lower_the_drawn_straggler_ratio():
    """Validation 3 on sampled routing: more EPLB slots, lower max/mean rank tokens."""
    ratios = []
    for r in (0, 32, 64, 128, 224):
        b = block(ep32(r))
        st = b.placement.slot_tokens(b.routing.draw(16384)).sum(axis=2)
        ratios.append(float((st.max(axis=1) / st.mean(axis=1)).mean()))
    assert ratios == sorted(ratios, reverse=True)
    assert ratios[0] > 3 and ratios[-1] < 1.1


def test_redundant_experts_shorten_compute_bound_layers():
    """Validation 3 on layer time (roofline): monotone while the experts are compute-bound;
    when reading weights dominates, each extra copy on a rank is more weight traffic, so
    past the first balancing slots the time rises again."""
    from frontier_core import load_registry

    reg = load_registry()
    slots = (0, 32, 64, 128, 224)
    big = [expert_layers(ep32(r, "roofline", reg), 65536) for r in slots]
    assert big == sorted(big, reverse=True)
    assert big[-1] < big[0] * 0.3
    small = [expert_layers(ep32(r, "roofline", reg), 4096) for r in slots]
    assert small[1] < small[0] and small[-1] > small[1]


def test_ep1_shards_every_expert_over_tp_without_all_to_all():
    sim = build(config(cluster={"moe": {"ep": 1}}))
    b = block(sim)
    assert b.ep == 1 and b.gemms.inter_local == 14336 // 8
    out = b.phases(np.array([64]), 0.0, sim.executors["main"].answer, [0.0], False)
    assert not out[1].any() and not out[3].any()  # no dispatch or combine
    m = sim.model
    assert sim.plans["main"].weight_bytes_per_gpu == pytest.approx(m.weight_bytes() / 8)


def test_memory_plan_places_experts_by_ep_and_kv_by_dp():
    sim = build(config(model="deepseek-v3", cluster={"gpu": "h800", "tp": 1, "dp": 32, "moe": {
        "placement": "eplb", "redundant_experts": 32, "routing": "power_law:1.01"}}))
    m, plan = sim.model, sim.plans["main"]
    expected = m.weight_bytes() - m.routed_expert_bytes() + m.routed_expert_bytes() * 9 / 256
    assert plan.weight_bytes_per_gpu == pytest.approx(expected)
    one = build(config(model="deepseek-v3", cluster={"gpu": "h800", "tp": 1, "dp": 32, "moe": {
        "placement": "eplb", "redundant_experts": 32}})).plans["main"]
    assert plan.kv_blocks == one.kv_blocks
    assert plan.gpus == 32
    assert plan.kv_blocks % 32 == 0


def test_dp_ranks_wait_for_the_busiest_attention_rank():
    """A batch whose requests all sit on one DP rank is slower than one spread over them."""
    sim = build(config(cluster={"tp": 1, "dp": 8, "moe": {"routing": "balanced"}}))
    ex = sim.executors["main"]
    spread = ex.iteration(decode_batch(64, 2048)).latency
    piled = decode_batch(64, 2048)
    for i, r in enumerate(piled.decode):
        r.dp_rank = 8 * i  # all on rank 0
    assert ex.iteration(piled).latency > spread * 1.3


def test_prefill_and_mixed_batches_run():
    sim = build(config(cluster={"tp": 2, "dp": 4}))
    ex = sim.executors["main"]
    assert ex.iteration(prefill_batch(4, 512)).latency > ex.iteration(decode_batch(4)).latency


@pytest.mark.parametrize("moe,match", [
    ({"ep": 3}, "ep is 3"),
    ({"redundant_experts": 8}, "placement: eplb"),
    ({"placement": "eplb", "redundant_experts": 3}, "multiple of 8"),
    ({"routing": "pareto:1"}, "power_law:<alpha>"),
    ({"routing": "replay:nope.csv"}, "does not exist"),
    ({"eplb": True}, "eplb"),
])
def test_bad_moe_options_are_config_errors(moe, match):
    with pytest.raises(ConfigError, match=match) as e:
        build(config(cluster={"moe": moe}))
    assert "\n" not in str(e.value)


def test_dp_on_a_dense_model_is_refused():
    with pytest.raises(ConfigError, match="replicas: 4"):
        build(config(model="llama-2-7b", cluster={"tp": 1, "dp": 4}))


def test_experts_sharded_within_expert_parallel_groups_need_no_all_to_all_under_tp():
    """moe_tp × moe_ep: 8 GPUs of TP attention, ep 4: each expert sharded over 2 GPUs of
    its group. Every GPU holds every token, so nothing is dispatched; the GPU holds its
    group's experts' shard."""
    sim = build(config(cluster={"moe": {"ep": 4}}))
    b = block(sim)
    assert (b.ep, b.moe_tp, b.per_rank, b.gemms.inter_local) == (4, 2, 2, 14336 // 2)
    out = b.phases(np.array([64]), 0.0, sim.executors["main"].answer, [0.0], False)
    assert not out[1].any() and not out[3].any()
    m = sim.model
    assert b.weight_bytes_per_gpu() == pytest.approx(m.routed_expert_bytes() / 8)


def test_dp_attention_with_sharded_experts_gathers_and_scatters_the_tokens():
    """DP attention with every expert sharded over all 8 GPUs (ep 1): the tokens of all DP
    ranks are all-gathered before the experts and reduce-scattered after, a cost that
    grows with the tokens."""
    sim = build(config(cluster={"tp": 1, "dp": 8, "moe": {"ep": 1}}))
    b = block(sim)
    assert b.gathered and b.moe_tp == 8 and b.gemms.inter_local == 14336 // 8
    answer = sim.executors["main"].answer
    small = b.phases(np.full(8, 8), 0.0, answer, [0.0], False)
    big = b.phases(np.full(8, 512), 0.0, answer, [0.0], False)
    assert small[1].all() and small[3].all()
    assert big[1][0] > small[1][0] and big[3][0] > small[3][0]


# ---- runs, reports, determinism ----------------------------------------------------


def run_json(cfg, tmp_path, name):
    from frontier_core.app.metrics import write_outputs

    sim = build(cfg).run()
    write_outputs(sim, tmp_path / name)
    return sim, json.loads((tmp_path / name / "summary.json").read_text())


def test_run_reports_moe_metrics_and_trace(tmp_path):
    cfg = config(cluster={"tp": 1, "dp": 8,
                          "moe": {"routing": "power_law:1.2", "trace_iterations": 3}})
    sim, s = run_json(cfg, tmp_path, "a")
    moe = s["clusters"]["main"]["moe"]
    assert moe["ep"] == 8 and moe["iterations"] == s["clusters"]["main"]["iterations"]
    assert moe["straggler_ratio"]["mean"] > 1.5  # α = 1.2 over 8 experts is very skewed
    assert sum(moe["rank_token_share"]) == pytest.approx(1.0)
    assert sum(moe["rank_load_histogram"]["counts"]) > 0
    assert 0 < moe["expert_utilisation"] <= 1
    per = moe["seconds_per_iteration"]
    assert per["dispatch"] > 0 and per["experts"] > 0
    trace = json.loads((tmp_path / "a" / "trace.json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in trace if e.get("name") == "thread_name"}
    assert {f"replica 0 · EP rank {r}" for r in range(8)} <= names
    slices = [e for e in trace if e.get("ph") == "X" and e["name"] == "experts"]
    assert len(slices) == 3 * 8
    from frontier_core.app.metrics import report_lines

    assert any(line.startswith("moe main: EP8") for line in report_lines(sim))


def test_two_batch_overlap_pays_off_only_for_large_batches(tmp_path):
    """Two nodes (network-bound all-to-all): overlap hides communication at 16k tokens per
    layer, but at 256 tokens reading every expert's weights twice costs more than it hides."""
    from frontier_core import LayerStep

    def step(tbo, tokens):
        sim = build(config(model="qwen3-30b-a3b", cluster={
            "gpu": "h800", "tp": 1, "dp": 16, "moe": {"two_batch_overlap": tbo}}))
        b, ex = block(sim), sim.executors["main"]
        return b.step(LayerStep(np.full(16, tokens // 16), b.layers, 1e-7 * tokens, ex.answer,
                                [0.0]))

    assert step(True, 16384) < step(False, 16384) * 0.9
    assert step(True, 256) > step(False, 256)
    _, on = run_json(config(model="qwen3-30b-a3b", cluster={
        "tp": 1, "dp": 8, "moe": {"two_batch_overlap": True}}), tmp_path, "on")
    assert on["clusters"]["main"]["moe"]["hidden_by_overlap_s"] > 0


def test_same_seed_identical_outputs_other_seed_differs(tmp_path):
    cfg = config(cluster={"moe": {"routing": "power_law:1.2"}})
    run_json(cfg, tmp_path, "a")
    run_json(cfg, tmp_path, "b")
    for f in ("summary.json", "requests.csv", "trace.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    _, other = run_json(cfg.model_copy(update={"seed": 1}), tmp_path, "c")
    first = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert other["clusters"]["main"]["moe"] != first["clusters"]["main"]["moe"]


def test_pd_with_ep_clusters_runs_end_to_end(tmp_path):
    """Composition: a DP/EP prefill cluster feeding a DP/EP decode cluster over pd."""
    pytest.importorskip("frontier_pd_disagg")
    import frontier_pd_disagg.plugin as pd
    from moehelpers import registry

    cfg = config(model="qwen3-30b-a3b")
    data = cfg.model_dump(exclude={"base_dir"})
    data["deployment"] = {
        "workflow": {"name": "pd"},
        "clusters": [
            {"name": "prefill", "gpu": "h100-sxm", "dp": 4, "tp": 2,
             "moe": {"routing": "power_law:1.2"}},
            {"name": "decode", "gpu": "h100-sxm", "dp": 8, "tp": 1,
             "moe": {"routing": "power_law:1.2", "two_batch_overlap": True,
                     "placement": "eplb", "redundant_experts": 8}},
        ],
    }
    from frontier_core.app.metrics import write_outputs
    from frontier_core.config import RunConfig

    sim = build(RunConfig.model_validate(data), registry(pd)).run()
    s = write_outputs(sim, tmp_path / "pd")
    assert s["requests"]["completed"] == 60
    assert s["gpus"] == 16
    assert s["clusters"]["prefill"]["moe"]["ep"] == 8
    assert s["clusters"]["decode"]["moe"]["slots"] == 136
    assert s["workflow"]["transfers"]["count"] == 60


def test_an_mtp_pass_is_priced_as_one_mean_layer_and_left_out_of_the_stats(tmp_path):
    """Speculative MTP runs its one MoE layer through the cluster's block: the block
    returns one layer's worth of its per-layer time and records nothing for it."""
    cfg = config(cluster={"moe": {"routing": "power_law:1.2"},
                          "speculative": {"method": "mtp", "k": 1, "acceptance": 0.8}})
    sim, s = run_json(cfg, tmp_path, "a")
    moe = s["clusters"]["main"]["moe"]
    assert moe["iterations"] == s["clusters"]["main"]["iterations"]  # no MTP passes
    ex = sim.executors["main"]
    b = block(sim)
    steps = b.stats.steps
    ids = np.arange(32)
    kvd = np.full(32, 300)
    target = ex.run(None, None, None, kvd, None, None, ids).latency
    draft = ex.spec.drafter.run(None, None, None, kvd, None, None, ids).latency
    assert b.stats.steps == steps + 1  # the target's pass only
    assert 0 < draft < 2.5 * target / b.layers


def test_speculation_over_dp_ranks_runs_every_draft_pass(tmp_path):
    """DP attention with k > 1: later draft passes carry decodes only, on their ranks."""
    cfg = config(cluster={"dp": 4, "tp": 2,
                          "speculative": {"method": "mtp", "k": 3, "acceptance": 0.7}})
    sim, s = run_json(cfg, tmp_path, "a")
    assert s["requests"]["completed"] == 60
    assert all(r.generated == r.output_len for r in sim.controller.requests)
    sp = s["clusters"]["main"]["speculative"]
    assert sp["tokens_per_step"] > 1.5 and sp["draft_time_fraction"] > 0


def test_expert_calls_say_whether_the_experts_are_gated():
    b = block(build(config(cluster={"moe": {"ep": 8}})))
    assert b.gemms.call(np.array([2, 1]), 3, 3.0).extra["gated"] is True
    b.gemms.model = b.model.model_copy(update={"gated_mlp": False})  # e.g. Nemotron-H's ReLU² experts
    assert b.gemms.call(np.array([2, 1]), 3, 3.0).extra["gated"] is False


def test_dp_ranks_are_dealt_in_turn_on_each_replica():
    # Regression: the rank was request id mod dp, so with 2 replicas behind round_robin
    # each replica used only every other rank (with 8 replicas and dp 32, 4 of 32).
    cfg = config(cluster={"tp": 1, "dp": 4, "replicas": 2, "router": "round_robin"})
    sim = build(cfg).run()
    for rep in range(2):
        ranks = [r.dp_rank for r in sim.controller.requests if r.replica == rep]
        assert sorted(set(ranks)) == [0, 1, 2, 3]
        assert max(ranks.count(k) for k in range(4)) - min(ranks.count(k) for k in range(4)) <= 1


def test_token_budget_and_sequence_cap_are_per_dp_rank():
    # Regression: a replica of 4 DP ranks shared one rank's budget between them.
    cfg = config(cluster={"tp": 1, "dp": 4, "scheduler": {
        "name": "vllm", "max_num_batched_tokens": 256, "max_num_seqs": 4}},
        workload={"arrival": {"process": "poisson", "rate": 1000.0},
                  "prompt_len": {"dist": "fixed", "value": 256},
                  "output_len": {"dist": "fixed", "value": 32}, "num_requests": 40})
    sim = build(cfg).run()
    it = np.asarray(sim.clusters["main"].replicas[0].iterations).reshape(-1, 6)
    assert it[:, 4].max() == 4 * 256  # four prompts of one rank's budget each
    assert (it[:, 2] + it[:, 3]).max() == 16  # four sequences per rank
