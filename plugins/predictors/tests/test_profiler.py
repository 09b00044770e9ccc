"""`frontier profile`: the shapes and batches it plans (pure functions), the kernels
against a masked reference, quick CPU runs read back by the table loader, and
every bad flag as a ProfileError."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frontier_predictors import profiler  # noqa: E402
from frontier_predictors.features import row_to_call  # noqa: E402
from frontier_predictors.profiler import (  # noqa: E402
    GRIDS,
    attention_agrees,
    attention_cases,
    attention_loop,
    device_label,
    draw_lengths,
    expert_counts,
    gemm_shapes,
    profile_command,
    run_profile,
)
from frontier_predictors.profiles import ProfileError, load_tables, read_table  # noqa: E402

from frontier_core import ModelSpec  # noqa: E402
from frontier_core.builtin.hardware import HARDWARE  # noqa: E402
from frontier_core.builtin.models import MODELS  # noqa: E402
from frontier_core.execution.predictor import DenseFFN, ExecutionPredictor  # noqa: E402
from frontier_core.records import Batch, OpCall, Request  # noqa: E402

MODEL = {m.name: m for m in MODELS}
LLAMA = MODEL["llama-3.1-8b"]
# A MoE model small enough to profile in a fraction of a second.
TINY_MOE = ModelSpec(
    name="tiny-moe", num_layers=2, hidden_size=256, num_heads=4, num_kv_heads=2,
    intermediate_size=512, vocab_size=1000, max_context=4096, num_experts=16, top_k=4,
    moe_intermediate_size=128,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    """One intra-op thread: on a small shared CI machine, waking a second thread for
    every tiny kernel can cost milliseconds and drown the timings being compared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llama_tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A quick CPU profile of Llama-3.1-8B at TP 8 (small per-GPU shapes)."""
    out = tmp_path_factory.mktemp("llama")
    return run_profile(LLAMA, out_dir=out, tp=8, quick=True, device="cpu", seed=7), out


@pytest.fixture(scope="module")
def moe_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("moe")
    run_profile(TINY_MOE, out_dir=out, ep=2, quick=True, device="cpu", seed=3,
                ops="attention_decode,moe_experts")
    return out


# ---- planning: pure functions -------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[OpCall] = []

    def predict(self, call: OpCall) -> float:
        self.calls.append(call)
        return 1e-6


class _NoMoE:
    def ops(self, num_tokens: int) -> list[OpCall]:
        return []


@pytest.mark.parametrize("name", ["llama-3.1-8b", "qwen2-7b", "qwen3-30b-a3b", "deepseek-v3"])
@pytest.mark.parametrize("tp", [1, 8])
def test_gemm_shapes_are_those_the_simulator_asks_for(name: str, tp: int) -> None:
    model = MODEL[name]
    rec = _Recorder()
    ex = ExecutionPredictor(model, HARDWARE[0], tp, 1, [("rec", rec)], DenseFFN(model, tp),
                            _NoMoE() if model.is_moe else None)
    batch = Batch(prefill=[Request(0, 0.0, 9, 4, prefill_target=9)], chunks=[9],
                  decode=[Request(1, 0.0, 5, 4, computed=6)])
    ex.iteration(batch)
    asked = {(c.n, c.k) for c in rec.calls if c.op == "gemm"}
    planned = gemm_shapes(model, tp)
    assert asked <= set(planned)
    # Every planned shape the dense part of the simulator knows is asked for; the rest
    # belong to the MoE block (router, shared experts).
    extra = {n for shape, names in planned.items() if shape not in asked for n in names}
    assert extra <= {"moe_router", "shared_expert_up", "shared_expert_down"}
    # Attention shapes per GPU agree too.
    for op in ("attention_prefill", "attention_decode"):
        shape = profiler.attention_shape(model, tp, op == "attention_decode")
        attn = [c for c in rec.calls if c.op == op]
        assert {(c.num_heads, c.num_kv_heads, c.head_dim) for c in attn} == {shape}


def test_length_distributions_differ_in_shape() -> None:
    rng = np.random.default_rng(0)
    lens = {d: draw_lengths(rng, d, 4000, 1, 8192) for d in profiler.DISTS}
    for x in lens.values():
        assert x.min() >= 1 and x.max() <= 8192
    assert abs(np.median(lens["uniform"]) - 4096) < 400
    assert np.median(lens["skewed"]) < 1024 and lens["skewed"].max() > 4096  # most short, a tail
    bi = lens["bimodal"]
    assert 0.1 < np.mean(bi >= 4096) < 0.3 and np.mean(bi <= 1024) > 0.7
    assert not np.any((bi > 1024) & (bi < 4096))


def test_attention_cases_are_deterministic_and_heterogeneous() -> None:
    grid = GRIDS["cuda"]
    a = attention_cases("attention_prefill", grid, LLAMA, 1, seed=5)
    b = attention_cases("attention_prefill", grid, LLAMA, 1, seed=5)
    c = attention_cases("attention_prefill", grid, LLAMA, 1, seed=6)
    assert [(x.kind, x.dist) for x in a] == [(x.kind, x.dist) for x in b]
    assert all(np.array_equal(x.q_lens, y.q_lens) and np.array_equal(x.kv_lens, y.kv_lens)
               for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.q_lens, y.q_lens) for x, y in zip(a, c, strict=False))
    assert {x.kind for x in a} == {"prompt", "chunk"}
    assert all((x.kv_lens > x.q_lens).all() for x in a if x.kind == "chunk")
    assert all(len(set(x.q_lens.tolist())) > 1 for x in a if len(x.q_lens) >= 8)
    dec = attention_cases("attention_decode", grid, LLAMA, 1, seed=5)
    assert all((x.q_lens == 1).all() for x in dec)
    assert max(len(x.q_lens) for x in dec) == 512
    # More draws per cell: one run gives more rows, in the same cells and order
    three = attention_cases("attention_decode", GRIDS["quick"], LLAMA, 1, seed=5, batches=3)
    one = attention_cases("attention_decode", GRIDS["quick"], LLAMA, 1, seed=5)
    assert len(three) > 2 * len(one)  # (some draws go over the caps and are dropped)
    assert {(x.dist, len(x.q_lens)) for x in three} == {(x.dist, len(x.q_lens)) for x in one}
    assert len({tuple(x.kv_lens.tolist()) for x in three}) > 2 * len(one)
    # The caps hold.
    for x in a + dec:
        assert int((x.q_lens * x.kv_lens).sum()) <= grid.attn_work
        assert x.kv_lens.max() <= LLAMA.max_context


def test_balanced_routing_deals_tokens_evenly() -> None:
    rng = np.random.default_rng(0)
    for t, e, k, ep in [(1, 256, 8, 8), (7, 16, 4, 2), (1000, 128, 8, 4), (5, 8, 2, 1)]:
        c = expert_counts(rng, t, e, k, ep, "balanced")
        local = e // ep
        total = t * k
        assert len(c) == local
        assert c.sum() == local * (total // e) + min(total % e, local)
        assert c.max() - c.min() <= 1 and c.max() <= t


def test_power_law_routing_is_skewed_and_bounded() -> None:
    rng = np.random.default_rng(0)
    t, e, k = 4096, 64, 4
    for ep in (1, 4, 64):
        for routing in ("power_law:1.01", "power_law:1.2"):
            c = expert_counts(rng, t, e, k, ep, routing)
            assert len(c) == e // ep
            assert c.max() <= t  # a token picks an expert at most once
            assert t * k / ep <= c.sum() <= t * k  # the most loaded rank is timed
    # With every expert local, the busiest expert gets busier as alpha grows.
    top = {r: expert_counts(rng, t, e, k, 1, r).max() for r in profiler.ROUTINGS}
    assert top["balanced"] < top["power_law:1.01"] < top["power_law:1.2"]
    assert expert_counts(rng, t, e, k, 1, "power_law:1.2").sum() == t * k


def test_device_names_map_to_the_hardware_catalog() -> None:
    assert device_label(None) == "cpu"
    assert device_label("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert device_label("NVIDIA H200") == "h200"
    assert device_label("NVIDIA A100-SXM4-80GB") == "a100-80g-sxm"
    assert device_label("NVIDIA B200") == "b200"
    assert device_label("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    catalog = {h.name for h in HARDWARE}
    assert {v for _, v in profiler.GPU_NAMES} <= catalog


# ---- kernels ------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16])
def test_cpu_attention_masks_chunks_as_the_simulator_means(dt: object) -> None:
    """A chunk's query i sees keys 0..kv-q+i: checked against an explicit mask."""
    assert attention_agrees(torch, attention_loop, dt, "cpu", 64)


