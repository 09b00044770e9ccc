"""Wall time per MoE iteration of a run: the unit in which a mechanism's cost is
compared between commits (run the same config on both, alternately, on one machine).

    python benchmarks/per_iteration.py CONFIG [--requests N]

Prints one JSON line: wall seconds of the simulation, MoE iterations (all clusters and
replicas) and wall milliseconds per iteration.
"""

from __future__ import annotations

import argparse
import json
import time

import frontier_core as fc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--requests", type=int, default=None)
    a = ap.parse_args()
    overrides = {"output.trace": False}
    if a.requests:
        overrides["workload.num_requests"] = a.requests
    t = time.perf_counter()
    r = fc.simulate(a.config, overrides)
    wall = time.perf_counter() - t
    its = sum(c.get("moe", {}).get("iterations", 0) for c in r.summary_data["clusters"].values())
    print(json.dumps({"wall_s": round(wall, 2), "moe_iterations": its,
                      "ms_per_iteration": round(wall / max(its, 1) * 1e3, 3)}))


if __name__ == "__main__":
    main()
