"""What the ``pd`` workflow reports after a run: stage breakdowns, transfers, links,
backpressure, time series of queues and utilisation, and trace flows.

All computed from plain records kept during the run (request stage times, the
replicas' iteration arrays, the transfer list, the network's channels).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core import WorkflowReport

if TYPE_CHECKING:
    from frontier_pd_disagg.workflow import PDWorkflow

# The segments of a request's path, in the order it crosses them. Each is the time
# between two of its stamps (Request fields or stage_times keys), which depend on when
# the decode side reserves (before or after the prefill) and on who streams the first
# token (``segments``).
SEGMENTS = ("decode_memory_wait_s", "prefill_queue_s", "prefill_s", "transfer_s",
            "decode_queue_s", "decode_s")


def segments(wf: PDWorkflow, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per request, seconds in each segment of the path. Consecutive segments share their
    stamps, so the ones before the first token add up to TTFT exactly."""
    before = wf.reserve_rule == "before_prefill"
    decode_first = wf.first_token == "decode"
    arrival, reserved = t["arrival"], t["kv_reserved"]
    queued = reserved if before else arrival  # the prefill server may take it from here
    sent = t["prefill_end"] if before else reserved  # the transfer may start from here
    got = t["kv_transferred"]
    first_decode = t["first_token"] if decode_first else got
    return {
        "decode_memory_wait_s": reserved - (arrival if before else t["prefill_end"]),
        "prefill_queue_s": t["first_scheduled"] - queued,
        "prefill_s": t["prefill_end"] - t["first_scheduled"],
        "transfer_s": got - sent,
        # Until the decode server takes the request into an iteration and streams token 1.
        "decode_queue_s": (t["first_token"] - got if decode_first
                           else np.where(np.isnan(got), np.nan, 0.0)),
        "decode_s": t["completion"] - first_decode,
    }


def ttft_segments(wf: PDWorkflow) -> tuple[str, ...]:
    """The segments that come before the client's first token."""
    if wf.first_token == "decode":
        return SEGMENTS[:-1]
    pre = ("prefill_queue_s", "prefill_s")
    return ("decode_memory_wait_s", *pre) if wf.reserve_rule == "before_prefill" else pre


def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = x[~np.isnan(x)]
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(x.max())}


def _times(sim: Any) -> dict[str, np.ndarray]:
    """Each request's stamps in id order (NaN for a rejected one), from the controller's
    log of finished requests and the ones still running."""
    ctl = sim.controller
    c = ctl.log.columns(ctl.active.values(), ("id", "arrival", "first_scheduled",
                                               "first_token", "completion", "rejected"))
    st = c["stage_times"]
    out = {k: c[k] for k in ("arrival", "first_scheduled", "first_token", "completion")}
    # When the prefill ended (its token); a request that ended there has only first_token.
    out["prefill_end"] = (np.where(np.isnan(st["prefill_end"]), c["first_token"],
                                   st["prefill_end"])
                          if "prefill_end" in st else c["first_token"])
    nan = np.full(len(c["id"]), np.nan)
    for key in ("kv_reserved", "kv_transferred"):
        out[key] = st.get(key, nan)
    ok = np.array([r is None for r in c["rejected"].tolist()], bool)
    for k in out:
        out[k] = np.where(ok, out[k], np.nan)
    return out