def test_moe_kernel_paths_agree() -> None:
    assert profiler.grouped_mm_works(torch, torch.bfloat16, "cpu") == hasattr(torch, "_grouped_mm")


# ---- quick runs on the CPU ----------------------------------------------------------


def test_quick_run_writes_tables_the_loader_reads(llama_tables: tuple[list[Path], Path]) -> None:
    paths, out = llama_tables
    assert [p.name for p in paths] == ["gemm.csv", "attention_prefill.csv", "attention_decode.csv"]
    df = load_tables([out])
    assert set(df["op"]) == {"gemm", "attention_prefill", "attention_decode"}
    assert set(df["device"]) == {"cpu"} and set(df["dtype"]) == {"bf16"}
    assert (df["latency_s"] > 0).all() and (df["repeats"] == GRIDS["quick"].repeats).all()
    gemm = df[df["op"] == "gemm"]
    want = {(m, n, k) for (n, k) in gemm_shapes(LLAMA, 8) for m in GRIDS["quick"].gemm_m}
    assert set(zip(gemm["m"], gemm["n"], gemm["k"], strict=True)) == want


def test_quick_attention_rows(llama_tables: tuple[list[Path], Path]) -> None:
    _, out = llama_tables
    pre = read_table(out / "attention_prefill.csv")
    dec = read_table(out / "attention_decode.csv")
    assert set(pre["impl"]) == {"sdpa_loop"} == set(dec["impl"])
    assert (pre["num_heads"] == 4).all() and (pre["num_kv_heads"] == 1).all()
    assert (pre["head_dim"] == 128).all()
    multi = [q for q in pre["q_lens"] if len(q) >= 4]
    assert multi and all(len(set(q.tolist())) > 1 for q in multi)
    chunks = pre[pre["kind"] == "chunk"]
    assert len(chunks) and all((kv > q).all() for q, kv in zip(chunks["q_lens"], chunks["kv_lens"], strict=True))
    assert all((q == 1).all() for q in dec["q_lens"])
    assert any(len(set(kv.tolist())) > 1 for kv in dec["kv_lens"])
    assert set(pre["dist"]) == set(profiler.DISTS) == set(dec["dist"])
    # Sanity, loosely: the batches with the most attention work are slower than those
    # with the least.
    work = [int((q * kv).sum()) for q, kv in zip(pre["q_lens"], pre["kv_lens"], strict=True)]
    lat = pre["latency_s"].to_numpy()[np.argsort(work)]
    assert np.median(lat[-3:]) > np.median(lat[:3])


