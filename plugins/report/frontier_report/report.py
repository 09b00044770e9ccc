"""``build_report``: read a run or sweep directory, draw its plots and write index.html.

A run gets latency CDFs (from requests.csv), per-cluster busy and KV-usage fractions
over time (from trace.json's iteration slices) and queue lengths over time (from
pd_timeseries.csv, else the requests waiting for their first schedule). A sweep gets
throughput and goodput against the arrival rate and the Pareto frontier of throughput
per GPU against p90 TTFT and p90 TPOT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frontier_core import ConfigError, outdir
from frontier_report import plots
from frontier_report.analysis import (
    TIME_BINS,
    binned_utilisation,
    completed,
    count_between,
    fmt_value,
    iteration_tracks,
    latency_values,
    pareto_front,
    sweep_series,
)
from frontier_report.index import FigureEntry, Table, render
from frontier_report.inputs import RunData, SweepData, detect, load_run, load_sweep, short_names

FORMATS = ("png", "svg")
PD_QUEUES = ("prefill_waiting", "prefilling", "blocked_on_decode_memory", "transferring",
             "decoding")
QUEUE_POINTS = 400  # samples of the request-count curves (cheap: two binary searches)
RATE = "workload.arrival.rate"
PARETO_Y = "throughput.output_tokens_per_s_per_gpu"


@dataclass
class Report:
    """What ``build_report`` wrote: the kind of input, the output folder, index.html, the
    image files, and notes on what was skipped and why."""

    kind: str
    out: Path
    index: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_report(path: str | Path, out: str | Path | None = None, fmt: str = "png",
                 overwrite: bool = False) -> Report:
    """Write the report of the run or sweep directory ``path`` into ``out`` (default
    ``path/report``) as ``fmt`` images (png or svg) plus index.html.

    ``out`` is a results folder of kind ``"report"`` (``frontier_core.app.outdir``): it must
    be new, empty or an earlier report; ``overwrite`` allows the results of another
    command there, never a folder Frontier did not write, nor ``path`` or a folder
    holding it. Only the files of the earlier report are replaced."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not an image format the report writes; "
                          f"choose one of {', '.join(FORMATS)}.")
    src = Path(path)
    kind = detect(src)
    dest = Path(out) if out is not None else src / "report"
    if src.resolve().is_relative_to(dest.resolve()):
        raise ConfigError(f"-o/--output {str(dest)!r} is the {kind} directory being reported on "
                          "(or holds it), and writing the report there would replace it; "
                          "choose another -o/--output, or omit it for PATH/report.")
    outdir.check(dest, "report", overwrite)  # before reading and plotting
    data = load_run(src) if kind == "run" else load_sweep(src)
    rep = Report(kind, dest, dest / "index.html")

    def writer(work: Path) -> None:
        # Files go to ``work`` (a temporary folder); links are relative to ``dest``.
        if isinstance(data, RunData):
            html = _run_report(data, rep, fmt, work)
        else:
            html = _sweep_report(data, rep, fmt, work)
        (work / "index.html").write_text(html)

    try:
        outdir.write(dest, "report", writer, overwrite)
    except OSError as e:
        raise ConfigError(f"Cannot write the report to {str(dest)!r}: {e.strerror or e} "
                          f"({e.filename or dest}); choose a writable -o/--output.") from None
    return rep


def _href(target: Path, out: Path) -> str:
    """A link from index.html (in ``out``) to ``target``."""
    return Path(os.path.relpath(target.resolve(), out.resolve())).as_posix()


def _ms(v: object) -> str:
    return f"{v * 1e3:,.1f}" if isinstance(v, int | float) else "-"


