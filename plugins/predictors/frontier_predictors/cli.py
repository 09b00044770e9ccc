"""``frontier predictors``: import measurements, train, evaluate and split. Parsing and printing only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from frontier_predictors.profiles import ProfileError

predictors_app = typer.Typer(
    help="Operator-time models: import measured data, train, evaluate, split.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _mount_import() -> None:
    from frontier_predictors.importers import import_app

    predictors_app.add_typer(import_app, name="import",
                             help="Convert measured data (Vidur, AIConfigurator) to profile tables.")


_mount_import()

DataArg = Annotated[list[Path], typer.Argument(help="Profile tables (.csv/.parquet) or folders.")]


@predictors_app.command("train")
def train_command(
    data: DataArg,
    backend: Annotated[str, typer.Option("--backend", "-b", help="table, forest or proxy.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    estimator: Annotated[str, typer.Option(help="forest/proxy: auto (per op), hgb, rf or extra.")] = "auto",
    margin: Annotated[float, typer.Option(help="log2 units beyond the training range answered.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the ensemble.")] = 0,
    ops: Annotated[Optional[str], typer.Option(help="Comma-separated ops to train (default: all).")] = None,  # noqa: UP045
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind (e.g. profile tables); never a folder Frontier did not write.")] = False,
) -> None:
    """Train one backend on profile tables; one model per (device, op)."""
    from frontier_core import outdir
    from frontier_predictors.models import ESTIMATORS, train
    from frontier_predictors.profiles import load_tables

    if estimator not in ESTIMATORS:
        raise ProfileError(f"--estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}.")
    outdir.check(output, "predictors-train", overwrite)  # before training, not after
    df = load_tables(data)
    trained = train(df, backend, seed=seed, estimator=estimator, margin=margin,
                    ops=ops.split(",") if ops else None)
    outdir.write(output, "predictors-train", trained.save, overwrite)
    t = Table("device", "op", "rows", title=f"{backend} model → {output}")
    for device, per_op in trained.meta["rows"].items():
        for op, n in per_op.items():
            t.add_row(device, op, str(n))
    out.print(t)


@predictors_app.command("eval")
def eval_command(
    model: Annotated[Path, typer.Argument(help="Model folder from `frontier predictors train`.")],
    data: DataArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    predictions: Annotated[Optional[Path], typer.Option(help="Write every row with predicted_s to this CSV.")] = None,  # noqa: UP045
    compare: Annotated[Optional[list[str]], typer.Option(help="Another model folder, or 'roofline', to evaluate side by side (repeatable).")] = None,  # noqa: UP045
) -> None:
    """Per-op accuracy: n, median and p90 relative error, fraction within 5/10/20%."""
    from frontier_predictors.evaluate import metrics, roofline_frame
    from frontier_predictors.models import TrainedModels
    from frontier_predictors.profiles import load_tables, to_writable

    main = TrainedModels.load(model)
    df = load_tables(data)
    runs: dict[str, object] = {}
    runs[str(model)] = main.predict_frame(df)
    for other in compare or []:
        runs[other] = roofline_frame(df) if other == "roofline" else TrainedModels.load(
            Path(other)).predict_frame(df)
    results = {name: metrics(df, p) for name, p in runs.items()}
    if predictions is not None:
        w = to_writable(df)
        w["predicted_s"] = runs[str(model)]
        for name, p in list(runs.items())[1:]:
            w[f"predicted_s[{name}]"] = p
        predictions.parent.mkdir(parents=True, exist_ok=True)
        w.to_csv(predictions, index=False)
    if as_json:
        payload = results[str(model)] if not compare else results
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    t = Table("model", "op", "n", "not covered", "median err", "p90 err", "≤5%", "≤10%", "≤20%",
              title="relative error |pred − meas| ÷ meas")

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    for name, per_op in results.items():
        for op, m in per_op.items():
            t.add_row(name, op, str(m["n"]), str(m["not_covered"]), pct(m["median_rel_err"]),
                      pct(m["p90_rel_err"]), pct(m["within_5pct"]), pct(m["within_10pct"]),
                      pct(m["within_20pct"]))
    out.print(t)


@predictors_app.command("split")
def split_command(
    data: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for train.parquet and test.parquet.")],
    by: Annotated[str, typer.Option(help="rows (random rows) or shape (whole shapes held out).")] = "rows",
    test_frac: Annotated[float, typer.Option(help="Fraction of rows in the test table.")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write train/test tables: random rows, or whole shapes held out (GEMM (n,k), head config...)."""
    from frontier_predictors.evaluate import split
    from frontier_predictors.profiles import load_tables, write_table

    df = load_tables(data)
    tr, te = split(df, by, test_frac, seed)
    write_table(tr, output / "train.parquet")
    write_table(te, output / "test.parquet")
    out.print(f"{len(tr)} train rows, {len(te)} test rows (by {by}) → {output}")
