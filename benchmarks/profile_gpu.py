"""Profile real kernels on this machine's GPU and compare `forest` with `proxy` on them.

What docs/accuracy.md still lacks is a heterogeneous-batch profile from an H100 or H200
(varlen FlashAttention, CUDA events). This script makes it in one command and needs
neither the `frontier` entry point nor an install, only the packages the kernel and
frontier-predictors import (torch, numpy, pandas, pyarrow, scikit-learn, pluggy, simpy,
pydantic, typer, rich, pyyaml, joblib):

    PYTHONPATH=.:plugins/predictors python3 benchmarks/profile_gpu.py -o OUT
    python benchmarks/profile_gpu.py -o /tmp/p --device cpu --quick     # a check, ~20 s

(A GPU image that has torch, pandas and scikit-learn but not simpy or pydantic needs
those as wheels: simpy, pydantic, pydantic-core, annotated-types, typing-inspection.)

Steps (``--steps`` picks some; each writes its tables under OUT/<step>/):

- ``llama8b``: Llama-3.1-8B at TP 1: GEMMs and attention (32 heads, 8 KV heads, dim 128).
- ``llama70b``: Llama-3.1-70B at TP 8: attention only (8 heads, 1 KV head per GPU).
- ``qwen3moe``: Qwen3-30B-A3B at EP 8: the expert GEMMs of one rank.

Then, for each step's attention tables, its rows are split at random (25% test, seed 0,
within the run: see docs/accuracy.md for why), `forest` and `proxy` are trained on the
rest, and both and the roofline are evaluated. OUT/eval.json holds
``{step: {backend: {op: metrics}}}`` (the metrics of ``frontier predictors eval
--json``) and the wall time of each step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins" / "predictors"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

STEPS = {
    "llama8b": {"model": "llama-3.1-8b", "tp": 1, "ops": "gemm,attention_prefill,attention_decode"},
    "llama70b": {"model": "llama-3.1-70b", "tp": 8, "ops": "attention_prefill,attention_decode"},
    "qwen3moe": {"model": "qwen3-30b-a3b", "tp": 8, "ep": 8, "ops": "moe_experts"},
}
ATTENTION = ("attention_prefill", "attention_decode")


def compare(tables: list[Path]) -> dict[str, dict]:
    """forest vs proxy vs roofline on a random quarter of the attention rows."""
    from frontier_predictors.evaluate import metrics, roofline_frame, split
    from frontier_predictors.models import train
    from frontier_predictors.profiles import load_tables

    df = load_tables(tables)
    df = df[df["op"].isin(ATTENTION)].reset_index(drop=True)
    if df.empty:
        return {}
    tr, te = split(df, "rows", 0.25, 0)
    out = {name: metrics(te, train(tr, name, seed=0).predict_frame(te))
           for name in ("forest", "proxy")}
    out["roofline"] = metrics(te, roofline_frame(te))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    ap.add_argument("--batches", type=int, default=4, help="attention batches per grid cell")
    ap.add_argument("--quick", action="store_true", help="the --quick grid (a check)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"some of {', '.join(STEPS)}")
    a = ap.parse_args()

    from frontier_predictors.profiler import run_profile

    from frontier_core import load_registry

    reg = load_registry(entry_points=False)
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        sys.exit(f"profile_gpu.py: unknown step(s) {', '.join(unknown)}; "
                 f"choose from {', '.join(STEPS)}")
    report: dict[str, dict] = {}
    for step in steps:
        spec = STEPS[step]
        t0 = time.perf_counter()
        paths = run_profile(reg.get("model", spec["model"]), out_dir=a.out / step, tp=spec["tp"],
                            ep=spec.get("ep", 1), ops=spec["ops"], quick=a.quick,
                            device=a.device, batches=a.batches,
                            progress=lambda m: print(m, flush=True))
        t1 = time.perf_counter()
        report[step] = {"profile_s": round(t1 - t0, 1), "tables": [str(p) for p in paths],
                        "compare": compare(paths)}
        report[step]["compare_s"] = round(time.perf_counter() - t1, 1)
        for backend, ops in report[step]["compare"].items():
            for op, m in ops.items():
                if m["n"]:
                    print(f"{step:9} {op:18} {backend:8} n={m['n']:4} "
                          f"median {100 * m['median_rel_err']:5.1f}%  "
                          f"p90 {100 * m['p90_rel_err']:5.1f}%  "
                          f"<=10% {100 * m['within_10pct']:5.1f}%", flush=True)
        print(f"{step}: profiled in {report[step]['profile_s']} s, "
              f"compared in {report[step]['compare_s']} s", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
