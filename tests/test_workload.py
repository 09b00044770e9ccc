"""Workload building: synthetic arrivals and lengths, trace replay, caps, and trace errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frontier_core.config import RunConfig, TraceConfig, WorkloadConfig
from frontier_core.errors import ConfigError, TraceError
from frontier_core.workload import Workload, build_workload

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
AZURE_CONV = DATA / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
MOONCAKE_CONV = DATA / "traces" / "mooncake_fast25" / "conversation_trace.jsonl"
SHAREGPT = DATA / "traces" / "sharegpt_lengths" / "sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
SPLITWISE_CONV = DATA / "vidur" / "processed_traces" / "splitwise_conv.csv"

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def build(
    spec: dict[str, Any] | WorkloadConfig, seed: int = 0, base_dir: Path | str = "."
) -> Workload:
    cfg = spec if isinstance(spec, WorkloadConfig) else WorkloadConfig.model_validate(spec)
    # model_construct: some tests build a WorkloadConfig that skips validation (see below).
    run = RunConfig.model_construct(workload=cfg, base_dir=str(base_dir))
    return build_workload(cfg, np.random.default_rng(seed), run.resolve)


def arrivals(w: Workload) -> np.ndarray:
    assert w.arrival is not None
    return w.arrival


def unvalidated_lengths_trace(path: str) -> WorkloadConfig:
    """A lengths trace with no arrival process. WorkloadConfig's validator cannot know
    whether the CSV has arrived_at and rejects this, so build it without validation."""
    return WorkloadConfig.model_construct(
        trace=TraceConfig.model_validate({"format": "lengths", "path": path})
    )


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def fixed(value: int) -> dict[str, Any]:
    return {"dist": "fixed", "value": value}


def synthetic(arrival: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    spec = {"prompt_len": fixed(100), "output_len": fixed(10), **kw}
    if arrival is not None:
        spec["arrival"] = arrival
    return spec


# ---- synthetic arrivals ------------------------------------------------------------


def test_poisson_rate_and_first_arrival() -> None:
    w = build(synthetic({"process": "poisson", "rate": 8.0}, num_requests=20_000))
    assert len(w) == 20_000 and w.arrival is not None
    assert w.arrival[0] == 0.0
    assert np.all(np.diff(arrivals(w)) >= 0)
    rate = (len(w) - 1) / w.arrival[-1]
    assert rate == pytest.approx(8.0, rel=0.03)
    gaps = np.diff(arrivals(w))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_mean_and_cv(cv: float) -> None:
    w = build(synthetic({"process": "gamma", "rate": 5.0, "cv": cv}, num_requests=50_000))
    gaps = np.diff(arrivals(w))
    assert gaps.mean() == pytest.approx(1 / 5.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_fixed_gaps_are_exact() -> None:
    w = build(synthetic({"process": "fixed", "rate": 4.0}, num_requests=1000))
    assert w.arrival is not None
    np.testing.assert_array_equal(w.arrival, np.arange(1000) * 0.25)


def test_duration_only_generates_until_duration() -> None:
    w = build(synthetic({"process": "poisson", "rate": 50.0}, duration_s=200.0))
    assert w.arrival is not None
    assert w.arrival[-1] <= 200.0
    assert len(w) == pytest.approx(50 * 200, rel=0.05)
    assert len(w.prompt_len) == len(w.output_len) == len(w.arrival)
    w = build(synthetic({"process": "fixed", "rate": 2.0}, duration_s=10.0))
    assert len(w) == 21 and arrivals(w)[-1] == 10.0


def test_num_requests_and_duration_together() -> None:
    w = build(synthetic({"process": "fixed", "rate": 1.0}, num_requests=100, duration_s=9.5))
    assert len(w) == 10
    w = build(synthetic({"process": "fixed", "rate": 1.0}, num_requests=5, duration_s=100.0))
    assert len(w) == 5


# ---- length distributions ----------------------------------------------------------


def lengths(dist: dict[str, Any], n: int = 20_000) -> np.ndarray:
    w = build(
        {
            "prompt_len": dist,
            "output_len": fixed(1),
            "closed_loop": {"concurrency": 1},
            "num_requests": n,
        }
    )
    assert w.prompt_len.dtype == np.int64 and len(w) == n
    return w.prompt_len


def test_fixed_length() -> None:
    assert set(lengths(fixed(77), n=10)) == {77}


def test_uniform_length_is_inclusive() -> None:
    x = lengths({"dist": "uniform", "low": 5, "high": 9})
    assert x.min() == 5 and x.max() == 9
    assert set(np.unique(x)) == {5, 6, 7, 8, 9}


def test_lognormal_median_and_clip() -> None:
    x = lengths({"dist": "lognormal", "median": 500, "sigma": 0.5})
    assert np.median(x) == pytest.approx(500, rel=0.03)
    x = lengths({"dist": "lognormal", "median": 500, "sigma": 2.0, "min": 100, "max": 2000})
    assert x.min() == 100 and x.max() == 2000


def test_zipf_scale_and_clip() -> None:
    x = lengths({"dist": "zipf", "alpha": 1.2, "scale": 16, "min": 32, "max": 4096})
    assert x.min() == 32 and x.max() == 4096
    assert np.all(x % 16 == 0)
    # P(zipf <= 2) = (1 + 2**-1.2) / zeta(1.2), zeta(1.2) = 5.5916: both clip up to 32.
    assert np.mean(x == 32) == pytest.approx((1 + 2**-1.2) / 5.5916, abs=0.015)


def test_lognormal_min_above_max_is_config_error() -> None:
    with pytest.raises(ConfigError, match="min=50 exceeds max=10"):
        lengths({"dist": "lognormal", "median": 5, "sigma": 1, "min": 50, "max": 10}, n=3)


def test_empirical_samples_column_values(tmp_path: Path) -> None:
    (tmp_path / "lens.csv").write_text("a,tokens\n1,10\n2,20\n3,30\n")
    path = str(tmp_path / "lens.csv")
    x = lengths({"dist": "empirical", "path": path, "column": "tokens"}, n=3000)
    assert set(np.unique(x)) == {10, 20, 30}


def test_empirical_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "lens.csv").write_text("tokens\n7\n")
    spec = synthetic(
        closed_loop={"concurrency": 2},
        num_requests=4,
        prompt_len={"dist": "empirical", "path": "lens.csv", "column": "tokens"},
    )
    assert list(build(spec, base_dir=tmp_path).prompt_len) == [7] * 4


# ---- determinism and closed loop ---------------------------------------------------


def test_same_seed_same_workload() -> None:
    spec = {
        "arrival": {"process": "gamma", "rate": 3.0, "cv": 2.0},
        "prompt_len": {"dist": "lognormal", "median": 300, "sigma": 1.0},
        "output_len": {"dist": "zipf", "alpha": 1.5, "scale": 4},
        "duration_s": 300.0,
    }
    a, b, c = build(spec, seed=7), build(spec, seed=7), build(spec, seed=8)
    for field in ("prompt_len", "output_len", "arrival"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.prompt_len[:50], c.prompt_len[:50])


def test_closed_loop_synthetic() -> None:
    w = build(synthetic(closed_loop={"concurrency": 8, "think_time_s": 0.5}, num_requests=64))
    assert w.arrival is None and len(w) == 64
    assert w.closed_loop is not None and w.closed_loop.concurrency == 8


def test_closed_loop_synthetic_needs_num_requests() -> None:
    with pytest.raises(ConfigError, match="num_requests"):
        build(synthetic(closed_loop={"concurrency": 8}, duration_s=10.0))


# ---- real traces (shared data) -------------------------------------------------------


def test_azure_conv_full_trace() -> None:
    w = build({"trace": {"format": "azure", "path": str(need(AZURE_CONV))}})
    assert len(w) == 19_366
    assert w.prompt_len.mean() == pytest.approx(1155, abs=1)
    assert w.output_len.mean() == pytest.approx(211, abs=1)
    assert w.arrival is not None and w.arrival[0] == 0.0
    assert np.all(np.diff(arrivals(w)) >= 0)
    assert 3400 < w.arrival[-1] < 3600  # about one hour
    # 18:15:46.6805900 -> 18:15:50.9951690; 7-digit fractions keep microseconds exactly.
    assert w.arrival[1] == pytest.approx(4.314579, abs=1e-9)
    assert "AzureLLMInferenceTrace_conv.csv" in w.source and "19366" in w.source


def test_azure_time_scale_start_and_caps() -> None:
    path = str(need(AZURE_CONV))
    full = build({"trace": {"format": "azure", "path": path}})
    assert full.arrival is not None
    w = build(
        {
            "trace": {"format": "azure", "path": path, "start": 10, "time_scale": 0.5},
            "num_requests": 100,
        }
    )
    assert len(w) == 100 and w.arrival is not None
    np.testing.assert_array_equal(w.prompt_len, full.prompt_len[10:110])
    expect = (full.arrival[10:110] - full.arrival[10]) * 0.5
    np.testing.assert_allclose(w.arrival, expect, atol=1e-9)
    w = build({"trace": {"format": "azure", "path": path}, "duration_s": 60.0})
    assert w.arrival is not None and w.arrival[-1] <= 60.0
    assert len(w) == int(np.sum(full.arrival <= 60.0))


def test_trace_with_synthetic_arrivals_keeps_lengths() -> None:
    path = str(need(AZURE_CONV))
    w = build(
        {
            "trace": {"format": "azure", "path": path},
            "num_requests": 500,
            "arrival": {"process": "fixed", "rate": 10.0},
        }
    )
    full = build({"trace": {"format": "azure", "path": path}, "num_requests": 500})
    np.testing.assert_array_equal(w.prompt_len, full.prompt_len)
    np.testing.assert_allclose(np.diff(arrivals(w)), 0.1)


def test_mooncake_conversation_trace() -> None:
    w = build({"trace": {"format": "mooncake", "path": str(need(MOONCAKE_CONV))}})
    assert len(w) == 12_031
    assert w.prompt_len.mean() == pytest.approx(12_035, abs=1)
    assert w.output_len.mean() == pytest.approx(343, abs=1)
    assert w.arrival is not None and w.arrival[0] == 0.0
    assert w.arrival[-1] == pytest.approx(3536.999)


def test_splitwise_lengths_trace_uses_arrived_at() -> None:
    cfg = unvalidated_lengths_trace(str(need(SPLITWISE_CONV)))
    w = build(cfg)
    assert len(w) == 19_366
    assert w.prompt_len.mean() == pytest.approx(1155, abs=1)
    assert w.arrival is not None and w.arrival[1] == pytest.approx(4.314579)
    assert w.arrival[-1] == pytest.approx(3502, abs=1)


def test_sharegpt_lengths_with_poisson() -> None:
    w = build(
        {
            "trace": {"format": "lengths", "path": str(need(SHAREGPT))},
            "arrival": {"process": "poisson", "rate": 5.0},
            "num_requests": 2000,
        }
    )
    assert len(w) == 2000 and w.arrival is not None
    assert w.prompt_len[:2].tolist() == [74, 290]
    assert w.output_len[:2].tolist() == [918, 905]
    assert (len(w) - 1) / w.arrival[-1] == pytest.approx(5.0, rel=0.1)


def test_trace_closed_loop() -> None:
    w = build(
        {
            "trace": {"format": "lengths", "path": str(need(SHAREGPT))},
            "closed_loop": {"concurrency": 4},
            "num_requests": 300,
        }
    )
    assert w.arrival is None and len(w) == 300


def test_bundled_sample() -> None:
    w = build({"trace": {"format": "azure", "path": "frontier:azure_conv_sample.csv"}})
    assert len(w) == 2000
    assert w.prompt_len[:2].tolist() == [374, 396]
    assert w.arrival is not None and 400 < w.arrival[-1] < 450
    assert "azure_conv_sample.csv" in w.source


# ---- small traces and their errors ------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def azure(path: str, **kw: Any) -> dict[str, Any]:
    return {"trace": {"format": "azure", "path": path}, **kw}


def test_short_trace_is_not_looped(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", AZURE_HEADER + "2023-11-16 18:00:00.0,5,5\n" * 3)
    assert len(build(azure(path, num_requests=10))) == 3


def test_zero_output_becomes_one(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", AZURE_HEADER + "2023-11-16 18:00:00.0,5,0\n")
    assert build(azure(path)).output_len.tolist() == [1]


def test_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = AZURE_HEADER + "2023-11-16 18:00:00,5,5\n\n2023-11-16 18:00:01.5,6,6\n"
    path = write(tmp_path, "t.csv", text.replace("\n", "\r\n"))
    w = build(azure(path))
    assert w.arrival is not None and w.arrival.tolist() == [0.0, 1.5]


def test_length_distribution_replaces_trace_column(tmp_path: Path) -> None:
    rows = "2023-11-16 18:00:00,5,7\n2023-11-16 18:00:02,6,8\n"
    path = write(tmp_path, "t.csv", AZURE_HEADER + rows)
    w = build(azure(path, output_len=fixed(128)))
    assert w.prompt_len.tolist() == [5, 6] and w.output_len.tolist() == [128, 128]
    assert arrivals(w).tolist() == [0.0, 2.0]


def test_start_past_the_end_is_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", AZURE_HEADER + "2023-11-16 18:00:00,5,5\n")
    with pytest.raises(ConfigError, match="skips them all"):
        build({"trace": {"format": "azure", "path": path, "start": 1}})


def trace_error(spec: dict[str, Any] | WorkloadConfig, *fragments: str) -> str:
    with pytest.raises(TraceError) as info:
        build(spec)
    msg = str(info.value)
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    trace_error(azure(str(tmp_path / "nope.csv")), "nope.csv", "not found")


def test_empty_file(tmp_path: Path) -> None:
    trace_error(azure(write(tmp_path, "empty.csv", "")), "empty.csv", "empty")
    trace_error(azure(write(tmp_path, "hdr.csv", AZURE_HEADER)), "hdr.csv", "no data rows")
    moon = {"trace": {"format": "mooncake", "path": write(tmp_path, "e.jsonl", "\n")}}
    trace_error(moon, "e.jsonl", "empty")


def test_azure_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,5\n")
    msg = trace_error(azure(path), "cols.csv:1:", "GeneratedTokens")
    assert "found ['TIMESTAMP', 'ContextTokens']" in msg


def test_lengths_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "num_prefill_tokens,foo\n5,6\n")
    spec = {"trace": {"format": "lengths", "path": path}, "arrival": {"rate": 1.0}}
    trace_error(spec, "l.csv:1:", "num_decode_tokens", "'foo'")


@pytest.mark.parametrize(
    ("row", "what"),
    [
        ("2023-11-16 18:00:02,abc,5", "ContextTokens='abc'"),
        ("2023-11-16 18:00:02,5,1.5", "GeneratedTokens='1.5'"),
        ("2023-11-16 18:00:02,5,-3", "GeneratedTokens='-3'"),
        ("2023-11-16 18:00:02,0,5", "at least one prompt token"),
        ("2023-11-16 18:00:02,5", "'GeneratedTokens' is missing"),
        ("yesterday,5,5", "TIMESTAMP='yesterday' is not a timestamp"),
        ("2023-11-16 17:00:00,5,5", "goes backwards (earlier than line 3)"),
    ],
)
def test_azure_bad_row_names_line(tmp_path: Path, row: str, what: str) -> None:
    good = "2023-11-16 18:00:00,5,5\n2023-11-16 18:00:01,5,5\n"
    path = write(tmp_path, "bad.csv", AZURE_HEADER + good + row + "\n")
    trace_error(azure(path), "bad.csv:4:", what)


def test_lengths_bad_arrived_at(tmp_path: Path) -> None:
    text = "arrived_at,prompt_len,output_len\n0,5,5\n2.5,5,5\n1.0,5,5\n"
    cfg = unvalidated_lengths_trace(write(tmp_path, "l.csv", text))
    trace_error(cfg, "l.csv:4:", "backwards")


def test_lengths_without_arrived_at_needs_arrivals(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "prompt_len,output_len\n5,5\n")
    cfg = unvalidated_lengths_trace(path)
    trace_error(cfg, "l.csv", "arrived_at", "workload.arrival")


def mooncake(tmp_path: Path, records: list[str]) -> dict[str, Any]:
    return {"trace": {"format": "mooncake", "path": write(tmp_path, "m.jsonl", "\n".join(records))}}


def rec(ts: float, inp: Any = 10, out: Any = 5) -> str:
    return json.dumps({"timestamp": ts, "input_length": inp, "output_length": out, "hash_ids": [0]})


def test_mooncake_times_are_ms(tmp_path: Path) -> None:
    w = build(mooncake(tmp_path, [rec(1000), rec(1500), rec(4000, out=0)]))
    assert w.arrival is not None and w.arrival.tolist() == [0.0, 0.5, 3.0]
    assert w.output_len.tolist() == [5, 5, 1]


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ('{"timestamp": 5, "input_length": 10,', "invalid JSON"),
        ('{"timestamp": 5, "input_length": 10}', "output_length"),
        (rec(5, inp=-1), "input_length=-1"),
        (rec(5, inp="ten"), "input_length='ten'"),
        (rec(1), "goes backwards (earlier than line 2)"),
    ],
)
def test_mooncake_bad_line_names_line(tmp_path: Path, bad: str, what: str) -> None:
    trace_error(mooncake(tmp_path, [rec(0), rec(2), bad, rec(9)]), "m.jsonl:3:", what)


def test_empirical_missing_column(tmp_path: Path) -> None:
    write(tmp_path, "lens.csv", "a,b\n1,2\n")
    spec = synthetic(
        num_requests=3,
        closed_loop={"concurrency": 1},
        output_len={"dist": "empirical", "path": str(tmp_path / "lens.csv"), "column": "tok"},
    )
    trace_error(spec, "lens.csv:1:", "'tok'", "['a', 'b']")


def test_empirical_bad_value(tmp_path: Path) -> None:
    write(tmp_path, "lens.csv", "tok\n1\n2\nx\n")
    spec = synthetic(
        num_requests=3,
        closed_loop={"concurrency": 1},
        output_len={"dist": "empirical", "path": str(tmp_path / "lens.csv"), "column": "tok"},
    )
    trace_error(spec, "lens.csv:4:", "tok='x'")
