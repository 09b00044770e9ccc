"""Profile tables, the table/forest/proxy backends, chaining in a run, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from frontier_predictors.evaluate import SHAPE_KEYS, metrics, split
from frontier_predictors.features import Featurizer, row_to_call
from frontier_predictors.models import FlatTrees, TrainedModels, device_spec, train
from frontier_predictors.profiles import ProfileError, load_tables, read_table, write_table

from frontier_core import FrontierWarning, OpCall, load_registry

H100 = "h100-sxm"


def _gemm_rows(ns=(1024, 4096), ks=(1024, 4096), ms=(1, 8, 64, 512, 4096), device=H100):
    """Synthetic GEMM 'measurements': roofline × a smooth shape-dependent efficiency."""
    rp = Featurizer(device_spec(device)).roofline
    rows = []
    for n in ns:
        for k in ks:
            for m in ms:
                t = rp.predict(OpCall("gemm", dtype="bf16", m=m, n=n, k=k))
                t *= 1.3 + 0.2 * math.sin(math.log2(m))
                rows.append(dict(op="gemm", device=device, dtype="bf16", latency_s=t + 5e-6,
                                 m=m, n=n, k=k))
    return pd.DataFrame(rows)


def _hetero_attention(num_rows: int, seed: int) -> pd.DataFrame:
    """Prefill batches of mixed lengths whose 'measured' time depends on the whole batch.

    Ground truth: a fixed cost per sequence plus work ∝ Σ q·kv (causal pairs) plus a
    padding-like tail cost ∝ n·max(q). The mean lengths alone cannot recover it.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        n = int(rng.integers(1, 24))
        kind = rng.integers(0, 3)
        if kind == 0:
            q = rng.integers(16, 2048, n)
        elif kind == 1:
            q = np.minimum(rng.lognormal(5, 1.2, n).astype(int) + 1, 8192)
        else:
            q = np.where(rng.random(n) < 0.8, rng.integers(8, 64, n), rng.integers(2048, 4096, n))
        pre = np.where(rng.random(n) < 0.3, rng.integers(0, 2048, n), 0)
        kv = q + pre
        pairs = float(np.dot(q, kv) - 0.5 * np.dot(q, q))
        t = 8e-6 + 2e-6 * n + 1.1e-12 * 32 * 128 * 4 * pairs + 1.5e-9 * n * q.max()
        rows.append(dict(op="attention_prefill", device=H100, dtype="bf16", latency_s=t,
                         num_heads=32, num_kv_heads=8, head_dim=128,
                         q_lens=" ".join(map(str, q)), kv_lens=" ".join(map(str, kv))))
    return pd.DataFrame(rows)


# ---- tables ---------------------------------------------------------------------


def test_table_round_trip_csv_and_parquet(tmp_path):
    df = pd.concat([_gemm_rows(), _hetero_attention(5, 0)], ignore_index=True)
    for suffix in (".csv", ".parquet"):
        p = write_table(df, tmp_path / f"t{suffix}")
        back = read_table(p)
        assert len(back) == len(df)
        assert back.loc[back.op == "gemm", "m"].astype(int).tolist() == df.loc[
            df.op == "gemm", "m"].astype(int).tolist()
        att = back[back.op == "attention_prefill"].iloc[0]
        assert isinstance(att["q_lens"], np.ndarray)
        assert " ".join(map(str, att["q_lens"])) == df[df.op == "attention_prefill"].iloc[0].q_lens


