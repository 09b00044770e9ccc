"""``frontier validate serving``: benchmark rows → run configs, coverage reasons,
duplicates, the sample spread, and an end-to-end run on real rows of the calibration file
(tests/data/serving_sample.csv, from AIConfigurator's silicon_sample.csv, Apache-2.0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from simhelpers import SERVING_ROW

from frontier_core.app.validate import Row, concurrency, map_rows, read_rows, row_config, spread
from frontier_core.errors import ConfigError

SAMPLE = Path(__file__).parent / "data" / "serving_sample.csv"

BASE = SERVING_ROW
DSV3 = {"model_path": "deepseek-ai/DeepSeek-R1", "tp_size": "1", "attention_dp_size": "8",
        "moe_tp_size": "1", "moe_ep_size": "8", "backend": "sglang"}


def _row(**kw: str) -> Row:
    return Row(0, {**BASE, **kw})


def _gpus(registry) -> dict[str, str]:
    from frontier_core.model.catalog import gpu_names

    return gpu_names(registry.get("hardware", n) for n in registry.names("hardware"))


def _map(registry, **kw: str):
    return row_config(_row(**kw), _models(registry), _gpus(registry),
                      set(registry.names("workflow")), set(registry.names("ffn_block")))


def _models(registry):
    from frontier_core.app.validate import model_index

    return model_index(registry)


def test_concurrency_from_column_or_source() -> None:
    assert concurrency(_row()) == 16
    assert concurrency(_row(concurrency="64")) == 64  # a user's own column wins
    assert concurrency(_row(silicon_data_source="no concurrency here")) is None
    assert concurrency(_row(silicon_data_source="", concurrency="many")) is None
    assert concurrency(_row(silicon_data_source="", concurrency="0")) is None


def test_dense_agg_row_becomes_a_closed_loop_run(registry) -> None:
    m = _map(registry)
    assert m.reason is None and m.model == "llama-3.1-8b" and m.gpu == "h200"
    cfg = m.config
    assert cfg["model"] == {"name": "llama-3.1-8b", "weight_dtype": "fp8"}
    (cl,) = cfg["deployment"]["clusters"]
    assert (cl["gpu"], cl["tp"], cl["pp"]) == ("h200", 2, 1)
    assert cl["engine"] == {"name": "vllm", "version": "0.12.0"} and "scheduler" not in cl
    wl = cfg["workload"]
    assert wl["closed_loop"] == {"concurrency": 16}
    assert wl["prompt_len"] == {"dist": "fixed", "value": 1024}
    assert wl["output_len"] == {"dist": "fixed", "value": 128}
    from frontier_core.config import RunConfig

    RunConfig.model_validate(cfg)  # a valid run config


def test_rows_name_their_engine_and_version(registry) -> None:
    engines = {b: _map(registry, backend=b, backend_version=v).config["deployment"]["clusters"][0]
               ["engine"] for b, v in (("vllm", "0.18.0"), ("sglang", ""), ("trtllm", "1.2.0"))}
    assert engines == {"vllm": {"name": "vllm", "version": "0.18.0"},
                       "sglang": {"name": "sglang", "version": None},
                       "trtllm": {"name": "trtllm", "version": "1.2.0"}}


def test_dense_data_parallel_ranks_are_replicas(registry) -> None:
    m = _map(registry, tp_size="1", attention_dp_size="4", moe_tp_size="1")
    assert m.config["deployment"]["clusters"][0]["replicas"] == 4


def test_block_scaled_fp8_and_bf16_precision(registry) -> None:
    assert _map(registry, gemm_quant_mode="fp8_block").config["model"]["weight_dtype"] == "fp8_block"
    assert _map(registry, gemm_quant_mode="fp8").config["model"]["weight_dtype"] == "fp8"
    m = _map(registry, gemm_quant_mode="", moe_quant_mode="", precision="bf16")
    assert m.config["model"]["weight_dtype"] == "bf16"


@pytest.mark.parametrize(("fields", "reason"), [
    ({"model_path": "acme/Unknown-7B"}, "model not in the catalog: acme/Unknown-7B"),
    ({"system": "mi999x"}, "GPU not in the catalog: mi999x"),
    ({"gemm_quant_mode": "int8_wo"}, "quantisation not priced: int8_wo"),
    ({"backend": "tgi"}, "engine not modelled: tgi"),
    ({"silicon_data_source": "none"}, "no concurrency"),
    ({"silicon_tpot_ms": ""}, "no measured TTFT/TPOT"),
    ({"mode": "weird"}, "mode not known: weird"),
    ({"isl": "131072", "osl": "1024"}, "isl + osl beyond the model's context"),
    ({"tp_size": "x"}, "bad layout value in tp_size"),
    ({"moe_ep_size": "2", "moe_tp_size": "1"}, "expert parallelism on a dense model"),
])
def test_each_coverage_reason(registry, fields: dict[str, str], reason: str) -> None:
    m = _map(registry, **fields)
    assert m.config is None and m.reason == reason


def test_disagg_rows_need_worker_counts(registry) -> None:
    pytest.importorskip("frontier_pd_disagg")
    layout = {f"{s}_{k}": v for s in ("prefill", "decode")
              for k, v in (("tp_size", "2"), ("pp_size", "1"), ("attention_dp_size", "1"),
                           ("moe_tp_size", "2"), ("moe_ep_size", "1"))}
    m = _map(registry, mode="disagg", **layout)
    assert m.reason == "disagg row without worker counts"
    m = _map(registry, mode="disagg", prefill_num_workers="1", decode_num_workers="3", **layout)
    wf = m.config["deployment"]["workflow"]
    assert wf == {"name": "pd", "prefill": ["prefill"], "decode": ["decode"]}
    pre, dec = m.config["deployment"]["clusters"]
    assert (pre["replicas"], dec["replicas"], dec["tp"]) == (1, 3, 2)


def test_moe_layouts(registry) -> None:
    pytest.importorskip("frontier_moe_ep")
    cl = _map(registry, **DSV3).config["deployment"]["clusters"][0]
    assert (cl["tp"], cl["dp"], cl["moe"]) == (1, 8, {"ep": 8})
    cl = _map(registry, **{**DSV3, "tp_size": "8", "attention_dp_size": "1", "moe_tp_size": "8",
                           "moe_ep_size": "1"}).config["deployment"]["clusters"][0]
    assert (cl["tp"], cl["dp"], cl["moe"]) == (8, 1, {"ep": 1})
    # experts sharded over moe_tp GPUs in each of moe_ep groups; DP attention with the
    # experts sharded over all GPUs (moe_ep 1)
    for fields, ep in (({"moe_tp_size": "2", "moe_ep_size": "4"}, 4),
                       ({"moe_tp_size": "8", "moe_ep_size": "1"}, 1)):
        cl = _map(registry, **{**DSV3, **fields}).config["deployment"]["clusters"][0]
        assert (cl["tp"], cl["dp"], cl["moe"]) == (1, 8, {"ep": ep})
    assert _map(registry, **{**DSV3, "moe_ep_size": "4"}).reason.startswith(
        "MoE layout moe_tp × moe_ep ≠ tp × attention_dp")


def test_moe_rows_name_the_plugin_when_missing(registry) -> None:
    if "moe" in registry.names("ffn_block"):
        pytest.skip("frontier-moe-ep is installed")
    assert _map(registry, **DSV3).reason == "needs frontier-moe-ep (MoE model)"


def test_repeated_measurements_count_once_on_the_fewest_gpus(registry) -> None:
    rows = [Row(0, {**BASE, "id": "big", "tp_size": "8", "moe_tp_size": "8"}),
            Row(1, {**BASE, "id": "small"}),
            Row(2, {**BASE, "id": "other", "silicon_tpot_ms": "9.0"})]
    mapped = map_rows(rows, registry)
    assert [m.duplicate_of for m in mapped] == ["small", None, None]


def test_spread_is_deterministic_and_covers_groups(registry) -> None:
    rows = [Row(i, {**BASE, "id": f"r{i}", "backend": b, "silicon_tpot_ms": str(8 + i)})
            for i, b in enumerate(["vllm"] * 10 + ["sglang"] * 3 + ["trtllm"])]
    mapped = map_rows(rows, registry)
    picked = spread(mapped, 6)
    assert len(picked) == 6 and picked == spread(mapped, 6)
    assert {m.row.get("backend") for m in picked} == {"vllm", "sglang", "trtllm"}
    assert len(spread(mapped, 100)) == len(rows)


def test_missing_columns_are_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("backend,system\nvllm,h200_sxm\n")
    with pytest.raises(ConfigError, match="missing column"):
        read_rows(bad)


def test_calibration_rows_end_to_end(tmp_path: Path) -> None:
    for mod in ("frontier_moe_ep", "frontier_pd_disagg"):
        pytest.importorskip(mod)
    from frontier_core.app.validate import validate_serving

    res = validate_serving(SAMPLE)
    cov = res.coverage
    assert (cov["rows"], cov["unique"], cov["covered"]) == (14, 13, 11)
    assert cov["not_covered"] == {
        # the GB200 row's GPU is known; InferenceX's config then names two deployments
        "InferenceX's config names 2 deployments for this row (add prefill_layout, "
        "decode_layout and speculative to its annotations)": 1,
        "disagg row without worker counts": 1,
    }
    ok = res.simulated()
    assert len(ok) == 11 and not cov["failed"]
    overall = res.summary()["overall"]
    # Loose bounds that catch a regression of today's size; tighten as fidelity improves.
    assert overall["tpot_median_abs_err"] < 0.15
    assert overall["ttft_median_abs_err"] < 1.0
    for r in ok:
        assert r["pred_ttft_ms"] > 0 and r["pred_tpot_ms"] > 0
        assert r["ttft_err"] == pytest.approx(r["pred_ttft_ms"] / r["measured_ttft_ms"] - 1)
    again = validate_serving(SAMPLE, sample=3)  # same seed, same numbers
    by_id = {r["id"]: r for r in ok}
    for r in again.simulated():
        assert (r["pred_ttft_ms"], r["pred_tpot_ms"]) == (
            by_id[r["id"]]["pred_ttft_ms"], by_id[r["id"]]["pred_tpot_ms"])


def test_cli_writes_rows_summary_and_reports_bad_files(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "frontier_core.app.cli", "validate", "serving"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    r = subprocess.run([*cli, str(SAMPLE), "--sample", "2", "-o", str(tmp_path / "v"), "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["coverage"]["simulated"] == 2
    assert (tmp_path / "v" / "rows.csv").read_text().count("\n") == 15
    assert json.loads((tmp_path / "v" / "summary.json").read_text()) == summary
    # A stderr that is not a terminal (a log file) gets plain progress lines instead of
    # the bar: from 0 to every row.
    r = subprocess.run([*cli, str(SAMPLE), "--sample", "2", "-o", str(tmp_path / "v2")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "validating: 0/2 rows (0%" in r.stderr and "validating: 2/2 rows (100%" in r.stderr
    r = subprocess.run([*cli, str(tmp_path / "nope.csv")], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "does not exist" in r.stderr
    r = subprocess.run([*cli, str(SAMPLE), "--predictor", "nosuch"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nosuch" in r.stderr


def test_a_checkpoints_fp8_format_wins_over_the_rows_label(registry) -> None:
    """DeepSeek-R1's checkpoint is block-scaled; the collector labels its rows fp8/fp8
    and fp8/fp8_block alike, and both run as the checkpoint's format."""
    if "moe" not in registry.names("ffn_block"):
        import pytest

        pytest.skip("needs frontier-moe-ep")
    ds = {"model_path": "deepseek-ai/DeepSeek-R1", "tp_size": "8", "moe_tp_size": "1",
          "moe_ep_size": "8", "attention_dp_size": "1"}
    for gemm, moe in (("fp8", "fp8"), ("fp8", "fp8_block"), ("fp8_block", "fp8_block")):
        m = _map(registry, **ds, gemm_quant_mode=gemm, moe_quant_mode=moe)
        assert m.config["model"]["weight_dtype"] == "fp8_block", (gemm, moe)



