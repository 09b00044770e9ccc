"""Stragglers and redundant experts in the moe block, with the roofline predictor.

    python benchmarks/moe_stragglers.py [--json]

Table 1: expert-phase time (slowest EP rank, mean over a model's MoE layers and
three routing draws) of power_law:1.2 over balanced routing, EP8 (dp 8, tp 1) on
H100, at few and many tokens per layer. Table 2: Qwen3-30B-A3B on EP32 with EPLB
and 0..224 redundant slots: the drawn max/mean tokens over ranks at 16,384 tokens
and the expert-phase time at 4,096 and 65,536 tokens. Needs frontier-moe-ep; runs in a
few seconds.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from frontier_core import load_registry
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig


def build(model: str, dp: int, moe: dict, registry) -> tuple:
    cfg = RunConfig.model_validate({
        "model": model, "predictor": "roofline",
        "deployment": {"clusters": [{"name": "main", "gpu": "h100-sxm", "tp": 1, "dp": dp,
                                     "moe": moe}]},
        "workload": {"arrival": {"process": "poisson", "rate": 1.0}, "num_requests": 1,
                     "prompt_len": {"dist": "fixed", "value": 10},
                     "output_len": {"dist": "fixed", "value": 10}},
    })
    sim = assemble(cfg, registry)
    return sim.executors["main"].moe_ffn, sim.executors["main"]


def expert_time(block, ex, tokens: int, reps: int = 3) -> float:
    tok = np.full(block.dp, tokens // block.dp, np.int64)
    credit = [0.0] * len(ex.chain)
    return float(np.mean([block.phases(tok, 0.0, ex.answer, credit, False)[2].mean()
                          for _ in range(reps)]))


def stragglers(registry) -> list[dict]:
    rows = []
    for model in ("mixtral-8x7b", "qwen3-30b-a3b"):
        skew = build(model, 8, {"routing": "power_law:1.2"}, registry)
        bal = build(model, 8, {"routing": "balanced"}, registry)
        for tokens in (16, 256, 4096, 16384):
            rows.append({"model": model, "tokens": tokens,
                         "ratio": expert_time(*skew, tokens) / expert_time(*bal, tokens)})
    return rows


def redundancy(registry) -> list[dict]:
    rows = []
    for r in (0, 32, 64, 128, 224):
        moe = {"routing": "power_law:1.2", "placement": "eplb", "redundant_experts": r}
        block, ex = build("qwen3-30b-a3b", 32, moe, registry)
        st = block.placement.slot_tokens(block.routing.draw(16384)).sum(axis=2)
        rows.append({
            "redundant": r,
            "max_over_mean_16k": float((st.max(axis=1) / st.mean(axis=1)).mean()),
            "expert_us_4k": expert_time(block, ex, 4096) * 1e6,
            "expert_us_64k": expert_time(block, ex, 65536) * 1e6,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    reg = load_registry()
    out = {"stragglers": stragglers(reg), "redundancy": redundancy(reg)}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("power_law:1.2 ÷ balanced, expert phase, EP8")
    for r in out["stragglers"]:
        print(f"  {r['model']:<15} {r['tokens']:>6} tokens  {r['ratio']:.2f}x")
    print("Qwen3-30B-A3B EP32, eplb: redundant, max/mean @16k, expert µs @4k, @64k")
    for r in out["redundancy"]:
        print(f"  {r['redundant']:>4}  {r['max_over_mean_16k']:.3f}  {r['expert_us_4k']:7.1f}"
              f"  {r['expert_us_64k']:7.1f}")


if __name__ == "__main__":
    main()
