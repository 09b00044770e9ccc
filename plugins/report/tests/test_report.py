"""build_report on real kernel outputs: the files it writes, that they are valid images
linked from index.html, the variants (no trace, pd time series, failed sweep rows,
svg) and every bad input as a ConfigError."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from frontier_report import build_report
from frontier_report.inputs import load_run, load_sweep

from frontier_core.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "img":
            self.srcs.append(a["src"])


def _links(index: Path) -> _Links:
    p = _Links()
    p.feed(index.read_text())
    return p


def _check_image(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    if path.suffix == ".png":
        import matplotlib.image

        assert path.read_bytes()[:8] == PNG_MAGIC
        h, w = matplotlib.image.imread(path).shape[:2]
        assert h > 100 and w > 100
    else:
        assert ElementTree.parse(path).getroot().tag.endswith("svg")


def _check_report(rep, names: list[str], fmt: str = "png") -> _Links:
    assert [f.name for f in rep.figures] == [f"{n}.{fmt}" for n in names]
    links = _links(rep.index)
    for f in rep.figures:
        _check_image(f)
        assert f.name in links.hrefs and f.name in links.srcs
    return links


def test_run_report(run_dir, tmp_path):
    rep = build_report(run_dir, tmp_path / "rep")
    assert rep.kind == "run" and rep.notes == []
    links = _check_report(rep, ["latency_cdf", "utilisation", "queues"])
    trace = [h for h in links.hrefs if h.endswith("trace.json")]
    assert trace and (rep.out / trace[0]).resolve() == (run_dir / "trace.json").resolve()
    html = rep.index.read_text()
    assert "ui.perfetto.dev" in html and "TTFT" in html


def test_expert_clusters_get_a_traffic_and_straggler_figure(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    s = json.loads((run / "summary.json").read_text())
    s["expert_clusters"] = {
        "hot": {"gpu": "h200", "gpus": 8, "bytes_received": 3e9, "bytes_sent": 6e9,
                "busy_fraction": 0.4, "straggler_share": 0.3},
        "cold": {"gpu": "a100-80g-sxm", "gpus": 16, "bytes_received": 1e9,
                 "bytes_sent": 2e9, "busy_fraction": 0.2, "straggler_share": 0.7}}
    (run / "summary.json").write_text(json.dumps(s))
    rep = build_report(run, tmp_path / "rep")
    _check_report(rep, ["latency_cdf", "utilisation", "queues", "expert_clusters"])
    assert "Expert clusters: traffic and stragglers" in rep.index.read_text()


def test_moe_clusters_get_a_load_balance_figure(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    s = json.loads((run / "summary.json").read_text())
    name = next(iter(s["clusters"]))
    s["clusters"][name]["moe"] = {
        "straggler_ratio_timeline": {"iterations_per_point": 50, "values": [2.1, 1.8, 1.3]},
        "eplb": {"timeline": [{"iteration": 100, "window_imbalance_before": 1.9,
                               "window_imbalance_after": 1.05}]}}
    (run / "summary.json").write_text(json.dumps(s))
    rep = build_report(run, tmp_path / "rep")
    _check_report(rep, ["latency_cdf", "utilisation", "queues", "moe_balance"])
    assert "Expert-parallel load balance over time" in rep.index.read_text()


def test_run_report_defaults_to_run_dir_report(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    rep = build_report(run)
    assert rep.out == run / "report" and rep.index.is_file()
    assert 'href="../trace.json"' in rep.index.read_text()


def test_run_inputs_match_requests_csv(run_dir):
    data = load_run(run_dir)
    with open(run_dir / "requests.csv") as f:
        rows = list(csv.DictReader(f))
    ttft = sorted(float(r["ttft_s"]) for r in rows if not r["rejected"])
    from frontier_report.analysis import cdf, latency_values

    x, p = cdf(latency_values(data.requests)["ttft_s"])
    assert x.tolist() == ttft
    assert p[-1] == 1.0 and len(p) == len(ttft)


def test_utilisation_agrees_with_summary(run_dir):
    """Busy time binned from the trace adds up to summary.json's busy fraction."""
    from frontier_report.analysis import binned_utilisation, iteration_tracks

    data = load_run(run_dir)
    info = data.summary["clusters"]["main"]
    start = float(np.nanmin(data.requests["arrival_s"]))
    end = float(np.nanmax(data.requests["completion_s"]))
    edges = np.linspace(start, end, 101)
    tracks = iteration_tracks(data.trace)["main"]
    assert len(tracks) == 2
    busy, kv = binned_utilisation(tracks, info["replicas"], info["kv_blocks_per_replica"], edges)
    assert busy.mean() == pytest.approx(info["busy_fraction"], rel=1e-6)
    assert 0 < kv.max() <= info["kv_peak_fraction"] + 1e-9


