"""Frontier: a stage-centric, event-driven simulator of LLM inference serving systems.

The names in ``__all__`` are the public API: the Python API (``simulate``, ``sweep``,
``load``; docs/api.md) and what plugins may import.
"""

from __future__ import annotations

from frontier_core._version import __version__
from frontier_core.app import outdir
from frontier_core.app.api import Result, load, simulate, sweep
from frontier_core.app.summary import Summary
from frontier_core.builtin.roofline import RooflineOptions, RooflinePredictor
from frontier_core.builtin.transfer import collective_time
from frontier_core.components import (
    BuildContext,
    CommandSpec,
    ComponentSpec,
    EngineSpec,
    FFNBlock,
    KVAllocator,
    LayerStep,
    Link,
    MoELayers,
    NoOptions,
    Predictor,
    Router,
    Scheduler,
    SchedulerView,
    TransferModel,
    Workflow,
    WorkflowReport,
)
from frontier_core.config import RunConfig
from frontier_core.engine.network import Channel, Network, effective_link
from frontier_core.engine.replica import ITER_FIELDS
from frontier_core.errors import (
    ConfigError,
    FrontierError,
    FrontierWarning,
    PluginError,
    TraceError,
)
from frontier_core.markers import hookimpl, hookspec
from frontier_core.model.catalog import HardwareSpec, ModelSpec
from frontier_core.model.dtypes import DTYPE_BYTES
from frontier_core.plugins import install_hint, load_registry
from frontier_core.records import OPS, Batch, OpCall, Request

__all__ = [
    # the Python API (docs/api.md)
    "Result",
    "RunConfig",
    "Summary",
    "load",
    "simulate",
    "sweep",
    # for plugins
    "DTYPE_BYTES",
    "ITER_FIELDS",
    "OPS",
    "Batch",
    "BuildContext",
    "Channel",
    "CommandSpec",
    "ComponentSpec",
    "ConfigError",
    "EngineSpec",
    "FFNBlock",
    "FrontierError",
    "FrontierWarning",
    "HardwareSpec",
    "KVAllocator",
    "LayerStep",
    "Link",
    "MoELayers",
    "ModelSpec",
    "Network",
    "NoOptions",
    "OpCall",
    "PluginError",
    "Predictor",
    "Request",
    "RooflineOptions",
    "RooflinePredictor",
    "Router",
    "Scheduler",
    "SchedulerView",
    "TraceError",
    "TransferModel",
    "Workflow",
    "WorkflowReport",
    "__version__",
    "collective_time",
    "effective_link",
    "hookimpl",
    "hookspec",
    "install_hint",
    "load_registry",
    "outdir",
]
