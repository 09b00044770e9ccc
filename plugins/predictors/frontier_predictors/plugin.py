"""Hook implementations of frontier-predictors: registration only, no logic."""

from __future__ import annotations

from frontier_core import ComponentSpec, hookimpl
from frontier_predictors.roofline import RooflineOptions, build_roofline


@hookimpl
def frontier_predictors() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="roofline",
            factory=build_roofline,
            options=RooflineOptions,
            summary="analytical roofline: max(FLOPs/peak, bytes/HBM bw) per kernel, from the datasheet",
        )
    ]
