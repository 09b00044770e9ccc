"""Speculative decoding and MTP: acceptance statistics, KV growth by accepted tokens only,
verification as real operator calls, schedulers, memory, speed-up, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from simhelpers import run_sim, small_config

from frontier_core.assemble import assemble
from frontier_core.config import SpeculativeConfig
from frontier_core.errors import ConfigError
from frontier_core.execution.speculative import Speculator
from frontier_core.records import Batch, Request
from frontier_core.testing import LinearPredictor


def spec_config(spec: dict[str, Any] | None, model: str = "llama-3.1-8b", rate: float = 2.0,
                n: int = 40, output: int = 300, seed: int = 1, **cluster: Any):
    c = {"name": "main", "gpu": "h100-sxm", **cluster}
    if spec is not None:
        c["speculative"] = spec
    return small_config(
        model=model,
        deployment={"clusters": [c]},
        workload={"arrival": {"process": "poisson", "rate": rate},
                  "prompt_len": {"dist": "uniform", "low": 64, "high": 512},
                  "output_len": {"dist": "fixed", "value": output}, "num_requests": n},
        seed=seed,
    )


def expected_tokens(p: float, k: int) -> float:
    return (1 - p ** (k + 1)) / (1 - p)


def roomy_batch(n: int) -> Batch:
    """``n`` decodes with plenty of KV room and output left."""
    dec = []
    for i in range(n):
        r = Request(i, 0.0, 100, 10_000, computed=100, generated=1, prefill_target=100)
        r.blocks = 100
        dec.append(r)
    return Batch(decode=dec)


@pytest.mark.parametrize(("p", "k"), [(0.6, 1), (0.8, 3), (0.9, 5)])
def test_mean_accepted_tokens_follow_the_geometric_formula(p: float, k: int) -> None:
    cfg = SpeculativeConfig(method="mtp", k=k, acceptance=p)
    sp = Speculator(cfg, None, np.random.default_rng(3), "test")  # type: ignore[arg-type]
    for _ in range(40):
        sp.plan(roomy_batch(500), 16)
    n = sp.steps
    mean = (sp.accepted + n) / n
    # Standard error from the histogram's own variance.
    values = np.repeat(np.arange(k + 1) + 1, sp.hist)
    se = values.std() / math.sqrt(n)
    assert mean == pytest.approx(expected_tokens(p, k), abs=4 * se + 1e-9)
    summary = sp.summary(1.0)
    assert summary["expected_tokens_per_full_step"] == pytest.approx(expected_tokens(p, k))
    assert summary["tokens_per_full_step"] == pytest.approx(mean)  # every step was full


def test_per_position_rates_give_a_prefix_of_acceptances() -> None:
    cfg = SpeculativeConfig(method="mtp", k=3, acceptance=[1.0, 0.0, 1.0])
    sp = Speculator(cfg, None, np.random.default_rng(0), "test")  # type: ignore[arg-type]
    b = roomy_batch(50)
    sp.plan(b, 16)
    assert b.spec == [3] * 50
    assert b.accepted == [1] * 50  # position 2 is rejected, so position 3 never counts


def test_a_distribution_of_accepted_lengths_is_reproduced() -> None:
    weights = [0.1, 0.2, 0.0, 0.7]  # 0, 1, 2 or all 3 drafts accepted
    cfg = SpeculativeConfig(method="mtp", k=3, accepted_lengths=weights)
    assert cfg.rates() == pytest.approx([0.9, 0.7 / 0.9, 1.0])
    sp = Speculator(cfg, None, np.random.default_rng(1), "test")  # type: ignore[arg-type]
    for _ in range(40):
        sp.plan(roomy_batch(500), 16)
    share = sp.hist / sp.steps
    assert share == pytest.approx(weights, abs=0.01)
    assert sp.summary(1.0)["expected_tokens_per_full_step"] == pytest.approx(
        1 + 0.2 * 1 + 0.7 * 3)


def test_drafts_are_capped_by_kv_room_and_remaining_output() -> None:
    cfg = SpeculativeConfig(method="mtp", k=4, acceptance=1.0)
    sp = Speculator(cfg, None, np.random.default_rng(0), "test")  # type: ignore[arg-type]
    near_end = Request(0, 0.0, 100, 10, computed=107, generated=8, prefill_target=100)
    near_end.blocks = 20
    tight = Request(1, 0.0, 100, 500, computed=110, generated=11, prefill_target=100)
    tight.blocks = 7  # 112 tokens of room: the new token plus one draft
    full = Request(2, 0.0, 100, 500, computed=111, generated=12, prefill_target=100)
    full.blocks = 7  # room for the new token only
    b = Batch(decode=[near_end, tight, full])
    sp.plan(b, 16)
    assert b.spec == [1, 1, 0]
    assert b.accepted == [1, 1, 0]


def test_runs_emit_exactly_the_output_and_finish_faster(registry) -> None:
    base = run_sim(spec_config(None), registry)
    spec = run_sim(spec_config({"method": "draft", "k": 3, "acceptance": 0.8,
                                "draft_model": "llama-3.2-1b"}), registry)
    for sim in (base, spec):
        reqs = sim.controller.requests
        assert all(r.generated == r.output_len == 300 for r in reqs)
        assert all(r.completion == r.completion for r in reqs)  # all finished
        for cw in sim.clusters.values():
            for rep in cw.replicas:  # every block came back
                assert rep.kv.free_blocks == rep.kv.num_blocks
    tpot = [np.mean([(r.completion - r.first_token) / (r.output_len - 1)
                     for r in s.controller.requests]) for s in (base, spec)]
    assert tpot[1] < 0.75 * tpot[0]
    s = spec.executors["main"].spec
    assert s.steps > 0 and 0 < s.accepted < s.drafted
    assert s.draft_s > 0


def test_kv_grows_by_accepted_tokens_only(registry) -> None:
    """Step by step: computed and generated advance together by accepted + 1."""
    sim = assemble(spec_config({"method": "mtp", "k": 2, "acceptance": 0.5}, n=12), registry)
    rep = sim.clusters["main"].replicas[0]
    seen: list[tuple[int, int, int, int]] = []
    apply = rep._apply

    def spy(batch, back_to_running=False, start=0.0):
        before = [(r.computed, r.generated) for r in batch.decode]
        out = apply(batch, back_to_running, start)
        for (c, g), r, a in zip(before, batch.decode, batch.accepted, strict=True):
            seen.append((r.computed - c, r.generated - g, a, r.prompt_len + r.generated - 1
                         - r.computed))
        return out

    rep._apply = spy
    sim.run()
    assert seen
    for dc, dg, a, lag in seen:
        assert dc == dg == a + 1
        assert lag == 0  # decode invariant: computed = prompt + generated - 1


class Recorder(LinearPredictor):
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def predict(self, call: Any) -> float:
        self.calls.append(call)
        return super().predict(call)


def recording_registry():
    from types import SimpleNamespace

    from frontier_core.components import ComponentSpec
    from frontier_core.markers import hookimpl
    from frontier_core.plugins import load_registry

    rec = Recorder()

    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("recorder", lambda o, ctx: rec, summary="tests")]

    return load_registry(extra=[SimpleNamespace(frontier_predictors=frontier_predictors)]), rec


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mla"])
def test_verification_is_priced_as_real_operator_calls(model: str) -> None:
    reg, rec = recording_registry()
    cfg = spec_config({"method": "mtp", "k": 3, "acceptance": 0.7}, n=1)
    if model == "mla":
        from frontier_core.builtin.models import MODELS

        ds = next(m for m in MODELS if m.name == "deepseek-v3")
        dense = ds.model_copy(update={"name": "mla-dense", "num_experts": 0, "top_k": 0,
                                      "moe_intermediate_size": 0, "num_shared_experts": 0,
                                      "first_dense_layers": 0, "num_layers": 4,
                                      "router_bias": False})
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(
            update={"name": None, "spec": dense})})
    cfg = cfg.model_copy(update={"predictor": [cfg.predictor[0].model_copy(
        update={"name": "recorder"})]})
    sim = assemble(cfg, reg)
    ex = sim.executors["main"]
    dec = []
    for i, ctx in enumerate((300, 700)):
        r = Request(i, 0.0, ctx, 100, computed=ctx, generated=1, prefill_target=ctx)
        dec.append(r)
    batch = Batch(decode=dec, spec=[3, 2], accepted=[0, 0])
    rec.calls.clear()
    ex.iteration(batch)
    verify = [c for c in rec.calls if c.name == "attention_verify"]
    gemm_m = {c.m for c in rec.calls if c.op == "gemm" and c.name != "lm_head"}
    if model == "mla":
        # Absorbed MLA: query tokens folded into the heads, one call per width.
        assert sorted(c.num_heads for c in verify) == [ex.mixers[0].heads * 3, ex.mixers[0].heads * 4]
        assert all(c.op == "attention_decode" for c in verify)
    else:
        assert verify and all(c.op == "attention_prefill" for c in verify)
        v = verify[0]
        assert v.q_lens.tolist() == [4, 3] and v.kv_lens.tolist() == [304, 703]
    assert 7 in gemm_m  # the target computes 4 + 3 tokens
    lm = [c.m for c in rec.calls if c.name == "lm_head"]
    assert 7 in lm  # logits at every verified position
    # The drafter ran k passes over the sequences still drafting (2, 2, then 1).
    assert {1, 2} <= {c.m for c in rec.calls if c.name == "lm_head"}
    # Its passes run inside the target's engine step: one host overhead in all.
    assert sum(c.op == "cpu_overhead" for c in rec.calls) == 1


def test_mtp_speedup_when_decode_is_memory_bound(registry) -> None:
    """DeepSeek's reported 85% second-token acceptance with one MTP token: ~1.8x."""
    base = run_sim(spec_config(None, rate=0.5, n=10, output=400), registry)
    mtp = run_sim(spec_config({"method": "mtp", "k": 1, "acceptance": 0.85}, rate=0.5, n=10,
                              output=400), registry)

    def tpot(sim):
        return np.mean([(r.completion - r.first_token) / (r.output_len - 1)
                        for r in sim.controller.requests])

    speedup = tpot(base) / tpot(mtp)
    assert 1.6 < speedup < 1.85


