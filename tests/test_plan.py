"""frontier plan: the planner's answer equals exhaustive search's, every candidate it
pruned is infeasible when simulated, and the CLI writes a runnable config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from simhelpers import small_config

from frontier_core.app.plan import choose, exhaustive, plan
from frontier_core.errors import ConfigError

CASES = [
    # (rate, ttft, tpot, max_gpus): loose enough for one GPU, then needing several
    (2.0, 1.0, 0.1, 4),
    (40.0, 0.5, 0.05, 4),
    (15.0, 0.25, 0.02, 4),
    (5.0, 1.0, 0.006, 4),  # TP1 decode steps alone exceed the TPOT SLO: pruned by latency
    (20.0, 0.5, 0.05, 4),  # with PP 1 and 2 (see the test)
    (30.0, 0.5, 0.03, 4),  # with batch limits 8 and 256 (see the test)
]


def _base():
    return small_config(workload={
        "arrival": {"process": "poisson", "rate": 1.0},
        "prompt_len": {"dist": "uniform", "low": 64, "high": 1024},
        "output_len": {"dist": "uniform", "low": 8, "high": 128},
        "num_requests": 120,
    })


@pytest.mark.parametrize("rate, ttft, tpot, max_gpus", CASES)
def test_plan_matches_exhaustive_search_and_prunes_soundly(registry, rate, ttft, tpot, max_gpus):
    gpus = ["a100-80g-sxm"]
    pps = (1, 2) if rate == 20.0 else (1,)
    limits = (8, 256) if rate == 30.0 else ()
    res = plan(_base(), registry, rate, ttft, tpot, gpus, max_gpus, pps=pps, batch_limits=limits)
    every = list(exhaustive(_base(), registry, rate, ttft, tpot, gpus, max_gpus, pps=pps,
                            batch_limits=limits))
    ref = choose(every, lambda c: c.gpus)
    assert (res.best is None) == (ref is None)
    if ref is not None:
        assert res.best == ref.candidate
    by_candidate = {o.candidate: o for o in every}
    for c, why in res.skipped:
        if c in by_candidate:
            assert not by_candidate[c].feasible, f"{c.label()} pruned by {why} but feasible"
    # It simulated fewer candidates than exhaustive search.
    assert len(res.tried) < len(every)


def test_plan_needs_an_slo(registry):
    with pytest.raises(ConfigError, match="--slo-ttft"):
        plan(_base(), registry, 1.0, None, None)


def test_cli_plan_writes_a_runnable_config(tmp_path):
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    cli = [sys.executable, "-m", "frontier_core.app.cli"]
    out = tmp_path / "plan.yaml"
    r = subprocess.run([*cli, "plan", "--rate", "30", "--slo-ttft", "0.5", "--slo-tpot", "0.05",
                        "--max-gpus", "4", "--set", "workload.num_requests=200", "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "chosen:" in r.stdout and "Pareto frontier" in r.stdout
    assert out.read_text().startswith("# written by frontier plan\n")
    # a file plan wrote before is replaced without --overwrite
    again = subprocess.run([*cli, "plan", "--rate", "30", "--slo-ttft", "0.5", "--slo-tpot",
                            "0.05", "--max-gpus", "4", "--set", "workload.num_requests=200",
                            "-o", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]  # no temporary files
    r2 = subprocess.run([*cli, "run", str(out), "-o", str(tmp_path / "run"), "-q"], env=env,
                        capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr
    r3 = subprocess.run([*cli, "plan", "--rate", "1000", "--slo-ttft", "0.01", "--slo-tpot",
                         "0.001", "--max-gpus", "2", "--set", "workload.num_requests=50"],
                        env=env, capture_output=True, text=True, timeout=300)
    assert r3.returncode == 2 and "No deployment" in r3.stderr and "Traceback" not in r3.stderr


def test_cost_objective_prefers_the_cheaper_gpu_kind(registry):
    # linear-test ignores the device, so both kinds perform alike: price decides.
    kinds = ["a100-80g-sxm", "h100-sxm"]
    cheap_a100 = plan(_base(), registry, 15.0, 0.25, 0.02, kinds, 2, objective="cost",
                      prices={"a100-80g-sxm": 1.0, "h100-sxm": 10.0})
    cheap_h100 = plan(_base(), registry, 15.0, 0.25, 0.02, kinds, 2, objective="cost",
                      prices={"a100-80g-sxm": 10.0, "h100-sxm": 1.0})
    assert {s.gpu for s in cheap_a100.best.stages} == {"a100-80g-sxm"}
    assert {s.gpu for s in cheap_h100.best.stages} == {"h100-sxm"}


@pytest.mark.parametrize("args, words", [
    (["--price", "h100-sxm=cheap"], "--price"),
    (["--pp", "0"], "--pp"),
    (["--objective", "speed"], "--objective"),
    (["--gpus", "tpu-v9"], "unknown GPU kinds"),
])
def test_cli_plan_bad_flags_are_user_errors(args, words, tmp_path):
    r = subprocess.run([sys.executable, "-m", "frontier_core.app.cli", "plan", "--rate", "1",
                        "--slo-ttft", "1", "-o", str(tmp_path / "p.yaml"), *args],
                       env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error:") and words in r.stderr
    assert not (tmp_path / "p.yaml").exists()


def _plan_cli(monkeypatch, *args: str):
    """``frontier plan --rate 1 --slo-ttft 1 ARGS`` in-process, with a search that must not
    start (the -o checks come first)."""
    from typer.testing import CliRunner

    import frontier_core.app.plan
    from frontier_core.app.cli import app

    def no_search(*a, **k):
        raise AssertionError("the search started before -o was checked")

    monkeypatch.setattr(frontier_core.app.plan, "plan", no_search)
    return CliRunner().invoke(app, ["plan", "--rate", "1", "--slo-ttft", "1", *args],
                              env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_cli_plan_output_is_a_directory_fails_before_the_search(tmp_path, monkeypatch):
    r = _plan_cli(monkeypatch, "-o", str(tmp_path))
    assert isinstance(r.exception, ConfigError), r.output
    assert "is a folder" in str(r.exception) and "plan.yaml" in str(r.exception)


def test_cli_plan_output_missing_folder_fails_before_the_search(tmp_path, monkeypatch):
    r = _plan_cli(monkeypatch, "-o", str(tmp_path / "nope" / "p.yaml"))
    assert isinstance(r.exception, ConfigError), r.output
    assert "does not exist" in str(r.exception)


def test_cli_plan_will_not_replace_a_user_file(tmp_path, monkeypatch):
    mine = tmp_path / "deploy.yaml"
    mine.write_text("model: llama-3.1-8b\n")
    r = _plan_cli(monkeypatch, "-o", str(mine))
    assert isinstance(r.exception, ConfigError), r.output
    assert "did not write" in str(r.exception) and "--overwrite" in str(r.exception)
    assert mine.read_text() == "model: llama-3.1-8b\n"
    # with --overwrite the check passes, so the (forbidden) search is reached
    r = _plan_cli(monkeypatch, "-o", str(mine), "--overwrite")
    assert isinstance(r.exception, AssertionError)


def test_verdicts_list_every_candidate_considered_with_why(registry):
    # TP1 decode steps alone exceed the TPOT SLO: some candidates are pruned, some simulated.
    res = plan(_base(), registry, 5.0, 1.0, 0.006, ["a100-80g-sxm"], 4)
    verdicts = res.verdicts(0.9)
    assert [c for c, _, _ in verdicts] == res.considered
    assert {c for c, o, _ in verdicts if o is not None} == {o.candidate for o in res.tried}
    pruned = [v for _, o, v in verdicts if o is None]
    assert len(pruned) == len(res.skipped) and all(v.startswith("pruned: ") for v in pruned)
    chosen = [c for c, _, v in verdicts if v == "chosen"]
    assert chosen == ([res.best] if res.best is not None else [])
    for _, o, v in verdicts:
        if o is not None and not o.feasible:
            assert v.startswith("misses the SLOs: attainment ")


def test_cli_plan_json_and_all(tmp_path, registry, monkeypatch):
    import json

    from typer.testing import CliRunner

    import frontier_core.app.cli as cli

    monkeypatch.setattr(cli, "_REGISTRY", [registry])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_base().model_dump_json(exclude={"base_dir"}))
    args = ["plan", str(cfg), "--rate", "5", "--slo-ttft", "1", "--slo-tpot", "0.006",
            "--max-gpus", "4", "--gpus", "a100-80g-sxm"]
    r = CliRunner().invoke(cli.app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["chosen"]["config"]["workload"]["num_requests"] == 120
    verdicts = [c["verdict"] for c in data["candidates"]]
    assert "chosen" in verdicts and any(v.startswith("pruned: ") for v in verdicts)
    shown = CliRunner().invoke(cli.app, [*args, "--all"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "in the order considered" in shown.output and "pruned: " in shown.output
