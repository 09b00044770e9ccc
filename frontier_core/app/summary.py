"""The run summary as typed records: what ``summary.json`` holds, field by field.

``frontier_core.app.metrics.summarize`` builds the summary as plain data (it is written as
JSON); ``Summary.model_validate`` reads it, or a ``summary.json`` read back, into these
records, so that Python code gets attribute access, types and documentation::

    s = fc.simulate(config).summary
    s.latency_s.ttft_s.p90, s.throughput.output_tokens_per_s, s.clusters["main"].busy_fraction

What a plugin adds (a workflow's report, an FFN block's MoE statistics, an expert
cluster's figures) stays plain data under the documented keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    # Extra keys are kept, so a summary written by a newer Frontier or a plugin that adds
    # a key still reads.
    model_config = ConfigDict(extra="allow", frozen=True)


class Stats(_Record):
    """Mean and percentiles over the measured requests (or iterations); None when there
    were none."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None


class RequestCounts(_Record):
    total: int
    completed: int
    rejected: int
    rejected_reasons: dict[str, int] = {}
    # Requests that ran before measurement started (a benchmark's warm-up); not counted
    # in ``total``.
    warmup: int = 0


class Latencies(_Record):
    """Per-request latencies in seconds."""

    ttft_s: Stats
    tpot_s: Stats
    e2e_s: Stats
    queueing_s: Stats


class Throughput(_Record):
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    output_tokens_per_s_per_gpu: float


class SLOResult(_Record):
    """The targets (None: not set) and the share of requests meeting all of them."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    attainment: float
    goodput_requests_per_s: float
    goodput_per_gpu: float


class ClusterSummary(_Record):
    gpu: str
    replicas: int
    tp: int
    pp: int
    dp: int
    gpus: int
    engine: dict[str, Any] | None = None
    kv_blocks_per_replica: int
    block_size: int
    kv_capacity_tokens_per_replica: int
    weight_gib_per_gpu: float
    busy_fraction: float
    iterations: int
    batch_size: Stats
    batch_tokens: Stats
    kv_usage: Stats
    kv_peak_fraction: float
    preemptions: int
    prefix_cache: dict[str, Any] | None = None
    speculative: dict[str, Any] | None = None
    dp_attention: dict[str, Any] | None = None  # with dp > 1: balance and per-rank load
    moe: dict[str, Any] | None = None


class Summary(_Record):
    """One run's ``summary.json``."""

    model: str
    workload: str
    seed: int
    requests: RequestCounts
    latency_s: Latencies
    throughput: Throughput
    slo: SLOResult
    preemptions: int
    clusters: dict[str, ClusterSummary]
    predictor_time_share: dict[str, float] = {}
    gpus: int
    expert_clusters: dict[str, dict[str, Any]] = {}
    workflow: dict[str, Any] | None = None
