"""Sweeps: many runs of one or more configs over a grid of overrides, in parallel.

A sweep is the Cartesian product of its configs and its grid axes
(``path.to.field=v1,v2,...``, the same paths as ``--set``). Each run writes its
usual output directory under ``DIR/runs/<run id>/``; the sweep writes one results
table, ``DIR/results.csv`` (and ``results.parquet`` when pyarrow is installed),
with the varied parameters and every scalar of each run's summary flattened to
dotted column names.

Runs execute serially, in a local process pool (``jobs``), or on a Ray cluster
(``ray``: ``"auto"`` or an address; ``pip install '.[ray]'`` in a checkout). A run's
id is a hash of its config and overrides, so a re-run of the same sweep skips the
runs that already finished (their summary.json exists) and retries failed ones.
A failed run is a row with ``status = "failed"`` and its error, never lost.
Results do not depend on how the runs were executed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from frontier_core.app.runner import ray_start, run_all, simulate
from frontier_core.config import RunConfig
from frontier_core.configfile import _parse_value
from frontier_core.errors import ConfigError, FrontierError

STATUS_COLUMNS = ("run_id", "config", "status", "error")
# The top-level entries a sweep writes in its folder (its marker lists them).
SWEEP_ENTRIES = ("runs", "sweep.json", "results.csv", "results.parquet")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a config (a file's path, None for the embedded default, or a
    ``RunConfig`` given from Python) and its overrides (``--grid`` strings, parsed as
    ``--set`` parses them, or values given from Python). ``digest`` identifies the
    config's content, so an edited config is a new run; ``label`` names it in the table."""

    config: str | RunConfig | None
    overrides: tuple[tuple[str, Any], ...]
    digest: str = ""
    label: str = ""

    @property
    def run_id(self) -> str:
        key = json.dumps([self.digest, list(self.overrides)], default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def assignments(self) -> list[Any]:
        """The overrides as ``configfile.from_data`` takes them."""
        return [f"{k}={v}" if isinstance(v, str) else (k, v) for k, v in self.overrides]

    def values(self) -> dict[str, Any]:
        """The varied values, as the results table shows them."""
        return {k: _parse_value(v) if isinstance(v, str) else v for k, v in self.overrides}

    def row(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config": self.label, "status": "ok", "error": "",
                **self.values()}


@dataclass
class SweepResult:
    """The rows of a sweep's results table, in run order."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols.extend(c for c in r if c not in cols)
        return cols

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]

    def failures(self) -> list[tuple[str, int]]:
        """The failed runs' errors, grouped: (message, count), most frequent first. A
        traceback (a bug) counts by its last line, the exception."""
        counts: dict[str, int] = {}
        for r in self.failed():
            text = r["error"].strip()
            if text.startswith("Traceback"):
                text = text.splitlines()[-1]
            text = " ".join(text.split()) or "?"
            counts[text] = counts.get(text, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` on commas outside brackets and braces (``[a,b],[c]`` is two)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_grid(items: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``["a.b=1,2", "c=x"]`` -> ``[("a.b", ["1", "2"]), ("c", ["x"])]``."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--grid {item!r} is not of the form path.to.field=v1,v2,... "
                "(e.g. --grid deployment.clusters.0.tp=1,2,4)."
            )
        path, values = item.split("=", 1)
        path = path.strip()
        vals = _split_values(values)
        if not path or any(v == "" for v in vals):
            raise ConfigError(f"--grid {item!r} has an empty field path or an empty value.")
        if path in (a for a, _ in axes):
            raise ConfigError(f"--grid names {path!r} twice; give all its values in one --grid.")
        axes.append((path, vals))
    return axes


ConfigItem = Union[str, Path, RunConfig, None, tuple[Union[str, None], Any]]  # noqa: UP007


def expand(configs: Sequence[ConfigItem], axes: Sequence[tuple[str, Sequence[Any]]]) -> list[RunSpec]:
    """Every config crossed with every combination of the axes' values. A config is a
    path, None (the embedded default), a ``RunConfig``, or a (label, config) pair."""
    combos = list(itertools.product(*(vals for _, vals in axes))) if axes else [()]
    out = []
    for i, item in enumerate(configs):
        label, cfg = item if isinstance(item, tuple) else (None, item)
        if isinstance(cfg, Path):
            cfg = str(cfg)
        if label is None:
            label = (cfg if isinstance(cfg, str) else "<default>" if cfg is None
                     else f"<config {i}>")
        # Two configs given from Python are two runs even when equal: their labels differ.
        digest = _digest(cfg) + (label if isinstance(cfg, RunConfig) else "")
        out.extend(RunSpec(cfg, tuple(zip((a for a, _ in axes), combo, strict=True)), digest,
                           label) for combo in combos)
    return out


def _digest(config: str | RunConfig | None) -> str:
    from frontier_core._version import __version__

    if isinstance(config, RunConfig):
        return hashlib.sha256(config.model_dump_json().encode() + __version__.encode()).hexdigest()
    if config is None:
        from frontier_core.configfile import DEFAULT_CONFIG_YAML

        text = DEFAULT_CONFIG_YAML.encode()
    else:
        try:
            text = Path(config).read_bytes()
        except OSError as e:
            raise ConfigError(f"Config file {config!r} cannot be read ({e.strerror}); give the "
                              "path of a YAML run config.") from None
    # The config's directory matters too: relative paths in it resolve against it.
    where = "" if config is None else str(Path(config).resolve().parent)
    return hashlib.sha256(text + where.encode() + __version__.encode()).hexdigest()


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar leaves of a summary as ``dotted.name -> value`` (lists are skipped)."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, str | int | float | bool) or v is None:
            out[name] = v
    return out


def execute(spec: RunSpec, runs_dir: str | None, registry: Any = None) -> dict[str, Any]:
    """Run one configuration and write its outputs under ``runs_dir`` (None: nothing
    written); returns its results row. Errors become a failed row (user errors by their
    message, bugs with their traceback)."""
    from frontier_core.app.metrics import summarize, write_outputs
    from frontier_core.configfile import from_data, load_config

    row = spec.row()
    try:
        if isinstance(spec.config, RunConfig):
            cfg = spec.config
            if spec.overrides:
                cfg = from_data(cfg.model_dump(mode="python"), spec.assignments(),
                                source=spec.label)
        else:
            cfg = load_config(spec.config, spec.assignments())
        sim = simulate(cfg, registry)
        summary = (summarize(sim) if runs_dir is None
                   else write_outputs(sim, Path(runs_dir) / spec.run_id))
    except FrontierError as e:
        return {**row, "status": "failed", "error": str(e)}
    except Exception:  # a bug: keep the traceback in the table, keep the sweep going
        return {**row, "status": "failed", "error": traceback.format_exc(limit=8)}
    row.update(flatten(summary))
    return row


def _finished(spec: RunSpec, runs_dir: Path) -> dict[str, Any] | None:
    """The row of a run that completed in an earlier invocation, from its summary."""
    path = runs_dir / spec.run_id / "summary.json"
    if not path.is_file():
        return None
    row = spec.row()
    row.update(flatten(json.loads(path.read_text())))
    return row


def sweep(
    configs: Sequence[ConfigItem],
    grid: Iterable[str] | Sequence[tuple[str, Sequence[Any]]] = (),
    out_dir: str | Path | None = "frontier-sweep",
    jobs: int = 1,
    ray: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    registry: Any = None,
    overwrite: bool = False,
    gitignore: bool = False,
) -> SweepResult:
    """Run every configuration of the sweep that has not finished yet and write the
    results table. ``configs`` as ``expand`` takes them; ``grid``: ``--grid`` strings or
    (path, values) axes. ``progress(done, total)`` is called after each run. ``out_dir``
    must be new, empty or a sweep folder (``frontier_core.app.outdir``); ``overwrite`` allows
    the results of another command there (never a folder Frontier did not write). With
    ``out_dir=None`` nothing is written (and nothing resumes). ``gitignore``: a new
    ``out_dir`` gets a ``.gitignore`` of ``*`` (the CLI's default folder)."""
    from frontier_core.app import outdir

    grid = list(grid)
    axes = (parse_grid(grid) if all(isinstance(g, str) for g in grid)
            else [(str(p), list(v)) for p, v in grid])
    specs = expand(list(configs) or [None], axes)
    if out_dir is None:
        return _run(specs, None, {}, jobs, ray_start(ray) if ray is not None else None,
                    progress, registry)
    outdir.check(out_dir, "sweep", overwrite)  # before Ray starts and before any run
    ray_mod = ray_start(ray) if ray is not None else None  # before anything is written
    out = Path(out_dir)
    new = not out.exists()
    outdir.claim(out, "sweep", SWEEP_ENTRIES, overwrite, gitignore=gitignore)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    # What a killed sweep left half-written: a run's outputs go to a hidden temporary
    # sibling that replaces its folder only when complete (outdir.write).
    outdir.clear_partial(runs_dir)
    (out / "sweep.json").write_text(json.dumps(
        {"configs": list(dict.fromkeys(s.label for s in specs)), "grid": grid,
         "runs": [{"run_id": s.run_id, "config": s.label, "overrides": dict(s.overrides)}
                  for s in specs]}, indent=2, default=str) + "\n")
    rows: dict[str, dict[str, Any]] = {}
    for s in specs:
        done = _finished(s, runs_dir)
        if done is not None:
            rows[s.run_id] = done
    earlier = len(rows)
    try:
        result = _run(specs, runs_dir, rows, jobs, ray_mod, progress, registry)
    except BaseException as e:  # Ctrl-C above all: keep what finished, nothing half-written
        _stopped(e, out, runs_dir, len(rows) - earlier, new)
        raise
    write_table(result, out)
    return result


def _run(specs: list[RunSpec], runs_dir: Path | None, rows: dict[str, dict[str, Any]],
         jobs: int, ray_mod: Any, progress: Callable[[int, int], None] | None,
         registry: Any) -> SweepResult:
    """Run the specs without a row in ``rows``; the table in spec order."""
    todo = [s for s in specs if s.run_id not in rows]
    total, count = len(specs), len(rows)
    if progress is not None:
        progress(count, total)

    def record(row: dict[str, Any]) -> None:
        nonlocal count
        rows[row["run_id"]] = row
        count += 1
        if progress is not None:
            progress(count, total)

    run_all(functools.partial(execute, runs_dir=None if runs_dir is None else str(runs_dir)),
            todo, lambda _i, row: record(row), jobs=jobs, ray=ray_mod, registry=registry)
    return SweepResult([rows[s.run_id] for s in specs])


def _stopped(e: BaseException, out: Path, runs_dir: Path, finished: int, new: bool) -> None:
    """A sweep stopped before its end: remove the half-written runs; a folder this sweep
    created in which no run finished goes entirely. Each finished run is complete in its
    folder, so an interrupted sweep says so (a note on ``e``): running it again resumes."""
    import contextlib

    from frontier_core.app import outdir

    outdir.clear_partial(runs_dir)
    if new and finished == 0:
        with contextlib.suppress(OSError):
            runs_dir.rmdir()
            for name in (*SWEEP_ENTRIES, outdir.MARKER, outdir.GITIGNORE):
                if not (out / name).is_dir():
                    (out / name).unlink(missing_ok=True)
            out.rmdir()
        return
    if finished and not isinstance(e, Exception):
        e.add_note(f"the {finished} run{'s' if finished > 1 else ''} that finished "
                   f"{'are' if finished > 1 else 'is'} kept in {runs_dir}/, and running the same "
                   "command again resumes the sweep (results.csv is written when it completes)")


def table_csv(result: SweepResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = result.columns
    w.writerow(cols)
    for r in result.rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    return buf.getvalue()


def write_table(result: SweepResult, out: Path) -> None:
    """results.csv always; results.parquet too when pyarrow is installed."""
    (out / "results.csv").write_text(table_csv(result))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    data = {c: _column([r.get(c) for r in result.rows]) for c in result.columns}
    pq.write_table(pa.table(data), out / "results.parquet")


def _column(values: list[Any]) -> list[Any]:
    """One Arrow type per column: all numbers (ints widen to float when mixed), all
    booleans, or else text."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return values
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        if any(isinstance(v, float) for v in present):
            return [None if v is None else float(v) for v in values]
        return values
    return [None if v is None else str(v) for v in values]
