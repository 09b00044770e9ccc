"""The ``frontier`` command: parse, assemble, run, print. No simulation logic here."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frontier_core.errors import ConfigError, FrontierError, FrontierWarning, PluginError

app = typer.Typer(
    name="frontier",
    help="Frontier: simulate LLM inference serving (co-located, disaggregated, MoE) "
    "and predict TTFT, TPOT, throughput and goodput.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from frontier_core._version import __version__

        sys.stdout.write(f"frontier {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print Frontier's version and exit.")] = False,
) -> None:
    """Frontier: simulate LLM inference serving (co-located, disaggregated, MoE) and predict
    TTFT, TPOT, throughput and goodput."""


config_app = typer.Typer(help="Check run configs and print their schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _stdout() -> Console:
    """A terminal's width on a terminal; elsewhere (a pipe, a file) whole lines, which rich
    would otherwise cut at 80 columns (``COLUMNS`` still sets a width)."""
    if sys.stdout is None or sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=500, soft_wrap=True)


out = _stdout()
err = Console(stderr=True)

SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional here
    typer.Option("--set", "-s", help="Override a config field: path.to.field=value (repeatable)."),
]


_REGISTRY: list = []  # the one registry of this CLI invocation (hooks run once)


def _registry():
    from frontier_core.plugins import load_registry

    if not _REGISTRY:
        _REGISTRY.append(load_registry())
    return _REGISTRY[0]


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="YAML run config; omit for the embedded default.")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output directory.")] = None,  # noqa: UP045
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind (a sweep's, a report's); never a folder Frontier did not write.")] = False,
) -> None:
    """Simulate one deployment and write summary.json, requests.csv and a Perfetto trace."""
    from frontier_core.app import api, outdir
    from frontier_core.app.metrics import report_lines

    cfg = api.load(config, set_ or [])
    out_dir = output or Path(cfg.output.dir)
    # Checked before the run, not after it: a long run must not end in a refusal.
    outdir.check(out_dir, "run", overwrite, option="-o/--output (or output.dir)")
    if quiet or as_json or not err.is_terminal:
        result = api.simulate(cfg, registry=_registry())
    else:
        with _progress_bar("simulating", "requests · t={task.fields[t]:.1f}s simulated") as bar:
            task = bar.add_task("run", total=None, t=0.0)

            def progress(t: float, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, t=t)

            result = api.simulate(cfg, progress=progress, registry=_registry())
    # Frontier's own default folder keeps itself out of git, as pytest's cache does.
    default = output is None and cfg.output.dir == type(cfg.output).model_fields["dir"].default
    result.save(out_dir, overwrite, gitignore=default)
    if as_json:
        sys.stdout.write(json.dumps(result.summary_data, indent=2) + "\n")
    elif not quiet:
        _print_summary(result.summary_data, result.perf, out_dir, report_lines(result.simulation))


@app.command()
def sweep(
    configs: Annotated[Optional[list[Path]], typer.Argument(help="YAML run configs; omit for the embedded default.")] = None,  # noqa: UP045
    grid: Annotated[Optional[list[str]], typer.Option("--grid", "-g", help="path.to.field=v1,v2,... (repeatable; the runs are the Cartesian product).")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Sweep directory (re-running it resumes); default frontier-sweep.")] = None,  # noqa: UP045
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Runs in parallel in a local process pool.")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on Ray: 'local', 'auto' or a cluster address (pip install '.\\[ray]' in a Frontier checkout).")] = None,  # noqa: UP045
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results table as JSON on stdout (a list of rows).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind (a run's, a report's); never a folder Frontier did not write.")] = False,
) -> None:
    """Run configs over a grid of overrides in parallel; one results table (CSV, and Parquet with pyarrow)."""
    from frontier_core.app import api, outdir

    # Frontier's own default folder keeps itself out of git, as pytest's cache does.
    default = output is None
    output = output or Path("frontier-sweep")
    outdir.check(output, "sweep", overwrite)  # a sweep folder is fine: re-running resumes
    for c in configs or []:
        if not c.is_file():
            raise ConfigError(f"Config file {str(c)!r} does not exist; give YAML run configs "
                              "(examples/ has some), or none for the embedded default.")
    # --set applies to every run; a config it cannot apply to is an error before any run.
    kwargs = dict(configs=list(configs or [None]), grid=grid or [], out_dir=output, jobs=jobs,
                  ray=ray, registry=_registry(), overwrite=overwrite, overrides=set_ or [],
                  gitignore=default)
    if quiet or as_json or not err.is_terminal:
        result = api.sweep(**kwargs)
    else:
        with _progress_bar("sweep", "runs") as bar:
            task = bar.add_task("sweep", total=None)
            result = api.sweep(**kwargs, progress=lambda d, t: bar.update(task, completed=d, total=t))
    failed = result.failed()
    if as_json:
        sys.stdout.write(json.dumps(result.rows, indent=2) + "\n")
    elif not quiet:
        out.print(f"{len(result.rows) - len(failed)}/{len(result.rows)} runs ok → "
                  f"{output}/results.csv", markup=False)
    if failed:  # exit 1: the sweep ran, some runs did not (2 is for bad input)
        err.print(f"error: {len(failed)} of {len(result.rows)} runs failed ({output}/results.csv "
                  "has each run's error):", markup=False, highlight=False, soft_wrap=True)
        for message, n in result.failures():
            err.print(f"  {n:4d} × {message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def plan(
    config: Annotated[Optional[Path], typer.Argument(help="YAML run config giving the model, workload and scheduler; omit for the embedded default.")] = None,  # noqa: UP045
    rate: Annotated[float, typer.Option("--rate", min=0.0, help="Arrival rate to serve, requests/s (Poisson).")] = 1.0,
    slo_ttft: Annotated[Optional[float], typer.Option("--slo-ttft", help="TTFT SLO in seconds.")] = None,  # noqa: UP045
    slo_tpot: Annotated[Optional[float], typer.Option("--slo-tpot", help="TPOT SLO in seconds.")] = None,  # noqa: UP045
    gpus: Annotated[Optional[str], typer.Option("--gpus", help="GPU kinds to consider, comma-separated (default: the config's).")] = None,  # noqa: UP045
    max_gpus: Annotated[int, typer.Option("--max-gpus", min=1, help="Largest deployment to consider.")] = 8,
    pp: Annotated[str, typer.Option("--pp", help="Pipeline-parallel degrees to consider, comma-separated.")] = "1",
    max_num_seqs: Annotated[Optional[str], typer.Option("--max-num-seqs", help="Scheduler batch limits to consider, comma-separated (default: the config's).")] = None,  # noqa: UP045
    attainment: Annotated[float, typer.Option("--attainment", min=0.0, max=1.0, help="Share of requests that must meet every SLO.")] = 0.9,
    objective: Annotated[str, typer.Option("--objective", help="Minimise 'gpus' or 'cost' ($/GPU-hour from the catalog or --price).")] = "gpus",
    price: Annotated[Optional[list[str]], typer.Option("--price", help="KIND=USD_PER_GPU_HOUR (repeatable).")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the chosen deployment as a runnable YAML config here.")] = None,  # noqa: UP045
    set_: SetOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every candidate considered, each rejected one with why, not only the Pareto frontier.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout: the chosen deployment and its config, the Pareto frontier, every candidate with its verdict.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing an existing -o file that `frontier plan` did not write.")] = False,
) -> None:
    """Find the cheapest deployment meeting the SLOs at a rate; print the Pareto frontier."""
    import yaml

    from frontier_core.app import outdir
    from frontier_core.app.plan import plan as run_plan
    from frontier_core.configfile import load_config

    if output is not None:  # before the search, which can take minutes
        outdir.check_file(output, "plan", overwrite)
    if objective not in ("gpus", "cost"):
        raise ConfigError(f"--objective is {objective!r}; choose 'gpus' or 'cost'.")
    prices: dict[str, float] = {}
    for item in price or []:
        kind, _, usd = item.partition("=")
        try:
            prices[kind.strip()] = float(usd)
        except ValueError:
            raise ConfigError(f"--price {item!r} is not KIND=USD_PER_GPU_HOUR (e.g. --price h100-sxm=2.5).") from None
    pps = _positive_ints(pp, "--pp", "1,2")
    limits = _positive_ints(max_num_seqs, "--max-num-seqs", "64,256") if max_num_seqs else ()
    cfg = load_config(config, set_ or [])
    kinds = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    res = run_plan(cfg, _registry(), rate, slo_ttft, slo_tpot, kinds, max_gpus, attainment,
                   objective, prices, progress=None, pps=pps, batch_limits=limits)
    data = None
    if res.best is not None:
        data = res.best_config.model_dump(mode="json", exclude={"base_dir"})
        trace = data["workload"].get("trace")
        if trace and not trace["path"].startswith("frontier:"):
            trace["path"] = str(res.best_config.resolve(trace["path"]).resolve())
    verdicts = res.verdicts(attainment)
    if as_json:
        sys.stdout.write(json.dumps({
            "rate": rate, "slo": {"ttft_s": slo_ttft, "tpot_s": slo_tpot},
            "attainment_target": attainment, "objective": objective,
            "chosen": None if res.best is None else {
                "deployment": res.best.label(), "gpus": res.best.gpus, "config": data},
            "pareto": [o.candidate.label() for o in res.pareto()],
            "candidates": [{"deployment": c.label(), "gpus": c.gpus, "verdict": v,
                            **({} if o is None else {
                                "attainment": o.attainment, "ttft_p90_s": o.ttft_p90,
                                "tpot_p90_s": o.tpot_p90,
                                "output_tokens_per_s_per_gpu": o.tokens_per_s_per_gpu})}
                           for c, o, v in verdicts],
        }, indent=2) + "\n")
    else:
        title = (f"Candidates at {rate:g} req/s, in the order considered" if show_all
                 else f"Pareto frontier at {rate:g} req/s (simulated candidates)")
        t = Table(title=title, header_style="bold")
        cols = ["deployment", "GPUs", "attainment", "p90 TTFT ms", "p90 TPOT ms", "out tok/s/GPU"]
        for c in cols + (["verdict"] if show_all else []):
            t.add_column(c, justify="left" if c in ("deployment", "verdict") else "right")
        rows = verdicts if show_all else [(o.candidate, o, None) for o in res.pareto()]
        for c, o, v in rows:
            nums = (["", "", "", ""] if o is None else
                    [f"{o.attainment:.1%}", _ms(o.ttft_p90), _ms(o.tpot_p90),
                     f"{o.tokens_per_s_per_gpu:,.0f}"])
            t.add_row(escape(c.label()), str(c.gpus), *nums, *([escape(v)] if v else []))
        out.print(t)
        pruned = ", ".join(f"{n} by {why}" for why, n in res.pruned.items()) or "none"
        out.print(f"simulated {len(res.tried)} candidates; pruned {pruned}", markup=False)
    if res.best is None:
        raise ConfigError(
            f"No deployment of up to {max_gpus} GPUs ({', '.join(kinds or [cfg.deployment.clusters[0].gpu])}) "
            f"meets the SLOs for {attainment:.0%} of requests at {rate:g} req/s. Raise --max-gpus, "
            "add GPU kinds with --gpus, lower the rate or relax the SLOs."
        )
    text = yaml.safe_dump(data, sort_keys=False)
    if not as_json:
        out.print(f"chosen: {res.best.label()} ({res.best.gpus} GPUs)", markup=False)
    if output is not None:
        outdir.write_file(output, "plan", text, overwrite)
        if not as_json:
            out.print(f"wrote {output}", markup=False)
    elif not as_json:
        sys.stdout.write(text)


def _positive_ints(text: str, flag: str, example: str) -> tuple[int, ...]:
    try:
        vals = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        vals = ()
    if not vals or min(vals) < 1:
        raise ConfigError(f"{flag} {text!r} is not a comma-separated list of integers >= 1 "
                          f"(e.g. {flag} {example}).")
    return vals


def _progress_lines(label: str, unit: str):
    """Progress for a stderr that is not a terminal (a log file): one plain line at each
    tenth of the work, ``label: done/total unit (pct%, elapsed)``."""
    start = time.monotonic()
    shown = [-1]

    def progress(done: int, total: int) -> None:
        if total <= 0:
            return
        tenth = 10 * done // total
        if tenth > shown[0]:
            shown[0] = tenth
            err.print(f"{label}: {done}/{total} {unit} ({100 * done // total}%, "
                      f"{time.monotonic() - start:.0f} s)", highlight=False, soft_wrap=True)

    return progress


def _progress_bar(label: str, unit: str):
    """A transient progress bar on stderr: ``label``, bar, done/total, ``unit``, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(unit), TimeRemainingColumn(), console=err, transient=True)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.1f}"


