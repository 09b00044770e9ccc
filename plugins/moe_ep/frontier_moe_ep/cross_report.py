"""The cross_cluster block's report: per holder of experts (expert clusters and the
cluster's own GPUs) its experts, tokens, busy time, bytes and straggler share; the
rebalancing; Perfetto tracks with flows to the expert clusters; a CLI line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core import WorkflowReport

if TYPE_CHECKING:
    from frontier_moe_ep.cross import CrossClusterBlock

_TID_BASE = 300_000  # after the kernel's replica tracks and the other blocks' tracks
_PHASES = ("dispatch", "experts", "combine")


def block_report(block: CrossClusterBlock, pid: int, name: str) -> WorkflowReport:
    st, o, lay = block.stats, block.opts, block.layout
    n = max(st.steps, 1)
    span = float(np.frombuffer(st.span).sum()) if st.steps else 0.0
    tokens = float(st.expert_tokens.sum())
    holders: dict[str, Any] = {}
    for j, h in enumerate(block.holders):
        link = block.links[h.name]
        holders[h.name] = {
            "local": h.local, "gpu": h.device.name, "gpus": h.gpus, "experts": h.count,
            "expert_tokens": float(st.expert_tokens[j]),
            "expert_token_share": float(st.expert_tokens[j]) / tokens if tokens else 0.0,
            # Seconds of expert compute this cluster's iterations put on the holder, over
            # the MoE layers' time of those iterations.
            "busy_fraction": float(st.experts_s[j]) / span if span else 0.0,
            "bytes_sent": float(st.bytes_out[j]), "bytes_received": float(st.bytes_back[j]),
            "straggler_share": float(st.straggler[j]) / st.pairs if st.pairs else 0.0,
            "link_gbs": link.bandwidth / 1e9, "link_latency_us": link.latency * 1e6,
            "seconds_per_iteration": {
                "dispatch": float(st.dispatch_s[j]) / n, "experts": float(st.experts_s[j]) / n,
                "combine": float(st.combine_s[j]) / n},
        }
    summary: dict[str, Any] = {
        "block": "cross_cluster", "routing": o.routing, "placement": o.placement,
        "micro_batches": o.micro_batches, "dispatch_dtype": o.dispatch_dtype,
        "iterations": st.steps,
        "seconds_per_iteration": {"moe_layers_total": span / n, "attention": st.attention_s / n},
        "holders": holders,
        # The busiest attention GPU's scale-out port, over the MoE layers' time: every
        # token's copies to every expert cluster leave and return through it.
        "attention_port_busy_fraction": {
            "send": float(st.port_s[0]) / span if span else 0.0,
            "receive": float(st.port_s[1]) / span if span else 0.0},
        "rebalancing": {
            "every": o.rebalance_every, "rebalances": lay.rebalances,
            "experts_moved": lay.experts_moved, "bytes_moved": lay.bytes_moved,
            "stall_s": lay.stall_s},
    }
    events: list[dict[str, Any]] = []
    named: set[int] = set()

    def track(tid: int, label: str) -> None:
        if tid not in named:
            named.add(tid)
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": label}})

    for replica, (att, local) in st.trace:
        tid = _TID_BASE + replica * 10
        track(tid, f"replica {replica} · MoE attention")
        for start, dur, label, outs in att:
            ts = round(start * 1e6, 3)
            events.append({"ph": "X", "pid": pid, "tid": tid, "ts": ts,
                           "dur": round(dur * 1e6, 3), "name": label})
            events.extend({"ph": "s", "id": f, "pid": pid, "tid": tid, "ts": ts,
                           "name": "tokens", "cat": "experts"} for f in outs)
        for step, start, dur, label, fin, fout in local:
            tid_l = _TID_BASE + replica * 10 + 1 + step
            track(tid_l, f"replica {replica} · local {_PHASES[step]}")
            ts = round(start * 1e6, 3)
            events.append({"ph": "X", "pid": pid, "tid": tid_l, "ts": ts,
                           "dur": round(dur * 1e6, 3), "name": label})
            events.append({"ph": "f", "bp": "e", "id": fin, "pid": pid, "tid": tid_l,
                           "ts": ts, "name": "tokens", "cat": "experts"})
            if fout is not None:
                events.append({"ph": "s", "id": fout, "pid": pid, "tid": tid_l, "ts": ts,
                               "name": "tokens", "cat": "experts"})
    parts = " · ".join(
        f"{k} {v['experts']} ({v['gpu']}×{v['gpus']}, {v['expert_token_share']:.0%} of tokens, "
        f"last {v['straggler_share']:.0%})" for k, v in holders.items())
    line = (f"cross_cluster {name}: {parts} · MoE layers {span / n * 1e3:.2f} ms per "
            f"iteration" + (f" · {lay.rebalances} rebalances, stall {lay.stall_s * 1e3:.1f} ms"
                            if o.rebalance_every else ""))
    return WorkflowReport(summary=summary, trace_events=events, lines=[line])