@pytest.mark.parametrize("mutate, row, column", [
    (lambda d: d.drop(columns=["latency_s"]), None, "latency_s"),
    (lambda d: d.assign(op=["gemm", "convolution"]), 3, "op"),
    (lambda d: d.assign(kv_lens=[None, "5 x"]), 3, "kv_lens"),
    (lambda d: d.assign(kv_lens=[None, "5"]), 3, "kv_lens"),  # 2 q_lens, 1 kv_len
    (lambda d: d.assign(m=["8", "nine"]), 3, "m"),
    (lambda d: d.assign(latency_s=[0.0, 1e-5]), 2, "latency_s"),
    (lambda d: d.assign(dtype=["int2", "bf16"]), 2, "dtype"),
    (lambda d: d.drop(columns=["k"]), 2, "k"),
    (lambda d: d.assign(gated=[None, "maybe"]), 3, "gated"),
])
def test_malformed_tables_name_file_row_and_column(tmp_path, mutate, row, column):
    good = pd.DataFrame([
        dict(op="gemm", device=H100, dtype="bf16", latency_s=1e-5, m=8, n=16, k=32),
        dict(op="attention_decode", device=H100, dtype="bf16", latency_s=2e-5, num_heads=8,
             num_kv_heads=8, head_dim=128, q_lens="1 1", kv_lens="5 9"),
    ])
    p = tmp_path / "bad.csv"
    mutate(good).to_csv(p, index=False)
    with pytest.raises(ProfileError) as e:
        read_table(p)
    msg = str(e.value)
    assert str(p) in msg and f"column {column!r}" in msg
    if row is not None:
        assert f"row {row}" in msg


# ---- backends -----------------------------------------------------------------------


def test_table_is_exact_at_measured_points_and_declines_outside():
    df = _gemm_rows()
    m = train(read_frame(df), "table")
    model = m.models[(H100, "gemm")]
    for r in df.to_dict("records"):
        assert model.predict_one(row_to_call(r)) == pytest.approx(r["latency_s"], rel=1e-9)
    # between measured m: between the neighbours
    lo = model.predict_one(OpCall("gemm", dtype="bf16", m=64, n=1024, k=1024))
    hi = model.predict_one(OpCall("gemm", dtype="bf16", m=512, n=1024, k=1024))
    mid = model.predict_one(OpCall("gemm", dtype="bf16", m=200, n=1024, k=1024))
    assert min(lo, hi) < mid < max(lo, hi)
    assert model.predict_one(OpCall("gemm", dtype="bf16", m=8192, n=1024, k=1024)) is None
    assert model.predict_one(OpCall("gemm", dtype="fp8", m=64, n=1024, k=1024)) is None


@pytest.mark.parametrize("backend", ["table", "forest"])
def test_block_scaled_and_per_tensor_fp8_take_their_own_measurements(backend):
    """The same shapes measured with per-tensor fp8 kernels and (twice as fast, say) with
    block-scaled ones: a call of either format is priced from its own rows."""
    per_tensor = _gemm_rows().assign(dtype="fp8")
    block = _gemm_rows().assign(dtype="fp8_block", latency_s=lambda d: d["latency_s"] / 2)
    m = train(read_frame(pd.concat([per_tensor, block], ignore_index=True)), backend)
    model = m.models[(H100, "gemm")]
    rows = per_tensor.sample(8, random_state=0).to_dict("records")
    calls = [row_to_call(r) for r in rows]
    def predict(cs):
        if hasattr(model, "predict_many"):
            return model.predict_many(cs)
        return np.array([model.predict_one(c) for c in cs])

    fp8 = predict(calls)
    blk = predict([replace(c, dtype="fp8_block") for c in calls])
    truth = np.array([r["latency_s"] for r in rows])
    assert fp8 == pytest.approx(truth, rel=0.1)
    assert blk == pytest.approx(truth / 2, rel=0.1)


def test_a_learned_model_answers_a_call_only_from_its_own_kernel_family():
    """Measured ranges are kept per format (and per gated or not for experts): a
    block-scaled call far from every block-scaled measurement is declined, though
    per-tensor fp8 was measured at its size, and the chain falls through."""
    per_tensor = _gemm_rows().assign(dtype="fp8")
    block = _gemm_rows(ns=(1024,), ks=(1024,), ms=(1, 8, 64)).assign(dtype="fp8_block")
    m = train(read_frame(pd.concat([per_tensor, block], ignore_index=True)), "forest")
    model = m.models[(H100, "gemm")]
    big = OpCall("gemm", dtype="fp8", m=4096, n=4096, k=4096)
    assert model.covers(big)
    assert not model.covers(replace(big, dtype="fp8_block"))
    assert model.covers(OpCall("gemm", dtype="fp8_block", m=32, n=1024, k=1024))


