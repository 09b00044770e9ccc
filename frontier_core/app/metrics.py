"""Per-request and per-cluster metrics, the run summary, and the output directory.

Collected as plain lists during the run and analysed afterwards with numpy.
``summary.json`` and ``requests.csv`` depend only on the config and seed (byte
for byte); the simulator's own speed goes to ``simulator.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from frontier_core.components import WorkflowReport

if TYPE_CHECKING:
    from frontier_core.assemble import Simulation

REQUEST_COLUMNS = (
    "id", "arrival_s", "prompt_tokens", "output_tokens", "cluster", "replica",
    "first_scheduled_s", "first_token_s", "completion_s", "ttft_s", "tpot_s", "e2e_s",
    "queueing_s", "preemptions", "rejected",
)


def trace_pids(sim: Simulation) -> dict[str, int]:
    """Perfetto process id of each cluster's track group, then each expert cluster's."""
    names = [*sim.clusters, *(p.name for p in sim.config.deployment.expert_clusters)]
    return {name: pid for pid, name in enumerate(names, start=1)}


def workflow_report(sim: Simulation) -> WorkflowReport:
    """The workflow's own report (empty when it defines none), computed once per run."""
    rep = sim.extra.get("workflow_report")
    if rep is None:
        fn = getattr(sim.controller.workflow, "report", None)
        rep = fn(sim, trace_pids(sim)) if fn is not None else WorkflowReport()
        sim.extra["workflow_report"] = rep
    return rep


def block_reports(sim: Simulation) -> dict[str, WorkflowReport]:
    """Each cluster's MoE-block report (clusters whose block defines ``report``), once per run."""
    reps = sim.extra.get("block_reports")
    if reps is None:
        pids = trace_pids(sim)
        reps = {}
        for name, ex in sim.executors.items():
            fn = getattr(ex.moe_ffn, "report", None)
            if fn is not None:
                reps[name] = fn(pids[name], name)
        sim.extra["block_reports"] = reps
    return reps


def report_lines(sim: Simulation) -> list[str]:
    """The highlights the workflow and the clusters' blocks want ``frontier run`` to print."""
    lines = list(workflow_report(sim).lines)
    for rep in block_reports(sim).values():
        lines.extend(rep.lines)
    return lines


_INTERNAL_COLUMNS = ("generated",)


def request_table(sim: Simulation) -> dict[str, np.ndarray]:
    """Columns of the per-request table, in id order (the workflow's columns last)."""
    ctl = sim.controller
    logged = ctl.log.columns(ctl.active.values(), (
        "id", "arrival", "prompt_len", "output_len", "generated", "cluster", "replica",
        "first_scheduled", "first_token", "completion", "preemptions", "rejected", "warmup",
        "cached_tokens", "conversation", "turn"))
    col = {
        "id": logged["id"],
        "arrival_s": logged["arrival"],
        "prompt_tokens": logged["prompt_len"],
        "output_tokens": logged["output_len"],
        "generated": logged["generated"],
        "cluster": logged["cluster"],
        "replica": logged["replica"],
        "first_scheduled_s": logged["first_scheduled"],
        "first_token_s": logged["first_token"],
        "completion_s": logged["completion"],
        "preemptions": logged["preemptions"],
        "rejected": np.array([x or "" for x in logged["rejected"].tolist()], dtype=object),
    }
    ok = col["rejected"] == ""
    col["ttft_s"] = np.where(ok, col["first_token_s"] - col["arrival_s"], np.nan)
    col["e2e_s"] = np.where(ok, col["completion_s"] - col["arrival_s"], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = (col["completion_s"] - col["first_token_s"]) / (col["output_tokens"] - 1)
    col["tpot_s"] = np.where(ok & (col["output_tokens"] > 1), tpot, np.nan)
    col["queueing_s"] = np.where(ok, col["first_scheduled_s"] - col["arrival_s"], np.nan)
    if sim.workload.warmup:
        col["warmup"] = logged["warmup"].astype(np.int64)
    if any(c.prefix_cache for c in sim.config.deployment.clusters):
        col["cached_tokens"] = logged["cached_tokens"]
    if sim.workload.conversation is not None:
        # Turns of a conversation after a rejected one are never sent: no row.
        col["conversation"] = logged["conversation"]
        col["turn"] = logged["turn"]
    for name, values in workflow_report(sim).columns.items():
        if name in col:
            raise ValueError(f"workflow column {name!r} clashes with a kernel column")
        col[name] = np.asarray(values)
    return col


def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = x[~np.isnan(x)]
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(x.max())}


