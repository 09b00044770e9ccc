"""Write frontier_core/data/inferencex_disagg.csv: the disaggregated deployments that
InferenceX's public benchmark configs name, with the dates each was in force.

InferenceX (github.com/SemiAnalysisAI/InferenceX, Apache-2.0) benchmarks every config
entry of ``nvidia-master.yaml`` nightly; a disaggregated entry names, per sequence
length and concurrency, the prefill and decode workers (count, TP, EP, DP attention)
and whether MTP ran. A measurement exported from it without worker counts is matched
to the entry in force when it was measured (frontier_core/app/benchrows.py).

Usage: python tools/inferencex_disagg.py /path/to/InferenceX [--since 2025-11-01]
(a git checkout with history; the output is rewritten)."""
from __future__ import annotations

import argparse
import csv
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

PATHS = (".github/configs/nvidia-master.yaml", "configs/nvidia-master.yaml")
OUT = Path(__file__).resolve().parent.parent / "frontier_core" / "data" / "inferencex_disagg.csv"
FIELDS = ["valid_from", "valid_until", "first_commit", "prefix", "model", "precision", "runner",
          "framework", "image", "isl", "osl", "conc", "spec",
          "prefill_workers", "prefill_tp", "prefill_ep", "prefill_dpattn",
          "decode_workers", "decode_tp", "decode_ep", "decode_dpattn"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True,
                          capture_output=True, text=True).stdout


def entries(text: str):
    doc = yaml.safe_load(text) or {}
    for e in doc.values():
        if not isinstance(e, dict) or not e.get("disagg"):
            continue
        head = {"model": e.get("model", ""), "prefix": e.get("model-prefix", ""), "precision": e.get("precision", ""),
                "runner": e.get("runner", ""), "framework": e.get("framework", ""),
                "image": str(e.get("image", "")).replace("nvcr.io#", "nvcr.io/")}
        for seq in e.get("seq-len-configs") or []:
            for item in seq.get("search-space") or []:
                p, d = item.get("prefill") or {}, item.get("decode") or {}
                for conc in item.get("conc-list") or []:
                    yield tuple({**head, "isl": seq.get("isl"), "osl": seq.get("osl"),
                                 "conc": conc, "spec": item.get("spec-decoding") or "none",
                                 **{f"{s}_{k}": w.get(f) for s, w in (("prefill", p), ("decode", d))
                                    for k, f in (("workers", "num-worker"), ("tp", "tp"),
                                                 ("ep", "ep"), ("dpattn", "dp-attn"))}}.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path)
    ap.add_argument("--since", default="2025-11-01")
    a = ap.parse_args()
    log = git(a.repo, "log", "--reverse", "--format=%H %cI", f"--since={a.since}", "--", *PATHS)
    commits = [(sha, datetime.fromisoformat(when).astimezone(UTC).isoformat())
               for sha, when in (line.split() for line in log.splitlines())]
    live: dict[tuple, dict] = {}
    done: list[dict] = []
    for sha, when in commits:
        text = None
        for p in PATHS:
            try:
                text = git(a.repo, "show", f"{sha}:{p}")
                break
            except subprocess.CalledProcessError:
                continue
        now = set(entries(text)) if text is not None else set()
        for key in list(live):
            if key not in now:
                rec = live.pop(key)
                rec["valid_until"] = when
                done.append(rec)
        for key in now:
            if key not in live:
                live[key] = {**dict(key), "valid_from": when, "valid_until": "",
                             "first_commit": sha}
    done.extend(live.values())
    done.sort(key=lambda r: (r["model"], r["precision"], r["runner"], r["framework"],
                             int(r["isl"]), int(r["osl"]), int(r["conc"]), r["valid_from"]))
    with OUT.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(done)
    print(f"{len(done)} entries from {len(commits)} commits -> {OUT}")


if __name__ == "__main__":
    main()
