"""Serving fidelity: simulate real serving benchmarks and compare with what they measured.

``frontier validate serving FILE.csv`` reads benchmark rows (the columns of
AIConfigurator's ``silicon_sample.csv``, documented in docs/validation.md), turns each
row into a run config — model, GPU, engine, co-located or prefill/decode layout,
parallelism, quantisation, fixed prompt/output lengths and the benchmark's closed-loop
concurrency — simulates it, and reports predicted against measured mean TTFT and TPOT
per row and per (system, backend, mode, model) group. A row Frontier cannot express is
not guessed: it is counted under a reason (``coverage``).

The row → config mapping is in :func:`row_config`; everything it assumes about an
engine is in :data:`ENGINES` with its source.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frontier_core.errors import ConfigError, FrontierError

#: Columns a row must have (the rest are read when present).
REQUIRED = ("backend", "model_path", "system", "mode", "isl", "osl",
            "silicon_ttft_ms", "silicon_tpot_ms")

#: The layout columns of one worker, without the ``prefill_``/``decode_`` prefix.
LAYOUT = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")

#: AIConfigurator's system names → catalog GPUs. A system that is itself a catalog
#: name (``h100-sxm``) is taken as it is.
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200",
           "a100_sxm": "a100-80g-sxm", "h800_sxm": "h800", "a800_sxm": "a800"}

#: Quantisation columns → the weight dtype the roofline prices. Block-scaled fp8 runs on
#: the fp8 tensor cores and its scales add 1/16,384 of the weight bytes (128×128 blocks,
#: DeepSeek-V3's checkpoint format), so it is priced as fp8.
QUANT = {"fp8": "fp8", "fp8_block": "fp8", "bf16": "bf16", "fp16": "fp16", "": None}

#: Per engine, the scheduler that behaves as the engine's own and its limits, until
#: engine models replace this table. Sources:
#: - vLLM V1 schedules running requests first and fills the rest of the token budget with
#:   prefill chunks (chunked prefill always on); for the OpenAI server on a GPU of 70 GiB
#:   or more the defaults are max_num_batched_tokens 8192 and max_num_seqs 1024
#:   (vllm/engine/arg_utils.py, ``_set_default_args``).
#: - SGLang runs prefill batches before decodes (prefill-first), prefills chunked at
#:   ``chunked_prefill_size`` (8192 on an H100/H200-class GPU; server_args.py).
#: - TensorRT-LLM's in-flight batching mixes context and generation requests up to
#:   max_num_tokens 8192 with the GUARANTEED_NO_EVICT capacity policy, which admits a
#:   request only when its whole KV can be reserved (TensorRT-LLM docs, "Useful Runtime
#:   Options" and "Tuning Max Batch Size and Max Num Tokens").
ENGINES: dict[str, dict[str, Any]] = {
    "vllm": {"name": "sarathi", "token_budget": 8192, "max_num_seqs": 1024},
    "sglang": {"name": "vllm", "max_num_batched_tokens": 8192, "max_num_seqs": 4096},
    "trtllm": {"name": "orca", "max_num_batched_tokens": 8192, "max_num_seqs": 2048},
}

#: Closed-loop benchmark length: every client sends this many requests. The first wave
#: (one request per client, all sent at once) is warm-up, left out of the means: the
#: benchmarks report the steady state of a loop that keeps ``concurrency`` requests in
#: flight, and a short simulated run would otherwise weigh its start-up far more than a
#: benchmark of many rounds does.
ROUNDS = 3


@dataclass
class Row:
    """One benchmark measurement, as read."""

    index: int  # 0-based data row of the file
    fields: dict[str, str]

    def get(self, key: str) -> str:
        return (self.fields.get(key) or "").strip()

    @property
    def id(self) -> str:
        return self.get("id") or f"row{self.index + 2}"


@dataclass
class Mapped:
    """A row turned into a run config (``config``), or the reason it cannot be."""

    row: Row
    config: dict[str, Any] | None = None
    reason: str | None = None
    model: str = ""
    gpu: str = ""
    concurrency: int | None = None
    duplicate_of: str | None = None

    @property
    def group(self) -> tuple[str, str, str, str]:
        r = self.row
        return (r.get("system"), r.get("backend"), r.get("mode"), self.model or r.get("model_path"))


def read_rows(path: str | Path) -> list[Row]:
    """The data rows of a benchmark CSV; a ConfigError when it cannot be read or lacks a
    required column."""
    p = Path(path)
    try:
        with open(p, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            rows = [Row(i, dict(r)) for i, r in enumerate(reader)]
    except OSError as e:
        raise ConfigError(f"Cannot read the benchmark file {str(p)!r}: {e.strerror or e}; give "
                          "the path of a CSV in silicon_sample.csv's columns.") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not a readable CSV ({e}); give a CSV in silicon_sample.csv's "
                          "columns (docs/validation.md lists them).") from None
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ConfigError(
            f"{p}: missing column(s) {', '.join(missing)}; a benchmark row needs "
            f"{', '.join(REQUIRED)} and a concurrency (a 'concurrency' column, or "
            "'silicon_concurrency=N' in silicon_data_source); docs/validation.md lists them."
        )
    return rows


def concurrency(row: Row) -> int | None:
    """The benchmark's closed-loop concurrency: a ``concurrency`` column, else
    ``silicon_concurrency=N`` inside ``silicon_data_source``."""
    text = row.get("concurrency")
    if not text:
        m = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source"))
        text = m.group(1) if m else ""
    try:
        n = int(float(text))
    except ValueError:
        return None
    return n if n >= 1 else None


def _int(row: Row, key: str, default: int | None = 1) -> int | None:
    text = row.get(key)
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if v == int(v) and v >= 0 else None


def model_index(registry: Any) -> dict[str, Any]:
    """Lower-cased Hugging Face ids (and aliases) and catalog names → catalog models."""
    index: dict[str, Any] = {}
    for p in registry.provided("model"):
        m = p.item
        for key in (m.name, m.hf_id, *m.aliases):
            if key:
                index.setdefault(key.lower(), m)
    return index


def _worker(row: Row, prefix: str, model: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """One cluster's parallel layout from a row's layout columns: (cluster fields, reason)."""
    v = {k: _int(row, prefix + k) for k in LAYOUT}
    bad = [prefix + k for k, x in v.items() if x is None or x == 0]
    if bad:
        return None, f"bad layout value in {', '.join(bad)}"
    tp, pp, dp, mtp, mep = (v[k] for k in LAYOUT)
    out: dict[str, Any] = {"tp": tp, "pp": pp}
    if not model.is_moe:
        if mep > 1:
            return None, "expert parallelism on a dense model"
        if dp > 1:
            out["replicas"] = dp  # data parallelism of a dense model: independent replicas
        return out, None
    if mtp * mep != tp * dp:
        return None, f"MoE layout moe_tp × moe_ep ≠ tp × attention_dp ({where})"
    if mtp > 1 and mep > 1:
        return None, "MoE tensor and expert parallelism mixed (moe_tp > 1 and moe_ep > 1)"
    if dp > 1 and mep == 1:
        return None, "DP attention with MoE tensor parallelism (moe_ep 1)"
    out["dp"] = dp
    out["moe"] = {"ep": mep}
    return out, None


def row_config(row: Row, models: dict[str, Any], gpus: set[str], workflows: set[str],
               blocks: set[str], predictor: Sequence[str] = ("roofline",),
               warmup: bool = True) -> Mapped:
    """Turn one benchmark row into a run config, or say why it cannot be. ``warmup``:
    leave the first wave out of the means (see ``ROUNDS``)."""
    m = Mapped(row)
    model = models.get(row.get("model_path").lower())
    if model is None:
        m.reason = f"model not in the catalog: {row.get('model_path') or '(empty)'}"
        return m
    m.model = model.name
    system = row.get("system")
    gpu = SYSTEMS.get(system, system)
    if gpu not in gpus:
        m.reason = f"GPU not in the catalog: {system or '(empty)'}"
        return m
    m.gpu = gpu
    backend = row.get("backend").lower()
    if backend not in ENGINES:
        m.reason = f"engine not modelled: {backend or '(empty)'}"
        return m
    quants = {row.get("gemm_quant_mode"), row.get("moe_quant_mode") if model.is_moe else ""}
    known = [QUANT.get(q, "?") for q in quants]
    if "?" in known:
        m.reason = "quantisation not priced: " + "/".join(sorted(q for q in quants if q not in QUANT))
        return m
    dtypes = {d for d in known if d}
    if len(dtypes) > 1:
        m.reason = "different GEMM and MoE weight formats"
        return m
    weight = dtypes.pop() if dtypes else (QUANT.get(row.get("precision")) or "bf16")
    isl, osl = _int(row, "isl", None), _int(row, "osl", None)
    if not isl or not osl:
        m.reason = "no isl/osl"
        return m
    if isl + osl > model.max_context:
        m.reason = "isl + osl beyond the model's context"
        return m
    n = concurrency(row)
    if n is None:
        m.reason = "no concurrency"
        return m
    m.concurrency = n
    try:
        ttft, tpot = float(row.get("silicon_ttft_ms")), float(row.get("silicon_tpot_ms"))
    except ValueError:
        ttft = tpot = math.nan
    if not (ttft > 0 and tpot > 0):
        m.reason = "no measured TTFT/TPOT"
        return m
    if model.is_moe and "moe" not in blocks:
        m.reason = "needs frontier-moe-ep (MoE model)"
        return m
    sched = dict(ENGINES[backend])
    mode = row.get("mode").lower()
    if mode == "agg":
        layout, why = _worker(row, "", model, "agg")
        if why:
            m.reason = why
            return m
        clusters = [{"name": "main", "gpu": gpu, **layout, "scheduler": sched}]
        workflow: Any = "colocated"
    elif mode == "disagg":
        if "pd" not in workflows:
            m.reason = "needs frontier-pd-disagg (disaggregated row)"
            return m
        clusters = []
        for stage in ("prefill", "decode"):
            workers = _int(row, f"{stage}_num_workers", None)
            if not workers:
                m.reason = "disagg row without worker counts"
                return m
            layout, why = _worker(row, f"{stage}_", model, stage)
            if why:
                m.reason = why
                return m
            layout["replicas"] = layout.get("replicas", 1) * workers
            clusters.append({"name": stage, "gpu": gpu, **layout, "scheduler": sched})
        workflow = {"name": "pd", "prefill": ["prefill"], "decode": ["decode"]}
    else:
        m.reason = f"mode not known: {mode or '(empty)'}"
        return m
    m.config = {
        "model": {"name": model.name, "weight_dtype": weight},
        "deployment": {"workflow": workflow, "clusters": clusters},
        "predictor": list(predictor),
        "workload": {
            "closed_loop": {"concurrency": n},
            "prompt_len": {"dist": "fixed", "value": isl},
            "output_len": {"dist": "fixed", "value": osl},
            "num_requests": ROUNDS * n,
            **({"warmup_requests": n} if warmup else {}),
        },
        "seed": 0,
        "output": {"trace": False},
    }
    return m


def _dedup_key(m: Mapped) -> tuple:
    r = m.row
    return (r.get("system"), r.get("backend"), r.get("backend_version"), m.model or r.get("model_path"),
            r.get("mode"), r.get("isl"), r.get("osl"), m.concurrency,
            r.get("silicon_ttft_ms"), r.get("silicon_tpot_ms"))


def _gpus(m: Mapped) -> int:
    cl = (m.config or {}).get("deployment", {}).get("clusters", [])
    return sum(c.get("replicas", 1) * c.get("tp", 1) * c.get("pp", 1) * c.get("dp", 1) for c in cl)


def map_rows(rows: Iterable[Row], registry: Any, predictor: Sequence[str] = ("roofline",),
             warmup: bool = True) -> list[Mapped]:
    """Every row mapped; a repeated measurement (same system, engine, model, lengths,
    concurrency and results) is kept once — the expressible copy on the fewest GPUs —
    and the others point to it."""
    models = model_index(registry)
    gpus = set(registry.names("hardware"))
    workflows = set(registry.names("workflow"))
    blocks = set(registry.names("ffn_block"))
    mapped = [row_config(r, models, gpus, workflows, blocks, predictor, warmup) for r in rows]
    best: dict[tuple, Mapped] = {}
    for m in mapped:
        k = _dedup_key(m)
        cur = best.get(k)
        if cur is None or (cur.config is None and m.config is not None) or (
                m.config is not None and cur.config is not None and _gpus(m) < _gpus(cur)):
            best[k] = m
    for m in mapped:
        keep = best[_dedup_key(m)]
        if keep is not m:
            m.duplicate_of = keep.row.id
    return mapped


def spread(items: Sequence[Mapped], n: int) -> list[Mapped]:
    """A deterministic sample of ``n`` items spread over groups: groups in sorted order
    take turns, each giving its rows in file order, evenly strided."""
    groups: dict[tuple, list[Mapped]] = {}
    for m in items:
        groups.setdefault(m.group, []).append(m)
    order = sorted(groups)
    share = {g: 0 for g in order}
    left = min(n, len(items))
    while left:
        for g in order:
            if left and share[g] < len(groups[g]):
                share[g] += 1
                left -= 1
    picked: list[Mapped] = []
    for g in order:
        rows, k = groups[g], share[g]
        picked.extend(rows[int(i * len(rows) / k)] for i in range(k)) if k else None
    return sorted(picked, key=lambda m: m.row.index)


def simulate_row(config: dict[str, Any], registry: Any = None) -> dict[str, Any]:
    """Simulate one mapped row: predicted mean TTFT and TPOT (ms), or its error."""
    import warnings

    from frontier_core.assemble import assemble
    from frontier_core.config import RunConfig
    from frontier_core.metrics import summarize

    if registry is None:
        from frontier_core.sweep import _worker_registry

        registry = _worker_registry()
    try:
        cfg = RunConfig.model_validate(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim = assemble(cfg, registry).run()
            s = summarize(sim)
    except FrontierError as e:
        return {"error": _kind(str(e))}
    lat = s["latency_s"]
    if not s["requests"]["completed"] or lat["ttft_s"]["mean"] is None:
        return {"error": "no request completed"}
    return {"pred_ttft_ms": lat["ttft_s"]["mean"] * 1e3,
            "pred_tpot_ms": (lat["tpot_s"]["mean"] or math.nan) * 1e3,
            "wall_s": sim.wall_s}


def _kind(message: str) -> str:
    """A failure message without the row's particulars, so that failures count by kind."""
    if "does not fit" in message:
        return "weights do not fit in GPU memory as Frontier sizes it"
    return re.sub(r"\d+(\.\d+)?", "N", message.split(". ")[0])[:160]


