"""Every bad input a user can give is one clear paragraph: a table of configs, traces,
flags and benchmark files, each run through the ``frontier`` command in-process. Each
case asserts the exit status, that no traceback is printed, that the message names the
field, file or line at fault, and that nothing is left behind (no results folder).

A second table holds inputs that are allowed but deserve a word (``warning:``): the run
goes on, and the warning says how many requests are affected.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from simhelpers import SERVING_ROW

from frontier_core.app import cli

WORKLOAD = (
    "workload:\n"
    "  arrival: {process: poisson, rate: 2}\n"
    "  prompt_len: {dist: fixed, value: 100}\n"
    "  output_len: {dist: fixed, value: 10}\n"
    "  num_requests: 5\n"
)
CLUSTER = "deployment:\n  clusters:\n    - name: main\n"
SYN = WORKLOAD + CLUSTER
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
TRACE = "workload:\n  trace: {format: azure, path: t.csv}\n"
# "Billion laughs": each line repeats the one before nine times (9^9 leaves in all).
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{a}: &{a} [{', '.join([f'*{p}'] * 9)}]\n" for p, a in zip("abcdefgh", "bcdefghi", strict=True)
)
GPU = "{name: g, mem_bytes: 80e9, mem_bw: 3e12, nvlink_bw: 4e11, scaleout_bw: 5e10, "


def serving(*changes: dict[str, str], bom: bool = False) -> str:
    """A benchmark CSV (``validate serving``): one row per ``changes``, each the sample row
    with those cells replaced; ``backend`` first, so that a byte-order mark would hide a
    required column."""
    cols = ["backend", *(c for c in SERVING_ROW if c != "backend"), "concurrency", "speculative", "spec_k",
            "spec_acceptance"]
    lines = [",".join(cols)]
    for i, ch in enumerate(changes):
        row = {**SERVING_ROW, "id": f"r{i}", **ch}
        lines.append(",".join(row.get(c, "") for c in cols))
    return ("\ufeff" if bom else "") + "\n".join(lines) + "\n"


def serve(text: str, expect: list[str]) -> Case:
    return Case(["validate", "serving", "b.csv", "-o", "out"], ["b.csv", *expect], {"b.csv": text})


@dataclass
class Case:
    """``args`` after ``frontier``; ``files`` written into an empty folder first (a value
    of None makes a FIFO); ``expect``: parts the message must contain."""

    args: list[str]
    expect: list[str]
    files: dict[str, str | None] = field(default_factory=dict)
    code: int = 2


def validate(*sets: str, text: str = SYN) -> tuple[list[str], dict[str, str | None]]:
    args = ["config", "validate", "c.yaml"]
    for s in sets:
        args += ["--set", s]
    return args, {"c.yaml": text}


def case(sets: tuple[str, ...] | str, expect: list[str], text: str = SYN,
         extra: dict[str, str | None] | None = None) -> Case:
    args, files = validate(*((sets,) if isinstance(sets, str) else sets), text=text)
    return Case(args, expect, {**files, **(extra or {})})


BAD: dict[str, Case] = {
    # ---- YAML and the config's fields --------------------------------------------------
    "malformed-yaml": Case(["run", "c.yaml", "-o", "out"], ["c.yaml:4", "Malformed YAML"],
                           {"c.yaml": "model: llama-3.1-8b\nslo:\n  ttft_s: 0.5\n   tpot_s: 1\n"}),
    "unknown-field": case((), ["deployment.clusters[0].gpus", "c.yaml:9", "unknown field"],
                          SYN + "      gpus: 4\n"),
    "negative-rate": case("workload.arrival.rate=-2", ["workload.arrival.rate", "greater than 0"]),
    "missing-config": Case(["run", "nothere.yaml", "-o", "out"], ["nothere.yaml", "does not exist"]),
    "bad-set": Case(["run", "--set", "seed", "-o", "out"], ["--set 'seed'", "path.to.field=value"]),
    "unknown-plugin": case("deployment.clusters.0.scheduler=vlm",
                           ["'vlm'", "deployment.clusters[0].scheduler", "Did you mean 'vllm'"]),
    "unknown-gpu": case("deployment.clusters.0.gpu=h1000", ["'h1000'", "deployment.clusters[0].gpu"]),
    "model-does-not-fit": case(("model=llama-3.1-70b", "deployment.clusters.0.gpu=a100-80g-sxm"),
                               ["llama-3.1-70b does not fit", "deployment.clusters[0]"]),
    "duplicate-key": case((), ["c.yaml:3", "'seed'", "twice", "line 1"],
                          "seed: 1\nmodel: llama-3.1-8b\nseed: 2\n" + SYN),
    "duplicate-nested-key": case((), ["c.yaml:3", "'rate'", "twice"],
                                 SYN.replace("rate: 2}", "rate: 2,\n    rate: 3}")),
    "recursive-alias": case((), ["c.yaml:9", "alias", "contains it"], SYN + "foo: &a [*a]\n"),
    "alias-bomb": case((), ["c.yaml:", "aliases", "100,000 nodes"], SYN + BOMB),
    "negative-seed-yaml": case((), ["seed", "c.yaml:1", "greater than or equal to 0"],
                               "seed: -1\n" + SYN),
    "negative-seed-set": case("seed=-1", ["seed", "greater than or equal to 0", "-1"]),
    "infinite-rate": case("workload.arrival.rate=.inf", ["workload.arrival.rate", "finite"]),
    "nan-rate": case("workload.arrival.rate=.nan", ["workload.arrival.rate", "finite"]),
    "infinite-duration": case("workload.duration_s=.inf", ["workload.duration_s", "finite"]),
    "huge-fixed-length": case("workload.prompt_len.value=100000000000000000000",
                              ["workload.prompt_len", "value", "less than or equal to 100000000"]),
    "huge-num-requests": case("workload.num_requests=1000000000000",
                              ["workload.num_requests", "less than or equal to 10000000"]),
    "rate-times-duration": case(("workload.num_requests=null", "workload.duration_s=1e8",
                                 "workload.arrival.rate=1000"),
                                ["workload.arrival.rate × workload.duration_s", "10,000,000"]),
    "lognormal-median-inf": case("workload.prompt_len={dist: lognormal, median: .inf, sigma: 1}",
                                 ["workload.prompt_len", "median", "finite"]),
    "lognormal-median-above-max": case(
        "workload.prompt_len={dist: lognormal, median: 1e6, sigma: 1}",
        ["workload.prompt_len", "median 1e+06", "[1, 32768]"]),
    "gamma-cv-inf": case("workload.arrival={process: gamma, rate: 1, cv: .inf}",
                         ["workload.arrival.cv", "finite"]),
    "gpu-flops-nan": case(("hardware=[" + GPU + "flops: {bf16: .nan}}]",
                           "deployment.clusters.0.gpu=g"), ["hardware[0].flops.bf16", "finite"]),
    "gpu-flops-negative": case(("hardware=[" + GPU + "flops: {bf16: -1}}]",
                                "deployment.clusters.0.gpu=g"),
                               ["hardware[0].flops.bf16", "greater than 0"]),
    "gpu-bandwidth-inf": case(("hardware=[" + GPU.replace("3e12", ".inf") + "flops: {bf16: 1e15}}]",
                               "deployment.clusters.0.gpu=g"), ["hardware[0].mem_bw", "finite"]),
    "speculative-unknown-draft": case(
        "deployment.clusters.0.speculative={method: draft, k: 3, acceptance: 0.7, "
        "draft_model: llama-3.2-1bb}",
        ["'llama-3.2-1bb'", "deployment.clusters[0].speculative.draft_model"]),
    "output-is-a-file": Case(["run", "c.yaml", "-o", "out"], ["'out'", "not a directory"],
                             {"c.yaml": SYN, "out": "a file\n"}),
    "validate-missing-config": Case(["config", "validate", "missing.yaml"], ["missing.yaml"]),
    "negative-disk-cache": case("deployment.clusters.0.disk_cache_gb=-1",
                                ["deployment.clusters[0].disk_cache_gb",
                                 "greater than or equal to 0"]),
    "disk-cache-without-prefix-cache": case(
        "deployment.clusters.0.disk_cache_gb=100",
        ["deployment.clusters[0].disk_cache_gb is 100", "prefix_cache, which is off"]),
    "disk-cache-without-host-cache": case(
        ("deployment.clusters.0.prefix_cache=true", "deployment.clusters.0.disk_cache_gb=100"),
        ["deployment.clusters[0].disk_cache_gb is 100", "host_cache_gb, which is 0"]),
    "zero-disk-bandwidth": case("deployment.clusters.0.disk_read_gbs=0",
                                ["deployment.clusters[0].disk_read_gbs", "greater than 0"]),
    "moe-on-dense-model": case("deployment.clusters.0.moe={ep: 2}",
                               ["deployment.clusters[0].moe", "llama-3.1-8b", "dense"]),
    "dp-balance-unknown": case("deployment.clusters.0.dp_balance=shortest_queue",
                               ["deployment.clusters[0].dp_balance", "least_tokens",
                                "'shortest_queue'"]),
    # ---- traces ------------------------------------------------------------------------
    "trace-bad-row": case((), ["t.csv:3", "ContextTokens", "'abc'"], TRACE,
                          {"t.csv": AZURE + "2023-11-16 18:15:47.0000000,abc,12\n"}),
    "trace-huge-length": case((), ["t.csv:3", "ContextTokens", "1e30", "100,000,000"], TRACE,
                              {"t.csv": AZURE + "2023-11-16 18:15:47.0000000,1e30,12\n"}),
    "trace-missing": case((), ["t.csv", "not found", "workload.trace.path"], TRACE),
    "trace-is-a-fifo": case((), ["t.csv", "not a regular file", "workload.trace.path"], TRACE,
                            {"t.csv": None}),
    # ---- validate serving --------------------------------------------------------------
    "serving-isl-inf": serve(serving({"isl": "inf"}), ["none of its 1 rows", "1 no isl/osl"]),
    "serving-isl-nan": serve(serving({"isl": "nan"}), ["none of its 1 rows", "1 no isl/osl"]),
    "serving-concurrency-inf": serve(
        serving({"silicon_data_source": "", "concurrency": "inf"}), ["1 no concurrency"]),
    "serving-concurrency-huge": serve(
        serving({"silicon_data_source": "", "concurrency": "100000000"}),
        ["concurrency beyond the 100,000 clients"]),
    "serving-ttft-inf": serve(serving({"silicon_ttft_ms": "inf"}),
                              ["measured TTFT/TPOT not a finite number"]),
    "serving-bad-mapping": serve(
        serving({"speculative": "mtp", "spec_k": "99", "spec_acceptance": "0.7"}),
        ["invalid run config", "speculative.k", "less than or equal to 16"]),
    "serving-header-only": serve(serving(), ["header but no data rows"]),
    "serving-empty": serve("", ["empty"]),
    "serving-missing-column": serve("id,backend\nx,vllm\n", ["missing column(s)", "model_path"]),
    "serving-unknown-predictor": Case(
        ["validate", "serving", "b.csv", "--predictor", "nosuch"], ["'nosuch'"],
        {"b.csv": serving({})}),
    "serving-unknown-client": Case(
        ["validate", "serving", "b.csv", "--client", "nosuch"], ["--client 'nosuch'"],
        {"b.csv": serving({})}),
    "serving-missing-file": Case(["validate", "serving", "b.csv"], ["'b.csv'", "does not exist"]),
    "serving-directory": Case(["validate", "serving", "d"], ["'d'", "is a folder"],
                              {"d": ""}),
    "serving-fifo": Case(["validate", "serving", "b.csv"], ["'b.csv'", "not a regular file"],
                         {"b.csv": None}),
    # ---- sweep, plan, calibrate, and outputs that cannot be written ---------------------
    "sweep-bad-grid": Case(["sweep", "c.yaml", "--grid", "seed", "-o", "sw"],
                           ["--grid 'seed'", "path.to.field=v1,v2"], {"c.yaml": SYN}),
    "sweep-grid-twice": Case(["sweep", "c.yaml", "--grid", "seed=1", "--grid", "seed=2", "-o", "sw"],
                             ["'seed' twice"], {"c.yaml": SYN}),
    "sweep-missing-config": Case(["sweep", "nothere.yaml", "-o", "sw"],
                                 ["nothere.yaml", "does not exist"]),
    "sweep-bad-set": Case(["sweep", "c.yaml", "--set", "workload.arrival.rate=-1", "-o", "sw"],
                          ["workload.arrival.rate", "greater than 0"], {"c.yaml": SYN}),
    "sweep-unwritable-output": Case(["sweep", "c.yaml", "-o", "/proc/frontier-sweep"],
                                    ["Cannot write to -o/--output", "'/proc'"], {"c.yaml": SYN}),
    "run-unwritable-output": Case(["run", "c.yaml", "-o", "/proc/frontier-out"],
                                  ["Cannot write to -o/--output", "'/proc'"], {"c.yaml": SYN}),
    "plan-no-slo": Case(["plan", "c.yaml", "--rate", "1"], ["--slo-ttft"], {"c.yaml": SYN}),
    "plan-bad-objective": Case(["plan", "c.yaml", "--slo-ttft", "1", "--objective", "speed"],
                               ["--objective", "'speed'"], {"c.yaml": SYN}),
    "plan-bad-price": Case(["plan", "c.yaml", "--slo-ttft", "1", "--price", "h100"],
                           ["--price 'h100'", "KIND=USD_PER_GPU_HOUR"], {"c.yaml": SYN}),
    "plan-unknown-gpu": Case(["plan", "c.yaml", "--slo-ttft", "1", "--gpus", "h1000"],
                             ["--gpus", "h1000"], {"c.yaml": SYN}),
    "plan-unwritable-output": Case(["plan", "c.yaml", "--slo-ttft", "1", "-o",
                                    "/proc/frontier-plan.yaml"], ["'/proc"], {"c.yaml": SYN}),
    "calibrate-unknown-engine": Case(["calibrate", "b.csv", "--engine", "tgi", "-o", "p.json"],
                                     ["not an installed engine"], {"b.csv": serving({})}),
    "calibrate-bad-holdout": Case(["calibrate", "b.csv", "--engine", "vllm", "--holdout", "1.5",
                                   "-o", "p.json"], ["must lie in"], {"b.csv": serving({})}),
}


def _frontier(args: list[str], capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``frontier ARGS`` in this process through the console entry point: (exit status,
    stdout, stderr). Every warning is shown (not once per place), as a fresh process
    would."""
    monkeypatch.setattr(sys, "argv", ["frontier", *args])
    monkeypatch.setenv("COLUMNS", "200")
    # The plugins' commands are added once per process, as the entry point does.
    if not _ADDED:
        cli._add_plugin_commands()
        _ADDED.append(True)
    monkeypatch.setattr(cli, "_add_plugin_commands", lambda: None)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    got = capsys.readouterr()
    return code, got.out, got.err


