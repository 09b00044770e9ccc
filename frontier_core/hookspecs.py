"""The plugin contract: provider hooks return spec records; no logic here.

Every hook is documented in docs/hooks.md (a test checks it). Hooks are called
once per run at assembly (or once per CLI invocation), never in the event loop.
"""

from __future__ import annotations

from frontier_core.components import CommandSpec, ComponentSpec, EngineSpec
from frontier_core.markers import hookspec
from frontier_core.model.catalog import HardwareSpec, ModelSpec


@hookspec
def frontier_schedulers() -> list[ComponentSpec]:
    """Batch schedulers: factories returning a ``Scheduler`` (``schedule(view) -> Batch``)."""


@hookspec
def frontier_routers() -> list[ComponentSpec]:
    """Request routers: factories returning a ``Router`` (``route(request, replicas) -> int``)."""


@hookspec
def frontier_transfers() -> list[ComponentSpec]:
    """Transfer models: factories returning a ``TransferModel`` (``transfer(kind, nbytes, num_gpus, link) -> s``)."""


@hookspec
def frontier_predictors() -> list[ComponentSpec]:
    """Operator-time predictors: factories returning a ``Predictor`` (``predict(call) -> s | None``)."""


@hookspec
def frontier_workflows() -> list[ComponentSpec]:
    """Workflows: how requests move between the stages (clusters) of a deployment."""


@hookspec
def frontier_ffn_blocks() -> list[ComponentSpec]:
    """Feed-forward block models by kind (``dense``, ``moe``): factories returning an ``FFNBlock``."""


@hookspec
def frontier_models() -> list[ModelSpec]:
    """Model architectures for the catalog."""


@hookspec
def frontier_hardware() -> list[HardwareSpec]:
    """GPU kinds for the catalog."""


@hookspec
def frontier_engines() -> list[EngineSpec]:
    """Serving engines a cluster can name as ``engine:``: their scheduler defaults, CUDA
    graphs and host/GPU overlap per version, and their host constants."""


@hookspec
def frontier_commands() -> list[CommandSpec]:
    """CLI subcommands (a typer app or a function) added to ``frontier``."""