def _print_summary(s: dict, perf: dict, out_dir: Path, lines: Sequence[str] = ()) -> None:
    req = s["requests"]
    title = f"{s['model']} · {s['workload']}"
    # At least as wide as its title, which would otherwise wrap to the table's width.
    t = Table(title=title, show_header=True, header_style="bold", min_width=len(title))
    t.add_column("latency (ms)")
    for c in ("mean", "p50", "p90", "p99"):
        t.add_column(c, justify="right")
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E"), ("queueing_s", "queueing")):
        st = s["latency_s"][key]
        t.add_row(label, *(_ms(st[c]) for c in ("mean", "p50", "p90", "p99")))
    out.print(t)
    th, slo = s["throughput"], s["slo"]
    out.print(
        f"requests {req['completed']}/{req['total']} completed"
        + (f", {req['rejected']} rejected" if req["rejected"] else "")
        + f" · {th['requests_per_s']:.2f} req/s · {th['output_tokens_per_s']:,.0f} output tok/s"
        f" · {s['gpus']} GPUs"
    )
    out.print(
        f"SLO attainment {slo['attainment']:.1%} (TTFT ≤ {_ms(slo['ttft_s'])} ms, TPOT ≤ "
        f"{_ms(slo['tpot_s'])} ms) · goodput {slo['goodput_requests_per_s']:.2f} req/s"
    )
    for name, c in s["clusters"].items():
        out.print(
            f"cluster {name}: {c['replicas']}× {c['gpu']} "
            + (f"dp{c['dp']} " if c.get("dp", 1) > 1 else "")
            + f"tp{c['tp']} pp{c['pp']} · busy "
            f"{c['busy_fraction']:.0%} · mean batch {c['batch_size']['mean'] or 0:.1f} · KV peak "
            f"{c['kv_peak_fraction']:.0%} · preemptions {c['preemptions']}"
            + (f" · prefix cache hit {c['prefix_cache']['token_hit_rate']:.0%} of prompt "
               "tokens" if "prefix_cache" in c else "")
            + (f" · DP {c['dp_attention']['balance']}: context max/mean "
               f"{c['dp_attention']['context_imbalance']['mean']:.2f}, attention waits "
               f"{c['dp_attention']['attention_wait_fraction']:.0%} for the slowest rank"
               if "dp_attention" in c else "")
            + (f" · speculative {c['speculative']['method']} k={c['speculative']['k']}: "
               f"{c['speculative']['tokens_per_step']:.2f} tokens/step, "
               f"{c['speculative']['acceptance_rate']:.0%} of drafts accepted, drafting "
               f"{c['speculative']['draft_time_fraction']:.0%} of busy time"
               if "speculative" in c else "")
        )
    for line in lines:
        out.print(line, markup=False)
    out.print(
        f"simulated {perf['simulated_s']:.1f}s in {perf['wall_s']:.2f}s wall "
        f"({perf['events_per_s']:,.0f} events/s) → {out_dir}/"
    )


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List installed plugins, their distributions and what each provides."""
    from frontier_core.plugins import COMPONENT_HOOKS

    reg = _registry()
    rows = []
    for plugin, dist, ver, builtin in reg.plugins:
        provides: dict[str, list[str]] = {}
        for kind in COMPONENT_HOOKS:
            names = [p.name for p in reg.provided(kind) if p.plugin == plugin]
            if names:
                provides[kind] = names
        rows.append({"plugin": plugin, "distribution": dist, "version": ver, "builtin": builtin,
                     "provides": provides})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    t = Table(title="Frontier plugins", header_style="bold")
    for c in ("plugin", "distribution", "version", "provides"):
        t.add_column(c)
    for r in rows:
        prov = "\n".join(f"{k}: {', '.join(v)}" for k, v in r["provides"].items())
        t.add_row(r["plugin"] + (" (built-in)" if r["builtin"] else ""), r["distribution"], r["version"], prov)
    out.print(t)


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the model catalog with parameter counts and KV bytes per token."""
    reg = _registry()
    rows = []
    for p in reg.provided("model"):
        m = p.item
        rows.append({
            "name": m.name, "hf_id": m.hf_id, "params_b": round(m.param_count() / 1e9, 2),
            "active_params_b": round(m.active_param_count() / 1e9, 2), "layers": m.num_layers,
            "attention": m.attention, "window_layers": m.window_layers,
            "sliding_window": m.sliding_window, "linear_layers": m.linear_layers,
            "layers_by_kind": {g.kind: g.layers for g in m.mixers()},
            "experts": m.num_experts, "top_k": m.top_k,
            "weight_dtype": m.weight_dtype, "expert_dtype": m.experts_dtype if m.is_moe else None,
            "kv_bytes_per_token": m.kv_bytes_per_token(),
            "seq_bytes": m.seq_bytes(),
            "max_context": m.max_context, "distribution": p.distribution,
        })
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    t = Table(title="Models", header_style="bold")
    for c in ("name", "params (B)", "active (B)", "layers", "attention", "experts", "weights",
              "KV B/token", "state MB/seq", "context"):
        t.add_column(c, justify="left" if c in ("name", "attention", "weights") else "right")
    for p, r in zip(reg.provided("model"), rows, strict=True):
        groups = p.item.mixers()
        kinds = (groups[0].kind if len(groups) == 1
                 else ", ".join(g.describe() for g in groups))
        t.add_row(r["name"], f"{r['params_b']:.2f}", f"{r['active_params_b']:.2f}", str(r["layers"]),
                  kinds, f"{r['experts']}/top{r['top_k']}" if r["experts"] else "-",
                  r["weight_dtype"] if r["expert_dtype"] in (None, r["weight_dtype"])
                  else f"{r['weight_dtype']}, experts {r['expert_dtype']}",
                  f"{r['kv_bytes_per_token']:,.0f}",
                  f"{r['seq_bytes'] / 1e6:,.1f}" if r["seq_bytes"] else "-",
                  f"{r['max_context']:,}")
    out.print(t)


