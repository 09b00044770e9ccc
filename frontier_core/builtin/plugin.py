"""Hook implementations for the kernel's built-in components."""

from __future__ import annotations

from frontier_core.builtin import routers, schedulers, transfer, workflows
from frontier_core.builtin.engines import ENGINES
from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.components import ComponentSpec
from frontier_core.execution import DenseFFN
from frontier_core.markers import hookimpl


def _ranks(opts, ctx):
    # The configured limits are per DP attention rank.
    return schedulers.per_replica(opts, ctx.cluster.dp if ctx.cluster is not None else 1)


@hookimpl
def frontier_schedulers() -> list[ComponentSpec]:
    return [
        ComponentSpec("vllm", lambda o, ctx: schedulers.VLLMScheduler(_ranks(o, ctx)),
                      schedulers.VLLMOptions,
                      "vLLM continuous batching, prefill-priority, recompute preemption"),
        ComponentSpec("sarathi", lambda o, ctx: schedulers.SarathiScheduler(_ranks(o, ctx)),
                      schedulers.SarathiOptions,
                      "Sarathi-Serve chunked prefill with a per-iteration token budget"),
        ComponentSpec("orca", lambda o, ctx: schedulers.OrcaScheduler(_ranks(o, ctx)),
                      schedulers.BatchLimits,
                      "Orca iteration-level batching with whole-request KV reservation"),
        ComponentSpec("sglang", lambda o, ctx: schedulers.SGLangScheduler(_ranks(o, ctx)),
                      schedulers.SGLangOptions,
                      "SGLang prefill-first batching with chunked prefill"),
    ]


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
    ]


@hookimpl
def frontier_transfers() -> list[ComponentSpec]:
    return [
        ComponentSpec("links", lambda o, ctx: transfer.LinkTransfer(o), transfer.LinkOptions,
                      "ring collectives and sends from link bandwidth and latency"),
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
