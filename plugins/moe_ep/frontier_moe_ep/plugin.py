"""Hook implementations of frontier-moe-ep: registration only, no logic."""

from __future__ import annotations

from frontier_core import ComponentSpec, hookimpl
from frontier_moe_ep.block import MoEBlock, MoEOptions
from frontier_moe_ep.cross import CrossClusterBlock, CrossOptions


@hookimpl
def frontier_ffn_blocks() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="moe", factory=MoEBlock, options=MoEOptions,
            summary="MoE layers with expert parallelism: per-iteration routing, all-to-all, "
            "stragglers, expert placement, two-batch overlap",
        ),
        ComponentSpec(
            name="cross_cluster", factory=CrossClusterBlock, options=CrossOptions,
            summary="the experts of each MoE layer spread over several clusters (expert "
            "clusters and the cluster's own GPUs): routing split by cluster, transfers, "
            "the slowest cluster, placement by load with rebalancing",
        ),
    ]
