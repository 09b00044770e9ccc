"""The serving engines Frontier models as they ship: vLLM (V1), SGLang and TensorRT-LLM
(PyTorch backend). Each is an ``EngineSpec`` whose preset gives, for a version, GPU and
TP degree, the scheduler and its limits, the CUDA-graph capture sizes and whether host
and GPU work overlap; ``host`` holds the fitted host constants. Every figure cites the
engine source it comes from; docs/engines.md lists them. A plugin adds an engine by
returning its own ``EngineSpec`` from ``frontier_engines``."""

from __future__ import annotations

from typing import Any

from frontier_core.components import EngineSpec
from frontier_core.execution.engines import GiB
from frontier_core.execution.engines import at_least as _at_least
from frontier_core.model.catalog import HardwareSpec

# Host time per iteration by engine: CPU work (base s, s per sequence, s per token) and
# the gap per step that overlap cannot hide (s). Fitted with `frontier calibrate`
# (frontier_core/app/calibrate.py) on the serving benchmarks of
# ../shared/data/serving/silicon_sample_dev.csv (`frontier calibrate FILE --engine E -o
# E.json`: predictor roofline, a quarter of the rows held out),
# every covered row of that engine at once, co-located and disaggregated
# (never per model, GPU or row); docs/engines.md gives the command, the rows and the
# held-out errors. A team calibrates its own cluster the same way and names the result
# as ``engine: {profile: ...}``.
HOST: dict[str, dict[str, float]] = {
    # --client auto: 106 rows fitted, 35 held out: held-out TPOT |err| 18.6% → 6.6%.
    "vllm": {"base_s": 0.0, "per_seq_s": 0.0, "per_token_s": 0.0, "gap_s": 1.96e-3},
    # --client auto: 89 rows fitted, 30 held out: held-out TPOT |err| 23.4% → 11.3%.
    "sglang": {"base_s": 6.37e-3, "per_seq_s": 37.8e-6, "per_token_s": 0.0, "gap_s": 2.60e-3},
    # --client default, before the overlap's one-step scheduling lag: 197 rows fitted,
    # 66 held out: held-out TPOT |err| 13.3% → 11.5%.
    "trtllm": {"base_s": 5.39e-3, "per_seq_s": 26.0e-6, "per_token_s": 0.0, "gap_s": 0.75e-3},
}


# ---- vLLM ---------------------------------------------------------------------------


def _vllm(v: tuple[int, ...] | None, device: HardwareSpec, tp: int) -> dict[str, Any]:
    # vllm/engine/arg_utils.py (_set_default_args / get_batch_defaults), OpenAI server:
    # a GPU of 70 GiB or more that is not an A100 gets 8192 batched tokens and 1024
    # sequences, others 2048 and 256; from 0.34 one of 160 GiB or more gets 16384.
    mem = device.mem_bytes / GiB
    big = mem >= 70 and not device.name.lower().startswith("a100")
    tokens, seqs = (8192, 1024) if big else (2048, 256)
    if mem >= 160 and _at_least(v, 0, 34) and v is not None:
        tokens = 16384
    # V1 schedules running requests first and fills the token budget with prefill
    # chunks (chunked prefill always on): Sarathi's stall-free batching.
    sched = {"name": "chunked_prefill", "token_budget": tokens, "max_num_seqs": seqs}
    # CUDA graphs, keyed by the batch's token count and padded up to the next captured
    # size (CudagraphDispatcher). From 0.12 the largest is min(2 × max_num_seqs, 512,
    # max_num_batched_tokens) with sizes 1, 2, 4, then steps of 8 to 256 and of 16 above
    # (config/compilation.py); before, steps of 8 up to min(2 × max_num_seqs, 512).
    top = min(2 * seqs, 512, tokens)
    if _at_least(v, 0, 12):
        sizes = [1, 2, 4, *range(8, 256, 8), *range(256, top + 1, 16)]
    else:
        sizes = [1, 2, 4, *range(8, top + 1, 8)]
    return {
        "scheduler": sched, "graph_sizes": tuple(s for s in sizes if s <= top),
        "graph_by_tokens": True,
        # Piecewise graphs (attention eager) for every batch up to the largest size;
        # from 0.11 cudagraph_mode FULL_AND_PIECEWISE replays decode-only batches as one
        # full graph.
        "graph_mixed": True, "graph_full_decode": _at_least(v, 0, 11),
        # Async scheduling (the scheduler and input preparation of step n + 1 run while
        # step n computes) is the default from 0.14 (vllm-project/vllm#27614, part of the
        # async-scheduling plan #27679); before, host and GPU alternate.
        "overlap": _at_least(v, 0, 14),
    }


