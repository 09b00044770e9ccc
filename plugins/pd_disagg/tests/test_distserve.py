"""The ``distserve`` predictor: DistServe's fitted formulas alone, inside an
ExecutionPredictor iteration, its configuration errors, and a whole run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from frontier_pd_disagg.distserve import DistServeOptions, build_distserve

from frontier_core import BuildContext, ComponentSpec, ConfigError, hookimpl
from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.config import ClusterConfig, RunConfig
from frontier_core.execution.predictor import DenseFFN, ExecutionPredictor
from frontier_core.records import Batch, OpCall, Request

MODEL = {m.name: m for m in MODELS}
GPU = {h.name: h for h in HARDWARE}

# simdistserve/estimators/profile_data/profiler-a100-80g.distserve.json, OPT-13B at TP 1
PREFILL = (18.10254647486372, 0.1019122572698738, 7.122264314252114e-06)
SMALL = (19.934702624895458, 0.0006269356524350583, 0.03850697740828398)
LARGE = (7.1661889468253595, 0.0005798000403396046, 0.15831096191764046)


def ctx_for(model="opt-13b", gpu="a100-80g-sxm", tp=1, pp=1, predictor=("distserve",)):
    cfg = SimpleNamespace(predictor=[SimpleNamespace(name=n) for n in predictor])
    cluster = ClusterConfig(name="main", gpu=gpu, tp=tp, pp=pp)
    return BuildContext(config=cfg, model=MODEL[model], rng=np.random.default_rng(0),  # type: ignore[arg-type]
                        cluster=cluster, device=GPU[gpu])


def build(**opts):
    ctx_kw = {k: opts.pop(k) for k in ("model", "gpu", "tp", "pp") if k in opts}
    return build_distserve(DistServeOptions(**opts), ctx_for(**ctx_kw))


def executor(model="opt-13b", tp=1, pp=1, **opts):
    m = MODEL[model]
    p = build(model=model, tp=tp, pp=pp, **opts)
    return ExecutionPredictor(m, GPU["a100-80g-sxm"], tp, pp, [("distserve", p)], DenseFFN(m, tp))


def decodes(contexts):
    return [Request(i, 0.0, c, 100, computed=c, generated=1, prefill_target=c)
            for i, c in enumerate(contexts)]


# ---- the formulas alone ------------------------------------------------------


def test_documented_example_one_512_token_prompt():
    p = build()
    ms = p.fit.prefill_ms(np.array([512]))
    assert ms == pytest.approx(PREFILL[0] + PREFILL[1] * 512 + PREFILL[2] * 512**2)
    assert ms == pytest.approx(72.1, abs=0.05)  # simdistserve/README + data/SOURCE.md


def test_every_other_operator_costs_nothing():
    p = build()
    for op in ("gemm", "elementwise", "all_reduce", "send_recv", "cpu_overhead", "moe_experts"):
        assert p.predict(OpCall(op, m=512, n=5120, k=5120, bytes=1e6)) == 0.0


def test_vllm_backend_reads_the_other_fit():
    ds, vl = build(), build(backend="vllm")
    lens = np.array([512])
    assert vl.fit.prefill_ms(lens) != pytest.approx(ds.fit.prefill_ms(lens))
    assert vl.fit.prefill[0] == pytest.approx(22.052204789310185)


# ---- through an ExecutionPredictor iteration ----------------------------------


def test_prefill_iteration_is_the_formula():
    ex = executor()
    r = Request(0, 0.0, 512, 10, prefill_target=512)
    t = ex.iteration(Batch(prefill=[r], chunks=[512]))
    assert t.latency == pytest.approx(72.1e-3, abs=0.05e-3)
    assert t.stage == t.latency
    assert ex.credit_by_backend()["distserve"] == pytest.approx(t.latency)


def test_prefill_batch_sums_lengths_and_squares():
    ex = executor()
    rs = [Request(i, 0.0, n, 10, prefill_target=n) for i, n in enumerate((100, 700))]
    t = ex.iteration(Batch(prefill=rs, chunks=[100, 700]))
    a, b, c = PREFILL
    assert t.latency * 1e3 == pytest.approx(a + b * 800 + c * (100**2 + 700**2))


def test_chunked_prefill_uses_the_chunk_not_the_context():
    """DistServe's simulator hands the chunk sizes to get_prefill_time."""
    ex = executor()
    r = Request(0, 0.0, 1500, 10, computed=1000, prefill_target=1500)
    t = ex.iteration(Batch(prefill=[r], chunks=[500]))
    a, b, c = PREFILL
    assert t.latency * 1e3 == pytest.approx(a + b * 500 + c * 500**2)


def test_decode_context_counts_the_new_token():
    ex = executor()
    t = ex.iteration(Batch(decode=decodes([512, 1000])))
    a, b, c = SMALL
    # DistServe: sum(prompt + decoded + 1); here each request's KV plus the new token
    assert t.latency * 1e3 == pytest.approx(a + b * (513 + 1001) + c * 2)


def test_decode_switches_fit_at_the_threshold():
    ex = executor()
    for n, (a, b, c) in ((94, SMALL), (95, LARGE), (96, LARGE)):
        t = ex.iteration(Batch(decode=decodes([100] * n)))
        assert t.latency * 1e3 == pytest.approx(a + b * 101 * n + c * n), n


def test_pipeline_stages_split_the_formula():
    ex = executor(model="opt-66b", tp=2, pp=2)
    r = Request(0, 0.0, 512, 10, prefill_target=512)
    t = ex.iteration(Batch(prefill=[r], chunks=[512]))
    a, b, c = build(model="opt-66b", tp=2).fit.prefill
    full = a + b * 512 + c * 512**2
    assert t.latency * 1e3 == pytest.approx(full)
    assert t.stage * 1e3 == pytest.approx(full / 2)


