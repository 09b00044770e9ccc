"""The numbers behind the report's plots, with numpy only (no matplotlib): latency CDFs,
per-cluster busy and KV-usage fractions binned over time from the trace's iteration
slices, queue lengths over time, sweep series and Pareto frontiers.

Times are in seconds (the trace's µs are converted on reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frontier_core.errors import ConfigError

TIME_BINS = 100  # buckets of the utilisation plots: smooth enough, cheap to draw


def cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF: the finite values sorted ascending and P(X <= value) for each
    (``(i + 1) / n``). Same unit as ``values``."""
    v = np.asarray(values, dtype=float)
    v = np.sort(v[np.isfinite(v)])
    return v, np.arange(1, len(v) + 1) / max(len(v), 1)


def completed(requests: dict[str, np.ndarray]) -> np.ndarray:
    """Mask of the requests that were not rejected (empty ``rejected`` cell)."""
    return requests["rejected"] == ""


LATENCIES = ("ttft_s", "tpot_s", "e2e_s")


def latency_values(requests: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TTFT, TPOT and E2E (s) of the completed requests, NaNs dropped (a one-token
    request has no TPOT)."""
    ok = completed(requests)
    out = {}
    for k in LATENCIES:
        v = np.asarray(requests[k], dtype=float)[ok]
        out[k] = v[np.isfinite(v)]
    return out


def iteration_tracks(events: list[dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Iteration slices of each cluster, one ``(n, 3)`` array per replica track with
    columns start (s), duration (s) and KV blocks used, sorted by start.

    Iteration slices are the ``ph: "X"`` events carrying ``args.kv_blocks_used``; their
    process is named ``"cluster <name>"`` by a ``process_name`` metadata event. Other
    slices (e.g. KV transfers of the pd workflow) are ignored."""
    names: dict[Any, str] = {}
    tracks: dict[tuple[Any, Any], list[tuple[float, float, float]]] = {}
    for e in events:
        if not isinstance(e, dict):
            continue
        args = e.get("args") or {}
        if e.get("ph") == "M" and e.get("name") == "process_name":
            label = str(args.get("name", ""))
            if label.startswith("cluster "):
                names[e.get("pid")] = label[len("cluster "):]
        elif e.get("ph") == "X" and isinstance(args, dict) and "kv_blocks_used" in args:
            try:
                row = (float(e["ts"]) * 1e-6, float(e.get("dur", 0.0)) * 1e-6,
                       float(args["kv_blocks_used"]))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"trace.json has an iteration slice without numeric ts/dur/"
                                  f"kv_blocks_used ({str(e)[:120]}); re-run to rewrite "
                                  "the trace.") from None
            tracks.setdefault((e.get("pid"), e.get("tid")), []).append(row)
    out: dict[str, list[np.ndarray]] = {name: [] for name in names.values()}
    for (pid, _tid), rows in sorted(tracks.items(), key=lambda kv: str(kv[0])):
        if pid not in names:
            raise ConfigError(f"trace.json has iteration slices in process {pid!r}, which no "
                              "'cluster <name>' process_name event names; re-run to rewrite "
                              "the trace.")
        a = np.array(rows, dtype=float)
        out[names[pid]].append(a[np.argsort(a[:, 0], kind="stable")])
    return out


