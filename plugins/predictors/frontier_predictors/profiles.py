"""Profile tables: one row per measured operator call (docs/profiles.md).

A table is a CSV or Parquet file. Every row has ``op``, ``device``, ``dtype``
and ``latency_s``; the other required columns depend on ``op`` (``REQUIRED``).
List-valued columns (``q_lens``, ``kv_lens``, ``tokens_per_expert``) are
space-separated integers in the file and int64 arrays in memory. Extra columns
are kept and ignored. Reading validates every row and reports the first bad
one by file, row (1-based, as a spreadsheet shows it: the header is row 1) and
column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontier_core import FrontierError

if TYPE_CHECKING:
    import pandas as pd

PROFILED_OPS: tuple[str, ...] = (
    "gemm",
    "attention_prefill",
    "attention_decode",
    "moe_experts",
    "all_reduce",
    "all_to_all",
    "send_recv",
)
COMMON: tuple[str, ...] = ("op", "device", "dtype", "latency_s")
DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp8", "fp8_block", "nvfp4", "mxfp4", "int4",
                           "w4afp8")
_ATTN = ("num_heads", "num_kv_heads", "head_dim", "q_lens", "kv_lens")
_COMM = ("num_gpus", "bytes")
REQUIRED: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention_prefill": _ATTN,
    "attention_decode": _ATTN,
    "moe_experts": (
        "num_tokens", "hidden_size", "inter_size", "num_experts", "top_k",
        "ep_size", "tp_size", "routing",
    ),
    "all_reduce": _COMM,
    "all_to_all": _COMM,
    "send_recv": _COMM,
}
LIST_COLUMNS: tuple[str, ...] = ("q_lens", "kv_lens", "tokens_per_expert")
INT_COLUMNS: tuple[str, ...] = (
    "m", "n", "k", "num_heads", "num_kv_heads", "head_dim", "num_tokens", "hidden_size",
    "inter_size", "num_experts", "top_k", "ep_size", "tp_size", "num_gpus",
)
FLOAT_COLUMNS: tuple[str, ...] = ("latency_s", "bytes")
# Column order of written tables (extra columns follow).
ORDER: tuple[str, ...] = COMMON + tuple(
    dict.fromkeys(c for cols in REQUIRED.values() for c in cols)
) + ("tokens_per_expert",)


class ProfileError(FrontierError):
    """A profile table (or a folder of them) cannot be read or is malformed."""


def _bad(path: str, row: int | None, column: str | None, what: str, fix: str) -> ProfileError:
    where = path
    if row is not None:
        where += f", row {row}"
    if column is not None:
        where += f", column {column!r}"
    return ProfileError(f"Profile table {where}: {what}. {fix} (format: docs/profiles.md)")


def parse_ints(text: object) -> np.ndarray:
    """Space-separated integers (or an int sequence) as an int64 array; ValueError if not."""
    if isinstance(text, np.ndarray):
        return text.astype(np.int64, copy=False)
    if isinstance(text, list | tuple):
        return np.asarray(text, dtype=np.int64)
    s = str(text).strip()
    if not s:
        raise ValueError("empty")
    # NOTE: perf — numpy converts the tokens in C; ~3x faster than int() per token
    return np.array(s.split(), dtype=np.int64)


def format_ints(values: Iterable[int] | str) -> str:
    if isinstance(values, str):
        return " ".join(values.split())
    return " ".join(str(int(v)) for v in values)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, and the ``*.csv``/``*.parquet`` files under folders named (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.suffix in (".csv", ".parquet") and f.is_file()
            )
            if not found:
                raise ProfileError(
                    f"Profile folder {p} holds no .csv or .parquet tables. Point at profile "
                    "tables written by `frontier profile` or `frontier predictors import`."
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ProfileError(
                f"Profile table {p} does not exist. Give the path of a .csv or .parquet "
                "profile table, or of a folder of them."
            )
    return out


def _read_raw(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype={c: str for c in LIST_COLUMNS} | {"routing": str})
    except Exception as e:  # pandas/pyarrow raise many kinds for unreadable files
        raise _bad(str(path), None, None, f"cannot be read ({type(e).__name__}: {e})",
                   "Check that the file is a CSV with a header row, or a Parquet file") from None
    raise _bad(str(path), None, None, f"has the suffix {path.suffix!r}",
               "Use .csv or .parquet")


def validate(df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Check and normalise a raw table: types, required columns per op, list columns.

    Returns a new frame with a fresh index, int/float columns typed, list columns
    as int64 arrays (object dtype) and the ``source`` of each row.
    """
    import pandas as pd

    df = df.reset_index(drop=True).copy()
    for col in COMMON:
        if col not in df.columns:
            raise _bad(source, None, col, "the column is missing",
                       f"Every table needs the columns {', '.join(COMMON)}")
    if len(df) == 0:
        raise _bad(source, None, None, "it has no rows", "Profile at least one operator call")
    ops = df["op"].astype(str)
    bad = ~ops.isin(PROFILED_OPS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _bad(source, i + 2, "op", f"{ops.iloc[i]!r} is not a profiled operator",
                   f"Use one of {', '.join(PROFILED_OPS)}")
    df["op"] = ops
    dtypes = df["dtype"].astype(str)
    bad = ~dtypes.isin(DTYPES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _bad(source, i + 2, "dtype", f"{dtypes.iloc[i]!r} is not a profiled dtype",
                   f"Use one of {', '.join(DTYPES)}")
    df["dtype"] = dtypes
    df["device"] = df["device"].astype(str)
    for op in df["op"].unique():
        rows = np.flatnonzero((df["op"] == op).to_numpy())
        for col in REQUIRED[op]:
            if col not in df.columns:
                raise _bad(source, int(rows[0]) + 2, col, f"the column is missing for op {op!r}",
                           f"Rows of {op} need the columns {', '.join(REQUIRED[op])}")
            miss = df[col].iloc[rows].isna().to_numpy()
            if miss.any():
                raise _bad(source, int(rows[np.flatnonzero(miss)[0]]) + 2, col,
                           f"the value is empty for op {op!r}",
                           f"Rows of {op} need the columns {', '.join(REQUIRED[op])}")
    for col in INT_COLUMNS + FLOAT_COLUMNS:
        if col not in df.columns:
            continue
        vals = pd.to_numeric(df[col], errors="coerce").astype(float)
        nonnum = vals.isna() & df[col].notna()
        if nonnum.any():
            i = int(np.flatnonzero(nonnum.to_numpy())[0])
            raise _bad(source, i + 2, col, f"{str(df[col].iloc[i])!r} is not a number",
                       "Write plain numbers")
        neg = (vals < 0).to_numpy() | ((vals == 0).to_numpy() & (col == "latency_s"))
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise _bad(source, i + 2, col, f"{vals.iloc[i]:g} is not positive",
                       "Latencies are positive seconds; sizes are non-negative")
        if col in INT_COLUMNS and vals.notna().all():
            if (vals != np.round(vals)).any():
                i = int(np.flatnonzero((vals != np.round(vals)).to_numpy())[0])
                raise _bad(source, i + 2, col, f"{vals.iloc[i]:g} is not an integer",
                           "Write whole numbers")
            df[col] = vals.astype(np.int64)
        else:
            df[col] = vals.astype(float)
    for col in LIST_COLUMNS:
        if col not in df.columns:
            continue
        parsed: list[np.ndarray | None] = []
        for i, v in enumerate(df[col].tolist()):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                parsed.append(None)
                continue
            try:
                arr = parse_ints(v)
            except ValueError:
                raise _bad(source, i + 2, col, f"{v!r} is not a list of integers",
                           "Write space-separated integers, e.g. '512 128 7'") from None
            if (arr < 0).any():
                raise _bad(source, i + 2, col, f"{v!r} has a negative length",
                           "Lengths and counts are >= 0")
            parsed.append(arr)
        df[col] = pd.Series(parsed, dtype=object)
    attn = np.flatnonzero(df["op"].str.startswith("attention_").to_numpy())
    qcol = df["q_lens"].to_numpy() if len(attn) else None
    kvcol = df["kv_lens"].to_numpy() if len(attn) else None
    ops_arr = df["op"].to_numpy()
    for i in attn:
        q, kv = qcol[i], kvcol[i]
        if len(q) != len(kv):
            raise _bad(source, int(i) + 2, "kv_lens",
                       f"{len(kv)} values for {len(q)} q_lens", "Give one value per sequence")
        if (kv < q).any():
            raise _bad(source, int(i) + 2, "kv_lens", "a context is shorter than its new tokens",
                       "kv_lens counts the whole context including the new tokens")
        if ops_arr[i] == "attention_decode" and (q != 1).any():
            raise _bad(source, int(i) + 2, "q_lens", "decode rows must have every q_len = 1",
                       "Put chunks with several new tokens under attention_prefill")
    if "routing" in df.columns:
        moe = (df["op"] == "moe_experts").to_numpy()
        for i in np.flatnonzero(moe):
            r = str(df.at[i, "routing"])
            if not _valid_routing(r):
                raise _bad(source, int(i) + 2, "routing", f"{r!r} is not a routing",
                           "Use balanced, power_law:<alpha> or counts")
            if r == "counts" and not isinstance(df.at[i, "tokens_per_expert"]
                                                if "tokens_per_expert" in df.columns else None,
                                                np.ndarray):
                raise _bad(source, int(i) + 2, "tokens_per_expert",
                           "routing 'counts' needs tokens_per_expert",
                           "List the tokens of each local expert")
    if "gated" in df.columns:
        df["gated"] = _gated_column(df, source)
    df["source"] = source
    return df


_TRUE = ("true", "1", "yes", "1.0")
_FALSE = ("false", "0", "no", "0.0")


def _gated_column(df: pd.DataFrame, source: str) -> pd.Series:
    """``gated`` as booleans: true (SwiGLU: gate and up) unless a row says false (one
    up projection, e.g. Nemotron-H's ReLU²); empty cells and non-MoE rows are true."""
    import pandas as pd

    out = []
    for i, v in enumerate(df["gated"].tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(True)
            continue
        t = str(v).strip().lower()
        if t not in _TRUE + _FALSE:
            raise _bad(source, i + 2, "gated", f"{v!r} is not true or false",
                       "Write true for gate+up experts (SwiGLU), false for one up projection")
        out.append(t in _TRUE)
    return pd.Series(out, index=df.index, dtype=bool)


def _valid_routing(r: str) -> bool:
    if r in ("balanced", "counts"):
        return True
    if r.startswith("power_law:"):
        try:
            return float(r.split(":", 1)[1]) > 0
        except ValueError:
            return False
    return False


def read_table(path: str | Path) -> pd.DataFrame:
    """One validated table."""
    p = Path(path)
    return validate(_read_raw(p), str(p))


def load_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every table under ``paths`` (files or folders), validated and concatenated."""
    import pandas as pd

    frames = [read_table(p) for p in expand_paths(paths)]
    return pd.concat(frames, ignore_index=True, sort=False)


def to_writable(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with list columns as space-separated strings, standard columns first."""
    import pandas as pd

    out = df.drop(columns=[c for c in ("source",) if c in df.columns]).copy()
    for col in LIST_COLUMNS:
        if col in out.columns:
            out[col] = [
                None if v is None or (isinstance(v, float) and np.isnan(v)) else format_ints(v)
                for v in out[col].tolist()
            ]
    for col in INT_COLUMNS:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").round().astype("Int64")
    first = [c for c in ORDER if c in out.columns]
    return out[first + [c for c in out.columns if c not in first]]


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet (by suffix); the file appears whole or not at all."""
    p = Path(path)
    if p.suffix not in (".csv", ".parquet"):
        raise ProfileError(f"Cannot write profile table {p}: use a .csv or .parquet file name.")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    out = to_writable(df)
    if p.suffix == ".csv":
        out.to_csv(tmp, index=False)
    else:
        out.to_parquet(tmp, index=False)
    tmp.replace(p)
    return p


def fingerprint(paths: Sequence[str | Path]) -> str:
    """A digest of the bytes of every table under ``paths`` (for cache keys)."""
    h = hashlib.sha256()
    for f in expand_paths(paths):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
