"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, so no global
figure state and no display needed). Each function takes numbers already computed by
``frontier_report.analysis`` and writes one image file (PNG or SVG, by its suffix).

matplotlib is imported inside the functions: importing this module is cheap, so the
plugin does not slow down ``frontier --help``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_report.analysis import Series, cdf

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_DPI = 120


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.0,
            height: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows × ncols`` panels (each ``width × height`` inches) on an Agg
    canvas; returns it with its axes as a 2-D array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    """Write the figure; SVGs carry no date and a fixed id salt, so that the same input
    gives the same file."""
    import matplotlib

    if path.suffix == ".svg":
        with matplotlib.rc_context({"svg.hashsalt": "frontier-report"}):
            fig.savefig(path, format="svg", metadata={"Date": None})
    else:
        fig.savefig(path, format="png", dpi=PNG_DPI)
    return path


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def latency_cdfs(panels: Sequence[tuple[str, np.ndarray, float, str, float | None]],
                 path: Path) -> Path:
    """One CDF panel per latency: ``(title, values in s, display scale, unit, SLO in s or
    None)``, e.g. ``("TTFT", ttft_s, 1e3, "ms", 0.5)``. Dotted lines mark p50/p90/p99,
    a dashed red line the SLO."""
    fig, axes = _figure(ncols=len(panels), width=4.2)
    for ax, (title, values, scale, unit, slo) in zip(axes[0], panels, strict=True):
        x, p = cdf(values)
        ax.set_title(f"{title} ({len(x):,} requests)")
        ax.set_xlabel(f"{title} ({unit})")
        ax.set_ylabel("fraction of requests ≤ x")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if not len(x):
            _empty(ax, "no completed requests")
            continue
        ax.step(x * scale, p, where="post", color="C0")
        for q in (0.5, 0.9, 0.99):
            ax.axhline(q, color="0.6", lw=0.6, ls=":")
        if slo is not None:
            ax.axvline(slo * scale, color="C3", ls="--", lw=1, label=f"SLO {slo * scale:g} {unit}")
            ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def utilisation(t_s: np.ndarray, clusters: Mapping[str, tuple[np.ndarray, np.ndarray]],
                path: Path) -> Path:
    """Busy fraction and KV-cache usage of each cluster over time: ``clusters`` maps a
    name to (busy fraction, KV fraction) per bin whose centres are ``t_s`` (s)."""
    fig, axes = _figure(ncols=2)
    busy_ax, kv_ax = axes[0]
    for i, (name, (busy, kv)) in enumerate(clusters.items()):
        busy_ax.plot(t_s, busy, color=f"C{i}", label=name)
        kv_ax.plot(t_s, kv, color=f"C{i}", label=name)
    # KV usage is often a few per cent: zoom in, but never past 100 %.
    kv_top = max([0.05] + [float(np.nanmax(kv)) * 1.15 for _, kv in clusters.values() if len(kv)])
    for ax, title, top in ((busy_ax, "busy fraction (mean over replicas)", 1.02),
                           (kv_ax, "KV-cache usage (mean over replicas)", min(kv_top, 1.02))):
        ax.set_title(title)
        ax.set_xlabel("time (s)")
        ax.set_ylim(0, top)
        ax.grid(alpha=0.3)
        ax.legend(title="cluster", fontsize="small")
    busy_ax.set_ylabel("fraction of time running iterations")
    kv_ax.set_ylabel("fraction of KV blocks in use")
    return _save(fig, path)


