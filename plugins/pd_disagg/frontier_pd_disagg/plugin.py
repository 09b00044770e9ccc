"""Hook implementations of frontier-pd-disagg: registration only, no logic."""

from __future__ import annotations

from frontier_core import ComponentSpec, hookimpl
from frontier_pd_disagg.workflow import PDOptions, PDWorkflow


@hookimpl
def frontier_workflows() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="pd", factory=PDWorkflow, options=PDOptions,
            summary="prefill/decode disaggregation: KV-cache transfer with link contention, "
            "decode-memory backpressure, any mix of clusters",
        ),
    ]


@hookimpl
def frontier_predictors() -> list[ComponentSpec]:
    from frontier_pd_disagg.distserve import DistServeOptions, build_distserve

    return [
        ComponentSpec(
            name="distserve", factory=build_distserve, options=DistServeOptions,
            summary="DistServe's fitted A100 iteration-latency models (OPT-13B/66B)",
        ),
    ]
