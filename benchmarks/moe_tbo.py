"""Two-batch overlap's gain against the batch per GPU: DeepSeek-V3 decode on H800s.

DP32/EP32 over four H800 nodes (DeepSeek's decode layout at a quarter of its scale),
DeepEP's low-latency kernels, routed shared expert, fp8 dispatch, roofline. For each
decode batch per GPU, one iteration's time with and without ``two_batch_overlap`` (the
SGLang decode schedule by default), through the kernel's whole iteration: attention,
the MoE block, the rest of the model. gain = time without ÷ time with − 1.

    python benchmarks/moe_tbo.py [--schedule sglang|two_streams] [--ep 32]
"""

from __future__ import annotations

import argparse

from frontier_core import load_registry
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.records import Batch, Request

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def iteration_s(tbo: bool, per_gpu: int, ep: int, schedule: str, context: int = 2048) -> float:
    cfg = RunConfig.model_validate({
        "model": "deepseek-v3", "predictor": "roofline", "seed": 0,
        "deployment": {"clusters": [{
            "name": "decode", "gpu": "h800", "tp": 1, "dp": ep,
            "moe": {"two_batch_overlap": tbo, "overlap_schedule": schedule,
                    "shared_experts": "routed", "dispatch_dtype": "fp8",
                    "all_to_all": "deepep"}}]},
        "workload": {"arrival": {"process": "poisson", "rate": 1.0},
                     "prompt_len": {"dist": "fixed", "value": 64},
                     "output_len": {"dist": "fixed", "value": 8}, "num_requests": 1},
    })
    sim = assemble(cfg, load_registry())
    n = per_gpu * ep
    reqs = [Request(i, 0.0, context, 100, computed=context, generated=1,
                    prefill_target=context, dp_rank=i) for i in range(n)]
    return sim.executors["decode"].iteration(Batch(decode=reqs)).latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedule", default="sglang", choices=["sglang", "two_streams"])
    ap.add_argument("--ep", type=int, default=32)
    a = ap.parse_args()
    print("| decode batch per GPU | without TBO, ms | with TBO, ms | gain |")
    print("|---|---|---|---|")
    for b in BATCHES:
        off = iteration_s(False, b, a.ep, a.schedule)
        on = iteration_s(True, b, a.ep, a.schedule)
        print(f"| {b} | {off * 1e3:.2f} | {on * 1e3:.2f} | {off / on - 1:+.1%} |")


if __name__ == "__main__":
    main()
