"""Measured and predicted TTFT against concurrency, per engine, from a validation's rows.

    frontier validate serving ../shared/data/serving/silicon_sample_dev.csv -j 2 -o VAL
    python benchmarks/plot_ttft_concurrency.py VAL/rows.csv \
        --data ../shared/data/serving/silicon_sample_dev.csv -o docs/img

For each engine, the two co-located (system, model, isl/osl, version, layout) series
with the most concurrencies (the layout, tp × attention DP, is read from ``--data``,
the benchmark file the rows came from): one panel per series, measured and predicted mean TTFT (log scale)
against the closed-loop concurrency. Writes ``ttft_vs_concurrency_<engine>.png`` and
prints the series it drew. Needs matplotlib (e.g. from frontier-report).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def series(rows_csv: Path, data: Path | None = None) -> dict[str, list[tuple[tuple, list[dict]]]]:
    """Co-located simulated rows grouped by engine, then by (system, model, lengths,
    version, layout), the groups with the most concurrencies first."""
    layout: dict[str, str] = {}
    if data is not None:
        with open(data, newline="") as f:
            for i, r in enumerate(csv.DictReader(f)):
                layout[str(i + 2)] = f"tp{r['tp_size']}x dp{r['attention_dp_size'] or 1}"
    by: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    with open(rows_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] != "ok" or r["mode"] != "agg":
                continue
            key = (r["system"], r["model"], f"{r['isl']}/{r['osl']}", r["backend_version"],
                   layout.get(r["row"], ""))
            by[r["backend"]][key].append(r)
    out = {}
    for engine, groups in by.items():
        ranked = sorted(groups.items(), key=lambda kv: (-len({r["concurrency"] for r in kv[1]}),
                                                         kv[0]))
        out[engine] = ranked
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows_csv", type=Path)
    ap.add_argument("--data", type=Path, help="the benchmark CSV the rows came from")
    ap.add_argument("-o", "--out", type=Path, default=Path("."))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    for engine, ranked in sorted(series(args.rows_csv, args.data).items()):
        picked = ranked[:2]
        fig, axes = plt.subplots(1, len(picked), figsize=(5 * len(picked), 4), squeeze=False)
        for ax, (key, rows) in zip(axes[0], picked, strict=True):
            rows = sorted(rows, key=lambda r: int(r["concurrency"]))
            c = [int(r["concurrency"]) for r in rows]
            ax.plot(c, [float(r["measured_ttft_ms"]) for r in rows], "o-", label="measured")
            ax.plot(c, [float(r["pred_ttft_ms"]) for r in rows], "s--", label="Frontier")
            ax.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="mean TTFT (ms)",
                   title=f"{engine} {key[3]}: {key[1]} on {key[0]}, {key[2]}, {key[4]}")
            ax.title.set_fontsize(8)
            ax.legend(fontsize=8)
            print(engine, key, len(rows), "rows")
        fig.tight_layout()
        name = args.out / f"ttft_vs_concurrency_{engine}.png"
        fig.savefig(name, dpi=100)
        plt.close(fig)
        print("wrote", name)


if __name__ == "__main__":
    main()
