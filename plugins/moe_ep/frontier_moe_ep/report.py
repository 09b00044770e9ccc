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


def block_report(block: MoEBlock, pid: int, name: str) -> WorkflowReport:
    st, o = block.stats, block.opts
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
        "two_batch_overlap": o.two_batch_overlap, "iterations": st.steps,
        "all_to_all": o.all_to_all, "ll_nvlink": o.ll_nvlink,
        # micro-batches (layer stacks) whose dispatch and combine used each kernel family
        "all_to_all_kernels": dict(st.kernels),
        # max ÷ mean tokens over EP ranks, averaged over an iteration's MoE layers
        "straggler_ratio": _dist(ratio),
        "balancedness": float(np.mean(1.0 / ratio)) if len(ratio) else None,
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
        },
        "communication_fraction": (disp + comb) / work if work else 0.0,
        "hidden_by_overlap_s": max(0.0, work - step) if o.two_batch_overlap else 0.0,
    }
    events: list[dict[str, Any]] = []
    named: set[int] = set()
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
        + (f", {summary['hidden_by_overlap_s'] * 1e3:.2f} ms hidden by two-batch overlap"
           if o.two_batch_overlap else "")
    )
    return WorkflowReport(summary=summary, trace_events=events, lines=[line])
