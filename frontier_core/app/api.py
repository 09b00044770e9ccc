"""Frontier from Python: what ``frontier run`` and ``frontier sweep`` do, as functions.

::

    import frontier_core as fc

    result = fc.simulate("examples/llama3-8b-h100-azure-conv.yaml", seed=1,
                         workload__arrival__rate=4.0)
    result.summary.latency_s.ttft_s.p90      # typed (frontier_core.app.summary.Summary)
    result.requests                          # a pandas DataFrame (records without pandas)
    result.save("results")                   # the folder `frontier run -o results` writes

    table = fc.sweep(config, grid={"deployment.clusters.0.tp": [1, 2, 4]}, jobs=2)
    table.to_pandas()

A config is a YAML path, a mapping (what the YAML would hold), a ``RunConfig``, or None
for the embedded default. Overrides are ``path.to.field`` → value pairs (``overrides=``,
or keywords with ``__`` for the dots); a string value is read as ``--set`` reads it, any
other value is used as it is. Errors a user can cause raise ``FrontierError`` subclasses
with the same one-paragraph messages the CLI prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from frontier_core.app.summary import Summary
from frontier_core.config import RunConfig
from frontier_core.errors import ConfigError

if TYPE_CHECKING:
    from frontier_core.app.sweep import SweepResult
    from frontier_core.assemble import Simulation

ConfigLike = Union[str, os.PathLike, Mapping[str, Any], RunConfig, None]  # noqa: UP007
Overrides = Union[Mapping[str, Any], Iterable[Union[str, tuple[str, Any]]], None]  # noqa: UP007

__all__ = ["ConfigLike", "Result", "load", "simulate", "sweep"]


def _pairs(overrides: Overrides, fields: Mapping[str, Any]) -> list[Any]:
    """Overrides as ``from_data`` takes them: ``path=value`` strings or (path, value)."""
    if overrides is None:
        items: list[Any] = []
    elif isinstance(overrides, str):
        items = [overrides]
    elif isinstance(overrides, Mapping):
        items = [(str(k), v) for k, v in overrides.items()]
    else:
        items = list(overrides)
        bad = [o for o in items if not isinstance(o, str) and not (
            isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str))]
        if bad:
            raise ConfigError(
                f"overrides item {bad[0]!r} is neither 'path.to.field=value' nor a "
                "(path, value) pair; give a mapping {'path.to.field': value} or a list of "
                "such strings."
            )
    items += [(k.replace("__", "."), v) for k, v in fields.items()]
    return items


def _python_value(v: Any) -> Any:
    """A value as a config's data holds it (a nested RunConfig part becomes its data)."""
    from pydantic import BaseModel

    return v.model_dump(mode="python") if isinstance(v, BaseModel) else v


def load(config: ConfigLike = None, overrides: Overrides = None, **fields: Any) -> RunConfig:
    """A validated ``RunConfig`` from a YAML path, a mapping, a ``RunConfig`` or None (the
    embedded default), with overrides applied: ``overrides={"workload.arrival.rate": 4}``
    or ``workload__arrival__rate=4`` (a string value is parsed as ``--set`` parses it)."""
    from frontier_core.configfile import from_data, load_config

    pairs = [o if isinstance(o, str) else (o[0], _python_value(o[1]))
             for o in _pairs(overrides, fields)]
    if config is None or isinstance(config, str | os.PathLike):
        return load_config(None if config is None else Path(config), pairs)
    if isinstance(config, RunConfig):
        if not pairs:
            return config
        return from_data(config.model_dump(mode="python"), pairs, source="<RunConfig>")
    if isinstance(config, Mapping):
        return from_data(dict(config), pairs, source="<config mapping>")
    raise ConfigError(
        f"A config is a YAML path, a mapping, a RunConfig or None (the embedded default), "
        f"not a {type(config).__name__}."
    )


@dataclass
class Result:
    """One finished simulation: its summary, its per-request table, and the simulation
    itself (``simulation``: clusters, replicas, the controller's requests)."""

    simulation: Simulation
    _col: dict[str, Any] = field(repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        from frontier_core.app.metrics import request_table

        self._col = request_table(self.simulation)

    @property
    def config(self) -> RunConfig:
        return self.simulation.config

    @cached_property
    def summary_data(self) -> dict[str, Any]:
        """The summary as plain data: exactly what ``summary.json`` holds."""
        from frontier_core.app.metrics import summarize

        return summarize(self.simulation, self._col)

    @cached_property
    def summary(self) -> Summary:
        """The summary as typed records (``frontier_core.app.summary``)."""
        return Summary.model_validate(self.summary_data)

    @cached_property
    def requests(self) -> Any:
        """One row per request, the columns of requests.csv: a pandas DataFrame when
        pandas is installed, else a list of dicts."""
        from frontier_core.app.metrics import request_columns

        names = request_columns(self._col)
        try:
            import pandas as pd
        except ImportError:
            cols = [self._col[c].tolist() for c in names]
            return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]
        return pd.DataFrame({c: self._col[c] for c in names})

    @property
    def perf(self) -> dict[str, Any]:
        """How fast the simulator ran (simulator.json); varies from run to run."""
        from frontier_core.app.metrics import simulator_stats

        return simulator_stats(self.simulation)

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False, *,
             gitignore: bool = False) -> Path:
        """Write the results folder ``frontier run -o out_dir`` writes, under the same
        rules (``frontier_core.app.outdir``: never into a folder Frontier did not write);
        ``gitignore`` puts a ``.gitignore`` of ``*`` in a new folder."""
        from frontier_core.app.metrics import write_outputs

        out = Path(out_dir)
        try:
            write_outputs(self.simulation, out, overwrite, gitignore=gitignore, col=self._col)
        except OSError as e:
            raise ConfigError(
                f"Cannot write the results to {str(out)!r}: {e.strerror or e} "
                f"({e.filename or out}); choose a writable folder."
            ) from None
        return out


