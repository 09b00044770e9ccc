"""Prefill/decode disaggregation against DistServe's documented result, and PD vs co-located.

DistServe (OSDI '24) documents for its simulator: OPT-13B, ShareGPT, one node of
4×A100-80G, TTFT SLO 200 ms and TPOT SLO 100 ms at 90% attainment, 300 requests →
best per-GPU rate 1.56 req/s with prefill TP2 + decode TP1. ``search`` repeats that
search in Frontier with the same cost model (the ``distserve`` predictor: DistServe's
own fitted A100 latency formulas) and the same procedure (one prefill and one decode
instance, TP and PP in {1, 2, 4} on at most 4 GPUs; bisection of the per-GPU rate in
[0, 5] to 0.25; success = p90 TTFT < 200 ms and p90 TPOT < 100 ms, each on its own).

``compare`` runs the qualitative check: the best goodput per GPU (≥ 90% of requests
meeting both SLOs) of co-located serving vs PD splits of the same 4 GPUs, at a tight
and at a loose TPOT SLO.

Workload: DistServe's ShareGPT file (multi-turn prompts, OPT tokenizer) is not
available here; Sarathi-Serve's ShareGPT length table (Llama-2 tokenizer, see
../shared/data/traces/sharegpt_lengths/SOURCE.md) filtered like DistServe's
(prompt + output < 2048, OPT's context) stands in for it: "ShareGPT-like lengths".
``compare`` defaults to the Azure 2023 code trace's lengths (long prompts, short
answers), filtered the same way; ``--lengths sharegpt`` runs it on ShareGPT too.

    python benchmarks/validate_distserve.py search  [--requests 300] [--overheads]
    python benchmarks/validate_distserve.py compare [--requests 300] [--lengths sharegpt]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from frontier_core import load_registry
from frontier_core.app.metrics import request_table
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/traces"
TRACES = {
    "sharegpt": DATA / "sharegpt_lengths/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
    "code": DATA / "azure_llm_2023/AzureLLMInferenceTrace_code.csv",
}
DOCUMENTED = {"per_gpu_rate": 1.56, "prefill": "tp2 pp1", "decode": "tp1 pp1"}


LENGTH_COLUMNS = {
    "sharegpt": ("num_prefill_tokens", "num_decode_tokens"),
    "code": ("ContextTokens", "GeneratedTokens"),
}


def length_sample(n: int, path: Path, kind: str, out: Path, seed: int = 0) -> dict[str, float]:
    """``n`` (prompt, output) pairs with prompt + output < 2048 (OPT's context), drawn
    without replacement; written as a lengths CSV. Returns their means."""
    pc, oc = LENGTH_COLUMNS[kind]
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            p, o = int(r[pc]), int(r[oc])
            if p + o < 2048 and (p >= 4 or o >= 4) and o >= 1:
                rows.append((p, o))
    rng = np.random.default_rng(seed)
    pick = [rows[i] for i in rng.choice(len(rows), size=n, replace=False)]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["num_prefill_tokens", "num_decode_tokens"])
        w.writerows(pick)
    a = np.array(pick, float)
    return {"lengths": kind, "pool": len(rows), "prompt_mean": float(a[:, 0].mean()),
            "output_mean": float(a[:, 1].mean())}


def _cluster(name: str, tp: int, pp: int, replicas: int = 1) -> dict[str, Any]:
    # DistServe batches every queued prompt that fits the KV capacity and never caps a
    # decode batch by count; vLLM's scheduler with large limits does the same.
    return {"name": name, "gpu": "a100-80g-sxm", "tp": tp, "pp": pp, "replicas": replicas,
            "gpu_memory_fraction": 0.95, "activation_reserve_gb": 0.8,
            "scheduler": {"name": "vllm", "max_num_seqs": 4096,
                          "max_num_batched_tokens": 1_000_000}}


def config(clusters: list[dict[str, Any]], trace: Path, rate: float, overheads: bool,
           slo: tuple[float, float], watermark: float = 0.01) -> RunConfig:
    pd = len(clusters) == 2
    return RunConfig.model_validate({
        "model": "opt-13b",
        "deployment": {
            "workflow": {"name": "pd", "decode_watermark": watermark} if pd else "colocated",
            "clusters": clusters,
        },
        "predictor": [{"name": "distserve", "simulator_overheads": overheads}],
        "workload": {"trace": {"format": "lengths", "path": str(trace)},
                     "arrival": {"process": "poisson", "rate": rate}},
        "slo": {"ttft_s": slo[0], "tpot_s": slo[1]},
        "seed": 0,
        "output": {"trace": False},
    })


def run(cfg: RunConfig, registry) -> dict[str, float]:
    sim = assemble(cfg, registry).run()
    col = request_table(sim)
    ok = col["rejected"] == ""
    ttft, tpot = col["ttft_s"][ok], col["tpot_s"][ok]
    tpot = tpot[~np.isnan(tpot)]
    slo = cfg.slo
    both = (col["ttft_s"] <= slo.ttft_s) & ((col["tpot_s"] <= slo.tpot_s) | np.isnan(col["tpot_s"]))
    return {
        "p90_ttft": float(np.quantile(ttft, 0.9)) if len(ttft) else np.inf,
        "p90_tpot": float(np.quantile(tpot, 0.9)) if len(tpot) else np.inf,
        "joint_attainment": float((both & ok).mean()),
        "rejected": int((~ok).sum()),
    }


def bisect(ok_at, high: float = 5.0, esp: float = 0.25) -> float:
    """DistServe's search: bisection on the per-GPU rate in [0, high] until the bracket
    is narrower than ``esp``; the best rate that passed (0 if none)."""
    low, best = 0.0, 0.0
    while high - low > esp:
        mid = (low + high) / 2
        if ok_at(mid):
            low = best = mid
        else:
            high = mid
    return best


def search(args, registry, trace: Path) -> dict[str, Any]:
    slo = (0.2, 0.1)
    results = []
    for tp_p, pp_p, tp_d, pp_d in itertools.product((1, 2, 4), repeat=4):
        gpus = tp_p * pp_p + tp_d * pp_d
        if gpus > 4:
            continue
        clusters = [_cluster("prefill", tp_p, pp_p), _cluster("decode", tp_d, pp_d)]

        def ok_at(per_gpu: float, clusters=clusters, gpus=gpus) -> bool:
            m = run(config(clusters, trace, per_gpu * gpus, args.overheads, slo,
                           args.decode_watermark), registry)
            return m["p90_ttft"] < slo[0] and m["p90_tpot"] < slo[1] and not m["rejected"]

        try:
            best = bisect(ok_at)
        except Exception as e:  # a layout the profile or memory cannot run
            results.append({"prefill": f"tp{tp_p} pp{pp_p}", "decode": f"tp{tp_d} pp{pp_d}",
                            "gpus": gpus, "error": str(e).split(".")[0]})
            continue
        results.append({"prefill": f"tp{tp_p} pp{pp_p}", "decode": f"tp{tp_d} pp{pp_d}",
                        "gpus": gpus, "per_gpu_rate": best})
    runnable = [r for r in results if "per_gpu_rate" in r]
    top = max(runnable, key=lambda r: (r["per_gpu_rate"], -r["gpus"]))
    return {"configs": results, "best": top}


def _splits(gpus: int = 4):
    """Co-located layouts and PD splits (replicas of one TP each side) of ``gpus`` GPUs."""
    for tp in (1, 2, 4):
        if gpus % tp == 0:
            yield [{**_cluster("main", tp, 1, gpus // tp)}]
    for tp_p, tp_d in itertools.product((1, 2), repeat=2):
        for n_p in range(1, gpus // tp_p):
            n_d = (gpus - n_p * tp_p) // tp_d
            if n_d >= 1 and n_p * tp_p + n_d * tp_d == gpus:
                yield [_cluster("prefill", tp_p, 1, n_p), _cluster("decode", tp_d, 1, n_d)]


def _name(clusters) -> str:
    return " + ".join(f"{c['name']} {c['replicas']}×tp{c['tp']}" for c in clusters)


def compare(args, registry, trace: Path) -> dict[str, Any]:
    out = {}
    for label, slo in (("tight", (0.4, 0.03)), ("loose", (0.4, 0.15))):
        rows = []
        for clusters in _splits():
            def ok_at(per_gpu: float, clusters=clusters, slo=slo) -> bool:
                m = run(config(clusters, trace, per_gpu * 4, args.overheads, slo,
                               args.decode_watermark), registry)
                return m["joint_attainment"] >= 0.9

            rows.append({"layout": _name(clusters), "pd": len(clusters) == 2,
                         "goodput_per_gpu": bisect(ok_at, high=8.0, esp=0.05)})
        best_pd = max((r for r in rows if r["pd"]), key=lambda r: r["goodput_per_gpu"])
        best_co = max((r for r in rows if not r["pd"]), key=lambda r: r["goodput_per_gpu"])
        out[label] = {"ttft_slo_s": slo[0], "tpot_slo_s": slo[1], "layouts": rows,
                      "best_pd": best_pd, "best_colocated": best_co}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["search", "compare"])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--lengths", choices=sorted(TRACES), default=None,
                    help="request lengths: ShareGPT (search's default) or the Azure code "
                    "trace (compare's default)")
    ap.add_argument("--lengths-file", type=Path, help="the CSV of those lengths, if not in "
                    "../shared/data/traces")
    ap.add_argument("--overheads", action="store_true",
                    help="add simdistserve's per-iteration constants to the fitted formulas")
    ap.add_argument("--decode-watermark", type=float, default=0.01,
                    help="the pd workflow's decode_watermark (free KV kept when reserving)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    kind = args.lengths or ("sharegpt" if args.what == "search" else "code")
    path = args.lengths_file or TRACES[kind]
    if not path.exists():
        print(f"error: {path} not found; pass --lengths-file PATH (Sarathi-Serve's "
              "sharegpt_8k_filtered_stats_llama2_tokenizer.csv or Azure's "
              "AzureLLMInferenceTrace_code.csv)", file=sys.stderr)
        return 2
    registry = load_registry()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / "lengths.csv"
        sample = length_sample(args.requests, path, kind, trace)
        res = search(args, registry, trace) if args.what == "search" else compare(args, registry, trace)
    res["workload"] = {"requests": args.requests, **sample}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.what == "search":
        print(f"{'prefill':>10} {'decode':>10} {'GPUs':>4}  per-GPU rate (req/s)")
        for r in res["configs"]:
            v = f"{r['per_gpu_rate']:.4f}" if "per_gpu_rate" in r else f"not runnable: {r['error']}"
            print(f"{r['prefill']:>10} {r['decode']:>10} {r['gpus']:>4}  {v}")
        b = res["best"]
        print(f"best: prefill {b['prefill']} + decode {b['decode']} at {b['per_gpu_rate']:.4f} "
              f"req/s per GPU; DistServe documents {DOCUMENTED['per_gpu_rate']} with prefill "
              f"{DOCUMENTED['prefill']} + decode {DOCUMENTED['decode']}")
        res["documented"] = DOCUMENTED
    else:
        for label, r in res.items():
            if label not in ("tight", "loose"):
                continue
            print(f"{label} SLO: TTFT {r['ttft_slo_s'] * 1e3:.0f} ms, TPOT {r['tpot_slo_s'] * 1e3:.0f} ms")
            for row in r["layouts"]:
                print(f"  {row['layout']:<34} goodput/GPU {row['goodput_per_gpu']:.3f} req/s")
            print(f"  best PD {r['best_pd']['goodput_per_gpu']:.3f} vs best co-located "
                  f"{r['best_colocated']['goodput_per_gpu']:.3f} req/s per GPU")
    print(f"workload: {res['workload']} · wall {res['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
