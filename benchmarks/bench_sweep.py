"""Sweep wall time: the same 200-run sweep serially, in a 2-process pool and on Ray
(local mode), each into a fresh directory (no resume).

The runs: Llama-2-7B on one A100 (roofline), 100 Poisson requests each, over
rate x replicas x scheduler x seed = 5 x 2 x 2 x 10 = 200 configurations.

    python benchmarks/bench_sweep.py [--modes serial,pool,ray] [--runs-per-config 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from frontier_core.app.sweep import sweep

CONFIG = """\
model: llama-2-7b
deployment:
  clusters: [{name: main, gpu: a100-80g-sxm}]
predictor: [roofline]
workload:
  arrival: {process: poisson, rate: 4}
  prompt_len: {dist: uniform, low: 32, high: 1024}
  output_len: {dist: uniform, low: 4, high: 256}
  num_requests: 100
output: {trace: false, requests: false}
"""
GRID = ["workload.arrival.rate=1,2,4,8,16", "deployment.clusters.0.replicas=1,2",
        "deployment.clusters.0.scheduler=vllm,sarathi", "seed=0,1,2,3,4,5,6,7,8,9"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="serial,pool,ray")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "c.yaml"
        cfg.write_text(CONFIG)
        for mode in a.modes.split(","):
            kw = {"serial": {"jobs": 1}, "pool": {"jobs": 2}, "ray": {"ray": "local"}}[mode]
            t = time.perf_counter()
            res = sweep([cfg], GRID, Path(d) / mode, **kw)
            wall = time.perf_counter() - t
            print(json.dumps({"mode": mode, "runs": len(res.rows), "failed": len(res.failed()),
                              "wall_s": round(wall, 2),
                              "runs_per_s": round(len(res.rows) / wall, 2)}))


if __name__ == "__main__":
    main()