def _run_report(data: RunData, rep: Report, fmt: str, work: Path) -> str:
    req, summary, out = data.requests, data.summary, rep.out
    ok = completed(req)
    slo = summary.get("slo") or {}
    figures: list[FigureEntry] = []

    def add(file: Path, title: str, caption: str) -> None:
        rep.figures.append(out / file.name)
        figures.append(FigureEntry(file.name, title, caption))

    lv = latency_values(req)
    panels = [("TTFT", lv["ttft_s"], 1e3, "ms", slo.get("ttft_s")),
              ("TPOT", lv["tpot_s"], 1e3, "ms", slo.get("tpot_s")),
              ("E2E", lv["e2e_s"], 1.0, "s", slo.get("e2e_s"))]
    add(plots.latency_cdfs(panels, work / f"latency_cdf.{fmt}"), "Latency CDFs",
        f"{int(ok.sum()):,} completed requests from requests.csv ({int((~ok).sum()):,} "
        "rejected, left out); dotted lines at p50/p90/p99, dashed red at the SLO.")
    arrivals, ends = req["arrival_s"], req["completion_s"][ok]
    start = float(np.nanmin(arrivals)) if np.isfinite(arrivals).any() else 0.0
    end = float(np.nanmax(ends)) if np.isfinite(ends).any() else start
    if data.trace is None:
        rep.notes.append("The run has no trace.json (output.trace: false), so the "
                         "utilisation and KV-usage plots are skipped; re-run with "
                         "output.trace: true to get them.")
    else:
        tracks = iteration_tracks(data.trace)
        for trs in tracks.values():
            end = max([end] + [float(t[-1, 0] + t[-1, 1]) for t in trs if len(t)])
        edges = np.linspace(start, max(end, start + 1e-9), TIME_BINS + 1)
        clusters = {}
        for name, info in summary["clusters"].items():
            kv_blocks = float(info.get("kv_blocks_per_replica") or 1)
            replicas = int(info.get("replicas") or 1)
            clusters[name] = binned_utilisation(tracks.get(name, []), replicas, kv_blocks, edges)
        add(plots.utilisation((edges[:-1] + edges[1:]) / 2, clusters, work / f"utilisation.{fmt}"),
            "Utilisation and KV-cache usage per cluster",
            f"From trace.json's iteration slices in {TIME_BINS} time bins; KV usage over "
            "summary.json's kv_blocks_per_replica.")
    if data.pd_timeseries is not None:
        ts = data.pd_timeseries
        series = {k: ts[k] for k in PD_QUEUES if k in ts}
        add(plots.queues(ts["time_s"], series, "requests in each stage (pd workflow)",
                         work / f"queues.{fmt}"),
            "Queue lengths per stage", "From pd_timeseries.csv.")
    else:
        t = np.linspace(start, max(end, start + 1e-9), QUEUE_POINTS)
        sched = req["first_scheduled_s"][ok]
        series = {"waiting (arrived, not yet scheduled)":
                  count_between(arrivals[ok], sched, t),
                  "running (scheduled, not yet complete)": count_between(sched, ends, t)}
        add(plots.queues(t, series, "requests waiting and running", work / f"queues.{fmt}"),
            "Queue lengths", "From requests.csv: waiting while arrival_s ≤ t < "
            "first_scheduled_s, running while first_scheduled_s ≤ t < completion_s.")
    holders = _expert_holders(summary)
    if holders:
        add(plots.expert_clusters(holders, work / f"expert_clusters.{fmt}"),
            "Expert clusters: traffic and stragglers",
            "From summary.json's expert_clusters (and the clusters' own GPUs that hold "
            "experts under cross_cluster): bytes each way over the run, the compute busy "
            "fraction, and the share of MoE layers in which the cluster returned last.")
    balance = {name: info["moe"] for name, info in (summary.get("clusters") or {}).items()
               if ((info.get("moe") or {}).get("straggler_ratio_timeline") or {}).get("values")}
    if balance:
        add(plots.moe_balance(balance, work / f"moe_balance.{fmt}"),
            "Expert-parallel load balance over time",
            "From summary.json's clusters.<name>.moe: straggler_ratio_timeline (max ÷ mean "
            "tokens over the EP ranks, averaged over runs of iterations) and, with live "
            "EPLB, eplb.timeline (the observed window's imbalance before and after each "
            "rebalance).")
    links = [(name, _href(data.path / name, out), why) for name, why in (
        ("trace.json", "the Perfetto timeline: open it in https://ui.perfetto.dev "
                       "(Open trace file), a track per replica, a slice per iteration"),
        ("summary.json", "all summary numbers"), ("requests.csv", "one row per request"),
        ("pd_timeseries.csv", "stage queues over time"), ("config.json", "the config that ran"),
    ) if (data.path / name).is_file()]
    lat = summary.get("latency_s") or {}
    table = Table("latency (ms)", ["", "mean", "p50", "p90", "p99"], [
        [label] + [_ms((lat.get(key) or {}).get(c)) for c in ("mean", "p50", "p90", "p99")]
        for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E"),
                           ("queueing_s", "queueing"))])
    reqs, th = summary.get("requests") or {}, summary.get("throughput") or {}
    sub = (f"{summary.get('model', '?')} · {summary.get('workload', '?')} · "
           f"{reqs.get('completed', '?')}/{reqs.get('total', '?')} requests completed · "
           f"{th.get('requests_per_s', 0):.2f} req/s · "
           f"{th.get('output_tokens_per_s', 0):,.0f} output tok/s · "
           f"SLO attainment {slo.get('attainment', 0):.1%} · {summary.get('gpus', '?')} GPUs")
    return render(f"Frontier run report: {data.path.resolve().name}", sub, figures, links,
                  rep.notes, [table])