def _busy_integral(track: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busy seconds accumulated by a replica as a piecewise-linear function of time
    (knots, values). With pipeline parallelism iterations overlap, so each counts only
    until the next one starts."""
    start, dur = track[:, 0], track[:, 1]
    dur = np.maximum(np.minimum(dur, np.append(np.diff(start), dur[-1])), 0.0)
    before = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    x, y = np.empty(2 * len(start)), np.empty(2 * len(start))
    x[0::2], x[1::2] = start, start + dur
    y[0::2], y[1::2] = before, before + dur
    return x, y


def _kv_integral(track: np.ndarray, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """KV block-seconds accumulated by a replica (knots, values). The trace records KV
    blocks only at iterations, so each value holds until the next iteration starts and
    the last one until ``t_end`` (as pd_timeseries.csv does): a replica that idles keeps
    the blocks of requests it still holds (e.g. prefilled requests waiting for decode)."""
    start, kv = track[:, 0], track[:, 2]
    x = np.append(start, max(t_end, float(start[-1])))
    return x, np.concatenate([[0.0], np.cumsum(np.diff(x) * kv)])


def binned_utilisation(tracks: Sequence[np.ndarray], replicas: int, kv_blocks: float,
                       edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busy fraction and KV usage of one cluster in each time bin (``edges`` in s).

    Busy: the share of the bin the cluster's ``replicas`` spent running iterations.
    KV: time-weighted blocks in use (see ``_kv_integral``) over ``kv_blocks`` per
    replica, averaged over the replicas."""
    nb = len(edges) - 1
    busy, kv = np.zeros(nb), np.zeros(nb)
    for tr in tracks:
        if len(tr):
            busy += np.diff(np.interp(edges, *_busy_integral(tr)))
            kv += np.diff(np.interp(edges, *_kv_integral(tr, float(edges[-1]))))
    n = max(replicas, len(tracks), 1)
    width = np.diff(edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(width > 0, busy / (width * n), 0.0)
        kv_frac = np.where(width > 0, kv / (width * n * max(kv_blocks, 1.0)), 0.0)
    return np.clip(frac, 0.0, 1.0), kv_frac


def count_between(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """How many intervals ``[start, end)`` contain each time of ``t`` (s). Intervals
    with a NaN start are ignored; a NaN end means still open."""
    has = np.isfinite(start)
    s = np.sort(start[has])
    e = np.sort(np.where(np.isnan(end[has]), np.inf, end[has]))
    return (np.searchsorted(s, t, side="right") - np.searchsorted(e, t, side="right")).astype(float)


def pareto_front(latency: np.ndarray, throughput: np.ndarray) -> np.ndarray:
    """Mask of the Pareto-optimal points when lower latency and higher throughput are
    better: no other point is at least as good in both and better in one. Points with a
    non-finite coordinate are never optimal; identical points are optimal together."""
    lat = np.asarray(latency, dtype=float)
    thr = np.asarray(throughput, dtype=float)
    mask = np.zeros(len(lat), dtype=bool)
    idx = np.flatnonzero(np.isfinite(lat) & np.isfinite(thr))
    order = idx[np.lexsort((-thr[idx], lat[idx]))]  # latency ascending, throughput descending
    best = -np.inf  # highest throughput at a strictly lower latency
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and lat[order[j]] == lat[order[i]]:
            j += 1
        top = thr[order[i]]
        if top > best:
            group = order[i:j]
            mask[group[thr[group] == top]] = True
            best = top
        i = j
    return mask


@dataclass
class Series:
    """One line of a sweep plot: the runs sharing the values of the non-x varied fields."""

    label: str
    rows: list[dict[str, Any]]

    def column(self, name: str) -> np.ndarray:
        """The column's values as floats (NaN where missing or not numeric)."""
        return np.array([v if isinstance(v := r.get(name), float) else np.nan
                         for r in self.rows], dtype=float)


def sweep_series(rows: list[dict[str, Any]], x: str, others: list[str],
                 labels: dict[str, str]) -> list[Series]:
    """Rows grouped by their values of ``others`` (in first-seen order), each group sorted
    by ``x``; rows without a numeric ``x`` are left out."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if isinstance(r.get(x), float):
            groups.setdefault(tuple(fmt_value(r.get(c)) for c in others), []).append(r)
    return [Series(", ".join(f"{labels.get(c, c)}={v}" for c, v in zip(others, key, strict=True))
                   or "all runs", sorted(g, key=lambda r: r[x]))
            for key, g in groups.items()]


def fmt_value(v: Any) -> str:
    """A results-table value as a short label (``2`` rather than ``2.0``)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:g}"
    return "-" if v is None else str(v)