@pytest.mark.parametrize("backend", ["table", "forest"])
def test_attention_is_priced_from_the_rows_of_its_kv_cache_format(backend):
    """Measured attention rows are filed under the KV cache's format; the execution
    model's calls compute in bf16 and give the cache's bytes per element. An fp8 cache
    takes the fp8 rows, a bf16 cache the bf16 rows, and absorbed MLA (one latent of head
    dim 576 for keys and values) none of these GQA rows."""
    from frontier_predictors.components import ModelPredictor

    rows = []
    for fmt, scale in (("bf16", 1.0), ("fp8", 0.5)):
        for b in (1, 4, 16):
            for kv in (512, 2048, 8192):
                rows.append(dict(op="attention_decode", device=H100, dtype=fmt,
                                 latency_s=scale * (6e-6 + 1e-9 * b * kv), num_heads=8,
                                 num_kv_heads=1, head_dim=128, q_lens=" ".join(["1"] * b),
                                 kv_lens=" ".join([str(kv)] * b)))
    pred = ModelPredictor(train(read_frame(pd.DataFrame(rows)), backend), H100)

    def call(**layout):
        return OpCall("attention_decode", "attention", "bf16", num_heads=8, num_kv_heads=1,
                      head_dim=128, q_lens=np.ones(4, np.int64), kv_lens=np.full(4, 2048),
                      extra=layout)

    truth = 6e-6 + 1e-9 * 4 * 2048
    bf16 = pred.predict(call(kv_planes=2, kv_bytes=2))
    fp8 = pred.predict(call(kv_planes=2, kv_bytes=1))
    assert bf16 == pytest.approx(truth, rel=0.15) and fp8 == pytest.approx(truth / 2, rel=0.15)
    absorbed = replace(call(kv_planes=1, kv_bytes=1), head_dim=576)  # MLA's latent
    assert pred.predict(absorbed) is None  # no row of its kernel: the next predictor's


def read_frame(df: pd.DataFrame) -> pd.DataFrame:
    from frontier_predictors.profiles import validate

    return validate(df, "<test>")


def test_flat_trees_reproduce_the_estimators():
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.random((400, 6))
    y = X[:, 0] * 3 + np.sin(9 * X[:, 1])
    for est in (HistGradientBoostingRegressor(max_iter=40, random_state=0),
                ExtraTreesRegressor(n_estimators=10, random_state=0)):
        est.fit(X, y)
        Xt = rng.random((50, 6))
        flat = FlatTrees(est)
        np.testing.assert_allclose(flat.predict(Xt), est.predict(Xt), atol=1e-9)
        # one row at a time (the simulator's path) gives the same
        one = np.concatenate([flat.predict(x) for x in Xt])
        np.testing.assert_allclose(one, est.predict(Xt), atol=1e-9)


def test_forest_beats_proxy_on_heterogeneous_batches():
    df = read_frame(_hetero_attention(900, 1))
    tr, te = split(df, "rows", 0.25, 0)
    res = {}
    for backend in ("forest", "proxy"):
        m = train(tr, backend, seed=0)
        res[backend] = metrics(te, m.predict_frame(te))["attention_prefill"]
    assert res["forest"]["median_rel_err"] < 0.6 * res["proxy"]["median_rel_err"]
    assert res["forest"]["within_10pct"] > res["proxy"]["within_10pct"]


def test_training_is_deterministic_with_a_seed(tmp_path):
    df = read_frame(pd.concat([_gemm_rows(), _hetero_attention(60, 2)], ignore_index=True))
    a = train(df, "forest", seed=3).predict_frame(df)
    b = train(df, "forest", seed=3).predict_frame(df)
    np.testing.assert_array_equal(a, b)
    m = train(df, "forest", seed=3)
    m.save(tmp_path / "m")
    np.testing.assert_array_equal(TrainedModels.load(tmp_path / "m").predict_frame(df), a)