def summarize(sim: Simulation, col: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The run summary: latency statistics, throughput, goodput, utilisation."""
    col = col if col is not None else request_table(sim)
    cfg = sim.config
    warmup = 0
    # Utilisation counts the whole run, warm-up included (the replicas' busy time does).
    run_span = 1e-12
    if len(col["id"]):
        run_span = max(float(np.nanmax(col["completion_s"])) - float(col["arrival_s"].min()),
                       1e-12)
    if "warmup" in col:
        # Warm-up requests ran (and loaded the replicas) but are not measured.
        w = col["warmup"].astype(bool)
        warmup = int(w.sum())
        col = {k: v[~w] for k, v in col.items()}
    ok = col["rejected"] == ""
    n, done = len(col["id"]), int(ok.sum())
    start = float(col["arrival_s"].min()) if n else 0.0
    end = float(np.nanmax(col["completion_s"])) if n else 0.0
    makespan = max(end - start, 1e-12)
    met = ok.copy()
    slo = cfg.slo
    for key, target in (("ttft_s", slo.ttft_s), ("tpot_s", slo.tpot_s), ("e2e_s", slo.e2e_s)):
        if target is not None:
            v = col[key]
            met &= np.isnan(v) & (key == "tpot_s") | (v <= target)
    met &= ok
    reasons: dict[str, int] = {}
    for r in col["rejected"][~ok]:
        k = r.split(";")[0]
        reasons[k] = reasons.get(k, 0) + 1
    out_tokens = int(col["generated"][ok].sum())
    in_tokens = int(col["prompt_tokens"][ok].sum())
    summary: dict[str, Any] = {
        "model": sim.model.name,
        "workload": sim.workload.source,
        "seed": cfg.seed,
        "requests": {"total": n, "completed": done, "rejected": n - done,
                     "rejected_reasons": dict(sorted(reasons.items())),
                     **({"warmup": warmup} if warmup else {})},
        "latency_s": {k: _stats(col[k]) for k in ("ttft_s", "tpot_s", "e2e_s", "queueing_s")},
        "throughput": {
            "duration_s": makespan,
            "requests_per_s": done / makespan,
            "output_tokens_per_s": out_tokens / makespan,
            "total_tokens_per_s": (in_tokens + out_tokens) / makespan,
        },
        "slo": {
            "ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "e2e_s": slo.e2e_s,
            "attainment": float(met.sum() / n) if n else 0.0,
            "goodput_requests_per_s": float(met.sum()) / makespan,
        },
        "preemptions": int(col["preemptions"].sum()),
        "clusters": {},
        "predictor_time_share": _predictor_share(sim),
    }
    gpus_total = 0
    for name, cw in sim.clusters.items():
        plan = sim.plans[name]
        gpus_total += plan.gpus
        busy = cw.busy_time / (len(cw.replicas) * run_span)
        # One column at a time: each is as long as the run.
        batch = _iteration_column(sim, cw, "batch")
        iterations, batch_size = len(batch), _stats(batch)
        del batch
        batch_tokens = _stats(_iteration_column(sim, cw, "tokens"))
        kv_used = _iteration_column(sim, cw, "kv_used")
        kv_frac = kv_used / plan.kv_blocks if len(kv_used) else np.zeros(0)
        del kv_used
        summary["clusters"][name] = {
            "gpu": plan.gpu, "replicas": plan.replicas, "tp": plan.tp, "pp": plan.pp,
            "dp": plan.dp, "gpus": plan.gpus,
            **({"engine": plan.engine.summary()} if plan.engine is not None else {}),
            "kv_blocks_per_replica": plan.kv_blocks, "block_size": plan.block_size,
            "kv_capacity_tokens_per_replica": plan.kv_blocks * plan.block_size,
            "weight_gib_per_gpu": plan.weight_bytes_per_gpu / 1024**3,
            "busy_fraction": busy,
            "iterations": iterations,
            "batch_size": batch_size,
            "batch_tokens": batch_tokens,
            "kv_usage": _stats(kv_frac),
            "kv_peak_fraction": max(r.kv.peak_used for r in cw.replicas) / plan.kv_blocks,
            "preemptions": sum(r.preemptions for r in cw.replicas),
        }
        if any(r.kv.caching for r in cw.replicas):
            summary["clusters"][name]["prefix_cache"] = _prefix_cache(cw)
        if plan.dp > 1:
            summary["clusters"][name]["dp_attention"] = {
                "balance": cw.replicas[0].dp_balance, **sim.executors[name].dp_summary()}
        spec = sim.executors[name].spec
        if spec is not None:
            summary["clusters"][name]["speculative"] = spec.summary(cw.busy_time)
        block = block_reports(sim).get(name)
        if block is not None and block.summary:
            summary["clusters"][name]["moe"] = block.summary
    for pc in sim.config.deployment.expert_clusters:
        gpus_total += pc.gpus
        pool = sim.expert_clusters.get(pc.name)
        fn = getattr(pool, "summary", None)
        summary.setdefault("expert_clusters", {})[pc.name] = {
            "gpu": pc.gpu, "gpus": pc.gpus, **(fn(run_span) if fn is not None else {})}
    summary["gpus"] = gpus_total
    wf = workflow_report(sim).summary
    if wf:
        summary["workflow"] = wf
    summary["throughput"]["output_tokens_per_s_per_gpu"] = out_tokens / makespan / max(gpus_total, 1)
    summary["slo"]["goodput_per_gpu"] = summary["slo"]["goodput_requests_per_s"] / max(gpus_total, 1)
    return summary


def _tier_stats(cw, first: int, tier: str) -> dict[str, int]:
    """A KV tier's counters, summed over replicas: the six of ``KVCache.stats`` from
    ``first`` on (blocks put in the tier, tokens hit there, blocks copied back, blocks
    dropped, and hits recomputed because that was estimated faster than copying)."""
    names = ("offloaded_blocks" if tier == "host" else "written_blocks",
             f"cached_tokens_from_{tier}", "blocks_loaded_back", "dropped_blocks",
             "recomputed_not_loaded_blocks", "recomputed_not_loaded_tokens")
    return {n: sum(r.kv.stats[first + i] for r in cw.replicas) for i, n in enumerate(names)}


def _prefix_cache(cw) -> dict[str, Any]:
    """A cluster's prefix-cache counters, over its replicas."""
    asked, hit, blocks, evicted = (sum(r.kv.stats[i] for r in cw.replicas) for i in range(4))
    return {
        "prompt_tokens_looked_up": asked,
        "cached_tokens": hit,
        "token_hit_rate": hit / asked if asked else 0.0,
        "blocks_hit": blocks,
        "evicted_blocks": evicted,
        "cached_blocks_at_end": sum(len(r.kv.entries) for r in cw.replicas),
        **({"host_tier": _tier_stats(cw, 4, "host")}
           if any(r.kv.host_capacity for r in cw.replicas) else {}),
        **({"disk_tier": _tier_stats(cw, 10, "disk")}
           if any(r.kv.disk_capacity for r in cw.replicas) else {}),
    }


def _predictor_share(sim: Simulation) -> dict[str, float]:
    total: dict[str, float] = {}
    for ex in sim.executors.values():
        for k, v in ex.credit_by_backend().items():
            total[k] = total.get(k, 0.0) + v
    s = sum(total.values())
    return {k: (v / s if s else 0.0) for k, v in total.items()}


# The per-iteration values the summary uses, from a chunk of iteration records.
_ITER_COLUMNS = {
    "batch": lambda a: a[:, 2] + a[:, 3],  # prefills + decodes
    "tokens": lambda a: a[:, 4],
    "kv_used": lambda a: a[:, 5],
}


def _iteration_column(sim: Simulation, cw, name: str) -> np.ndarray:
    """One of ``_ITER_COLUMNS`` over a cluster's iterations, replicas in order, read a
    chunk at a time (the records may be spilled to files)."""
    spill = sim.controller.iterlog
    out = np.empty(sum(spill.count(r) for r in cw.replicas))
    fn, k = _ITER_COLUMNS[name], 0
    for rep in cw.replicas:
        for a in spill.chunks(rep):
            out[k:k + len(a)] = fn(a)
            k += len(a)
    return out


def _iterations(sim: Simulation, cw) -> dict[str, np.ndarray]:
    """All of ``_ITER_COLUMNS`` of a cluster."""
    return {name: _iteration_column(sim, cw, name) for name in _ITER_COLUMNS}


def simulator_stats(sim: Simulation) -> dict[str, Any]:
    """How fast the simulator ran (varies run to run; kept out of summary.json)."""
    import resource

    from frontier_core._version import __version__

    n = len(sim.controller.log) + len(sim.controller.active)
    wall = max(sim.wall_s, 1e-9)
    return {
        "frontier_version": __version__,
        "wall_s": sim.wall_s,
        "events": sim.env.events,
        "events_per_s": sim.env.events / wall,
        "requests_per_wall_s": n / wall,
        "simulated_s": sim.env.now,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def _fmt_column(c: np.ndarray) -> list[str]:
    """``_fmt`` of every value of a column."""
    if c.dtype.kind == "f":
        return ["" if x != x else repr(x) for x in c.tolist()]
    if c.dtype.kind in "iu":
        return list(map(str, c.tolist()))
    return [_fmt(v) for v in c.tolist()]


def request_columns(col: dict[str, np.ndarray]) -> list[str]:
    """The columns of requests.csv, in order: the kernel's, then any others present."""
    return list(REQUEST_COLUMNS) + [c for c in col if c not in REQUEST_COLUMNS
                                    and c not in _INTERNAL_COLUMNS]


# Rows formatted per write of requests.csv (bounds the text held at once).
CSV_CHUNK = 4096


def write_requests_csv(col: dict[str, np.ndarray], f: TextIO) -> None:
    """Write the per-request table as CSV, ``CSV_CHUNK`` rows at a time."""
    names = request_columns(col)
    csv.writer(f, lineterminator="\n").writerow(names)
    cols = [col[c] for c in names]
    for lo in range(0, len(col["id"]), CSV_CHUNK):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        # NOTE: perf — formatted a column at a time (a float column without a type
        # check per value); the same text as ``_fmt`` of each value.
        part = [_fmt_column(c[lo:lo + CSV_CHUNK]) for c in cols]
        w.writerows(zip(*part, strict=True))
        f.write(buf.getvalue())


def requests_csv(col: dict[str, np.ndarray]) -> str:
    """The text of requests.csv (``write_requests_csv`` writes it to a file)."""
    buf = io.StringIO()
    write_requests_csv(col, buf)
    return buf.getvalue()


# Events formatted per write of trace.json: bounds the text held at once.
TRACE_CHUNK = 4096


# Below this many microseconds a double's spacing is under 1e-3 / 4, so the 3-decimal
# text of the ``.3f`` format (stripped of trailing zeros) is the shortest that reads back as
# ``round(x, 3)``: exactly ``repr(round(x, 3))``, at a quarter of the cost.
_FAST_US = 1e12


def _us3(col: list[float]) -> list[str]:
    """``repr(round(x, 3))`` of every value of ``col`` (each under ``_FAST_US``)."""
    out = []
    append = out.append
    for x in col:
        s = f"{x:.3f}".rstrip("0")
        append(s + "0" if s[-1] == "." else s)
    return out


def _iteration_events(pid: int, tid: int, a: np.ndarray) -> Iterator[str]:
    """One replica's iteration slices (rows of its iteration array) as compact JSON, the
    events of a chunk joined by commas, the same text ``json.dumps`` gives their dicts
    (keys in this order, floats by ``repr``)."""
    # NOTE: perf — formatted directly: the bulk of the trace, and twice as fast as
    # building a dict per slice for the C encoder; times in microseconds by ``_us3``.
    head = f'{{"ph":"X","pid":{pid},"tid":{tid},"ts":'
    for lo in range(0, len(a), TRACE_CHUNK):
        c = a[lo:lo + TRACE_CHUNK]
        us = c[:, :2] * 1e6
        if (np.abs(us) < _FAST_US).all():  # False on a NaN too
            ts, du = _us3(us[:, 0].tolist()), _us3(us[:, 1].tolist())
        else:
            ts = [repr(round(x, 3)) for x in us[:, 0].tolist()]
            du = [repr(round(x, 3)) for x in us[:, 1].tolist()]
        ints = c[:, 2:].astype(np.int64).tolist()
        yield ",".join([
            f'{head}{s},"dur":{d},"name":"{f"P{p}+D{k}" if p else f"D{k}"}",'
            f'"args":{{"prefills":{p},"decodes":{k},"tokens":{tok},"kv_blocks_used":{kvu}}}}}'
            for s, d, (p, k, tok, kvu) in zip(ts, du, ints, strict=True)])


def _encoded(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Events as compact JSON joined by commas, ``TRACE_CHUNK`` at a time."""
    # NOTE: perf — json.dumps encodes with the C encoder; json.dump always takes the
    # pure-Python one (it streams through iterencode), several times slower.
    it = iter(events)
    while chunk := list(islice(it, TRACE_CHUNK)):
        yield json.dumps(chunk, separators=(",", ":"))[1:-1]


def trace_parts(sim: Simulation) -> Iterator[str]:
    """The events of ``trace.json`` in file order, as compact JSON text: each part is one
    or more events joined by commas."""
    for pid, (name, cw) in enumerate(sim.clusters.items(), start=1):
        yield from _encoded([{"ph": "M", "name": "process_name", "pid": pid,
                              "args": {"name": f"cluster {name}"}}])
        for rep in cw.replicas:
            tid = rep.index + 1
            yield from _encoded([{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                                  "args": {"name": f"replica {rep.index}"}}])
            for a in sim.controller.iterlog.chunks(rep, TRACE_CHUNK):
                yield from _iteration_events(pid, tid, a)
    yield from _encoded(workflow_report(sim).trace_events)
    for rep in block_reports(sim).values():
        yield from _encoded(rep.trace_events)
    pids = trace_pids(sim)
    done: set[int] = set()
    for pc in sim.config.deployment.expert_clusters:
        yield from _encoded([{"ph": "M", "name": "process_name", "pid": pids[pc.name],
                              "args": {"name": f"expert cluster {pc.name}"}}])
        pool = sim.expert_clusters.get(pc.name)
        fn = getattr(pool, "trace_events", None)
        if fn is not None and id(pool) not in done:  # one object may run several pools
            done.add(id(pool))
            yield from _encoded(fn(pids))


def write_trace(sim: Simulation, f: TextIO) -> None:
    """Write the Chrome trace-event JSON (``perfetto_trace``) as compact JSON, a chunk of
    events at a time, never holding the whole trace."""
    f.write('{"traceEvents":[')
    sep = ""
    for part in trace_parts(sim):
        if part:
            f.write(sep)
            f.write(part)
            sep = ","
    f.write('],"displayTimeUnit":"ms"}')


def perfetto_trace(sim: Simulation) -> dict[str, Any]:
    """Chrome trace-event JSON: a process per cluster, a track per replica, a slice per
    iteration carrying its batch composition. Opens in ui.perfetto.dev."""
    buf = io.StringIO()
    write_trace(sim, buf)
    return json.loads(buf.getvalue())


def write_outputs(sim: Simulation, out_dir: str | Path, overwrite: bool = False, *,
                  gitignore: bool = False, col: dict[str, np.ndarray] | None = None
                  ) -> dict[str, Any]:
    """Write the run's results folder through ``frontier_core.app.outdir``: the files go to a
    temporary folder first, so a failed run leaves nothing behind; an existing results
    folder keeps the files Frontier did not write. ``overwrite`` allows replacing the
    results of another command (never a folder Frontier did not write); ``gitignore``
    puts a ``.gitignore`` in a new folder (the default one). Returns the summary."""
    from frontier_core.app import outdir

    col = request_table(sim) if col is None else col
    summary = summarize(sim, col)
    files: dict[str, str] = {
        "summary.json": json.dumps(summary, indent=2, sort_keys=False) + "\n",
        "simulator.json": json.dumps(simulator_stats(sim), indent=2) + "\n",
        "config.json": sim.config.model_dump_json(indent=2, exclude={"base_dir"}) + "\n",
    }
    for name, text in workflow_report(sim).files.items():
        if name in files or name in ("trace.json", "requests.csv") or "/" in name:
            raise ValueError(f"workflow output file {name!r} clashes with the kernel's outputs")
        files[name] = text
    for rep in block_reports(sim).values():
        for name, text in rep.files.items():
            if name in files or name in ("trace.json", "requests.csv") or "/" in name:
                raise ValueError(f"block output file {name!r} clashes with another output")
            files[name] = text

    def writer(tmp: Path) -> None:
        for name, text in files.items():
            (tmp / name).write_text(text)
        if sim.config.output.requests:
            with open(tmp / "requests.csv", "w") as f:
                write_requests_csv(col, f)
        if sim.config.output.trace:
            with open(tmp / "trace.json", "w") as f:
                write_trace(sim, f)

    outdir.write(out_dir, "run", writer, overwrite, option="-o/--output (or output.dir)",
                 gitignore=gitignore)
    return summary
