"""How far the analytical roofline is from measured iteration times.

Data: Splitwise's measured database (../shared/data/reference/splitwise_perf_model,
MIT): Llama-2-70B on DGX-A100 and DGX-H100 with TP 2/4/8 — whole-batch prefill time
(``prompt_time``) and time per decode iteration (``token_time``), medians over repeats.
For each measured configuration Frontier's ExecutionPredictor predicts the same
iteration with the chosen predictor chain; the script prints the median ratio
predicted/measured per GPU and TP degree, for prefill and decode.

    python benchmarks/validate_splitwise.py [--predictor roofline]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from frontier_core.components import BuildContext
from frontier_core.config import RunConfig
from frontier_core.execution.predictor import DenseFFN, ExecutionPredictor
from frontier_core.model.catalog import ModelSpec
from frontier_core.plugins import load_registry
from frontier_core.records import Batch, Request

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference" / "splitwise_perf_model" / "perf_model.csv"
GPU = {"a100-80gb": "a100-80g-sxm", "h100-80gb": "h100-sxm"}
LLAMA2_70B = ModelSpec(
    name="llama-2-70b", num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8,
    intermediate_size=28672, vocab_size=32000, max_context=4096,
)


def executor(registry, gpu: str, tp: int, chain: list[str]) -> ExecutionPredictor:
    hw = registry.get("hardware", gpu)
    cfg = RunConfig.model_validate({"workload": {"trace": {"format": "azure", "path": "x"}}})
    ctx = BuildContext(config=cfg, model=LLAMA2_70B, rng=np.random.default_rng(0), device=hw)
    t = registry.get("transfer", "links")
    ctx.transfer = t.factory(t.options(), ctx)
    preds = []
    for name in chain:
        spec = registry.get("predictor", name)
        preds.append((name, spec.factory(spec.options(), ctx)))
    return ExecutionPredictor(LLAMA2_70B, hw, tp, 1, preds, DenseFFN(LLAMA2_70B, tp))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--predictor", action="append", default=None)
    a = ap.parse_args()
    chain = a.predictor or ["roofline"]
    rows = defaultdict(list)
    with open(DATA) as f:
        for r in csv.DictReader(f):
            if r["model"] != "llama2-70b" or r["hardware"] not in GPU:
                continue
            key = (r["hardware"], int(r["tensor_parallel"]), int(r["prompt_size"]),
                   int(r["batch_size"]), int(r["token_size"]))
            rows[key].append((float(r["prompt_time"]), float(r["token_time"])))
    registry = load_registry()
    ratios = defaultdict(lambda: {"prefill": [], "decode": []})
    for (hwname, tp, prompt, bs, out), meas in sorted(rows.items()):
        if tp == 2 and bs == 64:
            continue  # anomalous rows (SOURCE.md)
        ex = executor(registry, GPU[hwname], tp, chain)
        p_ms = statistics.median(m[0] for m in meas)
        d_ms = statistics.median(m[1] for m in meas)
        reqs = [Request(i, 0.0, prompt, out, prefill_target=prompt) for i in range(bs)]
        pre = ex.iteration(Batch(prefill=reqs, chunks=[prompt] * bs)).latency * 1e3
        ctx_len = prompt + out // 2  # mean context over the generation
        dec = [Request(i, 0.0, prompt, out, computed=ctx_len, prefill_target=prompt, generated=1)
               for i in range(bs)]
        tok = ex.iteration(Batch(decode=dec)).latency * 1e3
        ratios[(hwname, tp)]["prefill"].append(pre / p_ms)
        ratios[(hwname, tp)]["decode"].append(tok / d_ms)
    print(f"predictor chain: {chain}; data: {DATA.name} (Llama-2-70B)")
    print(f"{'gpu':<11}{'tp':>3}{'n':>5}  {'prefill pred/meas (median, range)':<36}{'decode pred/meas (median, range)'}")
    for (hwname, tp), d in sorted(ratios.items()):
        p, t = d["prefill"], d["decode"]
        print(f"{hwname:<11}{tp:>3}{len(p):>5}  {statistics.median(p):>6.2f} ({min(p):.2f}-{max(p):.2f}){'':<20}"
              f"{statistics.median(t):>6.2f} ({min(t):.2f}-{max(t):.2f})")


if __name__ == "__main__":
    main()