def test_learned_models_decline_far_outside_their_training_range():
    m = train(read_frame(_gemm_rows()), "forest", margin=1.0).models[(H100, "gemm")]
    assert m.covers(OpCall("gemm", dtype="bf16", m=4096, n=4096, k=4096))
    assert m.covers(OpCall("gemm", dtype="bf16", m=8000, n=4096, k=4096))  # within 1 octave
    assert not m.covers(OpCall("gemm", dtype="bf16", m=65536, n=4096, k=4096))
    assert not m.covers(OpCall("gemm", dtype="fp8", m=64, n=4096, k=4096))


def test_collective_models_answer_only_measured_gpu_counts_and_scopes():
    rows = [{"op": "all_reduce", "device": H100, "dtype": "bf16", "num_gpus": g, "bytes": b,
             "latency_s": 4e-6 + b / (g * 50e9)}
            for g in (2, 4, 8) for b in (1 << 10, 1 << 16, 1 << 20, 1 << 24, 1 << 28)]
    m = train(read_frame(pd.DataFrame(rows)), "forest").models[(H100, "all_reduce")]
    call = OpCall("all_reduce", dtype="bf16", num_gpus=8, bytes=1 << 20)
    assert m.covers(call)
    assert m.covers(replace(call, num_gpus=6))  # between measured counts
    assert m.covers(replace(call, bytes=1 << 29))  # sizes keep the margin
    # a GPU count beyond the measured ones, or links never measured: the next predictor
    assert not m.covers(replace(call, num_gpus=16))
    assert not m.covers(replace(call, scope="inter"))


def test_shape_split_holds_out_whole_shapes():
    df = read_frame(_gemm_rows(ns=(512, 1024, 2048, 4096), ks=(1024, 2048)))
    tr, te = split(df, "shape", 0.3, 0)
    key = list(SHAPE_KEYS["gemm"])
    shapes_tr = set(map(tuple, tr[key].to_numpy().tolist()))
    shapes_te = set(map(tuple, te[key].to_numpy().tolist()))
    assert shapes_te and shapes_tr and not shapes_tr & shapes_te
    assert len(tr) + len(te) == len(df)


# ---- in a run: chaining and coverage --------------------------------------------------


def _run(predictor, tmp_path):
    from frontier_core.assemble import assemble
    from frontier_core.config import RunConfig

    cfg = RunConfig.model_validate({
        "model": "llama-3.1-8b",
        "deployment": {"clusters": [{"name": "main", "gpu": H100}]},
        "predictor": predictor,
        "workload": {"arrival": {"process": "poisson", "rate": 4.0},
                     "prompt_len": {"dist": "uniform", "low": 16, "high": 900},
                     "output_len": {"dist": "uniform", "low": 1, "high": 60},
                     "num_requests": 40},
        "base_dir": str(tmp_path),
    })
    sim = assemble(cfg, load_registry())
    sim.run()
    return sim


