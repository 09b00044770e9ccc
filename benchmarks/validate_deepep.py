"""DeepEP's published all-to-all figures on H800 against frontier-moe-ep's kernel model.

Data: ``../shared/data/reference/deepep_h800`` (DeepEP docs/legacy.md: normal kernels'
bottleneck bandwidth, low-latency kernels' time per call; read its SOURCE.md) and
``plugins/moe_ep/tests/data/deepep_h800_ll_rdma_2025_02.csv`` (the low-latency table of
DeepEP's first README, every message over RDMA). Each row is reproduced as DeepEP's test
scripts run it (``frontier_moe_ep.deepep_check``) on the catalog's H800.

    python benchmarks/validate_deepep.py [--data DIR]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from frontier_moe_ep.deepep_check import reproduce

from frontier_core import Link
from frontier_core.builtin.hardware import HARDWARE

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "reference" / "deepep_h800"
OLD_LL = ROOT / "plugins" / "moe_ep" / "tests" / "data" / "deepep_h800_ll_rdma_2025_02.csv"


def rows(data: Path) -> list[dict]:
    """One dict per published figure: table, ep, phase, measured, model, unit."""
    h800 = next(h for h in HARDWARE if h.name == "h800")
    nv = Link(h800.nvlink_bw, h800.nvlink_latency)
    rd = Link(h800.scaleout_bw, h800.scaleout_latency)
    out = []
    for r in csv.DictReader(open(data / "normal.csv")):
        got = reproduce("normal", int(r["ep"]), int(r["tokens_per_rank"]), nv, rd)
        for phase in ("dispatch", "combine"):
            out.append({"table": "normal", "ep": int(r["ep"]), "phase": phase,
                        "unit": f"GB/s ({r[phase + '_bottleneck']})",
                        "measured": float(r[phase + "_gbps"]),
                        "model": got[phase + "_bandwidth"] / 1e9})
    for name, path, nvlink in (("low-latency", data / "low_latency.csv", True),
                               ("low-latency, pure RDMA", OLD_LL, False)):
        for r in csv.DictReader(open(path)):
            got = reproduce("low_latency", int(r["ep"]), int(r["tokens_per_rank"]), nv, rd,
                            ll_nvlink=nvlink)
            for phase in ("dispatch", "combine"):
                out.append({"table": name, "ep": int(r["ep"]), "phase": phase, "unit": "µs",
                            "measured": float(r[phase + "_us"]),
                            "model": got[phase + "_s"] * 1e6})
    for r in out:
        r["error"] = r["model"] / r["measured"] - 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args()
    out = rows(args.data)
    print("| table | EP | phase | DeepEP | Frontier | error |")
    print("|---|---|---|---|---|---|")
    for r in out:
        print(f"| {r['table']} | {r['ep']} | {r['phase']} | {r['measured']:g} {r['unit']} | "
              f"{r['model']:.1f} | {r['error']:+.1%} |")
    within = sum(abs(r["error"]) <= 0.10 for r in out)
    errs = sorted(abs(r["error"]) for r in out)
    print(f"\n{within} of {len(out)} figures within 10%; median |error| "
          f"{errs[len(errs) // 2]:.1%}, worst {errs[-1]:.1%}")


if __name__ == "__main__":
    main()
