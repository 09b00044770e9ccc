"""Importers: other projects' operator measurements as profile tables (docs/profiles.md).

``import_vidur`` converts Vidur's profiling CSVs (MIT; github.com/microsoft/vidur):
``compute/<gpu>/<org>/<model>/mlp.csv`` (four GEMMs per layer), the NCCL
``network/<node>/{all_reduce,send_recv}.csv`` and ``attention.csv`` where one
exists. Vidur profiled in fp16 (its ``MlpWrapper`` casts the model with
``.to(dtype=torch.float16)``), so every Vidur row is ``fp16``.

``import_aic`` converts NVIDIA AIConfigurator's measured operator database
(Apache-2.0; PyPI ``aiconfigurator-core``, the ``aic`` extra of this plugin). It
reads the Parquet tables under ``systems/data/<system>/<family>/<backend>/<version>/``
directly and never loads AIConfigurator's engine.

Units: both sources store latency in milliseconds; tables hold seconds. Vidur
network sizes are bytes; AIConfigurator message sizes are elements (its
collectors log ``size // bytes_per_element`` for nccl-tests and the tensor's
element count for the framework all-reduce), converted to bytes here. What is
kept, what is skipped and why is listed in docs/profiles.md; every run also
reports the rows it left out.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from frontier_core import install_hint
from frontier_predictors.profiles import PROFILED_OPS, ProfileError, validate, write_table

if TYPE_CHECKING:
    import pandas as pd

MS = 1e-3  # both sources time in milliseconds
VIDUR_DEVICES = {"a100": "a100-80g-sxm", "h100": "h100-sxm", "a40": "a40"}
# Vidur copied the A100 file here: the same git blob as a100_pairwise_nvlink/send_recv.csv
# (/work/shared/data/vidur/SOURCE.md), so it is no H100 measurement and is left out.
VIDUR_NOT_MEASURED = (("h100_pairwise_nvlink", "send_recv.csv"),)
_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8": "fp8",
           "fp8_block": "fp8_block", "nvfp4": "nvfp4", "int4_wo": "int4"}
_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp8_block": 1}
_VERSION = re.compile(
    r"^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|rc)(\d*))?(?:[-_.]?post(\d*))?(?:[-_.]?dev(\d*))?$"
)

# Bumped when imported tables change (columns, units, mappings): cached imports of
# `predictor: auto` are keyed by it. 2: moe_experts rows say whether experts are gated.
# 3: block-scaled fp8 rows are imported as dtype fp8_block. 4: per-tensor fp8 GEMMs with
# static activation scales (the compute-scale step taken off). 5: MLA attention tables.
# 6: nvfp4 GEMM and MoE rows. 7: int4 weight-only (int4_wo) rows.
IMPORT_VERSION = 7


@dataclass
class Imported:
    """Converted rows, one frame per profiled op, and a note for each kind of row left out."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, op: str, rows: pd.DataFrame) -> None:
        import pandas as pd

        if len(rows):
            old = self.tables.get(op)
            self.tables[op] = rows if old is None else pd.concat([old, rows], ignore_index=True)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Validate each table and write it as ``<out_dir>/<op>.parquet``; the paths written."""
        out = []
        for op in PROFILED_OPS:
            if op in self.tables:
                df = self.tables[op].reset_index(drop=True)
                validate(df, f"imported {op} table")
                out.append(write_table(df, Path(out_dir) / f"{op}.parquet"))
        return out


def version_key(version: str) -> tuple:
    """Sort key ordering version strings as PEP 440 does (0.5.6.post2 < 0.5.10, 1.3.0rc20 <
    1.3.0rc23 < 1.3.0, 0.1.dev5 < 0.1); strings that are no version sort first, by text."""
    m = _VERSION.match(version.strip().lower())
    if m is None:
        return (0, (), version)
    release = tuple(int(x) for x in m[1].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    tag, num, post, dev = m[2], m[3], m[4], m[5]
    if tag:
        pre = (0, ("a", "b", "rc").index(tag), int(num or 0))
    elif dev is not None and post is None:
        pre = (-1, 0, 0)  # 1.0.dev1 comes before 1.0a1
    else:
        pre = (1, 0, 0)
    return (1, release, pre, -1 if post is None else int(post or 0),
            float("inf") if dev is None else int(dev or 0))


def _need(df: pd.DataFrame, cols: tuple[str, ...], path: Path, source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ProfileError(
            f"{source} table {path} lacks the columns {', '.join(missing)}, which the importer "
            f"reads. The file may come from another {source} release than the importer knows "
            "(docs/profiles.md, 'Where measurements come from'); point at a matching copy."
        )


def _repeat(values: list[int], counts: list[int]) -> list[str]:
    """Space-separated lists of ``count`` copies of each value (uniform batches)."""
    cache: dict[tuple[int, int], str] = {}
    out = []
    for v, c in zip(values, counts, strict=True):
        s = cache.get((v, c))
        if s is None:
            s = cache[(v, c)] = " ".join([str(v)] * c)
        out.append(s)
    return out


def _prefer_dominant(df: pd.DataFrame, key: list[str], what: str, notes: list[str]) -> pd.DataFrame:
    """One row per shape key: a shape measured by several kernel sources keeps the source
    with the most rows in the table (AIConfigurator ranks its own lanes by coverage too)."""
    counts = df["kernel_source"].value_counts()
    rank = {ks: i for i, ks in enumerate(sorted(counts.index, key=lambda s: (-counts[s], s)))}
    order = df["kernel_source"].map(rank).sort_values(kind="stable").index
    dup = df.loc[order].duplicated(key)
    if dup.any():
        notes.append(f"{what}: {int(dup.sum())} rows re-measure a shape that a kernel source "
                     "with more rows in the table already covers; the latter is kept")
    return df.loc[order[~dup.to_numpy()]].sort_index()


# -- Vidur ------------------------------------------------------------------------------


def _vidur_device(path: Path) -> tuple[str, int]:
    """Frontier's device name for a Vidur file, and the index of its device directory."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].split("_")[0] in VIDUR_DEVICES:
            return VIDUR_DEVICES[parts[i].split("_")[0]], i
    if "compute" in parts[:-1]:
        i = parts.index("compute") + 1
        return parts[i], i
    return parts[-2].split("_")[0], len(parts) - 2