def test_chain_falls_back_to_the_roofline_and_reports_coverage(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    shapes = _gemm_rows(ns=(512, 1536, 4096, 6144, 14336, 28672, 128256),
                        ks=(4096, 14336), ms=(1, 4, 16, 64, 256, 1024, 4096, 16384))
    write_table(shapes, tmp_path / "gemm.csv")
    sim = _run([{"name": "forest", "data": ["gemm.csv"]}, "roofline"], tmp_path)
    from frontier_core.app.metrics import summarize

    share = summarize(sim)["predictor_time_share"]
    assert 0 < share["forest"] < 1 and 0 < share["roofline"] < 1
    assert share["forest"] + share["roofline"] == pytest.approx(1.0)
    # trained once, then read back from the cache
    assert list((tmp_path / "cache" / "models").iterdir())


def test_model_without_the_runs_gpu_warns_and_defers(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    write_table(_gemm_rows(device="a100-80g-sxm"), tmp_path / "a100.csv")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sim = _run([{"name": "table", "data": ["a100.csv"]}, "roofline"], tmp_path)
    assert any(issubclass(x.category, FrontierWarning) and "a100-80g-sxm" in str(x.message)
               for x in w)
    from frontier_core.app.metrics import summarize

    assert summarize(sim)["predictor_time_share"]["table"] == 0


def test_auto_without_measured_data_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    from frontier_core.assemble import assemble
    from frontier_core.config import RunConfig

    cfg = RunConfig.model_validate({
        "model": "llama-3.1-8b", "deployment": {"clusters": [{"name": "main", "gpu": "h800"}]},
        "predictor": ["auto", "roofline"],
        "workload": {"arrival": {"process": "poisson", "rate": 4.0}, "num_requests": 5,
                     "prompt_len": {"dist": "fixed", "value": 64},
                     "output_len": {"dist": "fixed", "value": 4}},
    })
    with pytest.warns(FrontierWarning, match="no measured operator data for h800"):
        assemble(cfg, load_registry())


def test_auto_alone_runs_with_the_roofline_behind_it(tmp_path, monkeypatch):
    """A chain that ends with auto never fails for want of data: the roofline is appended
    (with its defaults) and answers what auto has no measurement of."""
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    from frontier_core.app.metrics import summarize
    from frontier_core.assemble import assemble
    from frontier_core.config import RunConfig

    def cfg(predictor):
        return RunConfig.model_validate({
            "model": "llama-3.1-8b", "deployment": {"clusters": [{"name": "main", "gpu": "h800"}]},
            "predictor": predictor,
            "workload": {"arrival": {"process": "poisson", "rate": 4.0}, "num_requests": 5,
                         "prompt_len": {"dist": "fixed", "value": 64},
                         "output_len": {"dist": "fixed", "value": 4}},
        })

    with pytest.warns(FrontierWarning, match="the roofline prices every operator"):
        sim = assemble(cfg(["auto"]), load_registry())
    ex = sim.executors["main"]
    assert [name for name, _ in ex.chain] == ["auto", "roofline"]
    sim.run()
    assert summarize(sim)["predictor_time_share"] == {"auto": 0.0, "roofline": 1.0}
    # A chain that goes on after auto keeps its own predictors, options included.
    with pytest.warns(FrontierWarning):
        sim = assemble(cfg(["auto", {"name": "roofline", "launch_s": 1e-3}]), load_registry())
    chain = sim.executors["main"].chain
    assert [name for name, _ in chain] == ["auto", "roofline"]
    assert chain[1][1].options.launch_s == 1e-3


def test_auto_takes_the_tables_of_the_engine_the_cluster_names(tmp_path, monkeypatch):
    """AIConfigurator measures kernels under vLLM, SGLang and TensorRT-LLM; auto takes
    the cluster's engine's, with vLLM's rows for the formats that engine lacks, and
    vLLM's alone when the engine has none on the GPU or the cluster names none."""
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    from frontier_predictors import components, importers
    from frontier_predictors.profiles import ProfileError, load_tables

    imported = []

    def fake_import(system, backend, version=None, *, out_dir, data_root=None):
        imported.append((system, backend))
        if backend == "trtllm":
            raise ProfileError("none measured")
        rows = _gemm_rows(device="h200").assign(framework=backend)
        if backend == "vllm":  # vLLM measured bf16 and fp8, SGLang bf16 only
            rows = pd.concat([rows, rows.assign(dtype="fp8")], ignore_index=True)
        write_table(rows, Path(out_dir) / "gemm.parquet")

    monkeypatch.setattr(components, "_aic_version", lambda: "9.9")
    monkeypatch.setattr(importers, "import_aic", fake_import)
    root = tmp_path / "systems" / "data"
    (root / "h200_sxm").mkdir(parents=True)
    monkeypatch.setattr(importers, "aic_data_root", lambda: root)
    paths, origin = components.measured_data_for("h200", "sglang", ("h200_sxm",))
    assert origin == "AIConfigurator h200_sxm/sglang (vLLM's where sglang has none)"
    got = load_tables(paths)
    assert got.groupby("dtype")["framework"].agg(set).to_dict() == {
        "bf16": {"sglang"}, "fp8": {"vllm"}}
    # the system is found by the GPU's alias (h200 -> h200_sxm), here and in a run
    assert components.measured_data_for("h200", None, ("h200_sxm",))[1] == \
        "AIConfigurator h200_sxm/vllm"
    assert components.measured_data_for("h200", "trtllm", ("h200_sxm",))[1] == \
        "AIConfigurator h200_sxm/vllm"
    assert components.measured_data_for("h200", "trtllm") == ([], "")  # no such system
    assert imported == [("h200_sxm", "sglang"), ("h200_sxm", "vllm"), ("h200_sxm", "trtllm")]
    # imported once per engine, then read from the cache
    components.measured_data_for("h200", "sglang", ("h200_sxm",))
    assert len(imported) == 3


EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_with_auto_from_a_default_install(example, tmp_path, monkeypatch):
    """Without aiconfigurator-core (a default install), ``predictor: [auto]`` runs every
    shipped example: the roofline answers what no measured table covers."""
    monkeypatch.setenv("FRONTIER_CACHE_DIR", str(tmp_path / "cache"))
    from frontier_predictors import components

    from frontier_core.assemble import assemble
    from frontier_core.configfile import load_config

    text = example.read_text()
    for needs, module in (("name: pd", "frontier_pd_disagg"), ("af-", "frontier_af_pingpong"),
                          ("moe", "frontier_moe_ep")):
        if needs in text or example.name.startswith(needs):
            pytest.importorskip(module)
    monkeypatch.setattr(components, "_aic_version", lambda: None)
    cfg = load_config(example, ['predictor=["auto"]', "workload.num_requests=12"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FrontierWarning)
        sim = assemble(cfg, load_registry())
    sim.run()
    assert sim.controller.finished == 12


# ---- command line ---------------------------------------------------------------------


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "frontier_core.app.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_train_eval_split_round_trip(tmp_path):
    df = pd.concat([_gemm_rows(ns=(512, 1024, 2048, 4096)), _hetero_attention(150, 4)],
                   ignore_index=True)
    write_table(df, tmp_path / "data" / "all.csv")
    r = _cli("predictors", "split", str(tmp_path / "data"), "--by", "rows", "-o",
             str(tmp_path / "split"))
    assert r.returncode == 0, r.stderr
    r = _cli("predictors", "train", str(tmp_path / "split" / "train.parquet"), "--backend",
             "forest", "-o", str(tmp_path / "model"))
    assert r.returncode == 0, r.stderr
    r = _cli("predictors", "eval", str(tmp_path / "model"), str(tmp_path / "split" / "test.parquet"),
             "--json", "--predictions", str(tmp_path / "pred.csv"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert set(res) == {"gemm", "attention_prefill"}
    for m in res.values():
        assert set(m) >= {"n", "median_rel_err", "p90_rel_err", "within_5pct", "within_10pct",
                          "within_20pct"}
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert "predicted_s" in pred and len(pred) == len(load_tables([tmp_path / "split" / "test.parquet"]))
    r = _cli("predictors", "eval", str(tmp_path / "model"), str(tmp_path / "split" / "test.parquet"),
             "--json", "--compare", "roofline")
    assert set(json.loads(r.stdout)) == {str(tmp_path / "model"), "roofline"}


def test_cli_bad_input_is_one_paragraph_exit_2(tmp_path):
    (tmp_path / "bad.csv").write_text("op,device,dtype\ngemm,h100-sxm,bf16\n")
    r = _cli("predictors", "train", str(tmp_path / "bad.csv"), "--backend", "forest", "-o",
             str(tmp_path / "m"))
    assert r.returncode == 2 and "latency_s" in r.stderr and "Traceback" not in r.stderr
    r = _cli("predictors", "train", str(tmp_path / "nope"), "--backend", "forest", "-o",
             str(tmp_path / "m"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _cli("predictors", "eval", str(tmp_path), str(tmp_path / "bad.csv"))
    assert r.returncode == 2 and "model.json" in r.stderr
    assert not (tmp_path / "m").exists()


def test_cli_train_refuses_a_folder_frontier_did_not_write_before_training(tmp_path):
    write_table(_gemm_rows(ns=(512, 1024)), tmp_path / "data" / "gemm.csv")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    # bad data too: the output folder is checked first, before the tables are read
    r = _cli("predictors", "train", str(tmp_path / "nope"), "--backend", "table", "-o",
             str(mine), "--overwrite")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Frontier did not write: notes.txt" in r.stderr and "does not exist" not in r.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # a model folder is replaced by the next training, keeping files a user added
    model = tmp_path / "model"
    for _ in range(2):
        r = _cli("predictors", "train", str(tmp_path / "data"), "--backend", "table", "-o",
                 str(model))
        assert r.returncode == 0, r.stderr
        (model / "notes.txt").write_text("mine")
    assert sorted(p.name for p in model.iterdir()) == [
        ".frontier-results.json", "model.json", "models.joblib", "notes.txt"]


def test_saved_featurizers_hold_plain_data_and_rebuild_their_roofline():
    import pickle

    feat = Featurizer(device_spec(H100))
    blob = pickle.dumps(feat)
    assert b"RooflinePredictor" not in blob and b"HardwareSpec" not in blob
    back = pickle.loads(blob)
    call = OpCall("gemm", dtype="bf16", m=64, n=4096, k=4096)
    np.testing.assert_array_equal(back.features(call)[0], feat.features(call)[0])
    assert back.device == feat.device


def test_saved_models_load_without_scikit_learn(tmp_path):
    df = read_frame(pd.concat([_gemm_rows(), _hetero_attention(40, 1)], ignore_index=True))
    m = train(df, "forest", seed=1)
    m.save(tmp_path / "m")
    code = ("import sys; from frontier_predictors.models import TrainedModels; "
            f"m = TrainedModels.load({str(tmp_path / 'm')!r}); "
            "print(any(k.split('.')[0] == 'sklearn' for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    np.testing.assert_array_equal(TrainedModels.load(tmp_path / "m").predict_frame(df),
                                  m.predict_frame(df))


def test_moe_features_count_two_matrices_for_experts_without_a_gate():
    from frontier_predictors.features import moe_call

    feat = Featurizer(device_spec(H100))
    kw = dict(dtype="bf16", num_tokens=16, hidden_size=2688, inter_size=1856, num_experts=128,
              top_k=6)
    fg, rg = feat.features(moe_call(**kw))
    fn, rn = feat.features(moe_call(gated=False, **kw))
    assert rn < rg  # fewer weights to read
    assert fg[-1] == 3.0 and fn[-1] == 2.0
    assert Featurizer.memo_key(moe_call(**kw)) != Featurizer.memo_key(moe_call(gated=False, **kw))


def test_experts_without_a_gate_do_not_answer_for_gated_ones():
    """Trained only on experts without a gate projection (Nemotron-H's ReLU²), a model
    declines gated experts of the same sizes: another kernel family."""
    from frontier_predictors.features import moe_call

    rp = Featurizer(device_spec(H100)).roofline
    rows = []
    for tokens in (1, 4, 16, 64, 256, 1024):
        for experts in (64, 128):
            kw = dict(dtype="bf16", num_tokens=tokens, hidden_size=2688, inter_size=1856,
                      num_experts=experts, top_k=6)
            t = rp.predict(moe_call(gated=False, **kw)) * 1.2
            rows.append(dict(op="moe_experts", device=H100, latency_s=t, ep_size=1, tp_size=1,
                             routing="balanced", gated=False, top_k=6,
                             **{k: v for k, v in kw.items() if k != "top_k"}))
    m = train(read_frame(pd.DataFrame(rows)), "forest")
    model = m.models[(H100, "moe_experts")]
    kw = dict(dtype="bf16", num_tokens=32, hidden_size=2688, inter_size=1856, num_experts=128,
              top_k=6)
    assert model.covers(moe_call(gated=False, **kw))
    assert not model.covers(moe_call(**kw))


def test_held_out_whole_moe_shapes_are_priced_from_features_that_carry_across_shapes():
    """Expert layers whose time follows what is physical in every shape (a fixed kernel
    floor, weight streaming at few tokens per expert, compute at many): a forest trained
    on some (hidden, inter, experts, top-k) shapes prices the held-out ones it covers
    within 10% as often as the target asks (85%); held-out shapes far outside the
    trained sizes are declined (the next predictor's)."""
    from frontier_predictors.features import moe_call

    rp = Featurizer(device_spec(H100)).roofline
    shapes = [(2048, 768, 128, 8), (4096, 1536, 128, 8), (7168, 2048, 256, 8),
              (6144, 2560, 160, 8), (4096, 1024, 512, 10), (5120, 8192, 16, 1),
              (3072, 1024, 256, 8), (2048, 512, 256, 8), (7168, 2048, 384, 8),
              (4096, 14336, 8, 2)]
    rows = []
    for h, i, e, k in shapes:
        for tokens in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
            for ep in (1, 4, 8):
                kw = dict(dtype="bf16", num_tokens=tokens, hidden_size=h, inter_size=i,
                          num_experts=e, top_k=k)
                per_expert = tokens * k / e
                t = 2e-5 + rp.predict(moe_call(ep_size=ep, **kw)) * (1 + 0.6 / (1 + per_expert))
                rows.append(dict(op="moe_experts", device=H100, latency_s=t, ep_size=ep,
                                 tp_size=1, routing="balanced", gated=True, top_k=k,
                                 **{c: v for c, v in kw.items() if c != "top_k"}))
    df = read_frame(pd.DataFrame(rows))
    tr, te = split(df, "shape", 0.25, 0)
    pred = train(tr, "forest").predict_frame(te)
    err = np.abs(pred - te["latency_s"].to_numpy()) / te["latency_s"].to_numpy()
    covered = ~np.isnan(err)
    held = te[list(SHAPE_KEYS["moe_experts"])][covered].drop_duplicates()
    assert len(held) >= 1 and covered.mean() >= 0.3
    assert np.mean(err[covered] <= 0.10) >= 0.85


def test_cache_folders_appear_whole_when_parallel_runs_build_them(tmp_path):
    """Two runs that miss the same cache entry build it at once (validate serving -j 2):
    neither fails, and the folder holds one builder's whole output; a folder an
    interrupted run left half-written is replaced."""
    import threading

    from frontier_predictors.components import _publish, _published

    folder = tmp_path / "cache" / "entry"
    both_inside = threading.Barrier(2)
    errors = []

    def build(tag):
        def fill(d):
            (d / "a.txt").write_text(tag)
            both_inside.wait(timeout=10)
            (d / "b.txt").write_text(tag)
        return fill

    def run(tag):
        try:
            _publish(folder, build(tag))
        except Exception as e:  # pragma: no cover - the failure this test guards against
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and _published(folder)
    a, b = (folder / "a.txt").read_text(), (folder / "b.txt").read_text()
    assert a == b  # one builder's files, not a mix
    assert [p.name for p in folder.parent.iterdir()] == ["entry"]  # no temporary left

    stale = tmp_path / "cache" / "stale"
    stale.mkdir()
    (stale / "a.txt").write_text("half")
    _publish(stale, lambda d: (d / "a.txt").write_text("whole"))
    assert (stale / "a.txt").read_text() == "whole" and _published(stale)