def test_sarathi_budget_counts_verified_tokens(registry) -> None:
    cfg = spec_config({"method": "mtp", "k": 3, "acceptance": 0.5}, rate=50, n=60,
                      scheduler={"name": "sarathi", "token_budget": 64})
    sim = run_sim(cfg, registry)
    tokens = np.concatenate([np.frombuffer(r.iterations).reshape(-1, 6)[:, 4]
                             for r in sim.clusters["main"].replicas])
    assert tokens.max() <= 64
    assert all(r.generated == r.output_len for r in sim.controller.requests)


def test_orca_reserves_whole_requests_and_never_preempts(registry) -> None:
    cfg = spec_config({"method": "mtp", "k": 4, "acceptance": 0.9}, rate=50, n=40,
                      scheduler="orca")
    sim = run_sim(cfg, registry)
    assert sum(r.preemptions for r in sim.controller.requests) == 0
    assert all(r.generated == r.output_len for r in sim.controller.requests)


def test_same_seed_same_result_and_seed_matters(registry) -> None:
    spec = {"method": "mtp", "k": 2, "acceptance": 0.6}
    a, b, c = (run_sim(spec_config(spec, seed=s), registry) for s in (5, 5, 6))
    ca, cb, cc = ([r.completion for r in s.controller.requests] for s in (a, b, c))
    assert ca == cb
    assert ca != cc


