"""Trace files: ``azure`` CSV, ``mooncake`` JSONL and ``lengths`` CSV (see the package's
docstring). Every problem in a file is a ``TraceError`` naming the file and 1-based line."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from frontier_core.config import (
    MAX_TOKENS,
    EmpiricalLength,
    TraceConfig,
)
from frontier_core.errors import ConfigError, TraceError

# Accepted column names of a ``lengths`` CSV, first match wins (Vidur, Frontier, Mooncake, Azure).
PROMPT_COLUMNS = ("num_prefill_tokens", "prompt_len", "input_length", "ContextTokens")
OUTPUT_COLUMNS = ("num_decode_tokens", "output_len", "output_length", "GeneratedTokens")
ARRIVAL_COLUMN = "arrived_at"
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")
# A column (lengths CSV) or key (mooncake JSONL) naming the conversation a row belongs to,
# and an optional one checking the order of its turns.
CONVERSATION_COLUMN = "conversation_id"
TURN_COLUMN = "turn"

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)

# One trace row: 1-based line, prompt tokens, output tokens, time in the file's unit (or
# None), prompt block hashes (or None), (conversation id, turn value or None) or None.
_Row = tuple[
    int, int, int, float | None, tuple[int, ...] | None, tuple[str, object] | None
]


def read_trace(
    tcfg: TraceConfig,
    resolve: Callable[[str], Path],
    timed: bool,
    limit: int | None,
    horizon: float | None,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray | None,
    list[tuple[int, ...]] | None,
    list[tuple[int, str | None, object]] | None,
]:
    """Prompt and output lengths (tokens) of trace rows ``start`` .. ``start + limit`` and,
    with ``timed``, their arrival times in seconds: rebased to the first of them, scaled,
    cut after ``horizon``. Row times stay in the file's unit (µs, ms, s) until rebased,
    so that differences of large wall-clock values are exact. Last, when any row names a
    conversation: per row its (line, conversation id or None, turn value or None)."""
    path = resolve(tcfg.path)
    prompt: list[int] = []
    output: list[int] = []
    times: list[float] = []
    hashes: list[tuple[int, ...]] = []
    convs: list[tuple[int, str | None, object]] = []
    any_conv = False
    if tcfg.format == "mooncake":
        rows, has_time, per_s = _mooncake_rows(path, timed), True, 1e3
    else:
        rows, has_time = _csv_rows(path, tcfg.format, timed)
        per_s = 1e6 if tcfg.format == "azure" else 1.0
    if timed and not has_time:
        raise TraceError(
            f"{path}:1: this lengths trace has no {ARRIVAL_COLUMN!r} column, so it gives no "
            "arrival times; add workload.arrival (poisson/gamma/fixed) or workload.closed_loop"
        )
    t0 = prev = None
    prev_line = seen = 0
    for line, p, o, t, h, c in rows:
        seen += 1
        if seen <= tcfg.start:
            continue
        if limit is not None and len(prompt) >= limit:
            break
        if timed:
            assert t is not None
            if prev is not None and t < prev:
                raise TraceError(
                    f"{path}:{line}: timestamp goes backwards (earlier than line {prev_line}); "
                    "a trace must be sorted by arrival time: sort the file by its timestamp column"
                )
            prev, prev_line = t, line
            if t0 is None:
                t0 = t
            rel = (t - t0) / per_s * tcfg.time_scale
            if horizon is not None and rel > horizon:
                break  # sorted, so every later row is past the horizon too
            times.append(rel)
        prompt.append(p)
        output.append(o)
        if h is not None:
            hashes.append(h)
        convs.append((line, *c) if c is not None else (line, None, None))
        any_conv = any_conv or c is not None
    if seen == 0:
        raise TraceError(f"{path}: has no data rows; give a trace with at least one request")
    if not prompt:
        raise ConfigError(
            f"the workload has no requests: {path} has {seen} data rows and "
            f"workload.trace.start={tcfg.start} skips them all; lower start"
        )
    return (
        np.asarray(prompt, dtype=np.int64),
        np.asarray(output, dtype=np.int64),
        np.asarray(times, dtype=np.float64) if timed else None,
        hashes if hashes and len(hashes) == len(prompt) else None,
        convs if any_conv else None,
    )


def _csv_rows(path: Path, fmt: str, timed: bool) -> tuple[Iterator[_Row], bool]:
    """Rows of an ``azure`` or ``lengths`` CSV, and whether it has arrival times."""
    reader, header = _open_csv(path, "workload.trace.path")
    if fmt == "azure":
        missing = [c for c in AZURE_COLUMNS if c not in header]
        if missing:
            raise TraceError(
                f"{path}:1: azure trace is missing column(s) {missing}; found {header}; expected "
                f"{list(AZURE_COLUMNS)} (the AzureLLMInferenceTrace CSV header), or use "
                "format: lengths for other length CSVs"
            )
        pname, oname, tname = "ContextTokens", "GeneratedTokens", "TIMESTAMP"
    else:
        pname = next((c for c in PROMPT_COLUMNS if c in header), "")
        oname = next((c for c in OUTPUT_COLUMNS if c in header), "")
        tname = ARRIVAL_COLUMN if ARRIVAL_COLUMN in header else ""
        if not pname or not oname:
            raise TraceError(
                f"{path}:1: lengths trace needs a prompt column (one of {list(PROMPT_COLUMNS)}) "
                f"and an output column (one of {list(OUTPUT_COLUMNS)}); found {header}; rename "
                "the header or pick the matching trace format"
            )
    pc, oc = header.index(pname), header.index(oname)
    tc = header.index(tname) if tname and timed else -1
    when = _azure_time if fmt == "azure" else _number
    lengths = fmt == "lengths"
    cc = header.index(CONVERSATION_COLUMN) if lengths and CONVERSATION_COLUMN in header else -1
    uc = header.index(TURN_COLUMN) if cc >= 0 and TURN_COLUMN in header else -1

    def rows() -> Iterator[_Row]:
        for line, row in reader:
            p = _length(_field(row, pc, path, line, pname), path, line, pname, zero_ok=False)
            o = _length(_field(row, oc, path, line, oname), path, line, oname, zero_ok=True)
            t = when(_field(row, tc, path, line, tname), path, line, tname) if tc >= 0 else None
            c = None
            if cc >= 0:
                key = _field(row, cc, path, line, CONVERSATION_COLUMN).strip()
                c = (key, _field(row, uc, path, line, TURN_COLUMN) if uc >= 0 else None)
            yield line, p, o, t, None, c

    return rows(), bool(tname)


def _mooncake_rows(path: Path, timed: bool) -> Iterator[_Row]:
    """Rows of a Mooncake JSONL trace; timestamps are milliseconds."""
    # Split on "\n" only, so line numbers match what an editor shows.
    for line, text in enumerate(_read_text(path, "workload.trace.path").split("\n"), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(
                f"{path}:{line}: invalid JSON ({e.msg} at column {e.colno}); each line must "
                'be one object like {"timestamp": 0, "input_length": 10, "output_length": 5}'
            ) from None
        if not isinstance(obj, dict) or any(k not in obj for k in MOONCAKE_KEYS):
            found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise TraceError(
                f"{path}:{line}: mooncake record lacks required keys; found {found}; "
                f"expected {list(MOONCAKE_KEYS)} (timestamp in ms)"
            )
        p = _length(obj["input_length"], path, line, "input_length", zero_ok=False)
        o = _length(obj["output_length"], path, line, "output_length", zero_ok=True)
        h = obj.get("hash_ids")
        if h is not None and not (isinstance(h, list) and all(isinstance(x, int) for x in h)):
            raise TraceError(
                f"{path}:{line}: hash_ids must be a list of integers (one per block of the "
                "prompt); drop the key to replay without prefix hashes"
            )
        t = _number(obj["timestamp"], path, line, "timestamp") if timed else None
        key = obj.get(CONVERSATION_COLUMN)
        if key is not None and (isinstance(key, bool) or not isinstance(key, str | int)):
            raise TraceError(
                f"{path}:{line}: {CONVERSATION_COLUMN}={key!r} is not a conversation id; give "
                "a string or an integer (rows with equal ids are turns of one conversation)"
            )
        c = (str(key), obj.get(TURN_COLUMN)) if key is not None else None
        yield line, p, o, t, tuple(h) if h is not None else None, c


def _read_text(path: Path, where: str) -> str:
    """The file's text; a missing, unreadable or empty file is a ``TraceError``."""
    if path.is_dir():
        raise TraceError(
            f"{path}: is a directory, not a file (from {where}); give the path of the trace "
            "CSV/JSONL file itself"
        )
    if path.exists() and not path.is_file():
        raise TraceError(
            f"{path}: is not a regular file (a pipe, socket or device; from {where}); give "
            "the path of a trace CSV/JSONL file on disk, e.g. save the stream to a file first"
        )
    if not path.is_file():
        raise TraceError(
            f"{path}: file not found (from {where}); check the path: relative paths resolve "
            "against the config file's directory, and frontier:NAME names a file shipped "
            "in frontier_core/data"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(
            f"{path}: cannot be read as UTF-8 text ({e}); give a text CSV/JSONL file"
        ) from None
    if not text.strip():
        raise TraceError(
            f"{path}: file is empty (from {where}); give a file with a header and data rows"
        )
    return text


def _open_csv(path: Path, where: str) -> tuple[Iterator[tuple[int, list[str]]], list[str]]:
    """The header and an iterator of (1-based line, row) for a CSV; blank lines are skipped."""
    # newline="" hands line ends to the csv module (quoted fields may span lines).
    reader = csv.reader(io.StringIO(_read_text(path, where), newline=""))
    header = [h.strip() for h in next(reader)]

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for row in reader:
                if row:
                    yield reader.line_num, row
        except csv.Error as e:
            raise TraceError(f"{path}:{reader.line_num + 1}: malformed CSV ({e})") from None

    return rows(), header


def _field(row: list[str], col: int, path: Path, line: int, name: str) -> str:
    if col >= len(row) or not row[col].strip():
        raise TraceError(
            f"{path}:{line}: column {name!r} is missing or empty in this row (it has {len(row)} "
            "fields); every row needs a value for each header column"
        )
    return row[col]


def _float(value: object) -> float:
    """``value`` (CSV text or a JSON value) as a float; NaN when it is not a number."""
    try:
        return math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _length(value: object, path: Path, line: int, name: str, zero_ok: bool) -> int:
    """A length in tokens: an integer (``12.0`` accepted), >= 0 for outputs and >= 1 for
    prompts, at most ``MAX_TOKENS``."""
    f, low = _float(value), 0 if zero_ok else 1
    if not f.is_integer() or f < low:
        why = "" if zero_ok else " (a request needs at least one prompt token)"
        raise TraceError(
            f"{path}:{line}: {name}={value!r} is not a valid token count; lengths must be "
            f"whole numbers >= {low}{why}"
        )
    if f > MAX_TOKENS:
        raise TraceError(
            f"{path}:{line}: {name}={value!r} tokens is more than any model's context (at "
            f"most {MAX_TOKENS:,} tokens are accepted); fix or drop this row"
        )
    return int(f)


def _number(value: object, path: Path, line: int, name: str) -> float:
    """A finite time value (``arrived_at`` seconds, Mooncake milliseconds)."""
    f = _float(value)
    if not math.isfinite(f):
        raise TraceError(f"{path}:{line}: {name}={value!r} is not a time; give a number")
    return f


def _azure_time(text: str, path: Path, line: int, name: str) -> float:
    """Microseconds since 1970 (wall clock; UTC if a zone is given) of an Azure TIMESTAMP
    such as ``2023-11-16 18:17:03.9799600``; Python 3.11 keeps 6 of its 7 fractional
    digits. Whole microseconds up to 2^53 are exact in a float64."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TraceError(
            f"{path}:{line}: {name}={text!r} is not a timestamp; expected "
            "'YYYY-MM-DD HH:MM:SS[.fraction]' as in the Azure LLM inference traces"
        ) from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return float((dt - _EPOCH) // _MICROSECOND)


def empirical_column(dist: EmpiricalLength, resolve: Callable[[str], Path], field: str) -> np.ndarray:
    """All values (tokens) of one CSV column, for sampling with replacement."""
    path = resolve(dist.path)
    reader, header = _open_csv(path, f"workload.{field}.path")
    if dist.column not in header:
        raise TraceError(
            f"{path}:1: no column {dist.column!r} for workload.{field} (empirical); the "
            f"header has {header}; set workload.{field}.column to one of them"
        )
    col = header.index(dist.column)
    zero_ok = field == "output_len"
    values = [
        _length(_field(row, col, path, line, dist.column), path, line, dist.column, zero_ok)
        for line, row in reader
    ]
    if not values:
        raise TraceError(
            f"{path}: has a header but no data rows; give a CSV with {dist.column!r} values"
        )
    return np.maximum(np.asarray(values, dtype=np.int64), 1)
