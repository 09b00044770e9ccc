"""The Python API (frontier_core.app.api, exported at the top level): a config given as a
path, a mapping or a RunConfig runs the same simulation; overrides in every form agree;
the typed summary, the request table and ``save`` match what ``frontier run`` writes;
``fc.sweep`` takes Python configs and grids and writes nothing without ``out_dir``."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from simhelpers import small_yaml
from typer.testing import CliRunner

import frontier_core as fc
from frontier_core.app.cli import app
from frontier_core.errors import ConfigError

SMALL = small_yaml(num_requests=30, rate=8)


@pytest.fixture
def config_file(tmp_path):
    p = tmp_path / "small.yaml"
    p.write_text(SMALL)
    return p


def test_a_path_a_mapping_and_a_runconfig_run_the_same_simulation(config_file, registry):
    from_path = fc.simulate(config_file, registry=registry)
    data = yaml.safe_load(SMALL)
    from_dict = fc.simulate(data, registry=registry)
    from_cfg = fc.simulate(fc.load(data), registry=registry)
    assert from_path.summary_data == from_dict.summary_data == from_cfg.summary_data
    assert from_path.summary.requests.completed == 30
    assert data == yaml.safe_load(SMALL)  # the caller's mapping is not modified


def test_overrides_in_every_form_agree(config_file, registry):
    by_keyword = fc.simulate(config_file, registry=registry, seed=3,
                             workload__arrival__rate=2.0)
    by_mapping = fc.simulate(config_file, {"seed": 3, "workload.arrival.rate": 2.0},
                             registry=registry)
    by_strings = fc.simulate(config_file, ["seed=3", "workload.arrival.rate=2"],
                             registry=registry)
    base = fc.simulate(config_file, registry=registry)
    assert by_keyword.summary_data == by_mapping.summary_data == by_strings.summary_data
    assert by_keyword.summary_data != base.summary_data
    assert by_keyword.config.seed == 3 and by_keyword.config.workload.arrival.rate == 2.0


def test_summary_is_typed_and_matches_summary_json(config_file, registry, tmp_path):
    res = fc.simulate(config_file, registry=registry)
    s = res.summary
    assert isinstance(s, fc.Summary)
    assert s.latency_s.ttft_s.p90 == res.summary_data["latency_s"]["ttft_s"]["p90"]
    assert s.clusters["main"].gpu == "a100-80g-sxm"
    assert s.model_dump(exclude_unset=True) == res.summary_data
    out = res.save(tmp_path / "out")
    written = json.loads((out / "summary.json").read_text())
    assert written == res.summary_data
    assert fc.Summary.model_validate(written) == s


def test_save_writes_what_frontier_run_writes(config_file, registry, tmp_path, monkeypatch):
    import frontier_core.app.cli as cli

    monkeypatch.setattr(cli, "_REGISTRY", [registry])
    r = CliRunner().invoke(app, ["run", str(config_file), "-o", str(tmp_path / "cli"), "-q"])
    assert r.exit_code == 0, r.output
    fc.simulate(config_file, registry=registry).save(tmp_path / "api")
    for name in ("summary.json", "requests.csv", "config.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_requests_table_with_and_without_pandas(config_file, registry, tmp_path, monkeypatch):
    res = fc.simulate(config_file, registry=registry)
    header = None
    res.save(tmp_path / "out")
    header = (tmp_path / "out" / "requests.csv").read_text().splitlines()[0].split(",")
    pytest.importorskip("pandas")
    df = res.requests
    assert list(df.columns) == header and len(df) == 30
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    records = fc.simulate(config_file, registry=registry).requests
    assert isinstance(records, list) and len(records) == 30
    assert list(records[0]) == header
    assert [r["ttft_s"] for r in records] == pytest.approx(df["ttft_s"].tolist())


def test_sweep_takes_python_configs_and_writes_nothing_without_out_dir(
        config_file, registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    data = yaml.safe_load(SMALL)
    table = fc.sweep({"a": data, "b": fc.load(data, seed=1)},
                     grid={"deployment.clusters.0.replicas": [1, 2]}, registry=registry)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [(r["config"], r["deployment.clusters.0.replicas"], r["status"])
            for r in table.rows] == [("a", 1, "ok"), ("a", 2, "ok"), ("b", 1, "ok"), ("b", 2, "ok")]
    # The same runs as one simulation each.
    one = fc.simulate(data, {"deployment.clusters.0.replicas": 2}, registry=registry)
    assert table.rows[1]["latency_s.ttft_s.mean"] == one.summary.latency_s.ttft_s.mean
    # Overrides for every run, and a file config written like `frontier sweep -o`.
    written = fc.sweep(config_file, ["deployment.clusters.0.replicas=1,2"], out_dir="sw",
                       registry=registry)
    assert [r["status"] for r in written.rows] == ["ok", "ok"]
    assert (tmp_path / "sw" / "results.csv").is_file()
    assert written.rows[1]["latency_s.ttft_s.mean"] == one.summary.latency_s.ttft_s.mean
    seeded = fc.sweep(data, {"deployment.clusters.0.replicas": [2]}, overrides={"seed": 1},
                      registry=registry)
    assert seeded.rows[0]["seed"] == 1 and seeded.rows[0]["config"] == "<config 0>"


def test_sweep_stays_the_function_after_the_module_is_imported():
    from frontier_core.app.api import sweep
    from frontier_core.app.sweep import expand  # noqa: F401

    assert fc.sweep is sweep
    assert set(fc.__all__) >= {"simulate", "sweep", "load", "Result", "Summary", "RunConfig"}


def test_bad_api_input_is_a_user_error(registry):
    with pytest.raises(ConfigError, match="YAML path, a mapping, a RunConfig"):
        fc.load(42)
    with pytest.raises(ConfigError, match="neither 'path.to.field=value'"):
        fc.load(None, [3])
    with pytest.raises(ConfigError, match="does not exist"):
        fc.simulate("no/such.yaml", registry=registry)
    with pytest.raises(ConfigError, match="non-empty list"):
        fc.sweep(None, grid={"seed": 3}, registry=registry)
    with pytest.raises(ConfigError, match="is a list of 1 items"):
        fc.load(yaml.safe_load(SMALL), {"deployment.clusters.4.tp": 2})


def test_version_flag():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"frontier {fc.__version__}"


def test_sweep_cli_set_and_json(config_file, registry, tmp_path, monkeypatch):
    import frontier_core.app.cli as cli

    monkeypatch.setattr(cli, "_REGISTRY", [registry])
    r = CliRunner().invoke(app, ["sweep", str(config_file), "--grid",
                                 "deployment.clusters.0.replicas=1,2", "--set", "seed=4",
                                 "-o", str(tmp_path / "sw"), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["deployment.clusters.0.replicas"], x["seed"], x["status"]) for x in rows] == [
        (1, 4, "ok"), (2, 4, "ok")]