@app.command()
def hardware(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the GPU catalog (datasheet figures)."""
    reg = _registry()
    rows = [p.item.model_dump() | {"distribution": p.distribution} for p in reg.provided("hardware")]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    t = Table(title="GPUs (bandwidths per GPU per direction)", header_style="bold")
    for c in ("name", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp4 TFLOP/s", "HBM GB", "HBM TB/s",
              "NVLink GB/s", "NVLink GPUs", "fabric", "scale-out GB/s"):
        t.add_column(c, justify="left" if c in ("name", "fabric") else "right")

    def fabric(r: dict) -> str:
        if r["mesh_links"]:
            return f"full mesh, {r['mesh_links']} links"
        return "switch" if r["nvlink_switched"] else "ring (PCIe)"


    def tflops(r: dict, dtype: str) -> str:
        v = r["flops"].get(dtype)
        return f"{v / 1e12:,.0f}" if v else "-"

    for r in rows:
        t.add_row(r["name"], tflops(r, "bf16"), tflops(r, "fp8"), tflops(r, "fp4"),
                  f"{r['mem_bytes'] / 1e9:,.0f}", f"{r['mem_bw'] / 1e12:.2f}",
                  f"{r['nvlink_bw'] / 1e9:,.0f}", str(r["nvlink_domain"] or r["gpus_per_node"]),
                  fabric(r), f"{r['scaleout_bw'] / 1e9:,.0f}")
    out.print(t)


@config_app.command("validate")
def config_validate(
    config: Annotated[Path, typer.Argument(help="YAML run config.")],
    set_: SetOpt = None,
) -> None:
    """Check a config completely (plugins, options, memory fit, trace) without running it."""
    from frontier_core.assemble import assemble, warn_unservable
    from frontier_core.configfile import load_config

    cfg = load_config(config, set_ or [])
    sim = assemble(cfg, _registry())
    warn_unservable(sim)
    for name, plan in sim.plans.items():
        out.print(
            f"cluster {name}: {plan.replicas}× {plan.gpu} tp{plan.tp} pp{plan.pp}, "
            f"{plan.kv_blocks * plan.block_size:,} KV tokens per replica"
        )
    out.print(f"{config}: valid ({len(sim.workload)} requests from {sim.workload.source})")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of run configs."""
    from frontier_core.config import RunConfig

    sys.stdout.write(json.dumps(RunConfig.model_json_schema(), indent=2) + "\n")


validate_app = typer.Typer(help="Compare Frontier's predictions with real measurements.",
                           no_args_is_help=True)
app.add_typer(validate_app, name="validate")


@validate_app.command("serving")
def validate_serving(
    csv_file: Annotated[Path, typer.Argument(help="Benchmark rows in silicon_sample.csv's columns (docs/validation.md).")],
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="Simulate a deterministic spread of N rows over the groups.")] = None,  # noqa: UP045
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Rows simulated in parallel in a local process pool.")] = 1,
    predictor: Annotated[Optional[str], typer.Option("--predictor", help="Predictor chain, comma-separated (default: roofline).")] = None,  # noqa: UP045
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on Ray: 'local', 'auto' or a cluster address (pip install '.\\[ray]' in a Frontier checkout).")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write rows.csv, summary.json and plots here.")] = None,  # noqa: UP045
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    warmup: Annotated[bool, typer.Option("--warmup/--no-warmup", help="Leave each benchmark's warm-up requests out of the means (--no-warmup measures every request).")] = True,
    annotations: Annotated[Optional[Path], typer.Option("--annotations", help="A CSV that adds columns to rows by id (default: <file>_annotations.csv beside the file, if any).")] = None,  # noqa: UP045
    client: Annotated[str, typer.Option("--client", help="The benchmark client assumed where a row does not say: auto (InferenceX's where the row's source export holds InferenceX rows, else default), default (fixed lengths, 3 requests per client, the first wave warm-up) or inferencex.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind; never a folder Frontier did not write.")] = False,
) -> None:
    """Simulate real serving benchmarks (TTFT, TPOT) and report the errors and coverage."""
    from frontier_core.app.validate import validate_serving as run_validation

    _benchmark_file(csv_file)
    if output is not None:  # before the simulations, which can take many minutes
        from frontier_core.app import outdir

        outdir.check(output, "validate", overwrite)
    chain = [p.strip() for p in (predictor or "roofline").split(",") if p.strip()]
    if not chain:
        raise ConfigError(f"--predictor {predictor!r} names no predictor; e.g. --predictor roofline.")
    kwargs = dict(sample=sample, jobs=jobs, predictor=chain, ray=ray, registry=_registry(),
                  warmup=warmup, annotations=annotations, client=client)
    if quiet or as_json:
        res = run_validation(csv_file, **kwargs)
    elif not err.is_terminal:
        res = run_validation(csv_file, **kwargs, progress=_progress_lines("validating", "rows"))
    else:
        with _progress_bar("validating", "rows") as bar:
            task = bar.add_task("rows", total=None)
            res = run_validation(csv_file, **kwargs,
                                 progress=lambda d, t: bar.update(task, completed=d, total=t))
    if (why := res.nothing_simulated()) is not None:
        raise ConfigError(why)
    written = res.write(output, overwrite) if output is not None else []
    summary = res.summary()
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    if quiet:
        return
    _print_validation(summary)
    if written:
        out.print(f"wrote {', '.join(written)} → {output}/", markup=False)


