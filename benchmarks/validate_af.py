"""Attention/FFN disaggregation with ping-pong pipelining: the micro-batch ablation and
the attention:FFN ratio, on a MegaScale-Infer-like setup.

    python benchmarks/validate_af.py [--json] [--requests N]

Mixtral-8x22B decode on A800s (80 GB), the attention side DP ranks of one GPU each, the
experts spread over 8 FFN GPUs (EP8), 200 Gb/s (25 GB/s line rate; 20 GB/s after the
kernel transfer model's 0.8 efficiency) per GPU between the sides;
a closed loop of 2,048 clients with 128-token prompts and 512-token answers; the
roofline predictor. Part 1: output tokens/s per GPU (attention + FFN GPUs) for
m = 1..4 micro-batches with 4 attention GPUs — MegaScale-Infer (Zhu et al., 2025,
§7 ablation) reports about 1.9x from m = 1 to 2 and a smaller gain from 2 to 3.
Part 2: m = 3, a fixed load of 512 clients, and 1, 2, 4, 8 attention GPUs against the
8 FFN GPUs: utilisation of each side and throughput per GPU (a fixed load, so that the
batch does not grow with the attention side's KV capacity). Needs
frontier-af-pingpong and frontier-moe-ep.
"""

from __future__ import annotations

import argparse
import json

from frontier_core import load_registry
from frontier_core.app.metrics import summarize
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig


def run(n_a: int, m: int, requests: int, registry, concurrency: int = 2048) -> dict:
    cfg = RunConfig.model_validate({
        "model": "mixtral-8x22b", "predictor": "roofline",
        "deployment": {"clusters": [{
            "name": "decode", "gpu": "a800", "dp": n_a, "tp": 1,
            "scheduler": {"name": "vllm", "max_num_seqs": 4096, "max_num_batched_tokens": 4096},
            "ffn": {"name": "af", "ffn_gpus": 8, "micro_batches": m, "bandwidth_gbs": 25},
        }]},
        "workload": {"closed_loop": {"concurrency": concurrency},
                     "prompt_len": {"dist": "fixed", "value": 128},
                     "output_len": {"dist": "fixed", "value": 512},
                     "num_requests": requests},
        "output": {"trace": False},
    })
    sim = assemble(cfg, registry).run()
    s = summarize(sim)
    af = s["clusters"]["decode"]["moe"]
    return {
        "attention_gpus": n_a, "ffn_gpus": 8, "micro_batches": m, "gpus": s["gpus"],
        "tokens_per_s_per_gpu": s["throughput"]["output_tokens_per_s_per_gpu"],
        "tpot_ms": s["latency_s"]["tpot_s"]["mean"] * 1e3,
        "mean_batch": s["clusters"]["decode"]["batch_size"]["mean"],
        "busy_attention": af["utilisation"]["attention"], "busy_ffn": af["utilisation"]["ffn"],
        "busy_link": af["utilisation"]["a2f"], "critical": af["critical_resource"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--requests", type=int, default=4096)
    a = ap.parse_args()
    reg = load_registry()
    ablation = [run(4, m, a.requests, reg) for m in (1, 2, 3, 4)]
    ratio = [run(n, 3, a.requests // 2, reg, concurrency=512) for n in (1, 2, 4, 8)]
    if a.json:
        print(json.dumps({"ablation": ablation, "ratio": ratio}, indent=2))
        return
    print("m ablation (4 attention + 8 FFN A800s): tok/s/GPU, gain over previous m, TPOT ms,"
          " busy attention/FFN")
    prev = None
    for r in ablation:
        gain = f"{r['tokens_per_s_per_gpu'] / prev:.2f}x" if prev else "-"
        prev = r["tokens_per_s_per_gpu"]
        print(f"  m={r['micro_batches']}  {r['tokens_per_s_per_gpu']:7.1f}  {gain:>6}  "
              f"{r['tpot_ms']:6.1f}  {r['busy_attention']:.0%}/{r['busy_ffn']:.0%}")
    print("attention:FFN ratio (m=3, 8 FFN GPUs, 512 clients): tok/s/GPU, busy attention/FFN,"
          " critical")
    for r in ratio:
        print(f"  {r['attention_gpus']}:8  {r['tokens_per_s_per_gpu']:7.1f}  "
              f"{r['busy_attention']:.0%}/{r['busy_ffn']:.0%}  {r['critical']}"
              f"  (batch {r['mean_batch']:.0f})")


if __name__ == "__main__":
    main()