def test_a_gpu_is_found_by_its_aliases_as_benchmark_files_name_it(registry) -> None:
    """A row's ``system`` is AIConfigurator's name for the GPU (b300_sxm, h200_sxm); a GPU
    a plugin adds is found the same way by the aliases it declares."""
    from frontier_core.model.catalog import HardwareSpec, gpu_names

    mine = HardwareSpec(name="h200-custom", flops={"bf16": 9.9e14, "fp8": 1.98e15},
                        mem_bytes=141e9, mem_bw=4.8e12, nvlink_bw=4.5e11, scaleout_bw=5e10,
                        aliases=("h200_custom_system",))
    specs = [registry.get("hardware", n) for n in registry.names("hardware")]
    gpus = gpu_names([*specs, mine])
    from frontier_core.app.benchrows import model_index

    def gpu_of(system: str) -> str | None:
        return row_config(_row(system=system), model_index(registry), gpus,
                          set(registry.names("workflow")), set(registry.names("ffn_block"))).gpu

    assert gpu_of("b300_sxm") == "b300" and gpu_of("h200_sxm") == "h200"
    assert gpu_of("h200_custom_system") == "h200-custom"


def test_rows_run_longest_first_and_keep_their_results(monkeypatch) -> None:
    """The pool gets the rows with the most generated tokens first (a long row taken last
    would run alone at the end), and each result still lands on its own row."""
    from frontier_core.app import validate as v

    seen: list[dict] = []

    def fake_run_all(fn, configs, done, **kw) -> None:
        seen.extend(configs)
        for i, c in enumerate(configs):
            w = c["workload"]
            done(i, {"pred_ttft_ms": float(w["num_requests"]), "pred_tpot_ms": 1.0,
                     "wall_s": 0.0})

    monkeypatch.setattr(v, "run_all", fake_run_all)
    res = v.validate_serving(SAMPLE)
    work = [v.row_work(type("M", (), {"config": c})) for c in seen]
    assert len(seen) > 3 and work == sorted(work, reverse=True) and work[0] > work[-1]
    by_id = {r["id"]: r for r in res.simulated()}
    mapped = {m.row.id: m for m in v.map_rows(v.read_rows(SAMPLE), _registry(), ("roofline",))
              if m.config is not None and m.duplicate_of is None}
    for rid, r in by_id.items():
        assert r["pred_ttft_ms"] == mapped[rid].config["workload"]["num_requests"]


