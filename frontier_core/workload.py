"""Turn a ``WorkloadConfig`` into request arrays: prompt and output lengths (tokens) and
arrival times (seconds), from a trace file or from seeded synthetic distributions.

Trace formats (see ``TraceConfig``): ``azure`` CSV (TIMESTAMP, ContextTokens,
GeneratedTokens), ``mooncake`` JSONL (timestamp in ms, input_length, output_length;
its hash_ids, one per ``hash_block`` prompt tokens, feed prefix caching) and ``lengths`` CSV (Vidur/Sarathi column names, with an
optional ``arrived_at`` column in seconds). Files are read with the csv and json modules;
every problem in them is a ``TraceError`` naming the file and 1-based line. A ``lengths``
CSV with a ``conversation_id`` column, or mooncake records with a ``conversation_id`` key,
are replayed as multi-turn conversations; ``workload.conversations`` generates synthetic
ones (both in frontier_core/conversations.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from frontier_core.config import (
    MAX_REQUESTS,
    MAX_TOKENS,
    ArrivalConfig,
    ClosedLoopConfig,
    EmpiricalLength,
    FixedLength,
    LengthDist,
    LognormalLength,
    TraceConfig,
    UniformLength,
    WorkloadConfig,
    ZipfLength,
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


@dataclass
class Workload:
    """The requests of one run, in arrival order.

    ``prompt_len`` and ``output_len`` are int64 token counts, each >= 1. ``arrival`` is
    float64 seconds, non-decreasing; the first request arrives at 0 (traces are rebased to
    their first replayed row), or ``arrival`` is None for a closed loop, whose clients
    are described by ``closed_loop``. ``source`` is a one-line description for reports.
    """

    prompt_len: np.ndarray
    output_len: np.ndarray
    arrival: np.ndarray | None
    closed_loop: ClosedLoopConfig | None
    source: str
    warmup: int = 0  # the first ``warmup`` requests are not measured
    # Per request: content hashes of its prompt's blocks of ``prefix_block`` tokens.
    prefix: list[tuple[int, ...]] | None = None
    prefix_block: int = 0
    # Per request, tokens its hashes describe (int64; None: each request's prompt).
    prefix_tokens: np.ndarray | None = None
    # Multi-turn conversations (None: independent requests), per request: conversation
    # id (int64, numbered by first request), turn (int64, 0-based, in request order) and
    # seconds to wait after the previous turn completes (float64). A turn after the
    # first is sent at max(arrival, previous turn's completion + think_s); see
    # frontier_core/conversations.py.
    conversation: np.ndarray | None = None
    turn: np.ndarray | None = None
    think_s: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompt_len)


def build_workload(
    cfg: WorkloadConfig, rng: np.random.Generator, resolve: Callable[[str], Path]
) -> Workload:
    """Build the run's requests from ``cfg``; every random draw comes from ``rng``.

    ``resolve`` maps a config path string to a file (pass ``RunConfig.resolve``).
    Trace times are rebased to the first replayed row (after ``start``) and multiplied by
    ``time_scale``; a given ``arrival`` process replaces trace times, and ``prompt_len`` /
    ``output_len`` distributions given next to a trace replace that trace column.
    ``num_requests`` keeps the first N requests and ``duration_s`` drops arrivals after
    that many seconds (a trace shorter than N is used as is, never looped; a closed loop
    has no arrivals for ``duration_s`` to cut). An output length of 0 in a file is raised
    to 1, since a request always yields at least one token; a prompt length of 0 is a
    ``TraceError``. A workload left with no requests is a ``ConfigError``.

    Conversations (synthetic, or a trace's ``conversation_id``) are described in
    frontier_core/conversations.py.
    """
    if cfg.conversations is not None:
        # Imported here: conversations.py builds on this module's helpers.
        from frontier_core.conversations import synthetic_conversations

        return synthetic_conversations(cfg, rng, resolve)
    n = cfg.num_requests
    arrival: np.ndarray | None = None
    trace_prompt: np.ndarray | None = None
    trace_output: np.ndarray | None = None
    prefix: list[tuple[int, ...]] | None = None
    convs: list[tuple[int, str | None, object]] | None = None
    if cfg.trace is not None:
        timed = cfg.arrival is None and cfg.closed_loop is None
        trace_prompt, trace_output, arrival, prefix, convs = _read_trace(
            cfg.trace, resolve, timed, n, cfg.duration_s
        )
        n = len(trace_prompt)
    elif n is None and cfg.closed_loop is not None:
        raise ConfigError(
            "a synthetic closed-loop workload needs workload.num_requests (duration_s alone "
            "gives no request count without arrival times); set num_requests"
        )
    if cfg.arrival is not None:
        if n is None and cfg.duration_s is not None:
            expected = cfg.arrival.rate * cfg.duration_s
            if expected > MAX_REQUESTS:
                raise ConfigError(
                    f"workload.arrival.rate × workload.duration_s = {cfg.arrival.rate:g} × "
                    f"{cfg.duration_s:g} s ≈ {expected:.3g} requests, more than the "
                    f"{MAX_REQUESTS:,} one run may have; lower the rate or the duration, or "
                    "set workload.num_requests."
                )
        # The first arrival is at 0 <= duration_s, so this is never empty.
        arrival = _synthetic_arrivals(cfg.arrival, n, cfg.duration_s, rng)
    if arrival is not None:
        n = len(arrival)
    assert n is not None
    prompt = _lengths(cfg.prompt_len, trace_prompt, n, rng, resolve, "prompt_len")
    output = _lengths(cfg.output_len, trace_output, n, rng, resolve, "output_len")
    if prefix is not None and (cfg.prompt_len is not None or len(prefix) != n):
        prefix = None  # hashes describe the trace's prompts, not replaced or cut ones
    wl = Workload(
        prompt_len=prompt,
        output_len=np.maximum(output, 1),
        arrival=arrival,
        closed_loop=cfg.closed_loop,
        source=_describe(cfg, n, resolve),
        prefix=prefix,
        prefix_block=cfg.trace.hash_block if prefix is not None and cfg.trace else 0,
        warmup=cfg.warmup_requests,
    )
    if cfg.warmup_requests >= n:
        raise ConfigError(
            f"workload.warmup_requests is {cfg.warmup_requests} but the workload has {n} "
            "requests, so none would be measured; lower warmup_requests or raise "
            "num_requests."
        )
    if convs is not None and cfg.trace is not None:
        from frontier_core.conversations import trace_conversations

        trace_conversations(wl, convs[:n], resolve(cfg.trace.path))
    return wl


# ---- synthetic arrivals and lengths --------------------------------------------------


def _gaps(acfg: ArrivalConfig, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` inter-arrival gaps in seconds."""
    if acfg.process == "poisson":
        return rng.exponential(1.0 / acfg.rate, size)
    if acfg.process == "gamma":
        cv2 = acfg.cv * acfg.cv
        return rng.gamma(1.0 / cv2, cv2 / acfg.rate, size)
    return np.full(size, 1.0 / acfg.rate)


def _synthetic_arrivals(
    acfg: ArrivalConfig, n: int | None, duration_s: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times in seconds, the first at 0: exactly ``n`` of them when ``n`` is given,
    else as many as fall within ``duration_s``; either way none after ``duration_s``."""
    if acfg.process == "fixed":
        # Exact multiples of the interval rather than a cumulative sum of rounded gaps.
        count = n if n is not None else math.floor((duration_s or 0.0) * acfg.rate) + 1
        arrival = np.arange(count, dtype=np.float64) / acfg.rate
    elif n is not None:
        arrival = np.concatenate(([0.0], np.cumsum(_gaps(acfg, n - 1, rng))))
    else:
        # NOTE: perf — draw gaps in vectorised chunks of ~1.1x the expected count.
        assert duration_s is not None
        chunk = max(256, int(acfg.rate * duration_s * 1.1) + 16)
        parts = [np.zeros(1)]
        while parts[-1][-1] <= duration_s:
            parts.append(parts[-1][-1] + np.cumsum(_gaps(acfg, chunk, rng)))
        arrival = np.concatenate(parts)
    if duration_s is not None:
        arrival = arrival[arrival <= duration_s]
    return arrival


def _lengths(
    dist: LengthDist | None,
    column: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
    resolve: Callable[[str], Path],
    field: str,
) -> np.ndarray:
    """``n`` lengths in tokens (int64): drawn from ``dist`` when given, else the trace column."""
    if dist is None:
        assert column is not None  # the config validator requires a trace or both dists
        return column[:n]
    if isinstance(dist, FixedLength):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, UniformLength):
        return rng.integers(dist.low, dist.high, size=n, endpoint=True, dtype=np.int64)
    if isinstance(dist, LognormalLength | ZipfLength) and dist.min > dist.max:
        raise ConfigError(
            f"workload.{field}: min={dist.min} exceeds max={dist.max}; make min <= max"
        )
    if isinstance(dist, LognormalLength):
        x = rng.lognormal(math.log(dist.median), dist.sigma, n)
        return np.clip(np.rint(x), dist.min, dist.max).astype(np.int64)
    if isinstance(dist, ZipfLength):
        # Cap before scaling: zipf draws are unbounded and could overflow int64 when scaled.
        z = np.minimum(rng.zipf(dist.alpha, n), dist.max // dist.scale + 1) * dist.scale
        return np.clip(z, dist.min, dist.max).astype(np.int64)
    assert isinstance(dist, EmpiricalLength)
    values = _empirical(dist, resolve, field)
    return values[rng.integers(0, len(values), size=n)]


def _empirical(dist: EmpiricalLength, resolve: Callable[[str], Path], field: str) -> np.ndarray:
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


def _describe(cfg: WorkloadConfig, n: int, resolve: Callable[[str], Path]) -> str:
    """One line saying where the requests came from."""
    parts = []
    if cfg.trace is not None:
        parts.append(f"{cfg.trace.format} trace {resolve(cfg.trace.path).name} ({n} rows)")
    else:
        parts.append(f"synthetic ({n} requests)")
    if cfg.arrival is not None:
        parts.append(f"{cfg.arrival.process} arrivals at {cfg.arrival.rate:g} req/s")
    if cfg.closed_loop is not None:
        parts.append(f"closed loop, concurrency {cfg.closed_loop.concurrency}")
    for name, dist in (("prompt", cfg.prompt_len), ("output", cfg.output_len)):
        if dist is not None:
            parts.append(f"{name} {dist.dist}")
    return ", ".join(parts)


# ---- trace files -----------------------------------------------------------------------


def _read_trace(
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