def _benchmark_file(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"Benchmark file {str(path)!r} is a folder; give the CSV file inside "
                          "it (in silicon_sample.csv's columns, docs/validation.md).")
    if path.exists() and not path.is_file():
        raise ConfigError(f"Benchmark file {str(path)!r} is not a regular file (a pipe or "
                          "device); save the rows to a CSV file and give its path.")
    if not path.is_file():
        raise ConfigError(f"Benchmark file {str(path)!r} does not exist; give a CSV in "
                          "silicon_sample.csv's columns (docs/validation.md lists them).")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1%}"


def _print_validation(s: dict) -> None:
    cov = s["coverage"]
    t = Table(title="Predicted vs measured (median error; signed = bias)", header_style="bold")
    for c in ("backend", "mode", "rows", "TTFT |err|", "TTFT signed", "TPOT |err|", "TPOT signed"):
        t.add_column(c, justify="left" if c in ("backend", "mode") else "right")
    for g in [*s["by_backend_mode"], {"backend": "all", "mode": "", **s["overall"]}]:
        t.add_row(g["backend"], g["mode"], str(g["rows"]),
                  _pct(g["ttft_median_abs_err"]).lstrip("+"), _pct(g["ttft_median_signed_err"]),
                  _pct(g["tpot_median_abs_err"]).lstrip("+"), _pct(g["tpot_median_signed_err"]))
    out.print(t)
    out.print(f"coverage: {cov['covered']}/{cov['unique']} unique rows ({cov['covered_fraction']:.0%}; "
              f"{cov['duplicates']} duplicates of {cov['rows']} rows); simulated {cov['simulated']}",
              markup=False)
    for why, n in cov["not_covered"].items():
        out.print(f"  {n:5d}  {why}", markup=False)
    for why, n in cov["failed"].items():
        out.print(f"  {n:5d}  failed: {why}", markup=False)


