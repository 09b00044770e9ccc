"""The numbers behind the plots, on hand-made inputs: CDFs, the Pareto set, binned
utilisation, queue counts, sweep series."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from frontier_report.analysis import (
    Series,
    binned_utilisation,
    cdf,
    count_between,
    fmt_value,
    iteration_tracks,
    latency_values,
    pareto_front,
    sweep_series,
)


def test_cdf_sorts_finite_values_with_step_probabilities():
    x, p = cdf(np.array([0.3, np.nan, 0.1, 0.2, np.inf, 0.2]))
    assert x.tolist() == [0.1, 0.2, 0.2, 0.3]
    assert p.tolist() == [0.25, 0.5, 0.75, 1.0]
    x, p = cdf(np.array([]))
    assert len(x) == len(p) == 0


def test_latency_values_skip_rejected_and_missing_tpot():
    req = {"ttft_s": np.array([0.1, 0.5, np.nan, 0.2]),
           "tpot_s": np.array([0.01, np.nan, np.nan, 0.03]),  # request 1 had one token
           "e2e_s": np.array([1.0, 0.6, np.nan, 2.0]),
           "rejected": np.array(["", "", "kv_capacity", ""], dtype=object)}
    lv = latency_values(req)
    assert lv["ttft_s"].tolist() == [0.1, 0.5, 0.2]
    assert lv["tpot_s"].tolist() == [0.01, 0.03]
    assert lv["e2e_s"].tolist() == [1.0, 0.6, 2.0]


def test_pareto_front_on_a_hand_made_table():
    #            a    b    c    d    e    f    g (copy of b)  h (no latency)
    latency = [1.0, 2.0, 3.0, 2.5, 2.0, 4.0, 2.0, np.nan]
    tput = [10.0, 20.0, 30.0, 15.0, 18.0, 30.0, 20.0, 99.0]
    mask = pareto_front(np.array(latency), np.array(tput))
    # d: b is faster and better; e: b ties latency, better tput; f: c ties tput, faster
    assert mask.tolist() == [True, True, True, False, False, False, True, False]


def _brute_force(lat, thr):
    n = len(lat)
    ok = np.isfinite(lat) & np.isfinite(thr)
    out = []
    for i in range(n):
        dominated = any(ok[j] and lat[j] <= lat[i] and thr[j] >= thr[i]
                        and (lat[j] < lat[i] or thr[j] > thr[i]) for j in range(n))
        out.append(bool(ok[i]) and not dominated)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    lat = rng.integers(0, 6, 25).astype(float)  # small integers: many ties
    thr = rng.integers(0, 6, 25).astype(float)
    assert pareto_front(lat, thr).tolist() == _brute_force(lat, thr)


def _trace(*slices, cluster="main", pid=1):
    ev = [{"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"cluster {cluster}"}}]
    for tid, ts, dur, kv in slices:
        ev.append({"ph": "X", "pid": pid, "tid": tid, "ts": ts * 1e6, "dur": dur * 1e6,
                   "name": "D1", "args": {"kv_blocks_used": kv}})
    ev.append({"ph": "X", "pid": pid, "tid": 10_000, "ts": 0, "dur": 5e6, "name": "KV r0",
               "args": {"bytes": 1}})  # not an iteration: ignored
    return ev


def test_iteration_tracks_group_by_cluster_and_replica():
    tracks = iteration_tracks(_trace((2, 1.0, 0.5, 3), (1, 2.0, 1.0, 4), (1, 0.0, 1.0, 2)))
    assert list(tracks) == ["main"]
    a, b = tracks["main"]
    assert a[:, 0].tolist() == [0.0, 2.0] and a[:, 2].tolist() == [2.0, 4.0]
    assert b.tolist() == [[1.0, 0.5, 3.0]]


def test_binned_utilisation_busy_and_kv_by_hand():
    # One replica of two: busy [0,1) with 10 blocks and [2,3) with 30 blocks.
    track = np.array([[0.0, 1.0, 10.0], [2.0, 1.0, 30.0]])
    edges = np.array([0.0, 2.0, 4.0])
    busy, kv = binned_utilisation([track], replicas=2, kv_blocks=100, edges=edges)
    assert busy.tolist() == pytest.approx([0.25, 0.25])  # 1 s busy of 2 s × 2 replicas
    # KV holds 10 blocks over [0,2), 30 over [2,4) -> 0.1 and 0.3 of one replica, / 2.
    assert kv.tolist() == pytest.approx([0.05, 0.15])


def test_binned_utilisation_counts_overlapping_pp_iterations_once():
    track = np.array([[0.0, 2.0, 0.0], [1.0, 2.0, 0.0]])  # overlap: pipeline parallel
    busy, _ = binned_utilisation([track], 1, 1, np.array([0.0, 3.0]))
    assert busy.tolist() == pytest.approx([1.0])


def test_count_between():
    start = np.array([0.0, 1.0, np.nan, 2.0])
    end = np.array([2.0, 1.5, 3.0, np.nan])  # NaN start ignored; NaN end = still open
    assert count_between(start, end, np.array([0.5, 1.0, 1.5, 2.0, 9.0])).tolist() == [
        1, 2, 1, 1, 1]


def test_sweep_series_groups_by_the_other_varied_fields():
    rows = [{"rate": r, "tp": tp, "y": r * tp}
            for r, tp in itertools.product([4.0, 2.0], [1.0, 2.0])]
    rows.append({"rate": None, "tp": 1.0, "y": 0.0})  # no x: left out
    series = sweep_series(rows, "rate", ["tp"], {"tp": "tp"})
    assert [s.label for s in series] == ["tp=1", "tp=2"]
    assert isinstance(series[0], Series)
    assert series[1].column("rate").tolist() == [2.0, 4.0]
    assert series[1].column("y").tolist() == [4.0, 8.0]
    assert sweep_series(rows, "rate", [], {})[0].label == "all runs"


def test_fmt_value():
    assert [fmt_value(v) for v in (2.0, 0.25, None, "vllm")] == ["2", "0.25", "-", "vllm"]
