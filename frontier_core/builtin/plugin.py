"""Hook implementations for the kernel's built-in components."""

from __future__ import annotations

from frontier_core.builtin import routers, schedulers, transfer, workflows
from frontier_core.builtin.engines import ENGINES
from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.builtin.roofline import RooflineOptions, build_roofline
from frontier_core.components import ComponentSpec
from frontier_core.execution.predictor import DenseFFN
from frontier_core.markers import hookimpl


def _ranks(opts, ctx):
    # The configured limits are per DP attention rank.
    return schedulers.per_replica(opts, ctx.cluster.dp if ctx.cluster is not None else 1)


# Schedulers are named by policy; the names they first had (after the system that
# introduced the policy) stay as aliases.
_SCHEDULERS = [
    ("prefill_priority", "vllm", lambda o, ctx: schedulers.VLLMScheduler(_ranks(o, ctx)),
     schedulers.VLLMOptions,
     "continuous batching, prefill-only iterations first, recompute preemption (vLLM v0)"),
    ("chunked_prefill", "sarathi",
     lambda o, ctx: schedulers.SarathiScheduler(_ranks(o, ctx)), schedulers.SarathiOptions,
     "running decodes, then prefill chunks, in one token budget (Sarathi-Serve, vLLM V1)"),
    ("inflight_batching", "orca", lambda o, ctx: schedulers.OrcaScheduler(_ranks(o, ctx)),
     schedulers.OrcaOptions,
     "mixed batches of whole prompts; reserve whole requests or pause (Orca, TensorRT-LLM)"),
    ("prefill_first", "sglang", lambda o, ctx: schedulers.SGLangScheduler(_ranks(o, ctx)),
     schedulers.SGLangOptions,
     "prefill batches first, chunked, admission by new_token_ratio (SGLang)"),
]


@hookimpl
def frontier_schedulers() -> list[ComponentSpec]:
    out = []
    for name, alias, factory, options, summary in _SCHEDULERS:
        out.append(ComponentSpec(name, factory, options, summary))
        out.append(ComponentSpec(alias, factory, options, f"alias of {name}: {summary}"))
    return out


@hookimpl
def frontier_routers() -> list[ComponentSpec]:
    return [
        ComponentSpec("round_robin", lambda o, ctx: routers.RoundRobin(), summary="replicas in turn"),
        ComponentSpec("least_outstanding", lambda o, ctx: routers.LeastOutstanding(),
                      summary="fewest unfinished requests"),
        ComponentSpec("least_tokens", lambda o, ctx: routers.LeastTokens(),
                      summary="fewest outstanding prompt+output tokens"),
        ComponentSpec("least_kv", lambda o, ctx: routers.LeastKV(),
                      summary="lowest KV-cache usage, then shortest queue"),
        ComponentSpec("prefix_aware", lambda o, ctx: routers.PrefixAware(o),
                      routers.PrefixOptions,
                      "longest cached prompt prefix, within a load cap of the least loaded"),
        ComponentSpec("cache_aware", lambda o, ctx: routers.CacheAware(o),
                      routers.CacheAwareOptions,
                      "SGLang router's default: longest remembered prefix or smallest record, "
                      "least loaded when imbalanced"),
    ]


@hookimpl
def frontier_transfers() -> list[ComponentSpec]:
    return [
        ComponentSpec("links", lambda o, ctx: transfer.LinkTransfer(o), transfer.LinkOptions,
                      "ring collectives and sends from link bandwidth and latency"),
    ]


@hookimpl
def frontier_predictors() -> list[ComponentSpec]:
    return [
        ComponentSpec("roofline", build_roofline, RooflineOptions,
                      "analytical roofline: max(FLOPs/peak, bytes/HBM bw) per kernel, "
                      "from the datasheet"),
    ]


@hookimpl
def frontier_workflows() -> list[ComponentSpec]:
    return [
        ComponentSpec("colocated", workflows.Colocated, workflows.ColocatedOptions,
                      "one stage: prefill and decode on the same replicas"),
    ]


@hookimpl
def frontier_ffn_blocks() -> list[ComponentSpec]:
    return [
        ComponentSpec("dense", lambda o, ctx: DenseFFN(ctx.model, ctx.cluster.tp),
                      summary="gated MLP sharded over TP"),
    ]


@hookimpl
def frontier_models():
    return list(MODELS)


@hookimpl
def frontier_hardware():
    return list(HARDWARE)


@hookimpl
def frontier_engines():
    return list(ENGINES)