def _read_vidur(path: Path, cols: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises many kinds for unreadable files
        raise ProfileError(f"Vidur file {path} cannot be read ({type(e).__name__}: {e}). "
                           "Point at Vidur's data/profiling CSVs.") from None
    _need(df, cols, path, "Vidur")
    return df


def _flag(col: pd.Series) -> pd.Series:
    return col.astype(str).str.strip().str.lower().isin(("true", "1"))


def _latency(df: pd.DataFrame, col: str, what: str, notes: list[str]) -> pd.DataFrame:
    ok = df[col].notna() & (df[col] > 0)
    if not ok.all():
        notes.append(f"{what}: {int((~ok).sum())} rows without a positive {col}")
    return df[ok].assign(latency_s=df.loc[ok, col] * MS)


def _vidur_gemms(path: Path, source: str, notes: list[str]) -> pd.DataFrame:
    """Four GEMMs per mlp.csv row; shapes per GPU at TP = num_tensor_parallel_workers."""
    import pandas as pd

    cols = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
            "num_tensor_parallel_workers")
    layers = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
    df = _read_vidur(path, cols + tuple(f"time_stats.{g}.median" for g in layers))
    device, i = _vidur_device(path)
    model = "/".join(path.parts[i + 1:-1]) or None
    tp, h, heads = df["num_tensor_parallel_workers"], df["n_embd"], df["n_head"]
    head_dim = h // heads
    ffn = df["n_expanded_embd"] * (1 + _flag(df["use_gated_mlp"]).astype(int))
    # (n, k) before the TP split, and which of them TP splits: QKV and up are column-parallel
    # (n split), O and down are row-parallel (k split).
    shapes = {
        "attn_pre_proj": ((heads + 2 * df["n_kv_head"]) * head_dim, h, "n"),
        "attn_post_proj": (h, heads * head_dim, "k"),
        "mlp_up_proj": (ffn, h, "n"),
        "mlp_down_proj": (h, df["n_expanded_embd"], "k"),
    }
    frames = []
    for layer, (n, k, split) in shapes.items():
        whole = n if split == "n" else k
        ok = whole % tp == 0
        if not ok.all():
            notes.append(f"{source}: {int((~ok).sum())} {layer} rows whose width does not divide "
                         "by the TP degree")
        n, k = (n // tp, k) if split == "n" else (n, k // tp)
        rows = pd.DataFrame({
            "op": "gemm", "device": device, "dtype": "fp16", "m": df["num_tokens"], "n": n, "k": k,
            "t": df[f"time_stats.{layer}.median"], "layer": layer, "tp_size": tp, "model": model,
            "kernel_source": "sarathi-serve", "source_table": source,
        })[ok]
        frames.append(_latency(rows, "t", f"{source} {layer}", notes).drop(columns="t"))
    return pd.concat(frames, ignore_index=True)


def _vidur_attention(path: Path, source: str, notes: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Prefill rows: one sequence, a chunk on top of a cached prefix. Decode rows:
    ``batch_size`` sequences, each adding one token to ``kv_cache_size`` cached ones."""
    import pandas as pd

    cols = ("n_embd", "n_q_head", "n_kv_head", "num_tensor_parallel_workers", "batch_size",
            "prefill_chunk_size", "kv_cache_size", "is_prefill", "time_stats.attn_prefill.median",
            "time_stats.attn_decode.median")
    df = _read_vidur(path, cols)
    device, i = _vidur_device(path)
    model = "/".join(path.parts[i + 1:-1]) or None
    tp = df["num_tensor_parallel_workers"]
    base = pd.DataFrame({
        "device": device, "dtype": "fp16", "num_heads": df["n_q_head"] // tp,
        "num_kv_heads": df["n_kv_head"] // tp, "head_dim": df["n_embd"] // df["n_q_head"],
        "tp_size": tp, "model": model, "source_table": source,
        "kernel_source": df.get("attention_backend", pd.Series("vidur", index=df.index))
        .astype(str).str.replace("AttentionBackend.", "", regex=False).str.lower(),
    })
    prefill = _flag(df["is_prefill"])
    out = []
    for op, sel, col in (("attention_prefill", prefill, "attn_prefill"),
                         ("attention_decode", ~prefill, "attn_decode")):
        d, b = df[sel], base[sel]
        if op == "attention_prefill":
            q, kv = d["prefill_chunk_size"], d["kv_cache_size"] + d["prefill_chunk_size"]
            n = pd.Series(1, index=d.index)
        else:
            q, kv, n = pd.Series(1, index=d.index), d["kv_cache_size"] + 1, d["batch_size"]
        rows = b.assign(op=op, t=d[f"time_stats.{col}.median"],
                        q_lens=_repeat(q.tolist(), n.tolist()),
                        kv_lens=_repeat(kv.tolist(), n.tolist()))
        out.append((op, _latency(rows, "t", f"{source} {op}", notes).drop(columns="t")))
    return out


def _vidur_network(path: Path, source: str, notes: list[str]) -> tuple[str, pd.DataFrame]:
    """NCCL all_reduce / send_recv: size in bytes; fewer devices per node than workers
    means the collective crossed nodes."""
    import numpy as np
    import pandas as pd

    op = path.stem
    col = f"time_stats.{op}.median"
    df = _read_vidur(path, (col, "num_workers", "size", "devices_per_node"))
    device, _ = _vidur_device(path)
    rows = pd.DataFrame({
        "op": op, "device": device, "dtype": "fp16", "num_gpus": df["num_workers"],
        "bytes": df["size"].astype(float), "t": df[col],
        "scope": np.where(df["devices_per_node"] < df["num_workers"], "inter", "intra"),
        "devices_per_node": df["devices_per_node"], "topology": path.parent.name,
        "kernel_source": "nccl", "source_table": source,
    })
    return op, _latency(rows, "t", source, notes).drop(columns="t")


def convert_vidur(root: str | Path) -> Imported:
    """Profile tables from Vidur's CSVs under ``root``: its ``profiling`` folder, a parent of
    it, or one device folder (files are found by name anywhere below ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise ProfileError(
            f"Vidur folder {root} does not exist. Give Vidur's data/profiling folder (or a "
            "parent of it, or one device folder such as profiling/compute/h100).")
    res = Imported()
    found = 0
    for name in ("mlp.csv", "attention.csv", "all_reduce.csv", "send_recv.csv"):
        for path in sorted(root.rglob(name)):
            found += 1
            source = f"vidur/{path.relative_to(root).as_posix()}"
            if (path.parent.name, path.name) in VIDUR_NOT_MEASURED:
                res.skipped.append(f"{source}: a copy of the A100 file, not an H100 measurement")
            elif name == "mlp.csv":
                res.add("gemm", _vidur_gemms(path, source, res.skipped))
            elif name == "attention.csv":
                for op, rows in _vidur_attention(path, source, res.skipped):
                    res.add(op, rows)
            else:
                res.add(*_vidur_network(path, source, res.skipped))
    if not found:
        raise ProfileError(
            f"Vidur folder {root} holds no mlp.csv, attention.csv, all_reduce.csv or "
            "send_recv.csv. Give Vidur's data/profiling folder (or a parent of it).")
    return res


def import_vidur(root: str | Path, out_dir: str | Path) -> list[Path]:
    """Convert Vidur's profiling CSVs under ``root`` into ``<out_dir>/<op>.parquet``."""
    return convert_vidur(root).write(out_dir)


# -- AIConfigurator ---------------------------------------------------------------------


def aic_device(system: str) -> str:
    """Frontier's hardware-catalog name for an AIConfigurator system: the GPU whose
    ``aliases`` name it (the kernel's catalog and plugins'), else the system name with
    dashes."""
    return _gpu_names().get(system.lower(), system.replace("_", "-"))


def _gpu_names() -> dict[str, str]:
    global _GPU_NAMES
    if _GPU_NAMES is None:
        from frontier_core import load_registry
        from frontier_core.model.catalog import gpu_names

        reg = load_registry()
        _GPU_NAMES = gpu_names(reg.get("hardware", n) for n in reg.names("hardware"))
    return _GPU_NAMES


_GPU_NAMES: dict[str, str] | None = None


def aic_data_root() -> Path:
    """The installed aiconfigurator-core's ``systems/data`` (found without importing it)."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise ProfileError(
            "aiconfigurator-core is not installed, so there is no AIConfigurator database to "
            f"import. Install it with {install_hint('frontier-predictors', 'aic')} (or pass "
            "--data-root with a copy of its systems/data folder).")
    return Path(next(iter(spec.submodule_search_locations))) / "systems" / "data"


class _AicSource:
    """Finds and reads one system's tables for one backend."""

    def __init__(self, root: Path, system: str, backend: str, version: str | None) -> None:
        self.root, self.system, self.backend, self.version = root, system, backend, version
        self.dir = root / system
        if not self.dir.is_dir() or not any(self.dir.rglob("*.parquet")):
            have = sorted(p.name for p in root.iterdir()
                          if p.is_dir() and any(p.rglob("*.parquet"))) if root.is_dir() else []
            raise ProfileError(
                f"AIConfigurator has no measurements for system {system!r} under {root}. "
                f"Systems with data: {', '.join(have) or 'none'}. Pick one of them with "
                "--system (or point --data-root at another systems/data folder).")
        backends = sorted({p.name for fam in ("gemm", "attention", "moe")
                           if (self.dir / fam).is_dir() for p in (self.dir / fam).iterdir()
                           if p.is_dir()})
        if backend not in backends:
            raise ProfileError(
                f"AIConfigurator has no {backend!r} measurements for {system} under {self.dir}. "
                f"Backends measured there: {', '.join(backends) or 'none'}. Use one with --backend.")
        self.current = None if version is not None else self._current(root.parent)

    def _current(self, systems: Path) -> str | None:
        """AIConfigurator's default ('current') version for this system and backend."""
        import yaml

        path = systems / "query_versions.yaml"
        if not path.is_file():
            return None
        doc = yaml.safe_load(path.read_text()) or {}
        slot = (doc.get("overrides") or {}).get(self.system, {}).get(self.backend) \
            or (doc.get("defaults") or {}).get(self.backend) or {}
        return str(slot["current"]) if slot.get("current") else None

    def find(self, family: str, table: str, backend: str | None = None,
             version: str | None = None) -> tuple[Path, str] | None:
        """The table file and its version: ``version`` if given; else, as AIConfigurator
        serves queries, its current version or the newest older one holding the table
        (the newest of all when it has no current version or nothing that old). A version
        folder's reuse.yaml may point the table at another version's file."""
        import yaml

        base = self.dir / family / (backend or self.backend)
        if not base.is_dir():
            return None
        versions = sorted((p.name for p in base.iterdir() if p.is_dir()), key=version_key,
                          reverse=True)
        if version is not None:
            versions = [version]
        elif self.current is not None and backend is None:
            cur = version_key(self.current)
            versions.sort(key=lambda v: version_key(v) > cur)  # stable: older-or-equal first
        for v in versions:
            f = base / v / f"{table}.parquet"
            if f.is_file():
                return f, v
            reuse = base / v / "reuse.yaml"
            if reuse.is_file():
                for entry in (yaml.safe_load(reuse.read_text()) or {}).get("reuse", []):
                    src = base / str(entry.get("from_version")) / f"{table}.parquet"
                    if entry.get("table") == table and src.is_file():
                        return src, str(entry["from_version"])
        return None

    def gpu_spec(self) -> dict[str, float] | None:
        """``mem_bw`` (B/s) and ``fp8_tc_flops`` of the system's GPU, from AIConfigurator's
        ``systems/<system>.yaml`` (its datasheet figures); None when not found."""
        import yaml

        path = self.root.parent / f"{self.system}.yaml"
        if not path.is_file():
            return None
        gpu = (yaml.safe_load(path.read_text()) or {}).get("gpu") or {}
        try:
            return {"mem_bw": float(gpu["mem_bw"]), "fp8_tc_flops": float(gpu["fp8_tc_flops"])}
        except (KeyError, TypeError, ValueError):
            return None

    def read(self, path: Path, cols: tuple[str, ...]) -> pd.DataFrame:
        import pandas as pd

        df = pd.read_parquet(path)
        _need(df, cols, path, "AIConfigurator")
        return df

    def frame(self, df: pd.DataFrame, op: str, dtype: pd.Series, path: Path, framework: str,
              version: str, **cols: object) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({
            "op": op, "device": aic_device(self.system), "dtype": dtype,
            "latency_s": df["latency"] * MS, **cols,
            "kernel_source": df["kernel_source"] if "kernel_source" in df else framework,
            "gpu_name": df["device"] if "device" in df else None, "framework": framework,
            "framework_version": version, "source_table": path.relative_to(self.root).as_posix(),
        })


def _keep(df: pd.DataFrame, ok: pd.Series, why: str, notes: list[str]) -> pd.DataFrame:
    if not ok.all():
        notes.append(f"{why}: {int((~ok).sum())} rows")
    return df[ok]


def _by_dtype(df: pd.DataFrame, col: str, what: str, notes: list[str]) -> pd.DataFrame:
    dtype = df[col].map(_DTYPES)
    for name, n in df.loc[dtype.isna(), col].value_counts().sort_index().items():
        notes.append(f"{what}: {n} rows of {col} {name} (no profile dtype)")
    return df[dtype.notna()].assign(_dtype=dtype[dtype.notna()])


def _aic_gemm(src: _AicSource, path: Path, version: str, notes: list[str]) -> pd.DataFrame:
    df = src.read(path, ("kernel_source", "gemm_dtype", "m", "n", "k", "latency"))
    what = path.name
    df = _by_dtype(df, "gemm_dtype", what, notes)  # fp8: per-tensor scales; fp8_block: blocks
    df = _static_fp8(src, df, version, notes)
    out = src.frame(df, "gemm", df["_dtype"], path, src.backend, version,
                    m=df["m"], n=df["n"], k=df["k"])
    return _prefer_dominant(out, ["dtype", "m", "n", "k"], what, notes)


def _static_fp8(src: _AicSource, df: pd.DataFrame, version: str,
                notes: list[str]) -> pd.DataFrame:
    """Per-tensor fp8 GEMM rows as a checkpoint with static activation scales runs them.

    AIConfigurator's collectors time per-tensor fp8 with dynamic activation scales: the
    weights carry no ``input_scale``, so TensorRT-LLM's FP8 linear computes one per call
    (collector/trtllm/collect_gemm.py), and the vLLM collector sets
    ``activation_scheme="dynamic"`` (collector/vllm/collect_gemm.py). Checkpoints in
    per-tensor fp8 (ModelOpt's, llm-compressor's static schemes) ship calibrated input
    scales, so engines skip that step. As AIConfigurator does for its ``fp8_static`` mode
    (aic-core operators/gemm.rs), the measured cost of computing the scale at the same
    (m, k) (``quantize/<backend>/<version>/computescale_perf``) is taken off, and the
    result kept no faster than the datasheet roofline of the GEMM. Without that table
    the fp8 rows are dropped, and the chain's next predictor prices fp8 GEMMs.
    """
    import pandas as pd

    fp8 = df["_dtype"] == "fp8"
    if not fp8.any():
        return df
    hit = src.find("quantize", "computescale_perf", version=version)
    spec = src.gpu_spec()
    if hit is None or spec is None:
        notes.append(f"gemm_perf: {int(fp8.sum())} per-tensor fp8 rows dropped (no "
                     "compute-scale table or GPU spec to derive static activation scales)")
        return df[~fp8]
    cs = src.read(hit[0], ("m", "k", "latency"))
    if "quant_dtype" in cs:
        cs = cs[cs["quant_dtype"].astype(str) == "fp8"]
    cs = cs.groupby(["m", "k"], as_index=False)["latency"].median().rename(
        columns={"latency": "_scale"})
    rows = df[fp8].reset_index().merge(cs, on=["m", "k"], how="left").set_index("index")
    miss = rows["_scale"].isna()
    if miss.any():
        notes.append(f"gemm_perf: {int(miss.sum())} per-tensor fp8 rows dropped (no "
                     "compute-scale measurement at their m, k)")
    rows = rows[~miss]
    m, n, k = (rows[c].astype(float) for c in ("m", "n", "k"))
    # ms: fp8 inputs and weights, bf16 output; fp8 tensor-core rate
    sol = 1e3 * pd.concat([2 * m * n * k / spec["fp8_tc_flops"],
                           (m * k + n * k + 2 * m * n) / spec["mem_bw"]], axis=1).max(axis=1)
    rows["latency"] = (rows["latency"] - rows["_scale"]).where(lambda t: t > sol, sol)
    return pd.concat([df[~fp8], rows.drop(columns="_scale")]).sort_index()


def _aic_attention(src: _AicSource, path: Path, version: str, notes: list[str],
                   decode: bool) -> pd.DataFrame:
    """Context rows: ``batch_size`` sequences of ``isl`` new tokens, no cached prefix.
    Generation rows: one new token per sequence; the kernel attends over ``step`` keys
    (AIC's vLLM collector builds ``seq_lens = [step]``, ``query_lens = [1]``)."""
    cols = ("kernel_source", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim",
            "attn_dtype", "kv_cache_dtype", "step", "latency")
    df = src.read(path, cols)
    what = path.name
    if "window_size" in df:
        df = _keep(df, df["window_size"] == 0, f"{what}: sliding-window attention", notes)
    if "beam_width" in df:
        df = _keep(df, df["beam_width"] == 1, f"{what}: beam width above 1", notes)
    df = _keep(df, df["attn_dtype"].isin(("bfloat16", "float16")),
               f"{what}: FP8 attention math (attn_dtype fp8)", notes)
    if decode:
        df = _keep(df, (df["isl"] == 1) & (df["step"] >= 1), f"{what}: isl other than 1", notes)
        q, kv = [1] * len(df), df["step"].tolist()
    else:
        df = _keep(df, df["step"] == 0, f"{what}: rows with a cached prefix (step > 0)", notes)
        q = kv = df["isl"].tolist()
    df = _by_dtype(df, "kv_cache_dtype", what, notes)  # dtype = the KV cache's
    b = df["batch_size"].tolist()
    out = src.frame(df, "attention_decode" if decode else "attention_prefill", df["_dtype"], path,
                    src.backend, version, num_heads=df["num_heads"],
                    num_kv_heads=df["num_key_value_heads"], head_dim=df["head_dim"],
                    q_lens=_repeat(q, b), kv_lens=_repeat(kv, b), batch_size=df["batch_size"])
    return _prefer_dominant(
        out, ["dtype", "num_heads", "num_kv_heads", "head_dim", "q_lens", "kv_lens"], what, notes)


#: DeepSeek-V3's attention geometry, the only one AIConfigurator's MLA tables hold (its
#: TensorRT-LLM collector refuses others, collector/trtllm/collect_mla.py):
#: qk_nope 128 + qk_rope 64 per query head; kv_lora_rank 512 + rope 64 cached per token.
MLA_PREFILL_HEAD_DIM = 128 + 64
MLA_DECODE_HEAD_DIM = 512 + 64


def _aic_mla(src: _AicSource, path: Path, version: str, notes: list[str],
             decode: bool) -> pd.DataFrame:
    """MLA attention rows, filed as Frontier's execution model prices MLA.

    ``num_heads`` is per GPU (the collectors log ``num_heads // tp_size``). Prefill
    (``context_mla_perf``) decompresses per-head keys and values: ``num_heads`` query and
    KV heads of head dim 192. Decode (``generation_mla_perf``) runs absorbed: every query
    head attends over the one cached latent of 576 per token (FlashMLA, TRT-LLM's MLA
    generation kernel), so one KV head of head dim 576 over ``step`` cached tokens. The
    head dims differ from every GQA table's, so these rows train their own kernel family.
    """
    cols = ("batch_size", "isl", "num_heads", "mla_dtype", "kv_cache_dtype", "step", "latency")
    df = src.read(path, cols)
    what = path.name
    df = _keep(df, df["mla_dtype"].isin(("bfloat16", "float16")),
               f"{what}: MLA math in another format (mla_dtype)", notes)
    if decode:
        df = _keep(df, (df["isl"] == 1) & (df["step"] >= 1), f"{what}: isl other than 1", notes)
    else:
        df = _keep(df, df["step"] == 0, f"{what}: rows with a cached prefix (step > 0)", notes)
    df = _by_dtype(df, "kv_cache_dtype", what, notes)  # dtype = the KV cache's
    b = df["batch_size"].tolist()
    if decode:
        q, kv = [1] * len(df), df["step"].tolist()
        kv_heads, hd = 1, MLA_DECODE_HEAD_DIM
    else:
        q = kv = df["isl"].tolist()
        kv_heads, hd = df["num_heads"], MLA_PREFILL_HEAD_DIM
    out = src.frame(df, "attention_decode" if decode else "attention_prefill", df["_dtype"], path,
                    src.backend, version, num_heads=df["num_heads"], num_kv_heads=kv_heads,
                    head_dim=hd, q_lens=_repeat(q, b), kv_lens=_repeat(kv, b),
                    batch_size=df["batch_size"])
    return _prefer_dominant(
        out, ["dtype", "num_heads", "num_kv_heads", "head_dim", "q_lens", "kv_lens"], what, notes)


_MOE_SHAPE = ("hidden_size", "inter_size", "num_experts", "topk")


def _nongated_moe_shapes(root: Path) -> set[tuple[int, ...]]:
    """(hidden, inter, experts, top-k) of the MoE models whose experts have no gate
    projection (Nemotron-H's ReLU²): the shapes AIConfigurator's TensorRT-LLM tables, of
    any system, time with a ``*nongated*`` kernel. Its vLLM and SGLang tables do not say
    which kernel variant they ran, and the shapes are properties of the models."""
    import pandas as pd

    shapes: set[tuple[int, ...]] = set()
    for f in sorted(root.glob("*/moe/trtllm/*/moe_perf.parquet")):
        df = pd.read_parquet(f)
        if "kernel_source" not in df or not set(_MOE_SHAPE) <= set(df.columns):
            continue
        hit = df[df["kernel_source"].astype(str).str.contains("nongated")]
        shapes |= {tuple(int(v) for v in r) for r in hit[list(_MOE_SHAPE)].drop_duplicates()
                   .itertuples(index=False)}
    return shapes


def _aic_moe(src: _AicSource, path: Path, version: str, notes: list[str]) -> pd.DataFrame:
    """``inter_size`` is the expert's full intermediate size (AIC's collectors shard it as
    ``inter_size // moe_tp_size``); ``num_tokens`` enter the layer on the measured rank;
    ``gated`` is false for the shapes of ``_nongated_moe_shapes`` and for rows timed with a
    ``*nongated*`` kernel."""
    cols = ("kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk",
            "num_experts", "moe_tp_size", "moe_ep_size", "distribution", "latency")
    df = _by_dtype(src.read(path, cols), "moe_dtype", path.name, notes)
    dist = df["distribution"].astype(str)
    routing = dist.where(dist == "balanced",
                         dist.str.replace(r"^power_law_(\d+(?:\.\d+)?)$", r"power_law:\1",
                                          regex=True))
    ok = (routing == "balanced") | routing.str.startswith("power_law:")
    for name, n in dist[~ok].value_counts().items():
        notes.append(f"{path.name}: {n} rows of distribution {name} (no routing)")
    df, routing = df[ok], routing[ok]
    out = src.frame(df, "moe_experts", df["_dtype"], path, src.backend, version,
                    num_tokens=df["num_tokens"], hidden_size=df["hidden_size"],
                    inter_size=df["inter_size"], num_experts=df["num_experts"],
                    top_k=df["topk"], ep_size=df["moe_ep_size"], tp_size=df["moe_tp_size"],
                    routing=routing, gated=_gated_rows(df, src.root))
    key = ["dtype", "num_tokens", "hidden_size", "inter_size", "num_experts", "top_k",
           "ep_size", "tp_size", "routing"]
    return _prefer_dominant(out, key, path.name, notes)


def _gated_rows(df: pd.DataFrame, root: Path) -> pd.Series:
    import pandas as pd

    nongated = _nongated_moe_shapes(root)
    shapes = zip(*(df[c].astype(int) for c in _MOE_SHAPE), strict=True)
    off = pd.Series([s in nongated for s in shapes], index=df.index, dtype=bool)
    return ~(off | df["kernel_source"].astype(str).str.contains("nongated"))


def _aic_comm(src: _AicSource, imp: Imported) -> None:
    """all_reduce from the framework's own all-reduce (CUDA-graph mode, as decode runs it),
    extended by NCCL beyond its largest size; all_to_all from NCCL alltoall."""
    import pandas as pd

    notes = imp.skipped
    custom = pd.DataFrame()
    hit = src.find("comm", "custom_allreduce_perf", version=src.version)
    if hit is None:
        notes.append(f"custom_allreduce_perf: none for {src.backend} {src.version or ''}".strip())
    else:
        path, version = hit
        df = src.read(path, ("allreduce_dtype", "num_gpus", "message_size", "latency"))
        if "backend" in df and df["backend"].astype(str).str.endswith("_graph").any():
            df = _keep(df, df["backend"].astype(str).str.endswith("_graph"),
                       f"{path.name}: eager-mode (no CUDA graph)", notes)
        df = _by_dtype(df, "allreduce_dtype", path.name, notes)
        custom = src.frame(df, "all_reduce", df["_dtype"], path, src.backend, version,
                           num_gpus=df["num_gpus"],
                           bytes=(df["message_size"] * df["_dtype"].map(_BYTES)).astype(float),
                           scope="intra")
        custom = _prefer_dominant(custom, ["dtype", "num_gpus", "bytes"], path.name, notes)
        imp.add("all_reduce", custom)
    hit = src.find("comm", "nccl_perf", backend="nccl")
    if hit is None:
        notes.append("nccl_perf: none for this system (no all_to_all rows)")
        return
    path, version = hit
    df = src.read(path, ("op_name", "nccl_dtype", "num_gpus", "message_size", "latency"))
    df = _by_dtype(df, "nccl_dtype", path.name, notes)
    rows = src.frame(df, df["op_name"].map({"all_reduce": "all_reduce", "alltoall": "all_to_all"}),
                     df["_dtype"], path, "nccl", version, num_gpus=df["num_gpus"],
                     bytes=(df["message_size"] * df["_dtype"].map(_BYTES)).astype(float),
                     scope="intra")
    for name, n in df.loc[rows["op"].isna(), "op_name"].value_counts().sort_index().items():
        notes.append(f"{path.name}: {n} {name} rows (not a profiled op)")
    ar = rows[rows["op"] == "all_reduce"]
    if len(custom):
        # vLLM/SGLang/TRT-LLM all-reduce hands large messages to NCCL themselves; their
        # table already spans that range, so NCCL rows only extend it.
        top = custom.groupby("num_gpus")["bytes"].max()
        ok = ar["bytes"] > ar["num_gpus"].map(top).fillna(-1.0)
        ar = _keep(ar, ok, f"{path.name}: NCCL all_reduce within the {src.backend} table's "
                   "sizes", notes)
    imp.add("all_reduce", ar)
    imp.add("all_to_all", rows[rows["op"] == "all_to_all"])


def convert_aic(system: str, backend: str = "vllm", version: str | None = None,
                data_root: str | Path | None = None) -> Imported:
    """Profile tables from AIConfigurator's database for one system and backend."""
    root = Path(data_root) if data_root is not None else aic_data_root()
    if not root.is_dir():
        raise ProfileError(f"AIConfigurator data folder {root} does not exist. Point --data-root "
                           "at aiconfigurator_core/systems/data, or omit it to use the installed one.")
    src = _AicSource(root, system, backend, version)
    imp = Imported()
    plan = (("gemm", "gemm_perf", "gemm"), ("attention", "context_attention_perf", "prefill"),
            ("attention", "generation_attention_perf", "decode"),
            ("mla", "context_mla_perf", "mla_prefill"),
            ("mla", "generation_mla_perf", "mla_decode"), ("moe", "moe_perf", "moe"))
    for family, table, kind in plan:
        hit = src.find(family, table, version=version)
        if hit is None:
            imp.skipped.append(f"{table}: none for {backend} {version or ''}".strip())
            continue
        path, v = hit
        if kind == "gemm":
            imp.add("gemm", _aic_gemm(src, path, v, imp.skipped))
        elif kind == "moe":
            imp.add("moe_experts", _aic_moe(src, path, v, imp.skipped))
        elif kind.startswith("mla_"):
            imp.add(f"attention_{kind[4:]}",
                    _aic_mla(src, path, v, imp.skipped, decode=kind == "mla_decode"))
        else:
            imp.add(f"attention_{kind}",
                    _aic_attention(src, path, v, imp.skipped, decode=kind == "decode"))
    _aic_comm(src, imp)
    if not any(op in imp.tables for op in
               ("gemm", "attention_prefill", "attention_decode", "moe_experts")):
        have = sorted({p.name for p in (src.dir).glob(f"*/{backend}/*") if p.is_dir()},
                      key=version_key)
        raise ProfileError(
            f"AIConfigurator holds no {backend} {version or ''} operator tables for {system} "
            f"under {src.dir}. Versions measured there: {', '.join(have) or 'none'}; pass one "
            "with --version, or omit it for AIConfigurator's default.")
    return imp


def import_aic(system: str, backend: str = "vllm", version: str | None = None, *,
               out_dir: str | Path, data_root: str | Path | None = None) -> list[Path]:
    """Convert AIConfigurator's tables for ``system``/``backend`` into
    ``<out_dir>/<op>.parquet``. ``version`` None takes, per table, AIConfigurator's current
    version for the system (systems/query_versions.yaml) or the newest older one holding
    the table; without that file, or when nothing that old exists, the newest."""
    return convert_aic(system, backend, version, data_root).write(out_dir)


# -- CLI (mounted as `frontier predictors import`) ----------------------------------------

import_app = typer.Typer(
    help="Convert other projects' operator measurements (Vidur, AIConfigurator) into "
         "profile tables.",
    no_args_is_help=True,
)


def _summary(imp: Imported, paths: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("op", "rows", "file")
    for p in paths:
        table.add_row(p.stem, f"{len(imp.tables[p.stem]):,}", str(p))
    out = Console()
    out.print(table)
    for note in imp.skipped:
        out.print(f"skipped {note}", highlight=False)


@import_app.command("vidur")
def vidur_command(
    directory: Annotated[Path, typer.Argument(help="Vidur's data/profiling folder, a parent "
                                                   "of it, or one device folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the tables.")],
) -> None:
    """Import Vidur's profiling CSVs (MIT): GEMMs from mlp.csv, NCCL all_reduce/send_recv."""
    imp = convert_vidur(directory)
    _summary(imp, imp.write(output))


@import_app.command("aic")
def aic_command(
    system: Annotated[str, typer.Option(help="AIConfigurator system, e.g. h100_sxm.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the tables.")],
    backend: Annotated[str, typer.Option(help="vllm, sglang or trtllm.")] = "vllm",
    version: Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional
        help="Backend version; default: AIConfigurator's current one (else the newest), "
             "per table.")] = None,
    data_root: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        help="A systems/data folder; default: the installed aiconfigurator-core's.")] = None,
) -> None:
    """Import NVIDIA AIConfigurator's measured operators (Apache-2.0; the aic extra)."""
    imp = convert_aic(system, backend, version, data_root)
    _summary(imp, imp.write(output))