@app.command()
def calibrate(
    csv_file: Annotated[Path, typer.Argument(help="Benchmark rows in silicon_sample.csv's columns (docs/validation.md).")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="The engine whose rows are fitted: vllm, sglang or trtllm.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The profile (JSON) to write; name it in a config as engine.profile.")],
    holdout: Annotated[float, typer.Option("--holdout", help="Share of the rows kept out of the fit and used to measure it.")] = 0.25,
    sample: Annotated[Optional[int], typer.Option("--sample", min=3, help="Fit on a deterministic spread of N rows.")] = None,  # noqa: UP045
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Rows simulated in parallel in a local process pool.")] = 1,
    predictor: Annotated[Optional[str], typer.Option("--predictor", help="Predictor chain, comma-separated (default: roofline).")] = None,  # noqa: UP045
    annotations: Annotated[Optional[Path], typer.Option("--annotations", help="A CSV that adds columns to rows by id (default: <file>_annotations.csv beside the file, if any).")] = None,  # noqa: UP045
    client: Annotated[str, typer.Option("--client", help="The benchmark client assumed where a row does not say: auto (InferenceX's where the row's source export holds InferenceX rows, else default), default (fixed lengths, 3 requests per client, the first wave warm-up) or inferencex.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing profile file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON on stdout.")] = False,
) -> None:
    """Fit an engine's host time per iteration to your own serving benchmarks (least
    squares, with held-out rows) and write a profile a config can name."""
    from frontier_core.app.calibrate import calibrate as run_calibration

    _benchmark_file(csv_file)
    if output.is_dir():
        raise ConfigError(f"-o {str(output)!r} is a folder; give the path of the profile file "
                          "to write, e.g. -o vllm-profile.json.")
    if output.exists() and not overwrite:
        raise ConfigError(f"-o {str(output)!r} exists; pass --overwrite to replace it, or "
                          "pick another path.")
    if not output.parent.is_dir():
        raise ConfigError(f"-o {str(output)!r}: the folder {str(output.parent)!r} does not "
                          "exist; create it or pick another path.")
    chain = [p.strip() for p in (predictor or "roofline").split(",") if p.strip()]
    kwargs = dict(engine=engine, holdout=holdout, sample=sample, jobs=jobs, predictor=chain,
                  registry=_registry(), annotations=annotations, client=client)
    if as_json:
        cal = run_calibration(csv_file, **kwargs)
    elif not err.is_terminal:
        cal = run_calibration(csv_file, **kwargs, progress=_progress_lines("calibrating", "runs"))
    else:
        with _progress_bar("calibrating", "runs") as bar:
            task = bar.add_task("runs", total=None)
            cal = run_calibration(csv_file, **kwargs,
                                  progress=lambda d, t: bar.update(task, completed=d, total=t))
    cal.write(output)
    if as_json:
        sys.stdout.write(json.dumps(cal.profile(), indent=2) + "\n")
        return
    h = cal.host
    out.print(f"{cal.engine}: host per iteration = {h['base_s'] * 1e3:.3f} ms "
              f"+ {h['per_seq_s'] * 1e6:.2f} µs/sequence + {h['per_token_s'] * 1e6:.3f} µs/token "
              f"(fitted on {cal.rows_fit} rows)", markup=False)
    if cal.held_out:
        t = Table(title=f"Held-out rows ({cal.rows_held_out}): median error", header_style="bold")
        for c in ("host constants", "TTFT |err|", "TTFT signed", "TPOT |err|", "TPOT signed"):
            t.add_column(c, justify="left" if c == "host constants" else "right")
        for k, label in (("no_host", "none"), ("default", "engine default"),
                         ("calibrated", "calibrated")):
            e = cal.held_out[k]
            t.add_row(label, _pct(e["ttft_median_abs_err"]).lstrip("+"),
                      _pct(e["ttft_median_signed_err"]),
                      _pct(e["tpot_median_abs_err"]).lstrip("+"), _pct(e["tpot_median_signed_err"]))
        out.print(t)
    out.print(f"wrote {output}", markup=False)