_ADDED: list[bool] = []


def _write(tmp_path: Path, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        if name == "d":
            (tmp_path / name).mkdir()
        elif text is None:
            os.mkfifo(tmp_path / name)
        else:
            (tmp_path / name).write_text(text)


@pytest.mark.parametrize("name", BAD, ids=str)
def test_bad_input(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    c = BAD[name]
    if any("/proc/" in a for a in c.args) and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (a folder nobody may write in, root included)")
    _write(tmp_path, c.files)
    monkeypatch.chdir(tmp_path)
    code, out, err = _frontier(c.args, capsys, monkeypatch)
    text = out + err
    assert code == c.code, f"exit {code}\n{text}"
    assert "Traceback" not in text, text
    assert err.startswith("error:"), text
    msg = " ".join(err.split())
    for part in c.expect:
        assert part in msg, f"{part!r} not in: {msg}"
    assert sorted(os.listdir(tmp_path)) == sorted(c.files), "left something behind"


# ---- allowed, with a warning --------------------------------------------------------

LONG = ("workload.prompt_len={dist: uniform, low: 100, high: 200000}",
        "workload.num_requests=40")

WARNED: dict[str, tuple[list[str], list[str]]] = {
    "block-size-7": (["deployment.clusters.0.block_size=7"],
                     ["deployment.clusters[0].block_size is 7", "power of two"]),
    "prompt-beyond-context": (list(LONG), ["13 of 40 requests", "context of 131,072"]),
    "kv-smaller-than-request": (
        [*LONG, "deployment.clusters.0.gpu_memory_fraction=0.25"],
        ["37 of 40 requests have prompts longer than the KV cache", "cluster 'main'",
         "deployment.clusters[0].tp"]),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("name", WARNED, ids=str)
def test_warned_input(name: str, command: str, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sets, expect = WARNED[name]
    (tmp_path / "c.yaml").write_text(SYN)
    monkeypatch.chdir(tmp_path)
    args = ["config", "validate", "c.yaml"] if command == "validate" else [
        "run", "c.yaml", "-o", "out", "-q", "--set", "output.trace=false"]
    for s in sets:
        args += ["--set", s]
    code, out, err = _frontier(args, capsys, monkeypatch)
    assert code == 0, out + err
    assert "Traceback" not in out + err
    msg = " ".join(err.split())
    assert msg.startswith("warning:"), msg
    for part in expect:
        assert part in msg, f"{part!r} not in: {msg}"


def test_rejections_are_counted_by_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """summary.json counts rejected requests under one entry per cause, not one per
    request length."""
    import json

    (tmp_path / "c.yaml").write_text(SYN)
    monkeypatch.chdir(tmp_path)
    args = ["run", "c.yaml", "-o", "out", "-q", "--set", "output.trace=false"]
    for s in (*LONG, "deployment.clusters.0.gpu_memory_fraction=0.25"):
        args += ["--set", s]
    code, out, err = _frontier(args, capsys, monkeypatch)
    assert code == 0, out + err
    reasons = json.loads((tmp_path / "out" / "summary.json").read_text())["requests"][
        "rejected_reasons"]
    assert reasons == {
        "prompt+output exceed the model's context of 131072 tokens": 13,
        "needs more KV cache than a replica of cluster 'main' holds (15472 tokens)": 24,
    }


def test_bad_serving_rows_are_counted_and_the_rest_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One bad cell costs its row, under a reason, not the file; a byte-order mark does not
    hide the first column."""
    import json

    (tmp_path / "b.csv").write_text(serving(
        {}, {"isl": "inf"}, {"isl": "nan", "osl": "7"}, {"silicon_data_source": "",
                                                         "concurrency": "inf"},
        {"silicon_data_source": "", "concurrency": "1e8"}, {"silicon_ttft_ms": "inf"},
        {"silicon_tpot_ms": "nan"}, bom=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, err = _frontier(["validate", "serving", "b.csv", "--json"], capsys, monkeypatch)
    assert code == 0, out + err
    cov = json.loads(out)["coverage"]
    assert cov["simulated"] == 1 and cov["rows"] == 7
    assert cov["not_covered"] == {
        "no isl/osl": 2, "no concurrency": 1,
        "concurrency beyond the 100,000 clients Frontier simulates": 1,
        "measured TTFT/TPOT not a finite number": 1, "no measured TTFT/TPOT": 1,
    }
