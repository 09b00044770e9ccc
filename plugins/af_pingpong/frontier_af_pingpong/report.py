"""The af block's report: utilisation and bubbles per side, the critical resource,
Perfetto tracks of the ping-pong, and a CLI line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_af_pingpong.schedule import RESOURCES
from frontier_core import WorkflowReport

if TYPE_CHECKING:
    from frontier_af_pingpong.block import AFBlock

_TID_BASE = 200_000
_LABEL = {"attention": "attention", "a2f": "A→F", "ffn": "FFN", "f2a": "F→A"}


def block_report(block: AFBlock, pid: int, name: str) -> WorkflowReport:
    st, o = block.stats, block.opts
    span = np.frombuffer(st.makespan) if st.steps else np.zeros(0)
    busy = (np.frombuffer(st.busy).reshape(-1, 4) if st.steps else np.zeros((0, 4)))
    crit = (np.frombuffer(st.critical).reshape(-1, 4) if st.steps else np.zeros((0, 4)))
    total = float(span.sum())
    frac = {r: (float(busy[:, j].sum()) / total if total else 0.0)
            for j, r in enumerate(RESOURCES)}
    bound = max(RESOURCES, key=lambda r: frac[r])
    n = max(st.steps, 1)
    summary: dict[str, Any] = {
        "attention_gpus": block.n_a * block.tp, "ffn_gpus": block.n_f,
        "ffn_gpu": block.dev_f.name, "micro_batches": o.micro_batches,
        "link": block.link_kind, "link_gbs": block.link.bandwidth / 1e9,
        "iterations": st.steps,
        # Share of the MoE/FFN layers' time each resource was busy (1 - its bubbles).
        "utilisation": frac,
        "bubble_fraction": {"attention": 1.0 - frac["attention"], "ffn": 1.0 - frac["ffn"]},
        "critical_resource": bound,
        # Share of the iterations' time each resource spends on the critical path (the
        # rest of the path, if any, is waiting at the start).
        "critical_path_share": {
            r: (float(crit[:, j].sum()) / total if total else 0.0)
            for j, r in enumerate(RESOURCES)
        },
        "seconds_per_iteration": {
            "layers_total": total / n,
            **{r: float(busy[:, j].sum()) / n for j, r in enumerate(RESOURCES)},
        },
        "mean_micro_batches": float(np.frombuffer(st.micro).mean()) if st.steps else 0.0,
    }
    if block.moe is not None:
        from frontier_moe_ep.report import block_report as moe_report

        moe = moe_report(block.moe, pid, name).summary
        summary["experts"] = {k: moe[k] for k in (
            "ep", "slots", "experts_per_rank", "routing", "placement", "redundant_experts",
            "straggler_ratio", "balancedness", "expert_utilisation", "rank_token_share")}
    events: list[dict[str, Any]] = []
    named: set[int] = set()
    for replica, t0, starts, dur in st.trace:
        for j, r in enumerate(RESOURCES):
            tid = _TID_BASE + replica * 10 + j
            if tid not in named:
                named.add(tid)
                events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                               "args": {"name": f"replica {replica} · {_LABEL[r]}"}})
            layers, mb = starts.shape[1:]
            for li in range(layers):
                for i in range(mb):
                    d = float(dur[j, li, i])
                    if d <= 0:
                        continue
                    events.append({"ph": "X", "pid": pid, "tid": tid,
                                   "ts": round((t0 + float(starts[j, li, i])) * 1e6, 3),
                                   "dur": round(d * 1e6, 3), "name": f"L{li} mb{i}"})
    line = (
        f"af {name}: {block.n_a * block.tp} attention + {block.n_f} FFN GPUs "
        f"({block.dev_f.name}), m={o.micro_batches}, {block.link_kind} "
        f"{block.link.bandwidth / 1e9:.0f} GB/s · busy attention {frac['attention']:.0%}, "
        f"FFN {frac['ffn']:.0%}, A→F {frac['a2f']:.0%}, F→A {frac['f2a']:.0%} · "
        f"critical: {bound}"
    )
    return WorkflowReport(summary=summary, trace_events=events, lines=[line])
