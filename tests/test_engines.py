"""Engine models (frontier_core/execution/engines.py): presets as the engines ship them, CUDA-graph
padding, host time overlapped or added, serial ingress, and explicit settings winning."""

from __future__ import annotations

import numpy as np
import pytest
from simhelpers import run_sim, small_config

from frontier_core.builtin.hardware import HARDWARE
from frontier_core.config import EngineConfig
from frontier_core.errors import ConfigError
from frontier_core.execution.engines import EAGER, FULL, PIECEWISE, parse_version, resolve_engine

GPUS = {h.name: h for h in HARDWARE}


def _engine(name: str, version: str | None = None, gpu: str = "h200", tp: int = 1, **kw):
    from frontier_core.builtin.engines import ENGINES

    spec = {e.name: e for e in ENGINES}[name]
    return resolve_engine(EngineConfig(name=name, version=version, **kw), spec, GPUS[gpu], tp, "c")


def test_versions_parse_and_unparsable_ones_mean_newest() -> None:
    assert parse_version("0.15.1") == (0, 15, 1)
    assert parse_version("1.2.0rc6.post2") == (1, 2, 0)
    assert parse_version("0.5.8.post1") == (0, 5, 8)
    assert parse_version("nightly-dev-20260216") is None
    assert parse_version("") is None and parse_version(None) is None


def test_vllm_defaults_follow_gpu_memory_and_version() -> None:
    big = _engine("vllm", "0.18.0")
    assert big.scheduler == {"name": "chunked_prefill", "token_budget": 8192,
                             "max_num_seqs": 1024}
    small = _engine("vllm", "0.18.0", gpu="a100-80g-sxm")  # an A100 keeps the small limits
    assert small.scheduler["token_budget"] == 2048 and small.scheduler["max_num_seqs"] == 256
    # Capture sizes from 0.12: 1, 2, 4, steps of 8 to 256, of 16 up to 512.
    sizes = big.graph_sizes
    assert sizes[:4] == (1, 2, 4, 8) and sizes[-1] == 512 and 272 in sizes and 264 not in sizes
    old = _engine("vllm", "0.10.1")
    assert 264 in old.graph_sizes and old.graph_sizes[-1] == 512
    assert not old.graph_full_decode and _engine("vllm", "0.11.0").graph_full_decode


def test_sglang_and_trtllm_defaults() -> None:
    assert _engine("sglang", gpu="h200").scheduler["max_num_batched_tokens"] == 8192
    assert _engine("sglang", gpu="b200").scheduler["max_num_batched_tokens"] == 16384
    assert _engine("sglang", "0.5.9", tp=1).graph_sizes[-1] == 256
    assert _engine("sglang", "0.5.9", tp=8).graph_sizes[-1] == 512
    trt = _engine("trtllm")
    assert trt.scheduler["name"] == "inflight_batching" and trt.scheduler["max_num_batched_tokens"] == 8192
    assert trt.graph_sizes[-1] == 128 and not trt.graph_pad


def test_graph_modes_and_padding() -> None:
    vllm = _engine("vllm", "0.18.0")
    assert vllm.graph(40, 40, decode_only=True) == (FULL, 40)  # a captured size: no padding
    assert vllm.graph(33, 33, decode_only=True) == (FULL, 40)  # padded to the next size
    assert vllm.graph(512, 512, decode_only=True) == (FULL, 512)  # the largest
    assert vllm.graph(513, 513, decode_only=True) == (EAGER, 513)  # one above: eager
    assert vllm.graph(300, 3, decode_only=False) == (PIECEWISE, 304)  # mixed: by tokens
    assert vllm.graph(600, 600, decode_only=True) == (EAGER, 600)  # above the largest
    sglang = _engine("sglang", "0.5.9")
    assert sglang.graph(300, 3, decode_only=False)[0] == EAGER  # prefills never graphed
    assert sglang.graph(13, 13, decode_only=True) == (FULL, 16)
    trt = _engine("trtllm")
    assert trt.graph(32, 32, True) == (FULL, 32)
    assert trt.graph(33, 33, True) == (EAGER, 33)  # no padding: only exact sizes replay
    assert _engine("vllm", cuda_graphs=False).graph(8, 8, True) == (EAGER, 8)


def test_unknown_engine_is_a_config_error(registry) -> None:
    from frontier_core.assemble import assemble
    from frontier_core.errors import FrontierError

    cfg = small_config(deployment={"clusters": [{"gpu": "h200", "engine": "vlm"}]})
    with pytest.raises(FrontierError, match="Unknown engine 'vlm'.*Did you mean 'vllm'"):
        assemble(cfg, registry)


