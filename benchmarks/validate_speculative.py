"""Speculative decoding and MTP: acceptance statistics and speed-ups from whole runs.

    python benchmarks/validate_speculative.py            # all three parts, ~1-2 min
    python benchmarks/validate_speculative.py --part mtp

1. ``formula``: mean tokens per verification step against (1 - p^(k+1)) / (1 - p), from
   runs of Llama-3.1-8B on one H100 (MTP drafter, roofline).
2. ``mtp``: one MTP token at DeepSeek's reported 85% acceptance, at a low, memory-bound
   load and at a high one, TPOT and output throughput against no speculation: for
   Llama-3.1-70B (TP4 on H100, given an MTP layer) and DeepSeek-V3 on 8 H200 (TP8
   attention, EP8 experts; needs frontier-moe-ep), where verifying a second token per
   sequence also wakes more experts, whose weights must be read.
3. ``draft``: Llama-3.1-8B with a Llama-3.2-1B draft model on one H100 for k = 2, 4, 6 at
   low and high load: drafting helps a memory-bound decode and costs a compute-bound one.

Uses the kernel's roofline. Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from frontier_core.app.metrics import request_table, summarize
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.plugins import load_registry


def config(model: str, gpu: str, spec: dict[str, Any] | None, rate: float, n: int,
           prompt: int, output: int, **cluster: Any) -> RunConfig:
    c: dict[str, Any] = {"name": "main", "gpu": gpu, **cluster}
    if spec is not None:
        c["speculative"] = spec
    return RunConfig.model_validate({
        "model": model,
        "deployment": {"clusters": [c]},
        "predictor": "roofline",
        "workload": {"arrival": {"process": "poisson", "rate": rate},
                     "prompt_len": {"dist": "lognormal", "median": prompt, "sigma": 0.5},
                     "output_len": {"dist": "fixed", "value": output},
                     "num_requests": n},
        "seed": 7,
    })


def run(cfg: RunConfig) -> dict[str, Any]:
    sim = assemble(cfg, load_registry()).run()
    s = summarize(sim, request_table(sim))
    c = s["clusters"]["main"]
    out = {"tpot_ms": s["latency_s"]["tpot_s"]["mean"] * 1e3,
           "ttft_ms": s["latency_s"]["ttft_s"]["mean"] * 1e3,
           "output_tok_s": s["throughput"]["output_tokens_per_s"],
           "mean_batch": c["batch_size"]["mean"]}
    if "speculative" in c:
        sp = c["speculative"]
        out.update(tokens_per_step=sp["tokens_per_step"],
                   expected=sp["expected_tokens_per_full_step"],
                   draft_time_fraction=sp["draft_time_fraction"])
    return out


def part_formula() -> None:
    for k in (1, 2, 4):
        for p in (0.5, 0.7, 0.8, 0.9):
            cfg = config("llama-3.1-8b", "h100-sxm", {"method": "mtp", "k": k, "acceptance": p},
                         rate=4, n=200, prompt=500, output=400)
            sim = assemble(cfg, load_registry()).run()
            sp = sim.executors["main"].spec
            full = sp.summary(1.0)
            print(json.dumps({"part": "formula", "k": k, "p": p,
                              "simulated": round(full["tokens_per_full_step"], 4),
                              "all_steps": round(full["tokens_per_step"], 4),
                              "formula": round((1 - p ** (k + 1)) / (1 - p), 4),
                              "steps": sp.steps,
                              "full_steps_fraction": round(full["full_steps_fraction"], 4)}))


def part_mtp() -> None:
    # A dense model given a DeepSeek-style MTP layer: verification of a second token
    # costs almost nothing while decode is memory-bound.
    for label, rate in (("low load", 0.5), ("high load", 8.0)):
        base = run(config("llama-3.1-70b", "h100-sxm", None, rate, 150, 1000, 500, tp=4))
        mtp = run(config("llama-3.1-70b", "h100-sxm",
                         {"method": "mtp", "k": 1, "acceptance": 0.85}, rate, 150, 1000, 500,
                         tp=4))
        print(json.dumps({"part": "mtp", "model": "llama-3.1-70b tp4 h100", "load": label,
                          "rate": rate, "base": base, "mtp": mtp,
                          "tpot_speedup": round(base["tpot_ms"] / mtp["tpot_ms"], 3)}))
    moe = {"ep": 8}
    for label, rate in (("low load", 0.5), ("high load", 12.0)):
        base = run(config("deepseek-v3", "h200", None, rate, 150, 1000, 500, tp=8, moe=moe))
        mtp = run(config("deepseek-v3", "h200", {"method": "mtp", "k": 1, "acceptance": 0.85},
                         rate, 150, 1000, 500, tp=8, moe=moe))
        print(json.dumps({"part": "mtp", "model": "deepseek-v3 tp8 ep8 h200", "load": label,
                          "rate": rate, "base": base, "mtp": mtp,
                          "tpot_speedup": round(base["tpot_ms"] / mtp["tpot_ms"], 3)}))


def part_draft() -> None:
    for label, rate in (("low load", 1.0), ("high load", 40.0)):
        base = run(config("llama-3.1-8b", "h100-sxm", None, rate, 400, 1000, 300))
        row: dict[str, Any] = {"part": "draft", "load": label, "rate": rate,
                               "base_tpot_ms": round(base["tpot_ms"], 2),
                               "base_mean_batch": round(base["mean_batch"], 1)}
        for k in (2, 4, 6):
            r = run(config("llama-3.1-8b", "h100-sxm",
                           {"method": "draft", "k": k, "acceptance": 0.8,
                            "draft_model": "llama-3.2-1b"}, rate, 400, 1000, 300))
            row[f"k{k}_tpot_speedup"] = round(base["tpot_ms"] / r["tpot_ms"], 3)
            row[f"k{k}_draft_time_fraction"] = round(r["draft_time_fraction"], 3)
        print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["formula", "mtp", "draft", "all"], default="all")
    a = ap.parse_args()
    np.seterr(all="ignore")
    for name, fn in (("formula", part_formula), ("mtp", part_mtp), ("draft", part_draft)):
        if a.part in (name, "all"):
            fn()


if __name__ == "__main__":
    main()