def test_same_seed_same_shapes(tmp_path: Path, moe_tables: Path) -> None:
    run_profile(TINY_MOE, out_dir=tmp_path, ep=2, quick=True, device="cpu", seed=3,
                ops="attention_decode,moe_experts", repeats=1, warmup=0)
    for name in ("attention_decode.csv", "moe_experts.csv"):
        a, b = read_table(moe_tables / name), read_table(tmp_path / name)
        cols = [c for c in a.columns if c not in ("latency_s", "std_s", "repeats", "source")]
        for col in cols:
            for x, y in zip(a[col], b[col], strict=True):
                assert np.array_equal(x, y), col


def test_moe_rows(moe_tables: Path) -> None:
    df = read_table(moe_tables / "moe_experts.csv")
    assert set(df["routing"]) == set(profiler.ROUTINGS)
    assert set(df["num_tokens"]) == set(GRIDS["quick"].moe_tokens)
    assert (df["ep_size"] == 2).all() and (df["tp_size"] == 1).all()
    assert (df["num_experts"] == 16).all() and (df["top_k"] == 4).all()
    assert (df["hidden_size"] == 256).all() and (df["inter_size"] == 128).all()
    for _, r in df.iterrows():
        tpe = r["tokens_per_expert"]
        assert len(tpe) == r["num_local_experts"] == 8
        assignments = r["num_tokens"] * r["top_k"]
        assert tpe.max() <= r["num_tokens"]
        assert assignments / 2 <= tpe.sum() <= assignments
        if r["routing"] == "balanced":
            assert tpe.max() - tpe.min() <= 1


def test_moe_tp_splits_the_expert_width(tmp_path: Path) -> None:
    (p,) = run_profile(TINY_MOE, out_dir=tmp_path, tp=4, quick=True, device="cpu",
                       ops=["moe_experts"], repeats=1, warmup=0)
    df = read_table(p)
    # the table holds the expert's full width and the split; the call reads 1/4 of it
    assert (df["tp_size"] == 4).all() and (df["inter_size"] == 128).all()
    assert (df["ep_size"] == 1).all() and (df["num_local_experts"] == 16).all()
    assert df["gated"].all()
    call = row_to_call(df.iloc[0].to_dict())
    assert call.extra["inter_size_local"] == 32 and call.extra["gated"]


