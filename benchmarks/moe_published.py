"""DeepSeek-V3 wide-EP throughput per node against figures SGLang published for its
large-scale EP deployment on H100s (lmsys.org/blog/2025-05-05-large-scale-ep: prefill on
4 nodes at EP32, 50,302 input tokens/s per node for 4K prompts under balanced routing;
decode on 9 nodes at EP72, 22.3k output tokens/s per node for 2,000-token inputs).

Each case is one iteration through the kernel (roofline unless --predictor): DP attention,
DeepEP's kernels (normal for prefill, low-latency for decode), fp8 dispatch, EPLB with
redundant slots, two-batch overlap with SGLang's schedules. Prefill runs 16,384 tokens
per GPU (four 4K prompts, as DeepSeek's profile); decode, whose batch per GPU the blog
does not give, runs 64, 128 and 256 sequences per GPU.

    python benchmarks/moe_published.py [--predictor roofline]
"""

from __future__ import annotations

import argparse

from frontier_core import load_registry
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.records import Batch, Request


def _sim(ep: int, redundant: int, predictor: str, reg):
    cfg = RunConfig.model_validate({
        "model": "deepseek-v3", "predictor": predictor, "seed": 0,
        "deployment": {"clusters": [{"name": "c", "gpu": "h100-sxm", "tp": 1, "dp": ep, "moe": {
            "two_batch_overlap": True, "dispatch_dtype": "fp8", "all_to_all": "deepep",
            "placement": "eplb", "redundant_experts": redundant}}]},
        "workload": {"arrival": {"process": "poisson", "rate": 1.0},
                     "prompt_len": {"dist": "fixed", "value": 64},
                     "output_len": {"dist": "fixed", "value": 8}, "num_requests": 1}})
    return assemble(cfg, reg).executors["c"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", default="roofline")
    a = ap.parse_args()
    reg = load_registry()
    print("| case | published | Frontier | error |")
    print("|---|---|---|---|")
    ex = _sim(32, 32, a.predictor, reg)
    reqs = [Request(i, 0.0, 4096, 10, prefill_target=4096, dp_rank=i) for i in range(32 * 4)]
    t = ex.iteration(Batch(prefill=reqs, chunks=[4096] * len(reqs))).latency
    got = 32 * 4 * 4096 / t / 4
    print(f"| prefill EP32, 4K prompts, input tok/s per node | 50,302 | {got:,.0f} | "
          f"{got / 50302 - 1:+.1%} |")
    ex = _sim(72, 32, a.predictor, reg)
    for per in (64, 128, 256):
        reqs = [Request(i, 0.0, 2000, 100, computed=2000, generated=1, prefill_target=2000,
                        dp_rank=i) for i in range(72 * per)]
        t = ex.iteration(Batch(decode=reqs)).latency
        got = 8 * per / t
        print(f"| decode EP72, {per} sequences per GPU, output tok/s per node | 22,300 | "
              f"{got:,.0f} | {got / 22300 - 1:+.1%} |")


if __name__ == "__main__":
    main()
