"""Hook implementations of frontier-predictors: registration only, no logic."""

from __future__ import annotations

from frontier_core import CommandSpec, ComponentSpec, hookimpl
from frontier_predictors.components import (
    AutoOptions,
    ModelOptions,
    build_auto,
    build_forest,
    build_proxy,
    build_table,
)


@hookimpl
def frontier_predictors() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="table", factory=build_table, options=ModelOptions,
            summary="interpolation over measured profile tables (exact at measured points)",
        ),
        ComponentSpec(
            name="forest", factory=build_forest, options=ModelOptions,
            summary="tree ensemble on distributional batch features, trained on profile tables",
        ),
        ComponentSpec(
            name="proxy", factory=build_proxy, options=ModelOptions,
            summary="tree ensemble on one proxy length per batch (comparison baseline)",
        ),
        ComponentSpec(
            name="auto", factory=build_auto, options=AutoOptions,
            summary="forest trained on the measured data found for the run's GPU, else nothing",
        ),
    ]


@hookimpl
def frontier_commands() -> list[CommandSpec]:
    from frontier_predictors.cli import predictors_app
    from frontier_predictors.profiler import profile_command

    return [
        CommandSpec(name="profile", command=profile_command,
                    summary="Measure real kernels with torch (CUDA or CPU) into profile tables."),
        CommandSpec(name="predictors", command=predictors_app,
                    summary="Import, train, evaluate and split operator-time models."),
    ]
