"""Cross-cluster expert routing: should DeepSeek-V3's hot experts live on H200s and the
cold ones on A100s? All experts on 24 H200s, all on 24 A100s, and the split of
examples/moe_cross_cluster.yaml (the hottest quarter, by expected load, on 8 H200s and
the rest on 16 A100s), side by side; then the split with a slower and slower link
between the attention GPUs and the expert clusters, to show where the link becomes
the bottleneck.

    python benchmarks/cross_cluster.py [--json] [--requests N] [--concurrency C]

Attention on 8 H100s (DP attention), power-law routing (alpha 1.01), two micro-batches,
fp8 dispatch, a closed loop of C clients (fixed load, so throughput compares), the
roofline predictor. Needs frontier-moe-ep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frontier_core import load_registry
from frontier_core.app.metrics import summarize
from frontier_core.assemble import assemble
from frontier_core.configfile import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "moe_cross_cluster.yaml"
LAYOUTS = {
    "all H200 (24)": ([("hot", "h200", 24)], {"hot": 256}),
    "all A100 (24)": ([("cold", "a100-80g-sxm", 24)], {"cold": 256}),
    "split 8 H200 + 16 A100": ([("hot", "h200", 8), ("cold", "a100-80g-sxm", 16)],
                               {"hot": 64, "cold": 192}),
}


def run(name: str, requests: int, concurrency: int, registry, bandwidth: float | None = None
        ) -> dict:
    pools, experts = LAYOUTS[name]
    sets = [f"workload.num_requests={requests}", "output.trace=false",
            "workload.arrival=null",
            f"workload.closed_loop={{concurrency: {concurrency}}}"]
    cfg = load_config(EXAMPLE, sets)
    data = cfg.model_dump(exclude={"base_dir"})
    data["deployment"]["expert_clusters"] = [
        {"name": n, "gpu": g, "gpus": k} for n, g, k in pools]
    moe = data["deployment"]["clusters"][0]["moe"]
    moe["experts"] = experts
    if bandwidth is not None:
        moe["links"] = {n: {"bandwidth_gbs": bandwidth} for n, _, _ in pools}
    sim = assemble(type(cfg).model_validate(data), registry).run()
    s = summarize(sim)
    block = s["clusters"]["attention"]["moe"]
    pools_out = s["expert_clusters"]
    per_it = block["seconds_per_iteration"]
    link = max(v["seconds_per_iteration"]["dispatch"] + v["seconds_per_iteration"]["combine"]
               for v in block["holders"].values())
    return {
        "layout": name, "gpus": s["gpus"],
        "link_gbs": {k: v["link_gbs"] for k, v in block["holders"].items()},
        "tokens_per_s": s["throughput"]["output_tokens_per_s"],
        "tokens_per_s_per_gpu": s["throughput"]["output_tokens_per_s_per_gpu"],
        "tpot_ms": s["latency_s"]["tpot_s"]["p50"] * 1e3,
        "moe_ms_per_iteration": per_it["moe_layers_total"] * 1e3,
        "link_ms_per_iteration": link * 1e3,
        "busy": {k: v["busy_fraction"] for k, v in pools_out.items()},
        "attention_port": block["attention_port_busy_fraction"],
        "receive_busy": {k: v["receive_busy_fraction"] for k, v in pools_out.items()},
        "straggler": {k: v["straggler_share"] for k, v in pools_out.items()},
        "token_share": {k: v["expert_token_share"] for k, v in block["holders"].items()},
    }


def fmt(d: dict, spec: str = "{:.0%}") -> str:
    return ", ".join(f"{k} {spec.format(v)}" for k, v in d.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=256)
    args = ap.parse_args()
    reg = load_registry()
    rows = [run(n, args.requests, args.concurrency, reg) for n in LAYOUTS]
    split = "split 8 H200 + 16 A100"
    rows += [run(split, args.requests, args.concurrency, reg, bw)
             for bw in (400.0, 200.0, 100.0, 50.0, 25.0, 12.5)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| layout | link GB/s (achieved) | output tok/s | per GPU | TPOT p50 ms | MoE layers ms/it "
          "| link ms/it (slowest holder) | attention port busy | busy | receive port busy "
          "| last to return |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {fmt(r['link_gbs'], '{:g}')} | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s_per_gpu']:.0f} | {r['tpot_ms']:.1f} | "
              f"{r['moe_ms_per_iteration']:.1f} | {r['link_ms_per_iteration']:.1f} | "
              f"{fmt(r['attention_port'])} | "
              f"{fmt(r['busy'])} | {fmt(r['receive_busy'])} | {fmt(r['straggler'])} |")


if __name__ == "__main__":
    main()