def simulate(config: ConfigLike = None, overrides: Overrides = None, *,
             progress: Callable[[float, int, int], None] | None = None,
             registry: Any = None, **fields: Any) -> Result:
    """Simulate one deployment (``frontier run`` without writing anything); ``config``
    and the overrides as ``load`` takes them. ``progress(sim_time, finished, total)`` is
    called once per slice of simulated time. ``registry`` is a plugin registry
    (``load_registry()``; default: the installed plugins, discovered once). Requests
    that cannot be served whatever happens are announced first as ``FrontierWarning``s."""
    from frontier_core.app.runner import worker_registry
    from frontier_core.assemble import assemble, warn_unservable

    cfg = load(config, overrides, **fields)
    sim = assemble(cfg, worker_registry() if registry is None else registry)
    warn_unservable(sim)
    sim.run(progress)
    return Result(sim)


def sweep(configs: ConfigLike | Sequence[ConfigLike] | Mapping[str, ConfigLike] = None,
          grid: Mapping[str, Sequence[Any]] | Iterable[str] | None = None, *,
          out_dir: str | os.PathLike | None = None, jobs: int = 1, ray: str | None = None,
          progress: Callable[[int, int], None] | None = None, overrides: Overrides = None,
          overwrite: bool = False, registry: Any = None, gitignore: bool = False) -> SweepResult:
    """Run every config over the Cartesian product of the grid's values; the results
    table (``SweepResult``: ``rows``, ``to_pandas()``), one row per run with its status.

    ``configs``: one config or a list of them (as ``load`` takes), or a mapping naming
    each (the name is the table's ``config`` column). ``grid``: ``{"path.to.field":
    [values]}`` or ``["path=v1,v2"]`` strings as ``--grid`` takes them. ``overrides``
    apply to every run. With ``out_dir`` the sweep writes what ``frontier sweep -o``
    writes (and a re-run resumes); without it nothing is written. ``jobs`` runs a local
    process pool; ``ray`` a Ray cluster ('local', 'auto' or an address). ``gitignore``
    puts a ``.gitignore`` of ``*`` in a new ``out_dir``."""
    from frontier_core.app.sweep import parse_grid
    from frontier_core.app.sweep import sweep as run_sweep

    if isinstance(configs, Mapping) and not _is_config_mapping(configs):
        named = list(configs.items())
    elif isinstance(configs, list | tuple):
        named = [(None, c) for c in configs] or [(None, None)]
    else:
        named = [(None, configs)]
    base = [o if isinstance(o, str) else (o[0], _python_value(o[1]))
            for o in _pairs(overrides, {})]
    items = []
    for i, (label, c) in enumerate(named):
        if label is None:
            label = "<default>" if c is None else str(c) if isinstance(c, str | os.PathLike) \
                else f"<config {i}>"
        if isinstance(c, str | os.PathLike) and not base:
            items.append((label, str(c)))  # read in the worker, as the CLI's sweep does
        elif c is None and not base:
            items.append((label, None))
        else:
            items.append((label, load(c, base)))
    if grid is None:
        axes: list[tuple[str, list[Any]]] = []
    elif isinstance(grid, Mapping):
        axes = []
        for k, vals in grid.items():
            if isinstance(vals, str) or not isinstance(vals, Sequence) or not len(vals):
                raise ConfigError(
                    f"grid[{k!r}] is {vals!r}; give a non-empty list of values, "
                    f"e.g. grid={{{k!r}: [1, 2]}}."
                )
            axes.append((str(k), [_python_value(v) for v in vals]))
    else:
        axes = parse_grid([grid] if isinstance(grid, str) else grid)
    return run_sweep(items, axes, out_dir=out_dir, jobs=jobs, ray=ray, progress=progress,
                     registry=registry, overwrite=overwrite, gitignore=gitignore)


def _is_config_mapping(m: Mapping[str, Any]) -> bool:
    """One config's data, or configs by name? A config's keys are RunConfig fields."""
    return any(k in RunConfig.model_fields for k in m)