def test_run_without_trace_skips_utilisation_and_says_so(make_run, tmp_path):
    run = make_run(tmp_path / "run", "output.trace=false")
    rep = build_report(run, fmt="svg")
    _check_report(rep, ["latency_cdf", "queues"], fmt="svg")
    assert any("output.trace" in n for n in rep.notes)
    assert "output.trace: false" in rep.index.read_text()


def test_pd_timeseries_is_used_for_queues(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    (run / "pd_timeseries.csv").write_text(
        "time_s,prefill_waiting,prefilling,blocked_on_decode_memory,transferring,decoding\n"
        "0.0,0.0,1.0,0.0,0.0,0.0\n1.0,2.0,1.0,3.0,1.0,4.0\n2.0,0.0,0.0,0.0,0.0,1.0\n")
    assert load_run(run).pd_timeseries["blocked_on_decode_memory"].tolist() == [0, 3, 0]
    rep = build_report(run)
    assert "From pd_timeseries.csv" in rep.index.read_text()
    _check_image(rep.out / "queues.png")


def test_pd_run_report(tmp_path):
    pytest.importorskip("frontier_pd_disagg")
    from frontier_core import load_registry
    from frontier_core.app.metrics import write_outputs
    from frontier_core.assemble import assemble
    from frontier_core.config import RunConfig

    cfg = RunConfig.model_validate({
        "model": "opt-13b",
        "deployment": {"workflow": {"name": "pd", "prefill": ["p"], "decode": ["d"]},
                       "clusters": [{"name": "p", "gpu": "a100-80g-sxm", "tp": 2},
                                    {"name": "d", "gpu": "a100-80g-sxm"}]},
        "predictor": ["distserve"],
        "workload": {"arrival": {"process": "poisson", "rate": 3},
                     "prompt_len": {"dist": "uniform", "low": 100, "high": 1200},
                     "output_len": {"dist": "uniform", "low": 2, "high": 200},
                     "num_requests": 30},
    })
    write_outputs(assemble(cfg, load_registry()).run(), tmp_path / "pd")
    rep = build_report(tmp_path / "pd")
    _check_report(rep, ["latency_cdf", "utilisation", "queues"])
    assert "From pd_timeseries.csv" in rep.index.read_text()


def test_sweep_report(sweep_dir, tmp_path):
    data = load_sweep(sweep_dir)
    assert data.varied == ["workload.arrival.rate", "deployment.clusters.0.replicas"]
    assert len(data.rows) == 4 and data.failed == 0
    rep = build_report(sweep_dir, tmp_path / "rep")
    assert rep.kind == "sweep" and rep.notes == []
    links = _check_report(rep, ["throughput", "pareto"])
    html = rep.index.read_text()
    assert "Pareto-optimal runs" in html and "rate=" not in html.split("<table>")[0]
    run_links = [h for h in links.hrefs if "/runs/" in h]
    assert run_links and all((rep.out / h / "summary.json").is_file() for h in run_links)


def test_sweep_report_svg_is_deterministic(sweep_dir, tmp_path):
    a = build_report(sweep_dir, tmp_path / "a", fmt="svg")
    b = build_report(sweep_dir, tmp_path / "b", fmt="svg")
    _check_report(a, ["throughput", "pareto"], fmt="svg")
    for fa, fb in zip(a.figures, b.figures, strict=True):
        assert fa.read_bytes() == fb.read_bytes()


def test_sweep_failed_rows_are_left_out(sweep_dir, tmp_path):
    sw = shutil.copytree(sweep_dir, tmp_path / "sw")
    text = (sw / "results.csv").read_text().splitlines()
    header = text[0].split(",")
    bad = ["deadbeef0000", "x.yaml", "failed", "boom", "8", "1"] + [""] * (len(header) - 6)
    (sw / "results.csv").write_text("\n".join([*text, ",".join(bad)]) + "\n")
    assert load_sweep(sw).failed == 1
    rep = build_report(sw)
    assert any("1 failed" in n for n in rep.notes)
    # Only failed rows: nothing to plot.
    only_failed = "\n".join([text[0], ",".join(bad)]) + "\n"
    (sw / "results.csv").write_text(only_failed)
    with pytest.raises(ConfigError, match="no successful run"):
        build_report(sw)


def test_sweep_without_rate_uses_another_numeric_axis(registry, config_file, tmp_path):
    from frontier_core.app.sweep import sweep

    sweep([config_file], ["deployment.clusters.0.replicas=1,2"], tmp_path / "sw",
          registry=registry)
    rep = build_report(tmp_path / "sw")
    assert [f.name for f in rep.figures] == ["throughput.png", "pareto.png"]
    assert "Throughput and goodput vs replicas" in rep.index.read_text()


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"),
    ("file", "is not a directory"),
    ("empty", "neither a run directory"),
    ("no_requests", "requests.csv"),
    ("bad_summary_json", "is not valid JSON"),
    ("bad_requests_csv", "not a number"),
    ("requests_missing_column", "no column 'ttft_s'"),
    ("bad_trace", "is not valid JSON"),
    ("sweep_no_json", "sweep.json"),
    ("sweep_no_results", "results.csv"),
    ("bad_format", "--format"),
    ("out_is_file", "not a directory"),
])
def test_bad_input_is_a_config_error(case, words, run_dir, sweep_dir, tmp_path):
    out, fmt = None, "png"
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "file":
        target = tmp_path / "f.txt"
        target.write_text("x")
    elif case == "empty":
        target = tmp_path
    elif case.startswith("sweep"):
        target = shutil.copytree(sweep_dir, tmp_path / "sw")
        (target / ("sweep.json" if case == "sweep_no_json" else "results.csv")).unlink()
    else:
        target = shutil.copytree(run_dir, tmp_path / "run")
        req = target / "requests.csv"
        if case == "no_requests":
            req.unlink()
        elif case == "bad_summary_json":
            (target / "summary.json").write_text("{\n  oops\n")
        elif case == "bad_requests_csv":
            lines = req.read_text().splitlines()
            lines[2] = lines[2].replace(lines[2].split(",")[1], "soon", 1)
            req.write_text("\n".join(lines) + "\n")
        elif case == "requests_missing_column":
            with open(req) as f:
                rows = list(csv.DictReader(f))
            with open(req, "w", newline="") as f:
                w = csv.DictWriter(f, [k for k in rows[0] if k != "ttft_s"], extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        elif case == "bad_trace":
            (target / "trace.json").write_text('{"traceEvents": [')
        elif case == "bad_format":
            fmt = "jpg"
        elif case == "out_is_file":
            out = tmp_path / "taken"
            out.write_text("")
    with pytest.raises(ConfigError, match=words) as e:
        build_report(target, out, fmt)
    assert "\n" not in str(e.value)


def test_summary_must_be_a_run_summary(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    (run / "summary.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="no 'clusters' section"):
        build_report(run)


# ---- the output folder (frontier_core.app.outdir) ---------------------------------------


def test_output_folder_frontier_did_not_write_is_refused(run_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="holds 1 entry Frontier did not write: notes.txt"):
            build_report(run_dir, mine, overwrite=overwrite)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_rerun_replaces_the_report_and_keeps_user_files(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    build_report(run)
    (run / "report" / "notes.txt").write_text("mine")
    rep = build_report(run, fmt="svg")
    names = sorted(p.name for p in (run / "report").iterdir())
    assert names == [".frontier-results.json", "index.html", "latency_cdf.svg", "notes.txt",
                     "queues.svg", "utilisation.svg"]  # the png report is replaced
    assert 'href="../trace.json"' in rep.index.read_text()  # links relative to the final folder
    # the run folder itself keeps its files; nothing temporary is left in it
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [
        ".frontier-results.json"]
    assert (run / "summary.json").is_file()


def test_report_into_the_run_folder_itself_is_refused(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    for out in (run, tmp_path):
        with pytest.raises(ConfigError, match="being reported on"):
            build_report(run, out, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == before


def test_results_of_another_kind_need_overwrite(run_dir, sweep_dir, tmp_path):
    other = shutil.copytree(sweep_dir, tmp_path / "sw")
    with pytest.raises(ConfigError, match="`frontier sweep`, not of `frontier report`"):
        build_report(run_dir, other)
    rep = build_report(run_dir, other, overwrite=True)
    assert rep.index.is_file() and not (other / "results.csv").exists()