def _registry():
    from frontier_core.plugins import load_registry

    return load_registry()


def test_rows_with_equal_configs_run_once(monkeypatch, tmp_path: Path) -> None:
    """Two sources publishing the same benchmark (different measurements, the same config)
    make one simulation: both rows get its predictions, the second names the first."""
    import csv

    from frontier_core.app import validate as v

    with open(SAMPLE, newline="") as f:
        rows = list(csv.DictReader(f))
    mapped = [m for m in v.map_rows(v.read_rows(SAMPLE), _registry(), ("roofline",))
              if m.config is not None and m.duplicate_of is None]
    row = next(r for r in rows if r["id"] == mapped[0].row.id)
    twin = {**row, "id": row["id"] + "_twin",
            "silicon_ttft_ms": str(2 * float(row["silicon_ttft_ms"]))}
    path = tmp_path / "twins.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(row))
        w.writeheader()
        w.writerows([row, twin])
    runs: list[dict] = []

    def fake_run_all(fn, configs, done, **kw) -> None:
        runs.extend(configs)
        for i in range(len(configs)):
            done(i, {"pred_ttft_ms": 7.0, "pred_tpot_ms": 2.0, "wall_s": 3.0})

    monkeypatch.setattr(v, "run_all", fake_run_all)
    res = v.validate_serving(path)
    ok = {r["id"]: r for r in res.simulated()}
    assert len(runs) == 1 and set(ok) == {row["id"], twin["id"]}
    first, second = ok[row["id"]], ok[twin["id"]]
    assert first["pred_ttft_ms"] == second["pred_ttft_ms"] == 7.0
    assert second["ttft_err"] == pytest.approx(first["ttft_err"] / 2 - 0.5)
    assert first["wall_s"] == 3.0 and first["same_config_as"] is None
    assert second["wall_s"] is None and second["same_config_as"] == row["id"]