# ---- SGLang -------------------------------------------------------------------------


def _sglang(v: tuple[int, ...] | None, device: HardwareSpec, tp: int) -> dict[str, Any]:
    # python/sglang/srt/server_args.py: chunked_prefill_size 16384 on a GPU of 160 GB or
    # more, 8192 from 60 GB (H100, H200), 4096 from 35 GB (from 0.5.5), else 2048;
    # schedule_policy fcfs; max_running_requests bounded by the KV pool.
    gb = device.mem_bytes / 1e9
    chunk = 16384 if gb >= 160 else 8192 if gb >= 60 else 4096 if gb >= 35 else 2048
    sched = {"name": "prefill_first", "max_num_batched_tokens": chunk, "max_num_seqs": 4096}
    # CUDA graphs for decode batches only, keyed by batch size and padded up; from 0.5.5
    # sizes 1, 2, 4, 8, 12, steps of 8 to 256, of 16 to 512, of 32 above, up to
    # cuda_graph_max_bs (256 below TP 4, 512 from TP 4 on a Hopper/Blackwell GPU); before,
    # 1, 2, 4, 8 and steps of 8 to 160, extended to 256 above 90 GB and 512 above 160 GB.
    if _at_least(v, 0, 5, 5):
        top = 256 if tp < 4 else 512
        sizes = [1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16),
                 *range(512, top + 1, 32)]
    else:
        top = 512 if gb > 160 else 256 if gb > 90 else 160
        sizes = [1, 2, 4, 8, *range(16, top + 1, 8)]
    # The overlap scheduler (CPU work of the next batch while the GPU runs this one) is on
    # unless --disable-overlap-schedule (server_args.py, disable_overlap_schedule).
    return {"scheduler": sched, "graph_sizes": tuple(s for s in sizes if s <= top),
            "overlap": True}


# ---- TensorRT-LLM -------------------------------------------------------------------


def _trtllm(v: tuple[int, ...] | None, device: HardwareSpec, tp: int) -> dict[str, Any]:
    # PyTorch backend (trtllm-serve): in-flight batching of context and generation
    # requests up to max_num_tokens 8192 and max_batch_size 2048, with the
    # GUARANTEED_NO_EVICT capacity policy (a request is admitted only when its whole KV
    # can be reserved) and chunked prefill off: Orca's policy.
    sched = {"name": "inflight_batching", "max_num_batched_tokens": 8192, "max_num_seqs": 2048,
             "capacity": "guaranteed_no_evict"}
    # cuda_graph_config on by default for generation-only batches: max_batch_size 128,
    # enable_padding False, so only a batch of exactly a captured size replays a graph.
    sizes = [*range(1, 32), 32, 64, 128]
    # The PyTorch executor's overlap scheduler is on unless disable_overlap_scheduler
    # (llm_args.py).
    return {"scheduler": sched, "graph_sizes": tuple(sizes), "graph_pad": False,
            "overlap": True}


ENGINES = [
    EngineSpec("vllm", _vllm, HOST["vllm"],
               "vLLM V1: chunked prefill over running decodes, piecewise + full CUDA graphs"),
    EngineSpec("sglang", _sglang, HOST["sglang"],
               "SGLang: prefill-first, chunked prefill, decode CUDA graphs, overlap scheduler"),
    EngineSpec("trtllm", _trtllm, HOST["trtllm"],
               "TensorRT-LLM (PyTorch): in-flight batching, GUARANTEED_NO_EVICT, overlap"),
]
