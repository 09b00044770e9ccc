"""Hook implementations of frontier-sjf: registration only, the algorithm is in scheduler.py."""

from __future__ import annotations

from frontier_core.sdk import BuildContext, ComponentSpec, hookimpl
from frontier_sjf.scheduler import SJFOptions, SJFScheduler

__all__ = ["SJFOptions", "SJFScheduler", "frontier_schedulers"]


def build_sjf(options: SJFOptions, ctx: BuildContext) -> SJFScheduler:
    """Factory: called once per replica at assembly with the validated options."""
    return SJFScheduler(options)


@hookimpl
def frontier_schedulers() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="sjf",
            factory=build_sjf,
            options=SJFOptions,
            summary="shortest prompt first, otherwise like vllm (prefill priority, recompute)",
        )
    ]