def test_a_plugin_adds_an_engine() -> None:
    from frontier_core.components import EngineSpec
    from frontier_core.markers import hookimpl
    from frontier_core.plugins import load_registry

    class Plugin:
        @hookimpl
        def frontier_engines(self):
            return [EngineSpec("lmdeploy", lambda v, device, tp: {
                "scheduler": {"name": "vllm", "max_num_seqs": 7}, "graph_sizes": (1, 2, 4),
                "overlap": False}, {"gap_s": 1e-3}, "a test engine")]

    from frontier_core.testing import linear_test_plugin

    reg = load_registry(extra=[Plugin(), linear_test_plugin()])
    assert "lmdeploy" in reg.names("engine") and "vllm" in reg.names("engine")
    cfg = small_config(deployment={"clusters": [{"gpu": "h200", "engine": "lmdeploy"}]})
    from frontier_core.assemble import assemble

    sim = assemble(cfg, reg)
    eng = sim.executors["main"].engine
    assert eng.host_gap_s == 1e-3 and not eng.overlap and eng.graph_sizes == (1, 2, 4)
    assert sim.clusters["main"].replicas[0].scheduler.max_seqs == 7


def _executor(registry, **engine):
    from frontier_core.assemble import assemble

    cfg = small_config(deployment={"clusters": [{"gpu": "h200", "engine": engine}]})
    sim = assemble(cfg, registry)
    return sim, sim.executors["main"]


def _decode_time(ex, n: int, context: int = 512) -> float:
    kv = np.full(n, context, np.int64)
    return ex.forward(None, None, None, kv).stage


ZERO = {"host_base_s": 0.0, "host_per_seq_s": 0.0, "host_per_token_s": 0.0, "host_gap_s": 0.0}


def test_host_time_adds_between_steps_without_overlap(registry) -> None:
    _, quiet = _executor(registry, name="vllm", **ZERO)
    gpu8, gpu16 = _decode_time(quiet, 8), _decode_time(quiet, 16)
    _, host = _executor(registry, name="vllm", overlap=False, host_base_s=1e-3,
                        host_per_seq_s=1e-5, host_per_token_s=1e-6, host_gap_s=2e-4)
    assert _decode_time(host, 8) == pytest.approx(gpu8 + 1e-3 + 8 * 1e-5 + 8 * 1e-6 + 2e-4)
    assert _decode_time(host, 16) == pytest.approx(gpu16 + 1e-3 + 16 * 1e-5 + 16 * 1e-6 + 2e-4)


def test_overlapped_host_time_shows_only_where_it_outlasts_the_gpu(registry) -> None:
    _, quiet = _executor(registry, name="vllm", **ZERO)
    gpu8 = _decode_time(quiet, 8)
    # CPU work shorter than the forward pass hides behind it; only the gap shows.
    _, hidden = _executor(registry, name="vllm", overlap=True, host_base_s=gpu8 / 2,
                          host_gap_s=1e-4)
    assert _decode_time(hidden, 8) == pytest.approx(gpu8 + 1e-4)
    # CPU work longer than the forward pass sets the step's length.
    _, bound = _executor(registry, name="vllm", overlap=True, host_base_s=3 * gpu8,
                         host_gap_s=1e-4)
    assert _decode_time(bound, 8) == pytest.approx(3 * gpu8 + 1e-4)
    # Versions: vLLM overlaps from 0.14 (async scheduling by default), not before.
    assert _engine("vllm", "0.12.0").overlap is False and _engine("vllm", "0.15.1").overlap
    assert _engine("sglang", "0.5.9").overlap and _engine("trtllm", "1.2.0").overlap


def test_calibration_profile_sets_the_host_constants(registry, tmp_path) -> None:
    import json

    prof = tmp_path / "vllm.json"
    prof.write_text(json.dumps({"engine": "vllm", "host": {
        "base_s": 2e-3, "per_seq_s": 0.0, "per_token_s": 0.0}}))
    _, ex = _executor(registry, name="vllm", profile=str(prof))
    assert ex.engine.host_base_s == 2e-3
    with pytest.raises(ConfigError, match="fitted for 'vllm'.*runs 'sglang'"):
        _executor(registry, name="sglang", profile=str(prof))
    prof.write_text("{not json")
    with pytest.raises(ConfigError, match="not a calibration profile"):
        _executor(registry, name="vllm", profile=str(prof))
    with pytest.raises(ConfigError, match="no such file"):
        _executor(registry, name="vllm", profile=str(tmp_path / "missing.json"))


def test_graph_padding_prices_the_captured_size(registry) -> None:
    _, graphs = _executor(registry, name="vllm", version="0.18.0", **ZERO)
    _, eager = _executor(registry, name="vllm", version="0.18.0", cuda_graphs=False, **ZERO)
    # 33 decodes replay the 40-token graph: the layers cost what 40 tokens cost.
    assert graphs._graph_tokens(33, 33, True) == 40
    assert _decode_time(graphs, 33) > _decode_time(eager, 33)
    assert _decode_time(graphs, 40) == pytest.approx(_decode_time(eager, 40))


