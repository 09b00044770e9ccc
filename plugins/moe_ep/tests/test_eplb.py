"""DeepSeek's EPLB policies, live rebalancing from observed loads, and routing drift."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_moe_ep.eplb import choose_policy, imbalance, move_seconds, rebalance
from frontier_moe_ep.placement import Placement
from frontier_moe_ep.routing import ExpertRouting, parse_routing
from moehelpers import block, build, config, prefill_batch

from frontier_core import ConfigError, Link

# ---- the algorithm ------------------------------------------------------------------

# The example of github.com/deepseek-ai/EPLB's README: 2 layers, 12 experts in 4 groups,
# 16 slots on 2 nodes of 4 GPUs; its printed phy2log (hierarchical policy).
README_WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                          [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
README_PHY2LOG = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]


def test_hierarchical_policy_reproduces_deepseeks_published_example():
    assert rebalance(README_WEIGHT, 16, 8, 4, 2, "auto").tolist() == README_PHY2LOG
    assert rebalance(README_WEIGHT, 16, 8, 4, 2, "hierarchical").tolist() == README_PHY2LOG


def test_auto_chooses_as_deepseek_rebalance_experts_does():
    assert choose_policy("auto", 4, 2, 8) == "hierarchical"  # nodes divide the groups
    assert choose_policy("auto", 1, 2, 16) == "global"  # no groups (one), two nodes
    assert choose_policy("auto", 1, 1, 8) == "hierarchical"  # one node: the same as global
    assert choose_policy("auto", 8, 3, 24) == "global"
    assert choose_policy("global", 4, 2, 8) == "global"


def test_hierarchical_keeps_each_group_on_one_node_and_global_need_not():
    rng = np.random.default_rng(3)
    w = rng.pareto(1.2, (6, 32)) + 0.01  # 8 groups of 4 experts
    groups, nodes, ep, slots = 8, 2, 8, 48
    per_node = slots // nodes

    def groups_per_node(se):
        return [[set((se[li, n * per_node:(n + 1) * per_node] // 4).tolist())
                 for n in range(nodes)] for li in range(len(se))]

    hier = rebalance(w, slots, ep, groups, nodes, "hierarchical")
    for layer in groups_per_node(hier):
        assert [len(g) for g in layer] == [groups // nodes] * nodes  # 4 whole groups each
        assert not layer[0] & layer[1]
    assert sorted(set(hier[0].tolist())) == list(range(32))  # every expert placed
    glob = rebalance(w, slots, ep, groups, nodes, "global")
    assert any(layer[0] & layer[1] for layer in groups_per_node(glob))
    # global balances the ranks at least as well: it is not bound to the nodes
    assert imbalance(glob, ep, w) <= imbalance(hier, ep, w) + 1e-12


def test_rebalancing_from_loads_balances_them():
    rng = np.random.default_rng(0)
    w = rng.pareto(1.0, (4, 64)) + 0.01
    contiguous = np.tile(np.arange(64), (4, 1))
    placed = rebalance(w, 80, 16, 1, 2, "auto")
    assert imbalance(placed, 16, w) < 0.5 * imbalance(contiguous, 16, w)


def test_weight_move_priced_per_receiving_rank_and_link():
    nv, net = Link(400e9, 2e-6), Link(50e9, 5e-6)
    b = 1e8  # one expert's bytes
    old = np.array([[0, 1, 2, 3], [0, 1, 2, 3]])  # 2 ranks of 2 slots
    new = np.array([[0, 2, 1, 3], [0, 1, 2, 3]])  # layer 0: ranks swap experts 1 and 2
    # one rank per node: each rank gets one expert over the network, in layer 0 only
    assert move_seconds(old, new, 2, 1, b, nv, net) == (2, 2 * b, pytest.approx(5e-6 + b / 50e9))
    # both ranks on one node: over NVLink
    assert move_seconds(old, new, 2, 2, b, nv, net)[2] == pytest.approx(2e-6 + b / 400e9)
    # a second copy of an expert a rank already holds is a local copy; a new expert
    # wanted twice on one rank is received once
    assert move_seconds(np.array([[0, 1, 2, 3]]), np.array([[0, 0, 1, 1]]), 2, 1, b, nv,
                        net)[:2] == (1, b)
    assert move_seconds(old, old, 2, 1, b, nv, net) == (0, 0.0, 0.0)


# ---- routing drift ------------------------------------------------------------------


def test_drift_moves_part_of_the_hot_order_and_keeps_the_shares():
    def routing(seed):
        return ExpertRouting(parse_routing("zipf:1.2"), 64, 8, 4, np.random.default_rng(seed))

    r, same = routing(0), routing(0)
    start, shares = r.order.copy(), np.sort(r.p, axis=1)
    r.drift(0.25)
    same.drift(0.25)
    assert (r.order == same.order).all()  # same seed, same drift
    changed = (r.order != start).mean(axis=1)
    assert (changed > 0).all() and (changed <= 0.25).all()
    assert np.allclose(np.sort(r.p, axis=1), shares)  # the same shares, other experts
    assert (np.argmax(r.p, axis=1) == r.order[:, 0]).all()  # the order still ranks them
    for _ in range(20):
        r.drift(0.25)
    assert (r.order != start).mean() > 0.9  # far from where it started


# ---- live rebalancing in a run ------------------------------------------------------


def qwen(routing="hot:0.1:0.6", **moe):
    return build(config(model="qwen3-30b-a3b", predictor=["linear-test"], cluster={
        "tp": 1, "dp": 8, "moe": {"routing": routing, "placement": "eplb", **moe}}))


def run_iterations(sim, n, tokens=512):
    ex = sim.executors["main"]
    return [ex.iteration(prefill_batch(8, tokens)).latency for _ in range(n)]


def test_live_eplb_follows_drifting_routing_where_a_static_placement_goes_stale():
    ratios = {}
    for name, drift, interval in (("no drift", 0, 0), ("static", 40, 0), ("live", 40, 10)):
        sim = qwen(routing="hot:0.1:0.6", redundant_experts=8, routing_drift=drift,
                   eplb_interval=interval)
        run_iterations(sim, 200)
        ratios[name] = float(np.mean(np.frombuffer(block(sim).stats.ratio)[100:]))
    base = ratios["no drift"]  # the placement from the expected shares, never stale
    assert ratios["static"] > base + 0.3
    assert ratios["live"] - base < 0.25 * (ratios["static"] - base)
    h = block(sim).live.history
    assert len(h) == 19 and all(x.window_after < x.window_before for x in h)


def test_a_rebalance_stalls_its_iteration_by_the_priced_weight_move():
    moe = {"redundant_experts": 8, "routing_drift": 1, "routing_drift_share": 1.0}
    live, static = qwen(eplb_interval=1, **moe), qwen(**moe)
    b, s = block(live), block(static)
    assert run_iterations(live, 1) == run_iterations(static, 1)  # nothing observed yet
    old = b.placement.slot_expert.copy()
    t_live = run_iterations(live, 1)[0]
    new = b.placement.slot_expert
    s.placement = Placement.from_slots(8, new.copy(), 128)  # the same layout, no move
    t_static = run_iterations(static, 1)[0]
    stall = b.live.history[0].stall_s
    assert t_live == pytest.approx(t_static + stall, rel=1e-12)
    # by hand: per layer, the rank receiving the most experts it did not hold, over
    # NVLink (8 GPUs, one node), one expert's weights each; the layers one after another
    m = b.model
    expert = m.routed_expert_bytes() / m.num_moe_layers / m.num_experts
    link = b.a2a.intra
    want = 0.0
    for li in range(len(old)):
        got = [len(set(new[li, r * 17:(r + 1) * 17]) - set(old[li, r * 17:(r + 1) * 17]))
               for r in range(8)]
        if max(got):
            want += link.latency + max(got) * expert / link.bandwidth
    assert stall == pytest.approx(want, rel=1e-12) and stall > 0
    assert b.stats.stall_s == stall


def test_same_seed_same_rebalances():
    def go():
        sim = qwen(routing="power_law:1.2", redundant_experts=8, routing_drift=5,
                   eplb_interval=4, eplb_window=8)
        return run_iterations(sim, 30), block(sim).live.history

    assert go() == go()


def test_run_summary_reports_the_rebalances(tmp_path):
    from frontier_core.app.metrics import write_outputs

    cfg = config(model="qwen3-30b-a3b", predictor="linear-test", cluster={
        "tp": 1, "dp": 8, "moe": {"routing": "hot:0.1:0.6", "placement": "eplb",
                                  "redundant_experts": 8, "eplb_interval": 20,
                                  "routing_drift": 10}})
    sim = build(cfg).run()
    write_outputs(sim, tmp_path)
    import json

    moe = json.loads((tmp_path / "summary.json").read_text())["clusters"]["main"]["moe"]
    ev = moe["eplb"]
    assert ev["policy"] == "hierarchical" and ev["nodes"] == 1  # 8 ranks on one node
    assert ev["rebalances"] == len(ev["timeline"]) > 0
    assert ev["imbalance_after"] < ev["imbalance_before"]
    assert ev["stall_s"] == pytest.approx(sum(t["stall_s"] for t in ev["timeline"]))
    assert moe["seconds_per_iteration"]["eplb_stall"] > 0
    assert moe["straggler_ratio_timeline"]["values"]


def test_passes_outside_the_iterations_are_not_observed_and_not_counted():
    """An MTP draft pass runs one MoE layer through the block: it neither counts as an
    iteration of live EPLB nor adds loads to its window."""
    cfg = config(cluster={"moe": {"routing": "power_law:1.2", "placement": "eplb",
                                  "redundant_experts": 8, "eplb_interval": 5},
                          "speculative": {"method": "mtp", "k": 1, "acceptance": 0.8}})
    sim = build(cfg).run()
    b = block(sim)
    assert b.live.iterations == b.stats.steps > 5
    assert len(b.live.history) == (b.stats.steps - 1) // 5


@pytest.mark.parametrize("moe,match", [
    ({"eplb_interval": 10}, "eplb_interval is set"),
    ({"placement": "eplb", "eplb_window": 10}, "eplb_window"),
    ({"placement": "eplb", "eplb_interval": -1}, "eplb_interval"),
    ({"placement": "eplb", "eplb_policy": "nodes"}, "eplb_policy"),
    ({"placement": "contiguous", "eplb_policy": "global"}, "eplb_policy is set"),
    ({"routing": "balanced", "routing_drift": 10}, "routing_drift"),
    ({"routing": "hot:0.1:0.5", "routing_drift_share": 0}, "routing_drift_share"),
])
def test_bad_eplb_options_are_config_errors(moe, match):
    with pytest.raises(ConfigError, match=match) as e:
        build(config(cluster={"moe": moe}))
    assert "\n" not in str(e.value)


def test_hierarchical_needs_the_nodes_to_divide_the_groups():
    # qwen3-30b-a3b has no expert groups (one); EP16 spans two H100 nodes
    with pytest.raises(ConfigError, match="moe.eplb_policy is hierarchical"):
        build(config(model="qwen3-30b-a3b", cluster={
            "tp": 1, "dp": 16, "moe": {"placement": "eplb", "eplb_policy": "hierarchical"}}))
