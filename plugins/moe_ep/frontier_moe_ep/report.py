"""The MoE block's report: summary section, Perfetto tracks per EP rank, CLI line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core import WorkflowReport

if TYPE_CHECKING:
    from frontier_moe_ep.block import MoEBlock

_TID_BASE = 100_000  # EP-rank tracks sit after the kernel's replica tracks (tid = replica + 1)


def _dist(x: np.ndarray) -> dict[str, float | None]:
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(x.max())}


def _timeline(ratio: np.ndarray, points: int = 20) -> dict[str, Any]:
    """The straggler ratio over the run: the mean of each of up to ``points`` equal runs of
    consecutive iterations."""
    per = max(1, -(-len(ratio) // points))
    chunks = [ratio[i:i + per] for i in range(0, len(ratio), per)]
    return {"iterations_per_point": per, "values": [round(float(c.mean()), 4) for c in chunks]}


def _eplb(block: MoEBlock) -> dict[str, Any]:
    """The EPLB section: the policy used, and with live rebalancing each rebalance."""
    from frontier_moe_ep.eplb import choose_policy

    o, live = block.opts, block.live
    history = live.history if live is not None else []
    before = [h.window_before for h in history]
    after = [h.window_after for h in history]
    return {
        "policy": choose_policy(o.eplb_policy, block.eplb_groups, block.eplb_nodes, block.ep),
        "expert_groups": block.eplb_groups, "nodes": block.eplb_nodes,
        "interval": o.eplb_interval, "window": live.window if live is not None else None,
        "rebalances": len(history),
        "experts_moved": sum(h.experts_moved for h in history),
        "bytes_moved": float(sum(h.bytes_moved for h in history)),
        "stall_s": float(sum(h.stall_s for h in history)),
        # max ÷ mean rank tokens of each rebalance's window, under the old and the new
        # placement, averaged over the rebalances
        "imbalance_before": float(np.mean(before)) if before else None,
        "imbalance_after": float(np.mean(after)) if after else None,
        "timeline": [{
            "iteration": h.iteration, "time_s": h.time_s, "experts_moved": h.experts_moved,
            "bytes_moved": h.bytes_moved, "stall_s": h.stall_s,
            "window_imbalance_before": round(h.window_before, 4),
            "window_imbalance_after": round(h.window_after, 4),
            "drawn_imbalance_since_last": (None if h.drawn_since_last is None
                                           else round(h.drawn_since_last, 4)),
        } for h in history],
    }


def block_report(block: MoEBlock, pid: int, name: str) -> WorkflowReport:
    st, o = block.stats, block.opts
    overlapped = o.two_batch_overlap or block.schedule == "trtllm"
    n = max(st.steps, 1)
    other, extra, experts, disp, comb = (float(v) / n for v in st.phase_s)
    step = float(np.frombuffer(st.step_s).mean()) if st.steps else 0.0
    work = other + extra + experts + disp + comb
    ratio = np.frombuffer(st.ratio) if len(st.ratio) else np.zeros(0)
    rank_share = st.rank_tokens / st.rank_tokens.sum() if st.rank_tokens.sum() else st.rank_tokens
    expert_share = (st.expert_tokens / st.expert_tokens.sum() if st.expert_tokens.sum()
                    else st.expert_tokens)
    summary: dict[str, Any] = {
        "ep": block.ep, "dp": block.dp, "tp": block.tp,
        "experts": block.model.num_experts, "slots": block.slots,
        "experts_per_rank": block.per_rank, "routing": str(block.spec),
        "placement": o.placement, "redundant_experts": o.redundant_experts,
        "dispatch_dtype": o.dispatch_dtype, "shared_experts": o.shared_experts,
        "two_batch_overlap": o.two_batch_overlap, "overlap_schedule": block.schedule,
        "iterations": st.steps,
        "all_to_all": o.all_to_all, "ll_nvlink": o.ll_nvlink,
        # micro-batches (layer stacks) whose dispatch and combine used each kernel family
        "all_to_all_kernels": dict(st.kernels),
        # max ÷ mean tokens over EP ranks, averaged over an iteration's MoE layers
        "straggler_ratio": _dist(ratio),
        "balancedness": float(np.mean(1.0 / ratio)) if len(ratio) else None,
        "straggler_ratio_timeline": _timeline(ratio),
        "rank_token_share": [round(float(x), 6) for x in rank_share],
        "rank_load_histogram": {
            "bins": [float(b) for b in st.BINS[:-1]] + ["inf"],
            "counts": [int(c) for c in st.hist],
            "note": "rank tokens ÷ mean over ranks, one value per rank, layer and micro-batch",
        },
        "expert_utilisation": st.busy_slots / st.slot_layers if st.slot_layers else None,
        "expert_token_share": [round(float(x), 6) for x in expert_share],
        # Seconds per iteration, summed over the MoE layers (critical path: slowest rank).
        "seconds_per_iteration": {
            "moe_layers_total": step, "attention_and_rest": other,
            "gate_and_shared": extra, "experts": experts, "dispatch": disp, "combine": comb,
            "eplb_stall": st.stall_s / n,
        },
        "communication_fraction": (disp + comb) / work if work else 0.0,
        "hidden_by_overlap_s": max(0.0, work - step) if overlapped else 0.0,
    }
    if o.placement == "eplb" and block.ep > 1:
        summary["eplb"] = _eplb(block)
    events: list[dict[str, Any]] = []
    named: set[int] = set()
    if block.live is not None and block.live.history:
        tid = _TID_BASE + 999_999
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                       "args": {"name": "EPLB rebalances (weight moves)"}})
        for h in block.live.history:
            events.append({"ph": "X", "pid": pid, "tid": tid, "ts": round(h.time_s * 1e6, 3),
                           "dur": round(h.stall_s * 1e6, 3), "name": "rebalance",
                           "args": {"experts_moved": h.experts_moved, "bytes": h.bytes_moved,
                                    "imbalance_before": h.window_before,
                                    "imbalance_after": h.window_after}})
    for replica, now, t, busy, comm, kernels in st.trace:
        slowest = float(busy.max(initial=0.0))
        for r, b in enumerate(busy.tolist()):
            tid = _TID_BASE + replica * 1000 + r
            if tid not in named:
                named.add(tid)
                events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                               "args": {"name": f"replica {replica} · EP rank {r}"}})
            ts = now * 1e6
            args = {"moe_layers": block.layers, "iteration_s": t}
            events.append({"ph": "X", "pid": pid, "tid": tid, "ts": round(ts, 3),
                           "dur": round(b * 1e6, 3), "name": "experts", "args": args})
            if slowest > b:
                events.append({"ph": "X", "pid": pid, "tid": tid, "ts": round(ts + b * 1e6, 3),
                               "dur": round((slowest - b) * 1e6, 3),
                               "name": "waiting for slowest rank", "args": args})
        tid = _TID_BASE + replica * 1000 + 999
        if tid not in named:
            named.add(tid)
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": f"replica {replica} · all-to-all"}})
        ts = now * 1e6
        events.append({"ph": "X", "pid": pid, "tid": tid, "ts": round(ts, 3),
                       "dur": round(float(comm[0]) * 1e6, 3), "name": "dispatch",
                       "args": {"kernels": kernels}})
        events.append({"ph": "X", "pid": pid, "tid": tid, "ts": round(ts + comm[0] * 1e6, 3),
                       "dur": round(float(comm[1]) * 1e6, 3), "name": "combine",
                       "args": {"kernels": kernels}})
    r = summary["straggler_ratio"]
    line = (
        f"moe {name}: EP{block.ep} · {block.spec} · {o.placement}"
        + (f" +{o.redundant_experts} slots" if o.redundant_experts else "")
        + (f" · straggler max/mean {r['mean']:.2f} (p99 {r['p99']:.2f})" if r["mean"] else "")
        + (" · all-to-all " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in
                                         st.kernels.items() if v) if any(st.kernels.values())
           else "")
        + f" · per iteration: experts {experts * 1e3:.2f} ms, all-to-all "
        f"{(disp + comb) * 1e3:.2f} ms ({summary['communication_fraction']:.0%} of MoE-layer work)"
        + (f", {summary['hidden_by_overlap_s'] * 1e3:.2f} ms hidden by "
           + ("two-batch overlap" if o.two_batch_overlap else "the shared experts' overlap")
           if overlapped else "")
    )
    ev = summary.get("eplb")
    if ev and ev["interval"]:
        line += (f" · live EPLB ({ev['policy']}) every {ev['interval']} iterations: "
                 f"{ev['rebalances']} rebalances, {ev['experts_moved']} expert copies moved, "
                 f"{ev['stall_s'] * 1e3:.2f} ms stalled")
        if ev["rebalances"]:
            line += (f", window imbalance {ev['imbalance_before']:.2f} → "
                     f"{ev['imbalance_after']:.2f}")
    return WorkflowReport(summary=summary, trace_events=events, lines=[line])
