"""Hook implementations of frontier-af-pingpong: registration only, no logic."""

from __future__ import annotations

from frontier_af_pingpong.block import AFBlock, AFOptions
from frontier_core import ComponentSpec, hookimpl


@hookimpl
def frontier_ffn_blocks() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="af", factory=AFBlock, options=AFOptions,
            summary="attention/FFN disaggregation: every layer's FFN (or experts) on separate "
            "GPUs, micro-batches ping-ponged between the two sides",
        ),
    ]