def test_a_draft_model_costs_memory(registry) -> None:
    plain = assemble(spec_config(None), registry).plans["main"]
    draft = assemble(spec_config({"method": "draft", "k": 3, "acceptance": 0.7,
                                  "draft_model": "llama-3.2-1b"}), registry).plans["main"]
    mtp = assemble(spec_config({"method": "mtp", "k": 1, "acceptance": 0.7}),
                   registry).plans["main"]
    assert draft.weight_bytes_per_gpu == pytest.approx(plain.weight_bytes_per_gpu + 1.2358e9 * 2,
                                                       rel=1e-3)
    assert draft.kv_blocks < mtp.kv_blocks < plain.kv_blocks


@pytest.mark.parametrize(("spec", "cluster", "needle"), [
    ({"method": "draft", "k": 3, "acceptance": 0.7}, {}, "draft_model"),
    ({"method": "mtp", "k": 3, "acceptance": [0.7, 0.5]}, {}, "one rate per draft position"),
    ({"method": "mtp", "k": 2, "acceptance": 1.5}, {}, "[0, 1]"),
    ({"method": "mtp", "k": 2}, {}, "exactly one of acceptance"),
    ({"method": "mtp", "k": 2, "acceptance": 0.5, "accepted_lengths": [1, 1, 1]}, {},
     "exactly one of acceptance"),
    ({"method": "mtp", "k": 2, "accepted_lengths": [1, 1]}, {}, "k + 1 = 3"),
    ({"method": "mtp", "k": 2, "acceptance": 0.5, "draft_model": "llama-3.2-1b"}, {},
     "drop draft_model"),
])
def test_bad_speculative_options_are_config_errors(spec, cluster, needle) -> None:
    with pytest.raises(ValidationError) as e:
        spec_config(spec, **cluster)
    assert needle in str(e.value)


@pytest.mark.parametrize(("spec", "cluster", "needle"), [
    ({"method": "mtp", "k": 2, "acceptance": 0.5}, {"pp": 2}, "pp: 1"),
    ({"method": "draft", "k": 2, "acceptance": 0.5, "draft_model": "mixtral-8x7b"}, {},
     "dense draft"),
    ({"method": "draft", "k": 2, "acceptance": 0.5, "draft_model": "llama-3.2-1b",
      "draft_tp": 3}, {"tp": 4}, "divides"),
    ({"method": "draft", "k": 2, "acceptance": 0.5, "draft_model": "llama-3.2-1b",
      "draft_tp": 8}, {"tp": 4}, "lower draft_tp"),
    ({"method": "draft", "k": 2, "acceptance": 0.5, "draft_model": "llama-9"}, {},
     "speculative.draft_model"),
])
def test_bad_speculative_layouts_are_config_errors(registry, spec, cluster, needle) -> None:
    from frontier_core.errors import PluginError

    with pytest.raises((ConfigError, PluginError)) as e:
        assemble(spec_config(spec, **cluster), registry)
    assert needle in str(e.value)
