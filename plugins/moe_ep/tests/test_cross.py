"""The cross_cluster block: experts of one MoE layer on several clusters."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from frontier_moe_ep.calendar import Calendar, fit_both
from moehelpers import registry as moe_registry

from frontier_core import ComponentSpec, ConfigError, LayerStep, hookimpl
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig

ROOT = Path(__file__).resolve().parents[3]
# Seconds per (token, expert) assignment on each GPU kind, and nothing else costs time.
RATE = {"h200": 1e-6, "a100-80g-sxm": 2e-6, "h100-sxm": 1.5e-6}


class ExpertsOnly:
    def __init__(self, device: str, slow: float = 1.0) -> None:
        self.rate = RATE[device] * (slow if device == "a100-80g-sxm" else 1.0)

    def predict(self, call: Any) -> float:
        if call.op == "moe_experts":
            return self.rate * float(np.ceil(call.extra["tokens_per_expert"]).sum())
        return 0.0


def experts_only_plugin(slow: float = 1.0) -> Any:
    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("experts-only",
                              lambda o, ctx: ExpertsOnly(ctx.device.name, slow), summary="t")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


def config(moe: dict[str, Any], pools: list[dict] | None = None, cluster: dict | None = None,
           predictor: Any = "experts-only", **extra: Any) -> RunConfig:
    pools = pools if pools is not None else [
        {"name": "hot", "gpu": "h200", "gpus": 1}, {"name": "cold", "gpu": "a100-80g-sxm",
                                                     "gpus": 1}]
    data: dict[str, Any] = {
        "model": "mixtral-8x7b",
        "deployment": {
            "expert_clusters": pools,
            "clusters": [{"name": "main", "gpu": "h100-sxm", "tp": 1,
                          "moe": {"name": "cross_cluster", **moe}, **(cluster or {})}]},
        "predictor": predictor,
        "transfer": {"name": "links", "bandwidth_eff": 1.0},
        "workload": {"arrival": {"process": "poisson", "rate": 20.0},
                     "prompt_len": {"dist": "uniform", "low": 64, "high": 256},
                     "output_len": {"dist": "uniform", "low": 8, "high": 32},
                     "num_requests": 30},
        "seed": 0, **extra,
    }
    return RunConfig.model_validate(data)


def build(cfg: RunConfig, slow: float = 1.0):
    return assemble(cfg, moe_registry(experts_only_plugin(slow)))


def step(sim, tokens: int | list[int], now: float = 0.0, replica: int = 0,
         cluster: str = "main") -> float:
    ex = sim.executors[cluster]
    tok = np.array(tokens if isinstance(tokens, list) else [tokens], np.int64)
    return ex.moe_ffn.step(LayerStep(tok, ex.moe_ffn.L, 0.0, ex.answer, ex.credit,
                                     replica, now))


SPLIT = {"experts": {"hot": [0, 1, 2, 3], "cold": [4, 5, 6, 7]},
         "links": {"hot": {"bandwidth_gbs": 50, "latency_us": 10},
                   "cold": {"bandwidth_gbs": 25, "latency_us": 20}}}


def test_calendar_fills_gaps_and_merges():
    c = Calendar()
    c.book(c.fit(0.0, 1.0), 1.0)  # [0, 1)
    c.book(c.fit(3.0, 1.0), 1.0)  # [3, 4)
    assert c.fit(0.5, 2.0) == 1.0  # the gap [1, 3) holds 2 s
    assert c.fit(0.5, 2.5) == 4.0  # but not 2.5 s
    c.book(1.0, 2.0)
    assert c.starts == [0.0] and c.ends == [4.0]  # merged into one interval
    other = Calendar()
    other.book(4.0, 1.0)
    assert fit_both(c, other, 0.0, 1.0) == 5.0
    c.prune(4.0)
    assert c.starts == [] and c.busy_s == 4.0


def test_layer_time_equals_the_hand_computation():
    """Balanced routing: 64 tokens × top-2 over 8 experts = 16 tokens per expert; each
    holder (one GPU) gets 64 assignments. One micro-batch, nothing but experts costs
    compute, and no other traffic. Per layer: the attention GPU's port sends to hot,
    then to cold; each holder computes on arrival; results come back in turn."""
    sim = build(config({**SPLIT, "routing": "balanced"}))
    b = sim.executors["main"].moe_ffn
    h = 4096
    copies = 64  # to each holder: 64 token copies, sent by the one attention GPU
    d_hot, d_cold = copies * 2 * h / 50e9, copies * 2 * h / 25e9
    c_hot, c_cold = d_hot, d_cold  # bf16 both ways
    lat_hot, lat_cold = 10e-6, 20e-6
    f_hot, f_cold = 64 * RATE["h200"], 64 * RATE["a100-80g-sxm"]
    arrive_hot = d_hot + lat_hot
    arrive_cold = d_hot + d_cold + lat_cold  # the port is busy with hot's data first
    done_hot = arrive_hot + f_hot
    done_cold = arrive_cold + f_cold
    # Combines hold the holder's send port and the attention GPU's receive port.
    back_hot = done_hot + c_hot + lat_hot
    start_cold = max(done_cold, done_hot + c_hot)
    back_cold = start_cold + c_cold + lat_cold
    layer = max(back_hot, back_cold)
    got = step(sim, 64)
    assert got == pytest.approx(b.L * layer, rel=1e-9)
    st = b.stats
    assert list(st.expert_tokens) == [64.0 * b.L, 64.0 * b.L]
    assert st.straggler.tolist() == [0, b.L]  # cold returned last in every layer
    assert st.bytes_out.tolist() == [64 * 2 * h * b.L] * 2


def test_each_holder_computes_the_tokens_of_its_experts():
    sim = build(config({"experts": {"hot": 3, "cold": 7}, "routing": "power_law:1.2"}, [
        {"name": "hot", "gpu": "h200"}, {"name": "cold", "gpu": "a100-80g-sxm", "gpus": 2}]))
    b = sim.executors["main"].moe_ffn
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 50, (b.L, 8))
    b.layout.routing.draw = lambda t: counts
    step(sim, 100)
    ids = b.layout.ids
    assert ids["hot"][0].tolist() == [0, 1, 2] and ids["cold"][0].tolist() == [3, 4, 5, 6, 7, 0, 1]
    # Experts 0 and 1 have a copy on each holder: half their tokens each.
    share = np.ones(8)
    share[[0, 1]] = 0.5
    want_hot = (counts[:, [0, 1, 2]] * share[[0, 1, 2]]).sum()
    want_cold = (counts[:, [3, 4, 5, 6, 7, 0, 1]] * share[[3, 4, 5, 6, 7, 0, 1]]).sum()
    assert b.stats.expert_tokens.tolist() == pytest.approx([want_hot, want_cold])
    assert b.stats.expert_tokens.sum() == pytest.approx(counts.sum())


def test_the_layer_waits_for_the_slowest_cluster():
    fast = build(config({**SPLIT}))
    slow = build(config({**SPLIT}), slow=10.0)  # the A100s 10× slower
    t_fast, t_slow = step(fast, 64), step(slow, 64)
    b = slow.executors["main"].moe_ffn
    assert t_slow > t_fast
    assert t_slow >= b.L * 64 * RATE["a100-80g-sxm"] * 10
    assert b.stats.straggler.tolist() == [0, b.L]


def test_half_the_bandwidth_slows_only_the_transfers():
    links = {"hot": {"bandwidth_gbs": 50}, "cold": {"bandwidth_gbs": 50}}
    half = {"hot": {"bandwidth_gbs": 25}, "cold": {"bandwidth_gbs": 25}}
    a = build(config({"experts": SPLIT["experts"], "links": links}))
    b = build(config({"experts": SPLIT["experts"], "links": half}))
    ta, tb = step(a, 64), step(b, 64)
    sa, sb = a.executors["main"].moe_ffn.stats, b.executors["main"].moe_ffn.stats
    assert sb.experts_s.tolist() == sa.experts_s.tolist()
    assert sb.dispatch_s == pytest.approx(2 * sa.dispatch_s)
    assert sb.combine_s == pytest.approx(2 * sa.combine_s)
    assert tb > ta


def test_by_load_puts_the_hottest_experts_on_the_fastest_cluster():
    # hot:0.25:0.8 — 2 of 8 experts get 80% of the tokens; the H200 (fastest per expert)
    # holds 2 experts.
    sim = build(config({"experts": {"cold": 6, "hot": 2}, "placement": "by_load",
                        "routing": "hot:0.25:0.8"}))
    b = sim.executors["main"].moe_ffn
    order = b.layout.routing.order  # each layer's experts, hottest first
    for li in range(b.L):
        assert sorted(b.layout.ids["hot"][li].tolist()) == sorted(order[li][:2].tolist())
    step(sim, 256)
    share = b.stats.expert_tokens / b.stats.expert_tokens.sum()
    assert share[list(b.layout.ids).index("hot")] > 0.7


def test_rebalancing_moves_experts_and_charges_the_weights():
    sim = build(config({"experts": {"hot": 2, "cold": 6}, "placement": "by_load",
                        "rebalance_every": 1, "routing": "hot:0.25:0.8",
                        "links": {"hot": {"bandwidth_gbs": 50, "latency_us": 10},
                                  "cold": {"bandwidth_gbs": 50, "latency_us": 10}}}))
    b = sim.executors["main"].moe_ffn
    lay = b.layout
    before = {k: v.copy() for k, v in lay.ids.items()}
    # Observed: the two coldest experts of every layer were the hot ones.
    seen = np.ones((b.L, 8))
    for li in range(b.L):
        seen[li, lay.routing.order[li][-2:]] = 100.0
    lay.observed = seen
    stall = lay.end_iteration(1.0, b.links)
    for li in range(b.L):
        assert sorted(lay.ids["hot"][li].tolist()) == sorted(lay.routing.order[li][-2:].tolist())
    moved = sum(len(set(lay.ids[k][li].tolist()) - set(before[k][li].tolist()))
                for k in lay.ids for li in range(b.L))
    assert lay.experts_moved == moved == 4 * b.L  # 2 each way per layer
    per_expert = sim.model.routed_expert_bytes() / 8 / b.L
    # Each holder receives its 2 new experts per layer over its one GPU's link.
    want = 10e-6 + 2 * b.L * per_expert / 50e9
    assert stall == pytest.approx(want, rel=1e-9)
    hot = next(h for h in b.holders if h.name == "hot")
    assert hot.compute.starts == [1.0] and hot.compute.ends[0] == pytest.approx(1.0 + want)


def test_two_replicas_contend_for_a_shared_expert_cluster():
    sim = build(config({**SPLIT}, cluster={"replicas": 2}))
    one = step(sim, 64, now=0.0, replica=0)
    two = step(sim, 64, now=0.0, replica=1)  # same instant: the pools are taken
    assert two > one


def test_two_clusters_share_one_expert_cluster(tmp_path):
    moe = {"name": "cross_cluster", "experts": {"pool": 8}, "routing": "balanced"}
    cfg = RunConfig.model_validate({
        "model": "mixtral-8x7b",
        "deployment": {
            "workflow": {"name": "pd", "prefill": ["p"], "decode": ["d"]},
            "expert_clusters": [{"name": "pool", "gpu": "h200", "gpus": 2}],
            "clusters": [{"name": "p", "gpu": "h100-sxm", "moe": moe},
                         {"name": "d", "gpu": "h100-sxm", "moe": moe}]},
        "predictor": "roofline",
        "workload": {"arrival": {"process": "poisson", "rate": 10.0},
                     "prompt_len": {"dist": "fixed", "value": 128},
                     "output_len": {"dist": "fixed", "value": 16}, "num_requests": 20},
    })
    try:
        import frontier_pd_disagg.plugin as pd
    except ImportError:
        pytest.skip("needs frontier-pd-disagg")
    from frontier_core.app.metrics import summarize

    sim = assemble(cfg, moe_registry(pd)).run()
    s = summarize(sim)
    pool = s["expert_clusters"]["pool"]
    assert pool["serves"] == ["d", "p"] and pool["experts"] == 8 and pool["gpus"] == 2
    assert s["gpus"] == 4
    assert sim.executors["p"].moe_ffn.layout is sim.executors["d"].moe_ffn.layout


@pytest.mark.parametrize("moe,pools,match", [
    ({"experts": {"hot": 3, "cold": 3}}, None, "every expert must live somewhere"),
    ({"experts": {"hot": [0, 1, 2], "cold": [4, 5, 6, 7]}}, None, r"on no cluster \(e.g. \[3\]"),
    ({"experts": {"hot": 4, "warm": 4}}, None, "'warm' is neither this cluster"),
    ({"experts": {"hot": 8}}, None, "holds no experts"),  # cold is never used
    ({"experts": {"hot": 8, "cold": 1}},
     [{"name": "hot", "gpu": "a100-80g-sxm", "gpus": 1}, {"name": "cold", "gpu": "h200"}],
     "needs 84.0 GiB for its 8 experts"),
    ({"experts": {"hot": [0, 0], "cold": 8}}, None, "mixes counts and lists|listed twice"),
    ({"experts": {"hot": 4, "cold": 4}, "rebalance_every": 5}, None, "needs placement: by_load"),
    ({"experts": {"hot": [0, 1, 2, 3], "cold": [4, 5, 6, 7]}, "placement": "by_load"}, None,
     "lists expert ids, but placement by_load"),
])
def test_bad_placements_are_config_errors(moe, pools, match):
    with pytest.raises(ConfigError, match=match):
        build(config(moe, pools))


def test_unknown_gpu_of_an_expert_cluster_is_a_config_error():
    with pytest.raises(ConfigError, match=r"expert_clusters\[1\].gpu"):
        build(config(SPLIT, [{"name": "hot", "gpu": "h200"}, {"name": "cold", "gpu": "b999"}]))


def test_local_experts_stay_on_the_clusters_own_gpus():
    sim = build(config({"experts": {"main": 4, "hot": 4}}, pools=[
        {"name": "hot", "gpu": "h200", "gpus": 1}], cluster={"dp": 2}))
    b = sim.executors["main"].moe_ffn
    per_expert = sim.model.routed_expert_bytes() / 8
    assert b.weight_bytes_per_gpu() == per_expert * 2  # 4 experts over dp × tp = 2 GPUs
    step(sim, [32, 32])
    local = b.holders[0]
    assert local.local and b.stats.expert_tokens[0] == 64 * b.L  # half of 128 assignments
    assert b.stats.dispatch_s[0] > 0  # the NVLink all-to-all between the 2 GPUs


def test_example_runs_and_reports(tmp_path):
    from typer.testing import CliRunner

    from frontier_core.app.cli import app

    out = tmp_path / "cross"
    r = CliRunner().invoke(app, ["run", str(ROOT / "examples" / "moe_cross_cluster.yaml"),
                                 "-o", str(out), "--set", "workload.num_requests=12"])
    assert r.exit_code == 0, r.output
    assert "cross_cluster attention: hot 64" in r.output.replace("\n", " ")
    s = json.loads((out / "summary.json").read_text())
    for name in ("hot", "cold"):
        pool = s["expert_clusters"][name]
        assert pool["expert_tokens"] > 0 and pool["bytes_received"] > 0
        assert 0 < pool["busy_fraction"] < 1
    holders = s["clusters"]["attention"]["moe"]["holders"]
    assert holders["hot"]["experts"] == 64 and holders["cold"]["experts"] == 192
    assert s["gpus"] == 8 + 8 + 16
    shares = [holders[k]["straggler_share"] for k in ("hot", "cold")]
    assert sum(shares) == pytest.approx(1.0)
    ev = json.loads((out / "trace.json").read_text())["traceEvents"]
    starts = {e["id"] for e in ev if e.get("ph") == "s"}
    ends = {e["id"] for e in ev if e.get("ph") == "f"}
    assert starts and starts == ends  # every flow arrives
    names = {e["args"]["name"] for e in ev if e.get("name") == "process_name"}
    assert {"expert cluster hot", "expert cluster cold"} <= names


def test_same_seed_same_run(tmp_path):
    from frontier_core.app.metrics import write_outputs

    a = write_outputs(build(config({"experts": {"hot": 4, "cold": 4},
                                    "routing": "power_law:1.2", "micro_batches": 2})).run(),
                      tmp_path / "a")
    b = write_outputs(build(config({"experts": {"hot": 4, "cold": 4},
                                    "routing": "power_law:1.2", "micro_batches": 2})).run(),
                      tmp_path / "b")
    assert a == b


def test_micro_batches_overlap_transfers_with_remote_compute():
    one = build(config({**SPLIT, "micro_batches": 1}))
    two = build(config({**SPLIT, "micro_batches": 2}))
    t1, t2 = step(one, 256), step(two, 256)
    s1, s2 = one.executors["main"].moe_ffn.stats, two.executors["main"].moe_ffn.stats
    # The same work (expert compute is linear in tokens here), in less time.
    assert s2.experts_s.sum() == pytest.approx(s1.experts_s.sum())
    assert t2 < t1