def test_simulator_overheads():
    ex = executor(simulator_overheads=True)
    r = Request(0, 0.0, 512, 10, prefill_target=512)
    t = ex.iteration(Batch(prefill=[r], chunks=[512]))
    # + pp_const (1 ms x pp) + ray overhead (2 ms + 1e-4 ms x 512 context tokens)
    assert t.latency * 1e3 == pytest.approx(72.1 + 1 + 2 + 0.0512, abs=0.05)
    t = ex.iteration(Batch(decode=decodes([512])))
    a, b, c = SMALL
    assert t.latency * 1e3 == pytest.approx(a + b * 513 + c + 2 + 1e-4 * 512)


# ---- configuration errors ----------------------------------------------------


def test_unknown_model_names_what_the_profile_has():
    with pytest.raises(ConfigError) as e:
        build(model="llama-2-7b")
    msg = str(e.value)
    assert "llama-2-7b" in msg and "predictor[0] distserve" in msg
    assert "facebook/opt-13b at TP 1, 2, 4" in msg and "facebook/opt-66b at TP 2, 3, 4, 8" in msg


def test_tp_without_a_fit():
    with pytest.raises(ConfigError, match=r"TP 8 .*facebook/opt-13b at TP 1, 2, 4"):
        build(tp=8)
    with pytest.raises(ConfigError, match="facebook/opt-66b at TP 1 "):
        build(model="opt-66b", tp=1)


def test_other_gpu_is_refused_unless_listed():
    with pytest.raises(ConfigError, match="applies to GPU kinds a100-80g-sxm.*'h100-sxm'"):
        build(gpu="h100-sxm")
    assert build(gpu="a800", gpus=["a100-80g-sxm", "a800"]) is not None


def test_must_come_first_in_the_chain():
    with pytest.raises(ConfigError, match=r"must be the first predictor \(predictor\[1\]"):
        build_distserve(DistServeOptions(), ctx_for(predictor=("roofline", "distserve")))
    assert build_distserve(DistServeOptions(), ctx_for(predictor=("distserve", "roofline")))


def test_pp_must_divide_layers():
    with pytest.raises(ConfigError, match="pp=3 does not divide"):
        build(pp=3)


def test_options_are_strict_and_custom_profiles_load(tmp_path):
    with pytest.raises(ValueError):
        DistServeOptions(backnd="vllm")  # type: ignore[call-arg]
    bad = tmp_path / "bad.json"
    bad.write_text('{"facebook/opt-13b": {"1": {"prefill": [1, 2]}}}')
    with pytest.raises(ConfigError, match="cannot be read"):
        build(profile=str(bad))
    with pytest.raises(ConfigError, match="cannot be read"):
        build(profile=str(tmp_path / "missing.json"))
    good = tmp_path / "good.json"
    good.write_text('{"facebook/opt-13b": {"1": {"prefill": [1, 0, 0], '
                    '"decoding_smallbs": [2, 0, 0], "decoding_largebs": [3, 0, 0], '
                    '"decoding_large_small_bs_threshold": 4}}}')
    assert build(profile=str(good)).fit.prefill_ms(np.array([512])) == 1.0


# ---- a whole run ---------------------------------------------------------------


def distserve_plugin():
    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("distserve", build_distserve, DistServeOptions, summary="test")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


def run_config(tp=1, **workload):
    return RunConfig.model_validate({
        "model": "opt-13b",
        "deployment": {"clusters": [{"name": "main", "gpu": "a100-80g-sxm", "tp": tp}]},
        "predictor": ["distserve"],
        "workload": workload,
        "seed": 0,
    })


def test_single_request_run_reproduces_the_formulas(frontier_registry_factory):
    from frontier_core.assemble import assemble

    registry = frontier_registry_factory(distserve_plugin())
    cfg = run_config(arrival={"process": "poisson", "rate": 1.0},
                     prompt_len={"dist": "fixed", "value": 512},
                     output_len={"dist": "fixed", "value": 2}, num_requests=1)
    sim = assemble(cfg, registry).run()
    (r,) = sim.controller.requests
    assert (r.first_token - r.arrival) * 1e3 == pytest.approx(72.1, abs=0.05)
    a, b, c = SMALL
    assert (r.completion - r.first_token) * 1e3 == pytest.approx(a + b * 513 + c)


def test_colocated_run_finishes_and_credits_only_distserve(frontier_registry_factory):
    from frontier_core.assemble import assemble

    registry = frontier_registry_factory(distserve_plugin())
    cfg = run_config(arrival={"process": "poisson", "rate": 4.0},
                     prompt_len={"dist": "uniform", "low": 16, "high": 1024},
                     output_len={"dist": "uniform", "low": 1, "high": 64}, num_requests=40)
    sim = assemble(cfg, registry).run()
    reqs = sim.controller.requests
    assert len(reqs) == 40 and all(r.generated == r.output_len for r in reqs)
    assert all(r.first_token > r.arrival for r in reqs)
    credit = sim.executors["main"].credit_by_backend()
    assert list(credit) == ["distserve"] and credit["distserve"] > 0


def test_wrong_tp_fails_at_assembly(frontier_registry_factory):
    from frontier_core.assemble import assemble

    registry = frontier_registry_factory(distserve_plugin())
    cfg = run_config(tp=8, arrival={"process": "poisson", "rate": 1.0},
                     prompt_len={"dist": "fixed", "value": 64},
                     output_len={"dist": "fixed", "value": 2}, num_requests=1)
    where = r"predictor\[0\] distserve \(frontier-pd-disagg\) for cluster 'main'"
    with pytest.raises(ConfigError, match=where):
        assemble(cfg, registry)
