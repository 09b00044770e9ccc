"""Frontier: a stage-centric, event-driven simulator of LLM inference serving systems.

The names in ``__all__`` are the public API: the Python API (``simulate``, ``sweep``,
``load``; docs/api.md) and what plugins may import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from frontier_core._version import __version__

if TYPE_CHECKING:  # the names below, for type checkers; at run time __getattr__ loads them
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

# NOTE: perf — the public names are imported on first use (PEP 562), not with the
# package: importing any frontier_core module imports the package first, and its names
# pull in numpy, pydantic, simpy and every kernel module (about 0.25 s), which the
# `frontier` command's start-up and `--help` do not need.
_LAZY: dict[str, str] = {
    "outdir": "frontier_core.app.outdir",  # a module
    **dict.fromkeys(("Result", "load", "simulate", "sweep"), "frontier_core.app.api"),
    "Summary": "frontier_core.app.summary",
    **dict.fromkeys(("RooflineOptions", "RooflinePredictor"), "frontier_core.builtin.roofline"),
    "collective_time": "frontier_core.builtin.transfer",
    **dict.fromkeys(("BuildContext", "CommandSpec", "ComponentSpec", "EngineSpec", "FFNBlock",
                     "KVAllocator", "LayerStep", "Link", "MoELayers", "NoOptions", "Predictor",
                     "Router", "Scheduler", "SchedulerView", "TransferModel", "Workflow",
                     "WorkflowReport"), "frontier_core.components"),
    "RunConfig": "frontier_core.config",
    **dict.fromkeys(("Channel", "Network", "effective_link"), "frontier_core.engine.network"),
    "ITER_FIELDS": "frontier_core.engine.replica",
    **dict.fromkeys(("ConfigError", "FrontierError", "FrontierWarning", "PluginError",
                     "TraceError"), "frontier_core.errors"),
    **dict.fromkeys(("hookimpl", "hookspec"), "frontier_core.markers"),
    **dict.fromkeys(("HardwareSpec", "ModelSpec"), "frontier_core.model.catalog"),
    "DTYPE_BYTES": "frontier_core.model.dtypes",
    **dict.fromkeys(("install_hint", "load_registry"), "frontier_core.plugins"),
    **dict.fromkeys(("OPS", "Batch", "OpCall", "Request"), "frontier_core.records"),
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first use; or a submodule, as
    ``frontier_core.config`` after ``import frontier_core`` was when the package imported
    its modules eagerly."""
    where = _LAZY.get(name)
    if where is None:
        if name.startswith("_"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = import_module(where)
    value = module if where.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