def _count_between(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """How many [start, end) intervals contain each time in ``t`` (NaN ends = open)."""
    has = ~np.isnan(start)
    s = np.sort(start[has])
    e = end[has]
    e = np.sort(np.where(np.isnan(e), np.inf, e))
    return np.searchsorted(s, t, side="right") - np.searchsorted(e, t, side="right")


def _busy_curve(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative busy seconds of one replica (``a``: its iteration records) as a
    piecewise-linear function of time."""
    if not len(a):
        return np.zeros(1), np.zeros(1)
    start, lat = a[:, 0], a[:, 1]
    # With pipeline parallelism iterations overlap; count each until the next starts.
    dur = np.minimum(lat, np.append(np.diff(start), lat[-1]))
    before = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    x = np.empty(2 * len(start))
    y = np.empty_like(x)
    x[0::2], x[1::2] = start, start + dur
    y[0::2], y[1::2] = before, before + dur
    return x, y


def _kv_curve(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """KV blocks in use at the iteration last started at or before each ``t`` (``a``: the
    replica's iteration records)."""
    if not len(a):
        return np.zeros(len(t))
    i = np.searchsorted(a[:, 0], t, side="right") - 1
    return np.where(i >= 0, a[np.maximum(i, 0), 5], 0.0)


def timeseries(wf: PDWorkflow, sim: Any, times: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Queue lengths of each stage and busy / KV fractions of each cluster, sampled at
    ``timeseries_points`` evenly spaced times (busy: fraction of the interval before
    each sample)."""
    arr = times["arrival"]
    end = float(np.nanmax(times["completion"])) if np.isfinite(times["completion"]).any() else 0.0
    begin = float(np.nanmin(arr)) if len(arr) else 0.0
    t = np.linspace(begin, max(end, begin + 1e-9), wf.opts.timeseries_points)
    out: dict[str, np.ndarray] = {"time_s": t}
    before = wf.reserve_rule == "before_prefill"
    for name, a, b in (("prefill_waiting", "kv_reserved" if before else "arrival",
                        "first_scheduled"),
                       ("prefilling", "first_scheduled", "prefill_end"),
                       ("blocked_on_decode_memory", "arrival" if before else "prefill_end",
                        "kv_reserved"),
                       ("transferring", "prefill_end" if before else "kv_reserved",
                        "kv_transferred"),
                       ("decoding", "kv_transferred", "completion")):
        out[name] = _count_between(times[a], times[b], t).astype(float)
    dt = np.diff(t, prepend=t[0])
    for cname, cw in sim.clusters.items():
        busy = np.zeros(len(t))
        kv = np.zeros(len(t))
        for rep in cw.replicas:
            a = sim.controller.iterlog.rows(rep)  # records spilled to a file included
            x, y = _busy_curve(a)
            busy += np.interp(t, x, y)
            kv += _kv_curve(a, t) / rep.kv.num_blocks
            del a
        frac = np.zeros(len(t))
        frac[1:] = np.diff(busy)[0:] / (dt[1:] * len(cw.replicas))
        out[f"busy_{cname}"] = np.clip(frac, 0.0, 1.0)
        out[f"kv_usage_{cname}"] = kv / len(cw.replicas)
    return out


def _csv(cols: dict[str, np.ndarray]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(cols)
    w.writerow(names)
    for row in zip(*(cols[c] for c in names), strict=True):
        w.writerow([repr(float(v)) for v in row])
    return buf.getvalue()


def pd_report(wf: PDWorkflow, sim: Any, pids: dict[str, int]) -> WorkflowReport:
    times = _times(sim)
    col = segments(wf, times)
    # A request that finished at prefill (one output token) has no later stages.
    pre = ttft_segments(wf)
    through = np.all([~np.isnan(col[k]) for k in pre], axis=0) if len(times["arrival"]) else np.zeros(0, bool)
    ttft = times["first_token"] - times["arrival"]
    ts = timeseries(wf, sim, times)
    makespan = max(float(ts["time_s"][-1] - ts["time_s"][0]), 1e-12)
    tr = wf.transfers
    dur = np.array([x.end - x.start for x in tr], float)
    nbytes = np.array([x.nbytes for x in tr], float)
    wait = col["decode_memory_wait_s"]
    blocked = ts["blocked_on_decode_memory"]
    links = []
    assert wf.net is not None or not tr
    for ch in wf.net.channels if wf.net is not None else []:
        links.append({
            "channel": ch.name,
            "capacity_gbs": ch.capacity / 1e9,
            "bytes": ch.bytes_moved,
            "utilisation": ch.bytes_moved / (ch.capacity * makespan),
            "busy_fraction": ch.busy_s / makespan,
        })
    summary: dict[str, Any] = {
        "name": "pd",
        "prefill_clusters": list(wf.opts.prefill),
        "decode_clusters": list(wf.opts.decode),
        "breakdown_s": {name: _stats(v) for name, v in col.items()},
        "first_token_from": wf.first_token,
        "decode_reserves": wf.reserve_rule,
        # Mean TTFT of the requests that crossed the whole path, and its segments: they
        # add up to it.
        "ttft_breakdown_mean_s": {
            "ttft_s": _mean(ttft[through]),
            **{k: _mean(col[k][through]) for k in pre}},
        "e2e_breakdown_mean_s": {k: _mean(v) for k, v in col.items()},
        "transfers": {
            "count": len(tr),
            "layerwise": wf.opts.layerwise,
            "bytes_total": float(nbytes.sum()),
            "bytes_per_transfer_mean": float(nbytes.mean()) if len(tr) else None,
            "time_s": _stats(dur),
            "links": sorted({x.link for x in tr}),
        },
        "links": links,
        **({"decode_prefix_cache": _decode_cache(wf, tr)} if _decode_caches(wf) else {}),
        "backpressure": {
            "requests_blocked": int(np.nansum(wait > 0)),
            "decode_memory_wait_s": _stats(np.where(wait > 0, wait, np.nan)),
            "time_fraction_with_blocked_requests": float((blocked > 0).mean()),
            "max_blocked": int(blocked.max()) if len(blocked) else 0,
        },
        "queues": {k: {"mean": float(ts[k].mean()), "max": float(ts[k].max())}
                   for k in ("prefill_waiting", "blocked_on_decode_memory", "transferring",
                             "decoding")},
    }
    return WorkflowReport(summary=summary, columns=col,
                          files={"pd_timeseries.csv": _csv(ts)},
                          trace_events=_Events(wf, pids), lines=_lines(summary))


def _decode_caches(wf: PDWorkflow) -> bool:
    return any(wf.cfg[d].prefix_cache for d in wf.opts.decode)


def _decode_cache(wf: PDWorkflow, tr: list[Any]) -> dict[str, Any]:
    """What the decode replicas' prefix caches saved the links: prompt tokens, bytes and
    blocks (the decode replica's) found cached there and so not transferred."""
    moved = sum(x.nbytes for x in tr)
    skipped = sum(x.skipped_bytes for x in tr)
    return {
        "transfers_with_hit": sum(1 for x in tr if x.cached_tokens),
        "tokens_skipped": sum(x.cached_tokens for x in tr),
        "bytes_transferred": moved,
        "bytes_skipped": skipped,
        "bytes_skipped_fraction": skipped / (moved + skipped) if moved + skipped else 0.0,
        "blocks_held_from_cache": sum(x.cached_blocks for x in tr),
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.1f}"


def _lines(s: dict[str, Any]) -> list[str]:
    """What ``frontier run`` prints for a pd run: where the time of a request goes."""
    e2e = s["e2e_breakdown_mean_s"]
    tr, bp = s["transfers"], s["backpressure"]
    util = max((x["utilisation"] for x in s["links"]), default=0.0)
    dc = s.get("decode_prefix_cache")
    skipped = "" if dc is None else (
        f" ({dc['bytes_skipped'] / 1e9:,.1f} GB cached on decode, not sent)")
    return [
        "pd mean E2E (ms): prefill queue " + _ms(e2e["prefill_queue_s"]) + " · prefill "
        + _ms(e2e["prefill_s"]) + " · wait for decode memory " + _ms(e2e["decode_memory_wait_s"])
        + " · KV transfer " + _ms(e2e["transfer_s"]) + " · decode admission "
        + _ms(e2e["decode_queue_s"]) + " · decode " + _ms(e2e["decode_s"]),
        f"pd KV transfers {tr['count']:,} · {tr['bytes_total'] / 1e9:,.1f} GB{skipped} over "
        f"{'/'.join(tr['links']) or '-'} · p99 {_ms(tr['time_s']['p99'])} ms · busiest link "
        f"{util:.1%} utilised · {bp['requests_blocked']:,} requests blocked on decode memory",
    ]


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


class _Events:
    """Trace events built each time they are iterated: only when trace.json is written,
    and a chunk at a time (there are four per transfer)."""

    def __init__(self, wf: PDWorkflow, pids: dict[str, int]) -> None:
        self.wf, self.pids = wf, pids

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _trace(self.wf, self.pids)


def _trace(wf: PDWorkflow, pids: dict[str, int]) -> Iterator[dict[str, Any]]:
    """A 'KV send' track under each prefill replica with one slice per transfer, and a
    flow arrow from it to the decode replica that receives the cache."""
    named: set[tuple[int, int]] = set()
    for i, x in enumerate(wf.transfers):
        pid = pids[x.src]
        tid = 10_000 + x.src_replica
        if (pid, tid) not in named:
            named.add((pid, tid))
            yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                   "args": {"name": f"replica {x.src_replica} KV send"}}
        ts, te = round(x.start * 1e6, 3), round(x.end * 1e6, 3)
        yield {"ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": round(te - ts, 3),
               "name": f"KV r{x.request}", "cat": "kv_transfer",
               "args": {"request": x.request, "bytes": x.nbytes, "link": x.link,
                        "to": f"{x.dst}[{x.dst_replica}]"}}
        yield {"ph": "s", "id": i, "pid": pid, "tid": tid, "ts": ts,
               "name": "kv", "cat": "kv_transfer"}
        yield {"ph": "f", "bp": "e", "id": i, "pid": pids[x.dst],
               "tid": x.dst_replica + 1, "ts": te, "name": "kv", "cat": "kv_transfer"}