def _add_plugin_commands() -> None:
    try:
        reg = _registry()
    except FrontierError:
        return  # reported when a command needs the registry
    taken = _command_names()
    for p in reg.provided("command"):
        spec = p.item
        if spec.name in taken:
            err.print(
                f"warning: {p.distribution} provides a command {spec.name!r}, which is a "
                "built-in command; it is ignored.", highlight=False,
            )
            continue
        if isinstance(spec.command, typer.Typer):
            app.add_typer(spec.command, name=spec.name, help=spec.summary)
        else:
            app.command(name=spec.name, help=spec.summary)(spec.command)


def _command_name(argv: Sequence[str]) -> str | None:
    """The command the command line names (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _command_names() -> set[str]:
    """The names of the commands and command groups the app has now (typer leaves a
    command's name unset when it comes from its function's name)."""
    from typer.main import get_command_name

    return ({c.name or get_command_name(c.callback.__name__) for c in app.registered_commands}
            | {g.name for g in app.registered_groups})


def _builtin_command(argv: Sequence[str]) -> bool:
    """Whether the command line names a command the app has before the plugins' are
    added: one of the kernel's own (``run``, ``config``)."""
    return _command_name(argv) in _command_names()


def _missing_command(argv: Sequence[str]) -> None:
    """A PluginError when the command asked for is one a plugin of the project provides
    and that plugin is not installed (the command-line library would only say "No such
    command")."""
    from frontier_core.plugins import KNOWN_PROVIDERS

    name = _command_name(argv)
    dist = KNOWN_PROVIDERS.get(("command", name or ""))
    taken = _command_names()
    if dist is None or name in taken:
        return
    folder = dist.removeprefix("frontier-").replace("-", "_")
    raise PluginError(
        f"`frontier {name}` is provided by the plugin distribution {dist}, which is not "
        f"installed. Install it from a Frontier checkout: pip install ./plugins/{folder} "
        "(`frontier plugins` then lists it)."
    )


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    if issubclass(category, FrontierWarning):
        err.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main() -> None:
    """Console entry point: user errors become one paragraph on stderr and exit 2."""
    warnings.showwarning = _show_warning
    try:
        # NOTE: perf — a built-in command runs without loading the plugins up front (its
        # run loads them when it assembles), so `frontier run --help` starts fast; no
        # plugin's command can take a built-in command's name anyway.
        if not _builtin_command(sys.argv[1:]):
            _add_plugin_commands()
            _missing_command(sys.argv[1:])
        app()
    except FrontierError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":  # python -m frontier_core.app.cli: as the console script does
    from _frontier_main import main as entry

    entry()
