"""Frontier: a stage-centric, event-driven simulator of LLM inference serving systems.

The names in ``__all__`` are the public API that plugins may import.
"""

from __future__ import annotations

__version__ = "0.1.0"

from frontier_core import outdir
from frontier_core.builtin.roofline import RooflineOptions, RooflinePredictor
from frontier_core.builtin.transfer import collective_time
from frontier_core.catalog import DTYPE_BYTES, HardwareSpec, ModelSpec
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
from frontier_core.plugins import install_hint, load_registry
from frontier_core.records import OPS, Batch, OpCall, Request

__all__ = [
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
