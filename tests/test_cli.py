"""The ``frontier`` command end to end, in a subprocess: outputs, flags, listings, the
shipped examples, and that every user error is one paragraph on stderr with exit 2 and
no output directory left behind."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CLI = [sys.executable, "-m", "frontier_core.app.cli"]
# A wide terminal so rich does not wrap messages mid-word; no colour codes in captures.
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
SMALL = ["--set", "workload.num_requests=40"]

CATALOG_MODELS = {
    "deepseek-v3", "llama-2-7b", "llama-3.1-70b", "llama-3.1-8b", "llama-3.2-1b",
    "mixtral-8x7b", "mixtral-8x22b", "qwen2-7b", "qwen3-30b-a3b", "qwen3-32b",
}
CATALOG_GPUS = {"a100-80g-sxm", "a800", "b200", "h100-sxm", "h200", "h800"}


def frontier(*args: object, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def user_error(r: subprocess.CompletedProcess[str]) -> str:
    """Assert a user error (exit 2, one paragraph, no traceback); return it on one line."""
    assert r.returncode == 2, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    text = r.stderr.strip()
    assert text.startswith("error:"), text
    assert not re.search(r"\n\s*\n", text), f"more than one paragraph:\n{text}"
    assert r.stdout == ""
    return " ".join(line.strip() for line in text.splitlines())


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# ---- successful runs ---------------------------------------------------------------


def test_default_run_writes_all_outputs(tmp_path: Path) -> None:
    r = ok(frontier("run", "-o", "out", cwd=tmp_path))
    assert "TTFT" in r.stdout and "SLO attainment" in r.stdout
    out = tmp_path / "out"
    assert {"summary.json", "requests.csv", "trace.json", "simulator.json"} <= set(os.listdir(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == summary["requests"]["total"] > 0
    assert isinstance(json.loads((out / "trace.json").read_text())["traceEvents"], list)
    assert json.loads((out / "simulator.json").read_text())
    rows = (out / "requests.csv").read_text().splitlines()
    assert len(rows) == summary["requests"]["total"] + 1  # header + one row per request
    # Nothing but the output directory appears (no temporary siblings left behind).
    assert os.listdir(tmp_path) == ["out"]


def test_json_prints_summary_on_stdout(tmp_path: Path) -> None:
    r = ok(frontier("run", "-o", "out", "--json", *SMALL, cwd=tmp_path))
    summary = json.loads(r.stdout)
    assert summary["requests"]["total"] == 40
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    r = ok(frontier("run", "-o", "out", "-q", *SMALL, cwd=tmp_path))
    assert r.stdout == ""
    assert (tmp_path / "out" / "summary.json").is_file()


def test_set_overrides(tmp_path: Path) -> None:
    r = ok(frontier("run", "-o", "out", "--json", *SMALL, "--set", "seed=3",
                    "--set", "deployment.clusters.0.tp=2", cwd=tmp_path))
    summary = json.loads(r.stdout)
    assert summary["clusters"]["main"]["tp"] == 2
    assert summary["gpus"] == 2
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["seed"] == 3
    assert config["deployment"]["clusters"][0]["tp"] == 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_and_runs(example: Path, tmp_path: Path) -> None:
    text = example.read_text()
    if "name: pd" in text:
        pytest.importorskip("frontier_pd_disagg")
    small: list[str] = []
    if example.name.startswith("af-"):
        pytest.importorskip("frontier_af_pingpong")
    if example.name.startswith(("moe", "af-")):
        pytest.importorskip("frontier_moe_ep")
        small = ["--set", "workload.num_requests=60"]  # MoE runs cost ~1 ms per iteration
    r = ok(frontier("config", "validate", example.relative_to(REPO)))
    assert "valid" in r.stdout
    ok(frontier("run", example, "-o", tmp_path / "out", "-q", *small))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"]["completed"] > 0


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"llama3-8b-h100-azure-conv.yaml", "llama3-70b-tp4-a100-chunked.yaml",
            "closed-loop-concurrency.yaml"} <= names


# ---- user errors -------------------------------------------------------------------

TRACE_OK = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
SYNTHETIC = (
    "workload:\n"
    "  arrival: {process: poisson, rate: 2}\n"
    "  prompt_len: {dist: fixed, value: 100}\n"
    "  output_len: {dist: fixed, value: 10}\n"
    "  num_requests: 5\n"
)

BAD_INPUTS = {
    "malformed-yaml": (
        {"bad.yaml": "model: llama-3.1-8b\nslo:\n  ttft_s: 0.5\n   tpot_s: 0.05\n"},
        ["bad.yaml"],
        ["bad.yaml:4", "Malformed YAML"],
    ),
    "unknown-field": (
        {"c.yaml": "model: llama-3.1-8b\ndeployment:\n  clusters:\n    - name: main\n"
                   "      gpus: 4\n" + SYNTHETIC},
        ["c.yaml"],
        ["deployment.clusters[0].gpus", "c.yaml:5", "unknown field"],
    ),
    "negative-rate": (
        {"c.yaml": SYNTHETIC.replace("rate: 2", "rate: -2")},
        ["c.yaml"],
        ["workload.arrival.rate", "c.yaml:2", "greater than 0", "-2"],
    ),
    "trace-bad-row": (
        {"t.csv": TRACE_OK + "2023-11-16 18:15:47.0000000,abc,12\n",
         "c.yaml": "workload:\n  trace: {format: azure, path: t.csv}\n"},
        ["c.yaml"],
        ["t.csv:3", "ContextTokens", "'abc'"],
    ),
    "model-does-not-fit": (
        {},
        ["--set", "model=llama-3.1-70b", "--set", "deployment.clusters.0.gpu=a100-80g-sxm"],
        ["llama-3.1-70b does not fit", "a100-80g-sxm", "tp=1", "deployment.clusters[0]",
         "Raise tp"],
    ),
    "unknown-plugin": (
        {},
        ["--set", "deployment.clusters.0.scheduler=vlm"],
        ["'vlm'", "deployment.clusters[0].scheduler", "Did you mean 'vllm'"],
    ),
    "unknown-gpu": (
        {},
        ["--set", "deployment.clusters.0.gpu=h1000"],
        ["'h1000'", "deployment.clusters[0].gpu", "h100-sxm", "hardware:"],
    ),
    "speculative-unknown-draft": (
        {"c.yaml": "model: llama-3.1-8b\ndeployment:\n  clusters:\n    - name: main\n"
                   "      speculative: {method: draft, k: 3, acceptance: 0.7, "
                   "draft_model: llama-3.2-1bb}\n" + SYNTHETIC},
        ["c.yaml"],
        ["'llama-3.2-1bb'", "deployment.clusters[0].speculative.draft_model",
         "llama-3.2-1b"],
    ),
    "missing-config": (
        {},
        ["nothere.yaml"],
        ["nothere.yaml", "does not exist"],
    ),
    "missing-trace": (
        {"c.yaml": "workload:\n  trace: {format: azure, path: nope.csv}\n"},
        ["c.yaml"],
        ["nope.csv", "not found", "workload.trace.path"],
    ),
    "bad-set": (
        {},
        ["--set", "seed"],
        ["--set 'seed'", "path.to.field=value"],
    ),
    "output-is-a-file": (
        {"out": "not a directory\n"},
        [],
        ["'out'", "not a directory", "--output"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_bad_input_is_one_paragraph_and_writes_nothing(case: str, tmp_path: Path) -> None:
    files, args, expected = BAD_INPUTS[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    msg = user_error(frontier("run", *args, "-o", "out", cwd=tmp_path))
    for part in expected:
        assert part in msg, f"{part!r} not in: {msg}"
    assert sorted(os.listdir(tmp_path)) == sorted(files)  # no output (or temp) directory
    for name, text in files.items():
        assert (tmp_path / name).read_text() == text


def test_moe_model_names_the_plugin(tmp_path: Path) -> None:
    try:
        importlib.metadata.distribution("frontier-moe-ep")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip("frontier-moe-ep is installed, so MoE models run")
    msg = user_error(frontier("run", "--set", "model=mixtral-8x7b", "-o", "out", cwd=tmp_path))
    assert "mixtral-8x7b" in msg and "frontier-moe-ep" in msg
    assert os.listdir(tmp_path) == []


def test_validate_reports_errors_like_run(tmp_path: Path) -> None:
    msg = user_error(frontier("config", "validate", "missing.yaml", cwd=tmp_path))
    assert "missing.yaml" in msg


# ---- listings ----------------------------------------------------------------------


def test_plugins_json() -> None:
    rows = json.loads(ok(frontier("plugins", "--json")).stdout)
    by_dist = {r["distribution"]: r for r in rows}
    assert by_dist["frontier-core"]["builtin"] is True
    assert "vllm" in by_dist["frontier-core"]["provides"]["scheduler"]
    # the roofline is the kernel's own, so the kernel alone can run a model
    assert by_dist["frontier-core"]["provides"]["predictor"] == ["roofline"]
    if "frontier-predictors" in by_dist:
        assert by_dist["frontier-predictors"]["builtin"] is False
        provided = by_dist["frontier-predictors"]["provides"]["predictor"]
        assert "forest" in provided and "roofline" not in provided


def test_models_json() -> None:
    rows = json.loads(ok(frontier("models", "--json")).stdout)
    assert CATALOG_MODELS <= {r["name"] for r in rows}
    llama = next(r for r in rows if r["name"] == "llama-3.1-8b")
    assert 7.5 < llama["params_b"] < 8.5


def test_hardware_json() -> None:
    rows = json.loads(ok(frontier("hardware", "--json")).stdout)
    assert CATALOG_GPUS <= {r["name"] for r in rows}


def test_config_schema_is_json() -> None:
    schema = json.loads(ok(frontier("config", "schema")).stdout)
    assert {"model", "deployment", "workload", "slo"} <= set(schema["properties"])


# ---- output atomicity --------------------------------------------------------------


def _hidden(d: Path) -> list[str]:
    """Hidden entries of ``d`` other than the results marker (temporary folders)."""
    return [n for n in os.listdir(d) if n.startswith(".") and n != ".frontier-results.json"]


def test_rerun_replaces_frontier_files_and_keeps_user_files(tmp_path: Path) -> None:
    ok(frontier("run", "-o", "out", "-q", *SMALL, cwd=tmp_path))
    out = tmp_path / "out"
    (out / "notes.txt").write_text("added by the user")
    ok(frontier("run", "-o", "out", "-q", "--set", "workload.num_requests=25",
                "--set", "output.trace=false", cwd=tmp_path))
    assert (out / "notes.txt").read_text() == "added by the user"
    assert json.loads((out / "summary.json").read_text())["requests"]["total"] == 25
    assert not (out / "trace.json").exists()  # written by the first run only: replaced
    assert json.loads((out / ".frontier-results.json").read_text())["kind"] == "run"
    assert os.listdir(tmp_path) == ["out"] and _hidden(out) == []  # no temporary folders


def test_output_folder_holding_the_config_is_refused(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "sub" / "base.yaml").write_text(SYNTHETIC)
    (proj / "notes.txt").write_text("mine")
    before = {str(p.relative_to(proj)): p.read_bytes() for p in proj.rglob("*") if p.is_file()}
    msg = user_error(frontier("run", "proj/sub/base.yaml", "-o", "proj", cwd=tmp_path))
    assert "'proj' holds 2 entries Frontier did not write: notes.txt, sub/" in msg
    assert "will not replace" in msg and "-o/--output" in msg
    after = {str(p.relative_to(proj)): p.read_bytes() for p in proj.rglob("*") if p.is_file()}
    assert after == before and os.listdir(tmp_path) == ["proj"]
    # --overwrite never replaces a folder Frontier did not write
    user_error(frontier("run", "proj/sub/base.yaml", "-o", "proj", "--overwrite", cwd=tmp_path))
    assert (proj / "sub" / "base.yaml").read_text() == SYNTHETIC


def test_output_dot_in_an_empty_folder_and_in_a_results_folder(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    ok(frontier("run", "-o", ".", "-q", *SMALL, cwd=here))
    assert {"summary.json", "requests.csv", "trace.json"} <= set(os.listdir(here))
    (here / "notes.txt").write_text("mine")
    ok(frontier("run", "-o", ".", "-q", *SMALL, cwd=here))
    assert (here / "notes.txt").read_text() == "mine"
    assert _hidden(here) == [] and os.listdir(tmp_path) == ["here"]  # no ..old.* folders


def test_output_dir_from_the_config_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "data.csv").write_text("1,2\n")
    msg = user_error(frontier("run", "--set", "output.dir=taken", cwd=tmp_path))
    assert "'taken' holds 1 entry Frontier did not write: data.csv" in msg
    assert "output.dir" in msg


def test_sweep_folder_given_to_run_needs_overwrite(tmp_path: Path) -> None:
    ok(frontier("sweep", "-o", "s", "-q", "--grid", "workload.num_requests=20", cwd=tmp_path))
    msg = user_error(frontier("run", "-o", "s", "-q", *SMALL, cwd=tmp_path))
    assert "results of `frontier sweep`, not of `frontier run`" in msg and "--overwrite" in msg
    assert (tmp_path / "s" / "results.csv").is_file()
    ok(frontier("run", "-o", "s", "-q", "--overwrite", *SMALL, cwd=tmp_path))
    assert (tmp_path / "s" / "summary.json").is_file()
    assert not (tmp_path / "s" / "runs").exists() and not (tmp_path / "s" / "results.csv").exists()


def test_run_folder_given_to_sweep_needs_overwrite(tmp_path: Path) -> None:
    ok(frontier("run", "-o", "r", "-q", *SMALL, cwd=tmp_path))
    msg = user_error(frontier("sweep", "-o", "r", "-q", "--grid", "workload.num_requests=20",
                              cwd=tmp_path))
    assert "results of `frontier run`, not of `frontier sweep`" in msg and "--overwrite" in msg
    assert not (tmp_path / "r" / "runs").exists()
    ok(frontier("sweep", "-o", "r", "-q", "--overwrite", "--grid", "workload.num_requests=20",
                cwd=tmp_path))
    assert (tmp_path / "r" / "results.csv").is_file() and not (tmp_path / "r" / "summary.json").exists()


def test_sweep_into_a_folder_frontier_did_not_write_fails_before_running(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    msg = user_error(frontier("sweep", "-o", "d", "--grid", "workload.num_requests=20",
                              cwd=tmp_path))
    assert "'d' holds 1 entry Frontier did not write: notes.txt" in msg
    assert os.listdir(tmp_path / "d") == ["notes.txt"]
    # re-running a sweep resumes in its own folder
    ok(frontier("sweep", "-o", "s", "-q", "--grid", "workload.num_requests=20", cwd=tmp_path))
    (tmp_path / "s" / "notes.txt").write_text("mine")
    ok(frontier("sweep", "-o", "s", "-q", "--grid", "workload.num_requests=20", cwd=tmp_path))
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


def test_failed_run_leaves_existing_output_untouched(tmp_path: Path) -> None:
    ok(frontier("run", "-o", "out", "-q", *SMALL, cwd=tmp_path))
    before = snapshot(tmp_path / "out")
    user_error(frontier("run", "-o", "out", "-q", "--set", "deployment.clusters.0.scheduler=vlm",
                        cwd=tmp_path))
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    user_error(frontier("run", "bad.yaml", "-o", "out", cwd=tmp_path))
    assert snapshot(tmp_path / "out") == before
    assert sorted(os.listdir(tmp_path)) == ["bad.yaml", "out"]


def test_error_text_with_brackets_is_printed_literally(tmp_path):
    # rich markup would swallow "[bold]" and the like; messages quote user input verbatim
    r = frontier("run", "--set", "model.name=[bold]x", "-o", tmp_path / "out")
    assert r.returncode == 2
    assert "[bold]x" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("args", [
    ["run", "-o", "/proc/frontier-out"],
    ["sweep", "-o", "/proc/frontier-out"],
    ["validate", "serving", REPO / "tests" / "data" / "serving_sample.csv", "-o", "/proc/frontier-out"],
    ["plan", "-o", "/proc/frontier-plan.yaml"],
    pytest.param(["predictors", "train", "no-such-tables", "--backend", "table", "-o",
                  "/proc/frontier-out"], marks=pytest.mark.skipif(
        importlib.util.find_spec("frontier_predictors") is None,
        reason="needs frontier-predictors")),
], ids=["run", "sweep", "validate", "plan", "predictors-train"])
def test_an_unwritable_output_is_refused_before_any_work(tmp_path: Path, args: list) -> None:
    # /proc refuses new entries even to root (a read-only folder does not stop root).
    msg = user_error(frontier(*args, cwd=tmp_path))
    assert "Cannot write to -o/--output" in msg and "'/proc'" in msg
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command, folder", [
    ("report", "report"), ("profile", "predictors"), ("predictors", "predictors")])
def test_a_plugin_command_without_its_plugin_names_the_install(monkeypatch, capsys, command,
                                                               folder) -> None:
    from frontier_core.app import cli
    from frontier_core.plugins import load_registry

    kernel_only = load_registry(entry_points=False)
    monkeypatch.setattr(cli, "_registry", lambda: kernel_only)
    # as in a process where the plugin was never installed (another test may have added it)
    for attr in ("registered_commands", "registered_groups"):
        monkeypatch.setattr(cli.app, attr, [c for c in getattr(cli.app, attr) if c.name != command])
    monkeypatch.setattr(sys, "argv", ["frontier", command, "some-dir"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    msg = " ".join(capsys.readouterr().err.split())
    assert msg.startswith(f"error: `frontier {command}` is provided by the plugin distribution")
    assert f"pip install ./plugins/{folder}" in msg


def test_the_default_folder_is_git_ignored_and_a_piped_table_is_whole(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "COLUMNS"}  # a pipe, no width given
    r = subprocess.run([*CLI, "run", *SMALL], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    ok(r)
    title = r.stdout.splitlines()[0]
    assert title.startswith("llama-3.1-8b · ") and title.endswith("rows)"), r.stdout
    assert all(len(line) < 200 for line in r.stdout.splitlines())
    assert any(len(line) > 80 for line in r.stdout.splitlines())  # not cut at 80 columns
    out = tmp_path / "frontier-results"
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"
    assert ".gitignore" in json.loads((out / ".frontier-results.json").read_text())["entries"]
    ok(frontier("run", *SMALL, cwd=tmp_path))  # a re-run keeps it
    assert (out / ".gitignore").is_file()
    ok(frontier("run", "-o", "mine", *SMALL, cwd=tmp_path))  # a folder the user names: none
    assert not (tmp_path / "mine" / ".gitignore").exists()


@pytest.mark.parametrize("command", [["sweep"], ["validate", "serving"]])
def test_ray_help_names_the_extra(command: list[str]) -> None:
    r = ok(frontier(*command, "--help"))
    assert "pip install '.[ray]'" in r.stdout


def test_ops_lists_every_collective_the_execution_model_emits() -> None:
    from frontier_core.builtin.transfer import KINDS
    from frontier_core.records import OPS

    assert set(KINDS) <= set(OPS)
    assert len(set(OPS)) == len(OPS)


def test_the_default_sweep_folder_is_git_ignored(tmp_path: Path) -> None:
    grid = ["--grid", "seed=1,2", "-q"]
    ok(frontier("sweep", *grid, "--set", "workload.num_requests=20", cwd=tmp_path))
    out = tmp_path / "frontier-sweep"
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"
    assert ".gitignore" in json.loads((out / ".frontier-results.json").read_text())["entries"]
    ok(frontier("sweep", *grid, "--set", "workload.num_requests=20", "-o", "mine", cwd=tmp_path))
    assert not (tmp_path / "mine" / ".gitignore").exists()