@dataclass
class ValidationResult:
    """Per-row results, coverage and per-group errors of one validation."""

    source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)

    def simulated(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") == "ok"]

    def groups(self) -> list[dict[str, Any]]:
        """Median errors per (system, backend, mode, model)."""
        by: dict[tuple, list[dict[str, Any]]] = {}
        for r in self.simulated():
            by.setdefault((r["system"], r["backend"], r["mode"], r["model"]), []).append(r)
        return [{"system": k[0], "backend": k[1], "mode": k[2], "model": k[3], **_errors(v)}
                for k, v in sorted(by.items())]

    def by(self, *keys: str) -> list[dict[str, Any]]:
        by: dict[tuple, list[dict[str, Any]]] = {}
        for r in self.simulated():
            by.setdefault(tuple(r[k] for k in keys), []).append(r)
        return [dict(zip(keys, k, strict=True)) | _errors(v) for k, v in sorted(by.items())]

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "coverage": self.coverage,
                "overall": _errors(self.simulated()), "by_backend_mode": self.by("backend", "mode"),
                "groups": self.groups()}

    def to_pandas(self):
        """The per-row table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def write(self, out_dir: str | Path, overwrite: bool = False) -> list[str]:
        """rows.csv, summary.json and (with matplotlib) one predicted-vs-measured plot per
        engine into the results folder ``out_dir`` (frontier_core.outdir: never a folder
        Frontier did not write); returns the file names written."""
        from frontier_core import outdir

        names: list[str] = []
        outdir.write(out_dir, "validate", lambda tmp: names.extend(self._write(tmp)), overwrite)
        return names

    def _write(self, out: Path) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols.extend(c for c in r if c not in cols)
        with open(out / "rows.csv", "w", newline="") as f:
            w = csv.DictWriter(f, cols, lineterminator="\n")
            w.writeheader()
            for r in self.rows:
                w.writerow({c: _cell(r.get(c)) for c in cols})
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        return ["rows.csv", "summary.json", *_plots(self, out)]


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if not math.isnan(x))
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def _errors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": len(rows)}
    for k in ("ttft", "tpot"):
        signed = [r[f"{k}_err"] for r in rows]
        out[f"{k}_median_abs_err"] = _median([abs(x) for x in signed])
        out[f"{k}_median_signed_err"] = _median(signed)
        out[f"{k}_within_10pct"] = (sum(abs(x) <= 0.10 for x in signed) / len(signed)) if signed else None
    return out


def _plots(res: ValidationResult, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    for backend in sorted({r["backend"] for r in res.simulated()}):
        rows = [r for r in res.simulated() if r["backend"] == backend]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
        for ax, k, label in ((axes[0], "ttft", "TTFT"), (axes[1], "tpot", "TPOT")):
            for mode, marker in (("agg", "o"), ("disagg", "^")):
                xs = [r[f"measured_{k}_ms"] for r in rows if r["mode"] == mode]
                ys = [r[f"pred_{k}_ms"] for r in rows if r["mode"] == mode]
                if xs:
                    ax.scatter(xs, ys, s=12, marker=marker, alpha=0.7, label=mode)
            vals = [v for r in rows for v in (r[f"measured_{k}_ms"], r[f"pred_{k}_ms"]) if v > 0]
            lo, hi = min(vals) / 1.5, max(vals) * 1.5
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            for f in (0.8, 1.25):
                ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
            ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
                   xlabel=f"measured {label} (ms)", ylabel=f"predicted {label} (ms)",
                   title=f"{backend}: {label}")
            ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        name = f"pred_vs_measured_{backend}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def validate_serving(
    path: str | Path,
    *,
    sample: int | None = None,
    jobs: int = 1,
    predictor: Sequence[str] = ("roofline",),
    ray: str | None = None,
    registry: Any = None,
    progress: Callable[[int, int], None] | None = None,
    warmup: bool = True,
) -> ValidationResult:
    """Simulate every expressible, unique row of a benchmark file (or a spread ``sample``
    of them) and compare with the measurements. ``progress(done, total)`` after each row."""
    if registry is None:
        from frontier_core.plugins import load_registry

        registry = load_registry()
    for name in predictor:
        registry.get("predictor", name, where="--predictor")
    rows = read_rows(path)
    mapped = map_rows(rows, registry, predictor, warmup)
    unique = [m for m in mapped if m.duplicate_of is None]
    reasons: dict[str, int] = {}
    for m in unique:
        if m.reason:
            reasons[m.reason] = reasons.get(m.reason, 0) + 1
    covered = [m for m in unique if m.config is not None]
    todo = spread(covered, sample) if sample is not None else covered
    ray_mod = None
    if ray is not None:
        from frontier_core.sweep import _ray_start

        ray_mod = _ray_start(ray)
    results = _run(todo, jobs, ray_mod, registry, progress)
    res = ValidationResult(str(path))
    sim_errors: dict[str, int] = {}
    for m in mapped:
        r = m.row
        rec: dict[str, Any] = {
            "id": r.id, "row": r.index + 2, "system": r.get("system"), "backend": r.get("backend"),
            "backend_version": r.get("backend_version"), "mode": r.get("mode"),
            "model": m.model or r.get("model_path"), "gpu": m.gpu, "isl": r.get("isl"),
            "osl": r.get("osl"), "concurrency": m.concurrency,
        }
        if m.duplicate_of is not None:
            rec["status"] = f"duplicate of {m.duplicate_of}"
        elif m.reason:
            rec["status"] = "not covered"
            rec["reason"] = m.reason
        elif id(m) not in results:
            rec["status"] = "not sampled"
        else:
            out = results[id(m)]
            if "error" in out:
                rec["status"] = "failed"
                rec["reason"] = out["error"]
                sim_errors[out["error"]] = sim_errors.get(out["error"], 0) + 1
            else:
                mt, mp = float(r.get("silicon_ttft_ms")), float(r.get("silicon_tpot_ms"))
                rec.update(status="ok", measured_ttft_ms=mt, pred_ttft_ms=out["pred_ttft_ms"],
                           ttft_err=out["pred_ttft_ms"] / mt - 1, measured_tpot_ms=mp,
                           pred_tpot_ms=out["pred_tpot_ms"], tpot_err=out["pred_tpot_ms"] / mp - 1,
                           wall_s=out["wall_s"])
        res.rows.append(rec)
    res.coverage = {
        "rows": len(rows), "unique": len(unique), "duplicates": len(rows) - len(unique),
        "covered": len(covered), "covered_fraction": len(covered) / len(unique) if unique else 0.0,
        "simulated": len(todo), "not_covered": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "failed": dict(sorted(sim_errors.items(), key=lambda kv: -kv[1])),
    }
    return res


def _run(todo: list[Mapped], jobs: int, ray_mod: Any, registry: Any,
         progress: Callable[[int, int], None] | None) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    total = len(todo)
    if progress is not None:
        progress(0, total)
    keys = [id(m) for m in todo]
    configs = [m.config for m in todo]
    if ray_mod is not None:
        remote = ray_mod.remote(simulate_row)
        pending = {remote.remote(c): k for c, k in zip(configs, keys, strict=True)}
        while pending:
            ready, _ = ray_mod.wait(list(pending), num_returns=1)
            out[pending.pop(ready[0])] = ray_mod.get(ready[0])
            if progress is not None:
                progress(len(out), total)
    elif jobs > 1 and total > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from frontier_core import sweep as sweep_mod

        sweep_mod._REGISTRY[:] = [registry]  # fork: workers inherit it
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(simulate_row, c): k for c, k in zip(configs, keys, strict=True)}
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                if progress is not None:
                    progress(len(out), total)
    else:
        for c, k in zip(configs, keys, strict=True):
            out[k] = simulate_row(c, registry)
            if progress is not None:
                progress(len(out), total)
    return out
