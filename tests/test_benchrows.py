"""Benchmark rows → run configs as the tool ran them (frontier_core/app/benchrows.py): the
annotations file, the tool's request count, warm-up and length draw, MTP rows, and a
closed loop whose clients spread out with the tool's lengths and no added delay."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from simhelpers import SERVING_ROW, run_sim, small_config

from frontier_core.app.benchrows import (
    ROUNDS,
    Row,
    benchmark_client,
    map_rows,
    read_rows,
    row_config,
    speculative,
)

BASE = SERVING_ROW
INFERENCEX = "https://github.com/SemiAnalysisAI/InferenceX/actions/runs/1/attempts/1"


def _row(**kw: str) -> Row:
    return Row(0, {**BASE, **kw})


def _gpus(registry) -> dict[str, str]:
    from frontier_core.model.catalog import gpu_names

    return gpu_names(registry.get("hardware", n) for n in registry.names("hardware"))


def _map(registry, **kw: str):
    from frontier_core.app.benchrows import model_index

    return row_config(_row(**kw), model_index(registry), _gpus(registry),
                      set(registry.names("workflow")), set(registry.names("ffn_block")))


def test_unknown_tool_keeps_the_documented_default() -> None:
    c = benchmark_client(_row(), 16)
    assert (c.num_requests, c.warmup, c.range_ratio) == (ROUNDS * 16, 16, 1.0)
    assert benchmark_client(_row(), 16, warmup=False).warmup == 0


def test_inferencex_rows_run_ten_prompts_per_client_with_the_ratio_draw() -> None:
    row = _row(run_url=INFERENCEX,
               length_distribution="uniform in [0.8, 1.0] x nominal (1024/128)")
    c = benchmark_client(row, 16)
    # benchmark_serving --num-prompts CONC*10: every request measured, lengths in
    # [int(0.8 L), L].
    assert (c.num_requests, c.warmup, c.range_ratio) == (160, 0, 0.8)


def test_columns_a_team_sets_win_and_bad_ones_are_reasons() -> None:
    c = benchmark_client(_row(run_url=INFERENCEX, num_requests="50", warmup_requests="5",
                              random_range_ratio="0.5"), 16)
    assert (c.num_requests, c.warmup, c.range_ratio) == (50, 5, 0.5)
    assert "random_range_ratio" in benchmark_client(_row(random_range_ratio="1.5"), 4)
    assert "num_requests" in benchmark_client(_row(num_requests="lots"), 4)
    assert "leaves none" in benchmark_client(_row(num_requests="4", warmup_requests="4"), 4)


def test_row_config_draws_lengths_as_the_tool_did(registry) -> None:
    wl = _map(registry, random_range_ratio="0.8").config["workload"]
    assert wl["prompt_len"] == {"dist": "uniform", "low": 819, "high": 1024}
    assert wl["output_len"] == {"dist": "uniform", "low": 102, "high": 128}
    wl = _map(registry).config["workload"]
    assert wl["prompt_len"] == {"dist": "fixed", "value": 1024}
    assert wl["warmup_requests"] == 16 and wl["num_requests"] == ROUNDS * 16


def test_mtp_rows_need_their_draft_length_and_acceptance(registry) -> None:
    assert speculative(_row()) is None and speculative(_row(speculative="none")) is None
    m = _map(registry, speculative="mtp")
    assert m.config is None and "MTP" in m.reason and "spec_k" in m.reason
    m = _map(registry, speculative="mtp", spec_k="2", spec_acceptance="0.7")
    (cl,) = m.config["deployment"]["clusters"]
    assert cl["speculative"] == {"method": "mtp", "k": 2, "acceptance": 0.7}
    assert "not modelled" in _map(registry, speculative="eagle").reason


def test_annotations_beside_the_file_fill_what_rows_leave_out(tmp_path: Path, registry) -> None:
    data = tmp_path / "bench.csv"
    with open(data, "w", newline="") as f:
        w = csv.DictWriter(f, list(BASE))
        w.writeheader()
        w.writerow(BASE)
        w.writerow({**BASE, "id": "sibling"})  # the same export, not annotated
        w.writerow({**BASE, "id": "other", "silicon_data_source": "own; silicon_concurrency=16"})
    with open(tmp_path / "bench_annotations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "speculative", "length_distribution", "run_url", "isl"])
        w.writeheader()
        w.writerow({"id": "r", "speculative": "none", "run_url": INFERENCEX, "isl": "9",
                    "length_distribution": "uniform in [0.8, 1.0] x nominal (1024/128)"})
    rows = read_rows(data)
    assert rows[0].get("run_url") == INFERENCEX and rows[1].get("run_url") == ""
    assert rows[0].get("isl") == "1024"  # a column the row has is never replaced
    m = map_rows(rows, registry)
    assert m[0].config["workload"]["num_requests"] == 160
    # auto: a row of an export that holds InferenceX rows ran InferenceX's client too;
    # a row of another source keeps the default.
    assert m[1].config["workload"]["num_requests"] == 160
    assert m[2].config["workload"]["num_requests"] == ROUNDS * 16
    assert m[0].client.startswith("InferenceX") and m[2].client.startswith("unknown")
    m = map_rows(rows, registry, client="default")
    assert [x.config["workload"]["num_requests"] for x in m] == [160, ROUNDS * 16, ROUNDS * 16]
    assert read_rows(data, annotations=tmp_path / "bench_annotations.csv")[0].fields == rows[0].fields


def test_with_the_tools_length_draw_clients_spread_out_without_added_delay(registry) -> None:
    def arrivals(prompt, output):
        wl = {"closed_loop": {"concurrency": 8}, "prompt_len": prompt,
              "output_len": output, "num_requests": 40}
        sim = run_sim(small_config(workload=wl, deployment={"clusters": [{"gpu": "h200"}]}),
                      registry)
        return np.array(sorted(r.arrival for r in sim.controller.requests))

    # No engine (so no ingress): the first wave leaves together. At fixed lengths the
    # clients stay in lockstep; with lengths drawn as the tool draws them they finish
    # apart, so later requests are sent apart.
    fixed = arrivals({"dist": "fixed", "value": 512}, {"dist": "fixed", "value": 32})
    drawn = arrivals({"dist": "uniform", "low": 409, "high": 512},
                     {"dist": "uniform", "low": 25, "high": 32})
    assert np.ptp(fixed[:8]) == 0 and np.ptp(drawn[:8]) == 0
    assert len(np.unique(fixed[8:])) <= 4
    assert len(np.unique(drawn[8:])) >= 16


def test_a_client_can_be_assumed_for_rows_that_do_not_say(registry) -> None:
    import pytest

    from frontier_core.errors import ConfigError

    c = benchmark_client(_row(), 16, assume="inferencex")
    assert (c.num_requests, c.warmup, c.range_ratio) == (160, 0, 0.8)
    # A row that names its tool keeps it.
    c = benchmark_client(_row(benchmark_tool="genai-perf"), 16, assume="inferencex")
    assert c.num_requests == ROUNDS * 16
    with pytest.raises(ConfigError, match="--client 'vllm-bench'.*auto, default, inferencex"):
        map_rows([_row()], registry, client="vllm-bench")


def test_a_bad_annotations_file_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from frontier_core.errors import ConfigError

    data = tmp_path / "bench.csv"
    with open(data, "w", newline="") as f:
        w = csv.DictWriter(f, list(BASE))
        w.writeheader()
        w.writerow(BASE)
    with pytest.raises(ConfigError, match="annotations file"):
        read_rows(data, annotations=tmp_path / "missing.csv")
    (tmp_path / "noid.csv").write_text("speculative\nnone\n")
    with pytest.raises(ConfigError, match="'id' column"):
        read_rows(data, annotations=tmp_path / "noid.csv")


def test_a_row_whose_config_is_refused_says_why(registry, monkeypatch) -> None:
    import frontier_core.app.benchrows as br

    # A length the run config refuses (0 tokens) must become the row's reason when the
    # rows are read, not a failure in a worker later.
    monkeypatch.setattr(br, "_length", lambda nominal, ratio: {"dist": "fixed", "value": 0})
    m = _map(registry)
    assert m.config is None and "invalid run config" in m.reason and "prompt_len" in m.reason


DISAGG = {"mode": "disagg", "model_path": "deepseek-ai/DeepSeek-V3", "backend": "trtllm",
          "tp_size": "", "attention_dp_size": "", "moe_tp_size": "", "moe_ep_size": "",
          "pp_size": "", "prefill_tp_size": "8", "prefill_moe_ep_size": "8",
          "prefill_moe_tp_size": "1", "prefill_attention_dp_size": "1", "prefill_pp_size": "1",
          "decode_tp_size": "8", "decode_moe_ep_size": "8", "decode_moe_tp_size": "1",
          "decode_attention_dp_size": "1", "decode_pp_size": "1"}


def test_disagg_rows_without_worker_counts_take_the_stated_layout(registry) -> None:
    import pytest

    if "pd" not in registry.names("workflow") or "moe" not in registry.names("ffn_block"):
        pytest.skip("needs frontier-pd-disagg and frontier-moe-ep")
    m = _map(registry, **DISAGG)
    assert m.config is None and m.reason == "disagg row without worker counts"
    m = _map(registry, **DISAGG, prefill_layout="tp=4/ep=4/dpattn=True/workers=2/gpus=8",
             decode_layout="tp=8/ep=8/dpattn=False/workers=3/gpus=24")
    assert m.reason is None
    pre, dec = m.config["deployment"]["clusters"]
    assert (pre["dp"], pre["tp"], pre["moe"], pre["replicas"]) == (4, 1, {"ep": 4}, 2)
    assert (dec["dp"], dec["tp"], dec["moe"], dec["replicas"]) == (1, 8, {"ep": 8}, 3)
    # The stated layout wins over the row's own columns, which may be wrong there.
    m = _map(registry, **{**DISAGG, "prefill_num_workers": "9"},
             prefill_layout="tp=4/ep=4/dpattn=True/workers=2/gpus=8",
             decode_layout="tp=8/ep=8/dpattn=False/workers=3/gpus=24")
    assert m.config["deployment"]["clusters"][0]["replicas"] == 2
    m = _map(registry, **DISAGG, prefill_layout="tp=4/ep=4/workers=2",
             decode_layout="tp=8/ep=8/dpattn=False/workers=3/gpus=24")
    assert m.reason == "prefill_layout not readable: 'tp=4/ep=4/workers=2'"
    m = _map(registry, **DISAGG, prefill_layout="tp=4/ep=4/dpattn=True/workers=2/gpus=9",
             decode_layout="tp=8/ep=8/dpattn=False/workers=3/gpus=24")
    assert m.reason.startswith("prefill_layout inconsistent")


def _nightly(image: str, when: str, conc: int) -> str:
    return (f"source_file=x.csv; model=DeepSeek-R1; silicon_concurrency={conc}; "
            f"measured={when}; wip=False; image={image}")


SGL = "lmsysorg/sglang:v0.5.8.post1-cu130-amd64"
TRT = "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post1"


def test_inferencex_rows_take_the_config_in_force_when_measured() -> None:
    from frontier_core.app.benchrows import inferencex_deployment

    row = {**DISAGG, "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm",
           "backend": "sglang", "precision": "fp8", "osl": "1024"}
    # InferenceX's nvidia-master.yaml at 2026-02-07 (dsr1-fp8-b200-dynamo-sglang):
    # 1k/1k at concurrency 4 ran one TP8 prefill and one TP8 decode worker, EP8, no MTP.
    got = inferencex_deployment(_row(**row, silicon_data_source=_nightly(
        SGL, "2026-02-07T07:09:01Z", 4)), 4)
    assert got == {"prefill_layout": "tp=8/ep=8/dpattn=false/workers=1/gpus=8",
                   "decode_layout": "tp=8/ep=8/dpattn=false/workers=1/gpus=8",
                   "speculative": "none"}
    # Before the entry existed, or with a prefill TP the config never ran: no entry.
    assert inferencex_deployment(_row(**row, silicon_data_source=_nightly(
        SGL, "2025-06-01T00:00:00Z", 4)), 4) is None
    assert inferencex_deployment(_row(**{**row, "prefill_tp_size": "4"}, silicon_data_source=
                                      _nightly(SGL, "2026-02-07T07:09:01Z", 4)), 4) is None
    # A row without the run's image and time, or without a model, is not matched at all.
    assert inferencex_deployment(_row(**row), 4) is None
    assert inferencex_deployment(_row(**{**row, "model_path": ""}, silicon_data_source=
                                      _nightly(SGL, "2026-02-07T07:09:01Z", 4)), 4) is None


def test_inferencex_rows_map_or_say_why(registry) -> None:
    import pytest

    if "pd" not in registry.names("workflow") or "moe" not in registry.names("ffn_block"):
        pytest.skip("needs frontier-pd-disagg and frontier-moe-ep")
    row = {**DISAGG, "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm",
           "backend": "sglang", "precision": "fp8", "osl": "1024"}
    m = _map(registry, **row, silicon_data_source=_nightly(SGL, "2026-02-07T07:09:01Z", 16))
    assert m.reason is None and m.layout_from == "InferenceX config"
    pre, dec = m.config["deployment"]["clusters"]
    assert (pre["tp"], pre["moe"], pre["replicas"]) == (8, {"ep": 8}, 1)
    assert (dec["tp"], dec["moe"], dec["replicas"]) == (8, {"ep": 8}, 3)
    # H200 TensorRT-LLM 1k/1k at concurrency 4 on 2026-03-23 ran two deployments, with
    # MTP (11 decode workers) and without (9): the row does not say which it is.
    m = _map(registry, **{**row, "system": "h200_sxm", "backend": "trtllm"},
             silicon_data_source=_nightly(TRT, "2026-03-23T13:00:07Z", 4))
    assert m.config is None and m.reason.startswith("InferenceX's config names 2 deployments")
    # An annotation's stated layout wins over the config.
    m = _map(registry, **row, silicon_data_source=_nightly(SGL, "2026-02-07T07:09:01Z", 16),
             prefill_layout="tp=8/ep=8/dpattn=True/workers=2/gpus=16",
             decode_layout="tp=8/ep=8/dpattn=False/workers=1/gpus=8")
    assert m.layout_from == "annotations"
    assert m.config["deployment"]["clusters"][0]["replicas"] == 2


def test_batch_columns_are_the_load_not_an_engine_limit(registry) -> None:
    import pytest

    if "pd" not in registry.names("workflow") or "moe" not in registry.names("ffn_block"):
        pytest.skip("needs frontier-pd-disagg and frontier-moe-ep")
    # Concurrency 16 over 2 decode workers of one attention rank: 8 each.
    row = {**DISAGG, "prefill_num_workers": "1", "decode_num_workers": "2",
           "prefill_batch_size": "1"}
    assert _map(registry, **row, decode_batch_size="8").reason is None
    assert _map(registry, **row, decode_batch_size="64").reason == (
        "decode_batch_size 64 disagrees with concurrency 16 over 2 decode attention ranks")
    m = _map(registry, silicon_data_source="db; x", batch_size="256")
    assert m.reason == "no concurrency (batch_size is then an engine limit, not the load)"