def queues(t_s: np.ndarray, series: Mapping[str, np.ndarray], title: str, path: Path) -> Path:
    """Requests in each stage over time (``t_s`` in s)."""
    fig, axes = _figure(width=8.0)
    ax = axes[0, 0]
    for i, (name, counts) in enumerate(series.items()):
        ax.plot(t_s, counts, color=f"C{i}", label=name.replace("_", " "), lw=1.2)
    ax.set_title(title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("requests")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def throughput_vs_load(series: Sequence[Series], x: str, xlabel: str, path: Path) -> Path:
    """Request throughput (solid) and goodput (dashed) in req/s, and output tokens/s,
    against ``x`` (a results column, normally ``workload.arrival.rate``), one colour per
    series."""
    fig, axes = _figure(ncols=2)
    req_ax, tok_ax = axes[0]
    for i, s in enumerate(series):
        xs = s.column(x)
        req_ax.plot(xs, s.column("throughput.requests_per_s"), "o-", color=f"C{i}",
                    label=f"{s.label} throughput")
        req_ax.plot(xs, s.column("slo.goodput_requests_per_s"), "s--", color=f"C{i}",
                    label=f"{s.label} goodput", alpha=0.8)
        tok_ax.plot(xs, s.column("throughput.output_tokens_per_s"), "o-", color=f"C{i}",
                    label=s.label)
    req_ax.set_title("throughput (solid) and goodput under the SLO (dashed)")
    req_ax.set_ylabel("requests / s")
    tok_ax.set_title("output-token throughput")
    tok_ax.set_ylabel("output tokens / s")
    for ax in (req_ax, tok_ax):
        ax.set_xlabel(xlabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _save(fig, path)


def pareto(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, list[str]]],
           path: Path) -> Path:
    """Throughput per GPU against a latency, one panel each: ``(latency title, latency
    in s, output tokens/s per GPU, Pareto mask, point labels)``. Optimal runs are
    joined by the frontier line and labelled; the others are grey."""
    fig, axes = _figure(ncols=len(panels), width=5.5, height=4.2)
    for ax, (title, lat, thr, mask, labels) in zip(axes[0], panels, strict=True):
        if (~mask).any():
            ax.scatter(lat[~mask] * 1e3, thr[~mask], color="0.65", s=18, label="dominated")
        order = np.flatnonzero(mask)[np.argsort(lat[mask])]
        ax.plot(lat[order] * 1e3, thr[order], "o-", color="C3", ms=5, label="Pareto-optimal")
        for i in order:
            ax.annotate(labels[i], (lat[i] * 1e3, thr[i]), textcoords="offset points",
                        xytext=(4, 4), fontsize="x-small")
        ax.set_title(f"throughput per GPU vs {title}")
        ax.set_xlabel(f"{title} (ms)")
        ax.set_ylabel("output tokens / s / GPU")
        ax.grid(alpha=0.3)
        ax.margins(x=0.2, y=0.1)  # room for the labels of the outermost points
        ax.legend(fontsize="small", loc="lower right")
        if not mask.any():
            _empty(ax, "no run has both numbers")
    return _save(fig, path)


def expert_clusters(holders: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Cross-cluster expert routing, one bar group per cluster that holds experts:
    the bytes it received (dispatch) and sent (combine), and its busy fraction next to
    the share of MoE layers in which it was the last to return (the straggler)."""
    fig, axes = _figure(ncols=2)
    traffic, share = axes[0]
    names = list(holders)
    x = np.arange(len(names))
    w = 0.38
    got = [holders[n].get("bytes_received", 0.0) / 1e9 for n in names]
    sent = [holders[n].get("bytes_sent", 0.0) / 1e9 for n in names]
    traffic.bar(x - w / 2, got, w, color="C0", label="received (dispatch)")
    traffic.bar(x + w / 2, sent, w, color="C1", label="sent (combine)")
    traffic.set_title("traffic over the inter-cluster links")
    traffic.set_ylabel("GB over the run")
    busy = [holders[n].get("busy_fraction", 0.0) for n in names]
    last = [holders[n].get("straggler_share", 0.0) for n in names]
    share.bar(x - w / 2, busy, w, color="C2", label="busy fraction (compute)")
    share.bar(x + w / 2, last, w, color="C3", label="last to return (straggler share)")
    share.set_title("load and stragglers")
    share.set_ylabel("fraction")
    share.set_ylim(0, 1.02)
    for ax in (traffic, share):
        ax.set_xticks(x, names)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")
    return _save(fig, path)


def moe_balance(clusters: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Expert-parallel load balance over the run, one line per cluster: the drawn max ÷
    mean tokens over EP ranks (``straggler_ratio_timeline``, means over equal runs of
    iterations), and where live EPLB rebalanced, the window's imbalance before (×) and
    after (●) each rebalance at its iteration."""
    fig, axes = _figure(width=7.0)
    ax = axes[0][0]
    for i, (name, m) in enumerate(clusters.items()):
        tl = m.get("straggler_ratio_timeline") or {}
        values = tl.get("values") or []
        step = float(tl.get("iterations_per_point") or 1)
        x = (np.arange(len(values)) + 0.5) * step
        ax.plot(x, values, color=f"C{i}", marker=".", label=f"{name}: drawn max/mean")
        moves = (m.get("eplb") or {}).get("timeline") or []
        if moves:
            it = [e["iteration"] for e in moves]
            ax.scatter(it, [e["window_imbalance_before"] for e in moves], color=f"C{i}",
                       marker="x", s=18, label=f"{name}: window before a rebalance")
            ax.scatter(it, [e["window_imbalance_after"] for e in moves], color=f"C{i}",
                       marker="o", s=12, label=f"{name}: after")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xlabel("iteration of the cluster")
    ax.set_ylabel("max ÷ mean tokens over EP ranks")
    ax.set_title("expert-parallel load balance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)