def _expert_holders(summary: dict) -> dict[str, dict]:
    """Every cluster that holds experts for cross-cluster routing: the expert clusters,
    and clusters whose own GPUs keep some (``clusters.<name>.moe.holders``)."""
    out = {name: dict(v) for name, v in (summary.get("expert_clusters") or {}).items()}
    for name, info in (summary.get("clusters") or {}).items():
        for h in ((info.get("moe") or {}).get("holders") or {}).values():
            if h.get("local"):
                out[f"{name} (own GPUs)"] = {
                    "bytes_received": h.get("bytes_sent", 0.0),
                    "bytes_sent": h.get("bytes_received", 0.0),
                    "busy_fraction": h.get("busy_fraction", 0.0),
                    "straggler_share": h.get("straggler_share", 0.0)}
    return out


def _sweep_report(data: SweepData, rep: Report, fmt: str, work: Path) -> str:
    out, rows = rep.out, data.rows
    if not rows:
        raise ConfigError(f"{data.path / 'results.csv'} has no successful run ({data.failed} "
                          "failed; their error column says why); fix the failing configs and "
                          "re-run the sweep, which retries the failed runs.")
    if data.failed:
        rep.notes.append(f"{data.failed} failed run(s) are left out; see the error column "
                         "of results.csv.")
    varied, labels = data.varied, short_names(data.varied)
    figures: list[FigureEntry] = []
    numeric = [c for c in varied if all(isinstance(r.get(c), float) for r in rows)]
    x = RATE if RATE in varied else (numeric[0] if numeric else None)
    if x is None:
        rep.notes.append("No numeric field varies across the sweep, so the throughput-vs-"
                         "arrival-rate plot is skipped; sweep the rate with --grid "
                         f"{RATE}=2,4,8 to get it.")
    else:
        series = sweep_series(rows, x, [c for c in varied if c != x], labels)
        file = plots.throughput_vs_load(series, x, x if x != RATE else "arrival rate (req/s)",
                                        work / f"throughput.{fmt}")
        rep.figures.append(out / file.name)
        figures.append(FigureEntry(file.name, f"Throughput and goodput vs {labels.get(x, x)}",
                                   "One colour per combination of the other varied fields."))
    names = [", ".join(f"{labels[c]}={fmt_value(r.get(c))}" for c in varied) or r["run_id"]
             for r in rows]
    thr = np.array([r.get(PARETO_Y) if isinstance(r.get(PARETO_Y), float) else np.nan
                    for r in rows])
    panels, masks = [], {}
    for title, col in (("p90 TTFT", "latency_s.ttft_s.p90"), ("p90 TPOT", "latency_s.tpot_s.p90")):
        lat = np.array([r.get(col) if isinstance(r.get(col), float) else np.nan for r in rows])
        masks[title] = pareto_front(lat, thr)
        panels.append((title, lat, thr, masks[title], names))
    file = plots.pareto(panels, work / f"pareto.{fmt}")
    rep.figures.append(out / file.name)
    figures.append(FigureEntry(file.name, "Pareto frontier: throughput per GPU vs latency",
                               "Red: runs no other run beats on both throughput per GPU and "
                               "the latency; grey: dominated runs."))
    table = Table("Pareto-optimal runs", ["run", *[labels[c] for c in varied],
                                          "output tok/s/GPU", "p90 TTFT (ms)",
                                          "p90 TPOT (ms)", "optimal for"])
    for i, r in enumerate(rows):
        best = [t for t, m in masks.items() if m[i]]
        if best:
            run_dir = data.path / "runs" / r["run_id"]
            table.rows.append([(r["run_id"], _href(run_dir, out) + "/"),
                               *[fmt_value(r.get(c)) for c in varied],
                               f"{thr[i]:,.1f}", _ms(r.get("latency_s.ttft_s.p90")),
                               _ms(r.get("latency_s.tpot_s.p90")), " and ".join(best)])
    sub = (f"{len(rows)} successful runs of {len(rows) + data.failed} from results.csv; "
           f"varied: {', '.join(varied) or 'nothing'}.")
    links = [("results.csv", _href(data.path / "results.csv", out), "one row per run"),
             ("sweep.json", _href(data.path / "sweep.json", out), "the configs and grid")]
    return render(f"Frontier sweep report: {data.path.resolve().name}", sub, figures, links,
                  rep.notes, [table])