def test_device_name_overrides_the_device_column(tmp_path: Path) -> None:
    (p,) = run_profile(TINY_MOE, out_dir=tmp_path, quick=True, device="cpu", ops="gemm",
                       device_name="h100-sxm", dtype="fp16", repeats=1, warmup=0)
    df = read_table(p)
    assert set(df["device"]) == {"h100-sxm"} and set(df["dtype"]) == {"fp16"}


# ---- errors ------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="--device cuda.*--device cpu"):
        run_profile(TINY_MOE, out_dir=tmp_path, quick=True, device="cuda")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs, match", [
    ({"ops": "gemm,flash"}, "--ops names 'flash'"),
    ({"ops": " , "}, "--ops is empty"),
    ({"tp": 0}, "--tp is 0"),
    ({"ep": 3}, "--ep 3 does not divide"),
    ({"repeats": 0}, "--repeats is 0"),
    ({"batches": 0}, "--batches is 0"),
    ({"dtype": "fp8"}, "--dtype 'fp8'"),
    ({"device": "tpu"}, "--device 'tpu'"),
])
def test_bad_flags_are_profile_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        run_profile(TINY_MOE, out_dir=tmp_path, quick=True, **{"device": "cpu"} | kwargs)


def test_moe_ops_for_a_dense_model(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="has no experts"):
        run_profile(LLAMA, out_dir=tmp_path, ops="moe_experts", device="cpu")


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ProfileError, match="not a folder"):
        run_profile(TINY_MOE, out_dir=f, quick=True, device="cpu")


def test_out_must_be_new_empty_or_earlier_profile_tables(tmp_path: Path) -> None:
    from frontier_core import ConfigError, outdir

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="Frontier did not write: notes.txt.*-o/--out"):
        run_profile(TINY_MOE, out_dir=tmp_path, quick=True, device="cpu", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    out = tmp_path / "p"
    for ops in ("gemm", "attention_decode"):  # the second profile replaces the first
        run_profile(TINY_MOE, out_dir=out, quick=True, device="cpu", ops=ops, repeats=1,
                    warmup=0)
    assert sorted(p.name for p in out.iterdir()) == [outdir.MARKER, "attention_decode.csv"]
    assert outdir.read_marker(out).kind == "profile"


def test_missing_torch_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(ProfileError, match=r"`pip install \S*plugins/predictors\[profile\]'?`"):
        run_profile(TINY_MOE, out_dir=tmp_path, quick=True)


# ---- the command -------------------------------------------------------------------


def _cli(*args: str) -> object:
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(profile_command)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_command_profiles_and_prints_a_summary(tmp_path: Path) -> None:
    r = _cli("--model", "llama-3.1-8b", "--tp", "8", "--ops", "gemm", "--quick",
             "--device", "cpu", "--repeats", "1", "--warmup", "0", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "gemm" in r.output and str(tmp_path / "gemm.csv") in r.output
    assert len(read_table(tmp_path / "gemm.csv")) == len(gemm_shapes(LLAMA, 8)) * len(GRIDS["quick"].gemm_m)


def test_command_unknown_model_lists_the_catalog(tmp_path: Path) -> None:
    from frontier_core import PluginError

    r = _cli("--model", "llama-9", "-o", str(tmp_path))
    assert isinstance(r.exception, PluginError)
    assert "llama-3.1-8b" in str(r.exception) and "--model" in str(r.exception)


def test_shapes_of_models_with_several_attention_kinds() -> None:
    """The profiler asks the attention module: a hybrid model's softmax layers (Qwen3.5's
    gated GQA, whose query projection carries the gate), sparse MLA's absorbed prefill,
    and the linear layers' projections among the GEMMs."""
    from frontier_core.builtin.models import MODELS

    by = {m.name: m for m in MODELS}
    assert profiler.attention_shape(by["qwen3.5-397b-a17b"], 8) == (4, 1, 256)
    assert profiler.attention_shape(by["glm-5"], 8) == (8, 1, 576)
    names = {n for ns in gemm_shapes(by["qwen3.5-397b-a17b"], 8).values() for n in ns}
    assert {"qkv_proj", "in_proj_qkvz", "in_proj_ba", "out_proj"} <= names
    # gated queries: 2 x 4 heads, plus K and V of one head, 256 wide
    assert "qkv_proj" in gemm_shapes(by["qwen3.5-397b-a17b"], 8)[((2 * 4 + 2) * 256, 4096)]