def test_engine_sets_the_scheduler_unless_the_config_gives_one(registry) -> None:
    from frontier_core.builtin.schedulers import SarathiScheduler, VLLMScheduler

    sim, _ = _executor(registry, name="vllm", version="0.18.0")
    sched = sim.clusters["main"].replicas[0].scheduler
    assert isinstance(sched, SarathiScheduler) and sched.budget == 8192 and sched.max_seqs == 1024
    cfg = small_config(deployment={"clusters": [{
        "gpu": "h200", "engine": "vllm", "scheduler": {"name": "vllm", "max_num_seqs": 8}}]})
    from frontier_core.assemble import assemble

    sched = assemble(cfg, registry).clusters["main"].replicas[0].scheduler
    assert isinstance(sched, VLLMScheduler) and sched.max_seqs == 8


def test_serial_ingress_desynchronises_a_closed_loop(registry) -> None:
    def arrivals(engine):
        wl = {"closed_loop": {"concurrency": 8}, "prompt_len": {"dist": "fixed", "value": 512},
              "output_len": {"dist": "fixed", "value": 32}, "num_requests": 24}
        clusters = [{"gpu": "h200", **({"engine": engine} if engine else {})}]
        sim = run_sim(small_config(workload=wl, deployment={"clusters": clusters}), registry)
        reqs = sorted(sim.controller.requests, key=lambda r: r.id)
        return np.array([r.arrival for r in reqs[8:]])

    # Without an engine the clients stay in lockstep: the second wave is sent at once.
    assert np.ptp(arrivals(None)[:8]) == 0
    # The API server takes requests in one after another, so the first arrives alone,
    # and the waves that follow no longer leave together.
    assert np.ptp(arrivals("vllm")[:8]) > 0


def test_summary_reports_the_engine(registry) -> None:
    from frontier_core.app.metrics import summarize

    sim, _ = _executor(registry, name="sglang", version="0.5.9")
    s = summarize(sim.run())
    eng = s["clusters"]["main"]["engine"]
    assert eng["name"] == "sglang" and eng["scheduler"]["name"] == "prefill_first"
    assert set(eng["host"]) == {"overlap", "base_s", "per_seq_s", "per_token_s", "gap_s"}
    assert eng["cuda_graphs"]["by"] == "sequences"


def test_sglang_scheduler_prefills_first_in_chunks() -> None:
    from test_plugins_contract import FakeView, _apply

    from frontier_core.builtin.schedulers import SGLangOptions, SGLangScheduler
    from frontier_core.engine.kv import PagedKVCache

    sched = SGLangScheduler(SGLangOptions(max_num_batched_tokens=1000))
    view = FakeView(PagedKVCache(num_blocks=1000, block_size=16), [300, 1500, 200])
    batch = sched.schedule(view)
    # 300 + the first 700 tokens of the second prompt fill the chunk; nothing decodes.
    assert [r.id for r in batch.prefill] == [0, 1] and batch.chunks == [300, 700]
    _apply(batch)
    batch = sched.schedule(view)
    # The unfinished chunk goes first, then the next prompt; the decode of request 0
    # waits while a prefill batch can be formed.
    assert [r.id for r in batch.prefill] == [1, 2] and batch.chunks == [800, 200]
    assert not batch.decode
    _apply(batch)
    batch = sched.schedule(view)
    assert not batch.prefill and [r.id for r in batch.decode] == [0, 1, 2]


def _fixed_arrivals(registry, overlap: bool, rate: float, output: int, n: int):
    """Requests of 256 prompt tokens at a fixed rate on one H200 running vLLM with no
    host time or ingress, with or without host/GPU overlap."""
    wl = {"arrival": {"process": "fixed", "rate": rate},
          "prompt_len": {"dist": "fixed", "value": 256},
          "output_len": {"dist": "fixed", "value": output}, "num_requests": n}
    engine = {"name": "vllm", "overlap": overlap, **ZERO, "ingress_per_token_s": 0.0}
    return run_sim(small_config(workload=wl, deployment={
        "clusters": [{"gpu": "h200", "engine": engine}]}), registry)


def test_overlap_schedules_a_request_that_arrives_mid_step_one_step_later(registry) -> None:
    def first_step_after_arrival(overlap: bool) -> tuple[int, int]:
        sim = _fixed_arrivals(registry, overlap, rate=7.0, output=400, n=2)
        (rep,) = sim.clusters["main"].replicas
        starts = np.asarray(rep.iterations).reshape(-1, 6)[:, 0]
        second = sorted(sim.controller.requests, key=lambda r: r.id)[1]
        after = np.flatnonzero(starts >= second.arrival)
        return int(after[0]), int(np.flatnonzero(starts == second.first_scheduled)[0])

    # Without overlap the request joins the first step that starts after it arrives;
    # with it, the step after that (that step was scheduled while the previous ran).
    nxt, got = first_step_after_arrival(False)
    assert got == nxt
    nxt, got = first_step_after_arrival(True)
    assert got == nxt + 1


def test_an_idle_overlapping_engine_schedules_an_arrival_at_once(registry) -> None:
    sim = _fixed_arrivals(registry, True, rate=0.5, output=4, n=3)
    for r in sim.controller.requests:  # each finds the replica idle
        assert r.first_scheduled == r.arrival
