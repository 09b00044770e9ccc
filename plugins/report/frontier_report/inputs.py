"""Reading the directories ``frontier report`` is given: which kind a directory is (a
run or a sweep) and its files as plain Python and numpy values.

Every problem with the input (a directory that is neither kind, a missing file, a CSV or
JSON that cannot be parsed) is a ``ConfigError`` that says what is wrong, in which file,
and what to do. Times are in seconds as the kernel writes them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frontier_core.errors import ConfigError

# requests.csv columns the report reads (float seconds; ``rejected`` is text).
REQUEST_FLOAT_COLUMNS = ("arrival_s", "first_scheduled_s", "completion_s", "ttft_s", "tpot_s",
                         "e2e_s")
RUN_HINT = "give the output directory of `frontier run` (it holds summary.json and requests.csv)"
SWEEP_HINT = "give the output directory of `frontier sweep` (it holds results.csv and sweep.json)"


@dataclass
class RunData:
    """One run's outputs. ``requests`` holds the float columns of requests.csv plus
    ``rejected`` (text, empty when the request completed); ``trace`` is the list of
    trace events (None without trace.json); ``pd_timeseries`` the float columns of
    pd_timeseries.csv (None without it)."""

    path: Path
    summary: dict[str, Any]
    requests: dict[str, np.ndarray]
    trace: list[dict[str, Any]] | None
    pd_timeseries: dict[str, np.ndarray] | None


@dataclass
class SweepData:
    """A sweep's results table: the ok rows (values parsed to numbers where they are
    numbers), how many rows failed, and the columns whose values vary between ok rows."""

    path: Path
    rows: list[dict[str, Any]]
    failed: int
    varied: list[str] = field(default_factory=list)


def detect(path: Path) -> str:
    """``"run"`` or ``"sweep"``: which kind of output directory ``path`` is."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise ConfigError(f"{str(path)!r} {what}; {RUN_HINT}, or {SWEEP_HINT}.")
    if (path / "summary.json").is_file():
        return "run"
    if (path / "results.csv").is_file() or (path / "sweep.json").is_file():
        return "sweep"
    raise ConfigError(
        f"{str(path)!r} is neither a run directory (no summary.json) nor a sweep directory "
        f"(no results.csv or sweep.json); {RUN_HINT}, or {SWEEP_HINT}."
    )


def _json(path: Path, hint: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{str(path)!r} is missing; {hint}.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno} is not valid JSON ({e.msg}); {hint}.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{str(path)!r} cannot be read ({e}); {hint}.") from None


def _csv_rows(path: Path, required: tuple[str, ...], hint: str) -> tuple[list[str], list[dict]]:
    """Header and rows of a CSV file, checking that ``required`` columns are present."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigError(f"{str(path)!r} is missing; {hint}.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{str(path)!r} cannot be read as CSV ({e}); {hint}.") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ConfigError(
            f"{path} has no column {', '.join(map(repr, missing))} (its header is "
            f"{','.join(header)[:200] or 'empty'}); {hint}."
        )
    return header, rows


def _floats(path: Path, rows: list[dict], names: tuple[str, ...] | list[str],
            hint: str) -> dict[str, np.ndarray]:
    """Float columns of CSV rows; an empty cell is NaN, anything else unparsable an error."""
    out = {n: np.empty(len(rows)) for n in names}
    for i, row in enumerate(rows):
        for n in names:
            v = row.get(n)
            try:
                out[n][i] = float(v) if v not in ("", None) else np.nan
            except ValueError:
                raise ConfigError(f"{path}:{i + 2}: column {n!r} holds {v!r}, which is not a "
                                  f"number; {hint}.") from None
    return out


def load_run(path: Path) -> RunData:
    """Read a run directory: summary.json and requests.csv are required; trace.json and
    pd_timeseries.csv are used when present."""
    summary = _json(path / "summary.json", RUN_HINT)
    if not isinstance(summary, dict) or not isinstance(summary.get("clusters"), dict):
        raise ConfigError(f"{path / 'summary.json'} has no 'clusters' section, so it is not "
                          f"a Frontier run summary; {RUN_HINT}.")
    req_path = path / "requests.csv"
    if not req_path.is_file():
        raise ConfigError(f"{str(req_path)!r} is missing; the report needs the per-request "
                          "table: re-run with output.requests: true (the default).")
    _, rows = _csv_rows(req_path, (*REQUEST_FLOAT_COLUMNS, "rejected"), RUN_HINT)
    requests = _floats(req_path, rows, REQUEST_FLOAT_COLUMNS, RUN_HINT)
    requests["rejected"] = np.array([r["rejected"] or "" for r in rows], dtype=object)
    trace = None
    if (path / "trace.json").is_file():
        doc = _json(path / "trace.json", "re-run to rewrite it, or set output.trace: false")
        events = doc.get("traceEvents") if isinstance(doc, dict) else doc
        if not isinstance(events, list):
            raise ConfigError(f"{path / 'trace.json'} has no traceEvents list; re-run to "
                              "rewrite it (output.trace: true).")
        trace = events
    pd_ts = None
    ts_path = path / "pd_timeseries.csv"
    if ts_path.is_file():
        hint = "re-run the pd workflow to rewrite it"
        header, ts_rows = _csv_rows(ts_path, ("time_s",), hint)
        pd_ts = _floats(ts_path, ts_rows, header, hint)
    return RunData(path, summary, requests, trace, pd_ts)


def _value(text: str) -> Any:
    """A results.csv cell: None when empty, a float when numeric, else the text."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def load_sweep(path: Path) -> SweepData:
    """Read a sweep directory: results.csv (ok rows only) and sweep.json's grid."""
    meta = _json(path / "sweep.json", SWEEP_HINT)
    grid = meta.get("grid") if isinstance(meta, dict) else None
    if not isinstance(grid, list):
        raise ConfigError(f"{path / 'sweep.json'} has no 'grid' list, so it is not written "
                          f"by `frontier sweep`; {SWEEP_HINT}.")
    header, raw = _csv_rows(path / "results.csv", ("run_id", "config", "status", "error"),
                            SWEEP_HINT)
    ok = [{k: (v if k in ("run_id", "config", "status", "error") else _value(v))
           for k, v in r.items()} for r in raw if r["status"] == "ok"]
    candidates = [str(g).split("=", 1)[0].strip() for g in grid]
    if "error" in header and "model" in header:  # the varied fields sit between them
        candidates += header[header.index("error") + 1:header.index("model")]
    candidates.append("config")
    varied: list[str] = []
    for c in candidates:
        if c in header and c not in varied and len({repr(r.get(c)) for r in ok}) > 1:
            varied.append(c)
    return SweepData(path, ok, len(raw) - len(ok), varied)


def short_names(paths: list[str]) -> dict[str, str]:
    """Labels for dotted config paths: the last component (``rate`` for
    ``workload.arrival.rate``) unless two paths share it, then the whole path."""
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(paths, last, strict=True)}
