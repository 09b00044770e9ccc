"""Serving fidelity: simulate real serving benchmarks and compare with what they measured.

``frontier validate serving FILE.csv`` reads benchmark rows (the columns of
AIConfigurator's ``silicon_sample.csv``, documented in docs/validation.md), turns each
row into a run config — model, GPU, engine, co-located or prefill/decode layout,
parallelism, quantisation, and the benchmark's closed loop as its tool ran it (request
count, warm-up, how lengths were drawn) — simulates it, and reports predicted against measured mean TTFT and TPOT
per row and per (system, backend, mode, model) group. A row Frontier cannot express is
not guessed: it is counted under a reason (``coverage``).

The row → config mapping is frontier_core/app/benchrows.py; each row names its engine and
version, and frontier_core/execution/engines.py models how that engine runs (docs/engines.md).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frontier_core.app.benchrows import (  # noqa: F401 - the adapter's public names, re-exported
    QUANT,
    REQUIRED,
    Mapped,
    Row,
    concurrency,
    map_rows,
    model_index,
    read_rows,
    row_config,
    spread,
)
from frontier_core.app.runner import ray_start, run_all, simulate
from frontier_core.errors import FrontierError


def simulate_row(config: dict[str, Any], registry: Any = None) -> dict[str, Any]:
    """Simulate one mapped row: predicted mean TTFT and TPOT (ms), or its error."""
    import warnings

    from frontier_core.app.metrics import summarize
    from frontier_core.config import RunConfig

    try:
        cfg = RunConfig.model_validate(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim = simulate(cfg, registry)
            s = summarize(sim)
    except FrontierError as e:
        return {"error": _kind(str(e))}
    lat = s["latency_s"]
    if not s["requests"]["completed"] or lat["ttft_s"]["mean"] is None:
        return {"error": "no request completed"}
    # The batches of the cluster that iterates most (the decode side): what the
    # per-iteration host time of an engine scales with (frontier calibrate).
    busiest = max(s["clusters"].values(), key=lambda c: c["iterations"])
    return {"pred_ttft_ms": lat["ttft_s"]["mean"] * 1e3,
            "pred_tpot_ms": (lat["tpot_s"]["mean"] or math.nan) * 1e3,
            "wall_s": sim.wall_s,
            "iter_seqs": busiest["batch_size"]["mean"] or 0.0,
            "iter_tokens": busiest["batch_tokens"]["mean"] or 0.0,
            "overlap": bool(busiest.get("engine", {}).get("host", {}).get("overlap", False))}


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

    def nothing_simulated(self) -> str | None:
        """When no row was simulated successfully: a message saying why, with the most
        frequent reasons; else None."""
        if self.simulated():
            return None
        cov = self.coverage
        why = [*(f"{n} {r}" for r, n in cov.get("not_covered", {}).items()),
               *(f"{n} failed: {r}" for r, n in cov.get("failed", {}).items())]
        shown = "; ".join(why[:5]) + (f"; and {len(why) - 5} more reasons" if len(why) > 5 else "")
        return (f"{self.source}: none of its {cov.get('rows', 0)} rows could be simulated "
                f"({shown or 'no rows'}). docs/validation.md lists the columns a row needs "
                "and what Frontier can simulate.")

    def to_pandas(self):
        """The per-row table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def write(self, out_dir: str | Path, overwrite: bool = False) -> list[str]:
        """rows.csv, summary.json and (with matplotlib) one predicted-vs-measured plot per
        engine into the results folder ``out_dir`` (frontier_core.app.outdir: never a folder
        Frontier did not write); returns the file names written."""
        from frontier_core.app import outdir

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
    annotations: str | Path | None = None,
    client: str = "auto",
) -> ValidationResult:
    """Simulate every expressible, unique row of a benchmark file (or a spread ``sample``
    of them) and compare with the measurements. ``progress(done, total)`` after each row."""
    if registry is None:
        from frontier_core.plugins import load_registry

        registry = load_registry()
    for name in predictor:
        registry.get("predictor", name, where="--predictor")
    rows = read_rows(path, annotations)
    mapped = map_rows(rows, registry, predictor, warmup, client)
    unique = [m for m in mapped if m.duplicate_of is None]
    reasons: dict[str, int] = {}
    for m in unique:
        if m.reason:
            reasons[m.reason] = reasons.get(m.reason, 0) + 1
    covered = [m for m in unique if m.config is not None]
    todo = spread(covered, sample) if sample is not None else covered
    ray_mod = None
    if ray is not None:
        ray_mod = ray_start(ray)
    results = _run(todo, jobs, ray_mod, registry, progress)
    res = ValidationResult(str(path))
    sim_errors: dict[str, int] = {}
    for m in mapped:
        r = m.row
        rec: dict[str, Any] = {
            "id": r.id, "row": r.index + 2, "system": r.get("system"), "backend": r.get("backend"),
            "backend_version": r.get("backend_version"), "mode": r.get("mode"),
            "model": m.model or r.get("model_path"), "gpu": m.gpu, "isl": r.get("isl"),
            "osl": r.get("osl"), "concurrency": m.concurrency, "client": m.client,
            "layout_from": m.layout_from,
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
                           wall_s=out.get("wall_s"),
                           same_config_as=out.get("same_config_as"))
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
    """Simulate every mapped row (``runner.run_all``); results by ``id`` of the row. Rows
    whose configs are equal run once: a config and seed give the same outputs, so the
    others take its result, less its ``wall_s``, with ``same_config_as`` naming its row
    (two sources often publish the same measurement)."""
    out: dict[int, dict[str, Any]] = {}
    total = len(todo)
    if progress is not None:
        progress(0, total)
    first: dict[str, Mapped] = {}
    followers: dict[int, list[Mapped]] = {}
    for m in todo:
        lead = first.setdefault(json.dumps(m.config, sort_keys=True, default=str), m)
        followers.setdefault(id(lead), [])
        if lead is not m:
            followers[id(lead)].append(m)
    # The longest rows first: a pool that takes a long row last waits for it alone.
    order = sorted(first.values(), key=row_work, reverse=True)

    def done(i: int, result: dict[str, Any]) -> None:
        lead = order[i]
        out[id(lead)] = result
        for m in followers[id(lead)]:
            out[id(m)] = {k: v for k, v in result.items() if k != "wall_s"} | {
                "same_config_as": lead.row.id}
        if progress is not None:
            progress(len(out), total)

    run_all(simulate_row, [m.config for m in order], done, jobs=jobs, ray=ray_mod,
            registry=registry)
    return out


def row_work(m: Mapped) -> float:
    """A row's decode steps, the tokens its requests generate: what a row's run time
    grows with, to start the longest rows first."""
    w = m.config["workload"] if m.config else {}
    out = w.get("output_len", {})
    mean = (out.get("value") or out.get("median")
            or (out.get("low", 0) + out.get("high", 0)) / 2)
    return float(w.get("num_requests", 0)) * float(mean or 0)
