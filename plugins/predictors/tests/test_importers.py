"""Importers of Vidur CSVs and AIConfigurator Parquet tables: tiny fake trees (same column
names and dtypes as the real files) for the mappings, then the real data where present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from frontier_predictors import importers
from frontier_predictors.importers import (
    aic_device,
    convert_aic,
    convert_vidur,
    import_aic,
    import_app,
    import_vidur,
    version_key,
)
from frontier_predictors.profiles import ProfileError, load_tables
from typer.testing import CliRunner

VIDUR_DATA = Path(__file__).parents[3] / ".." / "shared" / "data" / "vidur"
GPU = "NVIDIA H100 80GB HBM3"


# -- fake Vidur tree --------------------------------------------------------------------


def _stats(op: str, median_ms: list[float]) -> dict[str, list[float]]:
    return {f"time_stats.{op}.{s}": median_ms for s in ("min", "max", "mean", "median", "std")}


def _mlp(tokens: list[int], tp: list[int], heads: int, kv_heads: int, hidden: int, ffn: int,
         gated: bool, ms: float = 0.5) -> pd.DataFrame:
    n = len(tokens)
    cols: dict[str, object] = {}
    for op in ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
               "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add"):
        cols |= _stats(op, [ms] * n)
    return pd.DataFrame(cols | {
        "n_head": heads, "n_kv_head": kv_heads, "n_embd": hidden, "n_expanded_embd": ffn,
        "vocab_size": 32768, "use_gated_mlp": gated, "num_tokens": tokens,
        "num_tensor_parallel_workers": tp,
    })


def _net(op: str, workers: list[int], per_node: list[int], sizes: list[int]) -> pd.DataFrame:
    n = len(sizes)
    return pd.DataFrame({"Unnamed: 0": range(n)} | _stats(op, [0.03] * n) | {
        "rank": 0, "num_workers": workers, "size": sizes, "collective": op,
        "devices_per_node": per_node, "max_devices_per_node": 8,
    })


def _attention() -> pd.DataFrame:
    rows = [  # batch, chunk, kv_cache, is_prefill, decode ms, prefill ms
        (4, 0, 96, False, 0.02, np.nan),
        (1, 64, 32, True, np.nan, 0.05),
        (1, 128, 0, True, np.nan, np.nan),  # no measurement: left out
    ]
    df = pd.DataFrame(rows, columns=["batch_size", "prefill_chunk_size", "kv_cache_size",
                                     "is_prefill", "d", "p"])
    out = pd.DataFrame(_stats("attn_decode", df["d"].tolist())
                       | _stats("attn_prefill", df["p"].tolist()))
    return out.assign(n_embd=8192, n_q_head=64, n_kv_head=8, block_size=16,
                      num_tensor_parallel_workers=2, max_model_len=4096,
                      batch_size=df["batch_size"], prefill_chunk_size=df["prefill_chunk_size"],
                      kv_cache_size=df["kv_cache_size"], is_prefill=df["is_prefill"],
                      attention_backend="AttentionBackend.FLASH_ATTENTION")


@pytest.fixture
def vidur(tmp_path: Path) -> Path:
    root = tmp_path / "vidur"
    prof = root / "profiling"
    files = {
        "compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv":
            _mlp([4096, 4096], [1, 2], 32, 32, 4096, 11008, True, ms=0.6),
        "compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv":
            _mlp([16], [8], 64, 8, 8192, 28672, True),
        "compute/a40/microsoft/phi-2/mlp.csv": _mlp([8], [1], 32, 32, 2560, 10240, False),
        "network/a100_dgx/all_reduce.csv": _net("all_reduce", [2, 4], [1, 4], [2048, 4096]),
        "network/h100_pairwise_nvlink/send_recv.csv": _net("send_recv", [2], [2], [2048]),
        "network/h100_dgx/send_recv.csv": _net("send_recv", [2], [2], [2048]),
    }
    for rel, df in files.items():
        (prof / rel).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(prof / rel, index=False)
    legacy = root / "legacy" / "profiling" / "a100"
    legacy.mkdir(parents=True)
    _attention().to_csv(legacy / "attention.csv", index=False)
    return root


def test_vidur_gemm_shapes_units_and_devices(vidur: Path) -> None:
    imp = convert_vidur(vidur)
    g = imp.tables["gemm"]
    assert len(g) == 4 * 4  # 4 rows of mlp.csv, 4 GEMMs each
    llama = g[g["model"] == "meta-llama/Llama-2-7b-hf"].set_index(["layer", "tp_size"])
    assert set(llama["device"]) == {"h100-sxm"} and set(g["dtype"]) == {"fp16"}
    # QKV: (heads + 2 kv_heads) * head_dim / tp, over k = hidden
    assert tuple(llama.loc[("attn_pre_proj", 1), ["m", "n", "k"]]) == (4096, 12288, 4096)
    assert tuple(llama.loc[("attn_pre_proj", 2), ["n", "k"]]) == (6144, 4096)
    assert tuple(llama.loc[("attn_post_proj", 2), ["n", "k"]]) == (4096, 2048)
    assert tuple(llama.loc[("mlp_up_proj", 2), ["n", "k"]]) == (11008, 4096)  # gated: 2*11008/2
    assert tuple(llama.loc[("mlp_down_proj", 2), ["n", "k"]]) == (4096, 5504)
    assert llama["latency_s"].tolist() == pytest.approx([0.6e-3] * 8)  # ms -> s
    gqa = g[g["model"] == "meta-llama/Llama-2-70b-hf"].set_index("layer")
    assert gqa.loc["attn_pre_proj", "n"] == (64 + 2 * 8) * 128 // 8
    assert set(gqa["device"]) == {"a100-80g-sxm"}
    phi = g[g["model"] == "microsoft/phi-2"].set_index("layer")
    assert phi.loc["mlp_up_proj", "n"] == 10240 and set(phi["device"]) == {"a40"}  # not gated


def test_vidur_network_and_skipped_copy(vidur: Path) -> None:
    imp = convert_vidur(vidur)
    ar = imp.tables["all_reduce"]
    assert ar["bytes"].tolist() == [2048, 4096]  # Vidur sizes are bytes already
    assert ar["scope"].tolist() == ["inter", "intra"]  # 1 device per node for 2 workers
    assert ar["num_gpus"].tolist() == [2, 4] and ar["latency_s"].tolist() == pytest.approx([3e-5] * 2)
    sr = imp.tables["send_recv"]
    assert sr["topology"].tolist() == ["h100_dgx"]  # the pairwise-NVLink copy is left out
    assert any("h100_pairwise_nvlink/send_recv.csv" in n for n in imp.skipped)


def test_vidur_legacy_attention(vidur: Path) -> None:
    imp = convert_vidur(vidur)
    dec, pre = imp.tables["attention_decode"], imp.tables["attention_prefill"]
    assert dec["q_lens"].tolist() == ["1 1 1 1"] and dec["kv_lens"].tolist() == ["97 97 97 97"]
    assert pre["q_lens"].tolist() == ["64"] and pre["kv_lens"].tolist() == ["96"]
    assert tuple(dec.iloc[0][["num_heads", "num_kv_heads", "head_dim"]]) == (32, 4, 128)
    assert dec["latency_s"].tolist() == pytest.approx([2e-5])
    assert dec["kernel_source"].tolist() == ["flash_attention"]
    assert any("without a positive" in n for n in imp.skipped)  # the unmeasured prefill row


def test_vidur_roots_and_written_tables_validate(vidur: Path, tmp_path: Path) -> None:
    paths = import_vidur(vidur, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(
        ["gemm.parquet", "attention_prefill.parquet", "attention_decode.parquet",
         "all_reduce.parquet", "send_recv.parquet"])
    tables = load_tables([tmp_path / "out"])
    assert len(tables) == 16 + 2 + 1 + 1 + 1
    assert len(convert_vidur(vidur / "profiling").tables["gemm"]) == 16
    one = convert_vidur(vidur / "profiling" / "compute" / "h100")
    assert list(one.tables) == ["gemm"] and set(one.tables["gemm"]["device"]) == {"h100-sxm"}


def test_vidur_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        convert_vidur(tmp_path / "nowhere")
    with pytest.raises(ProfileError, match="holds no mlp.csv"):
        convert_vidur(tmp_path)
    bad = tmp_path / "compute" / "h100" / "m" / "mlp.csv"
    bad.parent.mkdir(parents=True)
    pd.DataFrame({"num_tokens": [1]}).to_csv(bad, index=False)
    with pytest.raises(ProfileError, match="lacks the columns n_head"):
        convert_vidur(tmp_path)


# -- fake AIConfigurator tree -----------------------------------------------------------


def _aic(framework: str, version: str, op_name: str, rows: list[dict]) -> pd.DataFrame:
    """A table as AIConfigurator ships it: provenance columns first, then the row fields."""
    rows = [{"op_name": op_name} | r for r in rows]
    return pd.DataFrame([{"framework": framework, "version": version, "device": GPU} | r
                         for r in rows])


def _write(root: Path, rel: str, df: pd.DataFrame) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / rel, index=False)


def _attn_row(ks: str, b: int, isl: int, step: int, kv_dtype: str = "bfloat16",
              window: int = 0, attn_dtype: str = "bfloat16", ms: float = 1.0) -> dict:
    return {"kernel_source": ks, "batch_size": b, "isl": isl, "num_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "beam_width": 1, "attn_dtype": attn_dtype,
            "kv_cache_dtype": kv_dtype, "step": step, "window_size": window, "latency": ms}


def _moe_row(dtype: str, dist: str, tokens: int = 64, ks: str = "triton") -> dict:
    return {"kernel_source": ks, "moe_dtype": dtype, "num_tokens": tokens, "hidden_size": 4096,
            "inter_size": 1536, "topk": 8, "num_experts": 128, "moe_tp_size": 2,
            "moe_ep_size": 4, "distribution": dist, "latency": 0.25}


@pytest.fixture
def aic(tmp_path: Path) -> Path:
    root = tmp_path / "systems" / "data"
    gemm = [
        {"kernel_source": "torch.nn.functional.linear", "gemm_dtype": "bfloat16", "m": 8,
         "n": 4096, "k": 4096, "latency": 0.02},
        {"kernel_source": "CutlassFP8ScaledMMLinearKernel", "gemm_dtype": "fp8", "m": 8,
         "n": 4096, "k": 4096, "latency": 0.015},
        {"kernel_source": "DeepGemmFp8BlockScaledMMKernel", "gemm_dtype": "fp8_block", "m": 8,
         "n": 4096, "k": 4096, "latency": 0.01},
    ]
    _write(root, "h100_sxm/gemm/vllm/0.24.0/gemm_perf.parquet", _aic("VLLM", "0.24.0", "gemm", gemm))
    scale = [{"kernel_source": "dynamic_minus_static", "m": 8, "k": 4096, "quant_dtype": "fp8",
              "latency": 0.004}]
    _write(root, "h100_sxm/quantize/vllm/0.24.0/computescale_perf.parquet",
           _aic("VLLM", "0.24.0", "compute_scale", scale))
    (root.parent / "h100_sxm.yaml").write_text(
        "gpu:\n  mem_bw: 3350000000000\n  fp8_tc_flops: 1979000000000000\n")
    old = [dict(gemm[0], m=1)]  # an older version: must lose to 0.24.0 (0.9 < 0.24 numerically)
    _write(root, "h100_sxm/gemm/vllm/0.9.0/gemm_perf.parquet", _aic("VLLM", "0.9.0", "gemm", old))
    ctx = [_attn_row("vllm_flash_attn_fa3", 2, 512, 0, ms=0.5),
           _attn_row("vllm_flash_attn_fa3", 2, 512, 0, kv_dtype="fp8", ms=0.4),
           _attn_row("vllm_flash_attn_fa3", 2, 512, 0, window=128),
           _attn_row("vllm_flash_attn_fa4", 2, 512, 0, ms=0.9),  # same shape: fa3 has more rows
           _attn_row("vllm_flash_attn_fa4", 1, 1024, 0, ms=0.7)]  # a shape only fa4 measured
    gen = [_attn_row("vllm_flash_attn_fa3", 3, 1, 1023, ms=0.05),
           _attn_row("vllm_flash_attn_fa3", 3, 1, 1023, window=1024)]
    _write(root, "h100_sxm/attention/vllm/0.24.0/context_attention_perf.parquet",
           _aic("VLLM", "0.24.0", "context_attention", ctx))
    _write(root, "h100_sxm/attention/vllm/0.24.0/generation_attention_perf.parquet",
           _aic("VLLM", "0.24.0", "generation_attention", gen))
    mla = [{"kernel_source": "default", "mla_dtype": "bfloat16", "kv_cache_dtype": kv,
            "num_heads": 16, "batch_size": 4, "isl": 1, "tp_size": 8, "step": 2047,
            "latency": 0.03} for kv in ("bfloat16", "fp8")]
    _write(root, "h100_sxm/mla/vllm/0.24.0/generation_mla_perf.parquet",
           _aic("VLLM", "0.24.0", "mla_generation", mla))
    _write(root, "h100_sxm/mla/vllm/0.24.0/context_mla_perf.parquet",
           _aic("VLLM", "0.24.0", "mla_context", [dict(mla[0], isl=1024, step=0)]))
    moe = [_moe_row("bfloat16", "balanced"), _moe_row("bfloat16", "power_law_1.01"),
           _moe_row("fp8", "power_law_1.2"), _moe_row("fp8_block", "balanced"),
           _moe_row("int4_wo", "balanced")]
    _write(root, "h100_sxm/moe/vllm/0.24.0/moe_perf.parquet", _aic("VLLM", "0.24.0", "moe", moe))
    ar = [{"kernel_source": f"vLLM_custom_{mode}", "allreduce_dtype": "bfloat16", "num_gpus": 2,
           "message_size": size, "latency": 0.01, "backend": f"vllm_{mode}"}
          for size in (128, 1024) for mode in ("graph", "eager")]
    _write(root, "h100_sxm/comm/vllm/0.24.0/custom_allreduce_perf.parquet",
           _aic("vLLM", "0.24.0", "all_reduce", ar))
    nccl = [{"kernel_source": "NCCL", "nccl_dtype": dt, "num_gpus": 2, "message_size": size,
             "latency": 0.02, "op_name": op}
            for op in ("all_reduce", "alltoall", "all_gather") for dt in ("half", "int8")
            for size in (512, 4096)]
    for v in ("2.27.3", "2.29.2"):
        _write(root, f"h100_sxm/comm/nccl/{v}/nccl_perf.parquet", _aic("TRTLLM", v, "", nccl))
    (root / "a100_pcie").mkdir()
    (root / "a100_pcie" / ".gitkeep").touch()
    return root


def test_aic_units_dtypes_and_devices(aic: Path) -> None:
    imp = convert_aic("h100_sxm", "vllm", data_root=aic)
    g = imp.tables["gemm"]
    # per-tensor and block-scaled fp8 stay apart; newest version: 0.24.0
    assert g["dtype"].tolist() == ["bf16", "fp8", "fp8_block"] and g["m"].tolist() == [8] * 3
    # ms -> s; per-tensor fp8 without the dynamic scale's 4 µs (static activation scales)
    assert g["latency_s"].tolist() == pytest.approx([2e-5, 1.1e-5, 1e-5])
    assert set(g["device"]) == {"h100-sxm"} and set(g["framework_version"]) == {"0.24.0"}
    assert set(g["source_table"]) == {"h100_sxm/gemm/vllm/0.24.0/gemm_perf.parquet"}
    assert g["kernel_source"].tolist()[2] == "DeepGemmFp8BlockScaledMMKernel"
    ar = imp.tables["all_reduce"]
    # custom all-reduce: CUDA-graph rows, bf16 elements -> bytes; NCCL only beyond its sizes
    custom = ar[ar["framework"] == "vllm"]
    assert custom["bytes"].tolist() == [256, 2048]
    assert set(custom["kernel_source"]) == {"vLLM_custom_graph"}
    nccl = ar[ar["framework"] == "nccl"]
    assert nccl["bytes"].tolist() == [8192] and set(nccl["framework_version"]) == {"2.29.2"}
    a2a = imp.tables["all_to_all"]
    assert a2a["bytes"].tolist() == [1024, 8192] and set(a2a["dtype"]) == {"fp16"}  # half: x2
    assert set(a2a["scope"]) == {"intra"}
    assert any("int8" in n for n in imp.skipped) and any("all_gather" in n for n in imp.skipped)


def test_aic_per_tensor_fp8_is_priced_with_static_scales(aic: Path) -> None:
    """The collectors time per-tensor fp8 with a scale computed per call; a checkpoint's
    calibrated scales skip it. Never faster than the GEMM's roofline; without the
    compute-scale table the rows are left to the next predictor."""
    gemm_path = aic / "h100_sxm/gemm/vllm/0.24.0/gemm_perf.parquet"
    df = pd.read_parquet(gemm_path)
    big = dict(df.iloc[1], m=8, n=16384, k=4096, latency=0.025)  # 67 MB: >= 20 µs at 3.35 TB/s
    pd.concat([df, pd.DataFrame([big])]).to_parquet(gemm_path, index=False)
    scale_path = aic / "h100_sxm/quantize/vllm/0.24.0/computescale_perf.parquet"
    sc = pd.read_parquet(scale_path)
    sc.loc[0, "latency"] = 0.0125  # would leave 2.5 µs for the small GEMM, 12.5 for the big
    sc.to_parquet(scale_path, index=False)
    g = convert_aic("h100_sxm", "vllm", data_root=aic).tables["gemm"]
    fp8 = g[g["dtype"] == "fp8"].set_index("n")["latency_s"]
    small_sol = (8 * 4096 + 4096 * 4096 + 2 * 8 * 4096) / 3.35e12
    big_sol = (8 * 4096 + 16384 * 4096 + 2 * 8 * 16384) / 3.35e12
    assert fp8[4096] == pytest.approx(small_sol) and fp8[16384] == pytest.approx(big_sol)
    scale_path.unlink()
    imp = convert_aic("h100_sxm", "vllm", data_root=aic)
    assert "fp8" not in set(imp.tables["gemm"]["dtype"])
    assert any("per-tensor fp8 rows dropped" in n for n in imp.skipped)


def test_aic_attention_lengths(aic: Path) -> None:
    imp = convert_aic("h100_sxm", data_root=aic)
    pre = imp.tables["attention_prefill"]
    pre = pre[pre["head_dim"] == 128].set_index(["dtype", "batch_size"])  # not MLA's
    assert pre.loc[("bf16", 2), "q_lens"] == "512 512" == pre.loc[("bf16", 2), "kv_lens"]
    assert pre.loc[("bf16", 2), "kernel_source"] == "vllm_flash_attn_fa3"
    assert pre.loc[("bf16", 2), "latency_s"] == pytest.approx(5e-4)
    assert pre.loc[("fp8", 2), "latency_s"] == pytest.approx(4e-4)  # dtype: the KV cache's
    assert pre.loc[("bf16", 1), "kernel_source"] == "vllm_flash_attn_fa4"  # gap filled
    assert len(pre) == 3
    dec = imp.tables["attention_decode"]
    dec = dec[dec["head_dim"] == 128]
    assert dec["q_lens"].tolist() == ["1 1 1"] and dec["kv_lens"].tolist() == ["1023 1023 1023"]
    assert tuple(dec.iloc[0][["num_heads", "num_kv_heads", "head_dim"]]) == (32, 8, 128)
    assert any("sliding-window" in n for n in imp.skipped)


def test_aic_mla_rows_are_filed_as_the_execution_model_prices_mla(aic: Path) -> None:
    """Decode runs absorbed: one KV head of the 576-wide latent per token; prefill
    decompresses per-head keys and values of head dim 192. Heads are per GPU."""
    imp = convert_aic("h100_sxm", data_root=aic)
    dec = imp.tables["attention_decode"]
    mla = dec[dec["head_dim"] == 576]
    assert sorted(mla["dtype"]) == ["bf16", "fp8"]
    assert set(mla["num_heads"]) == {16} and set(mla["num_kv_heads"]) == {1}
    assert set(mla["kv_lens"]) == {"2047 2047 2047 2047"} and set(mla["q_lens"]) == {"1 1 1 1"}
    pre = imp.tables["attention_prefill"]
    mla = pre[pre["head_dim"] == 192]
    assert len(mla) == 1 and mla.iloc[0]["num_kv_heads"] == 16
    assert mla.iloc[0]["q_lens"] == mla.iloc[0]["kv_lens"] == " ".join(["1024"] * 4)


def test_aic_moe_routing_and_sizes(aic: Path) -> None:
    moe = convert_aic("h100_sxm", data_root=aic).tables["moe_experts"]
    assert moe["routing"].tolist() == ["balanced", "power_law:1.01", "power_law:1.2", "balanced",
                                       "balanced"]
    assert moe["dtype"].tolist() == ["bf16", "bf16", "fp8", "fp8_block", "int4"]  # int4_wo
    row = moe.iloc[0]
    assert (row["inter_size"], row["tp_size"], row["ep_size"], row["top_k"]) == (1536, 2, 4, 8)


def test_aic_moe_gating_comes_from_trtllm_kernel_names(aic: Path) -> None:
    moe = convert_aic("h100_sxm", data_root=aic).tables["moe_experts"]
    assert moe["gated"].all()  # no table says otherwise
    # a TensorRT-LLM table of another system times this shape with a non-gated kernel
    nongated = [dict(_moe_row("bfloat16", "balanced"), kernel_source="moe_torch_flow_nongated")]
    _write(aic, "b200_sxm/moe/trtllm/1.3.0/moe_perf.parquet",
           _aic("TRTLLM", "1.3.0", "moe", nongated))
    moe = convert_aic("h100_sxm", data_root=aic).tables["moe_experts"]
    assert not moe["gated"].any()
    other = [dict(_moe_row("bfloat16", "balanced"), kernel_source="moe_torch_flow_nongated",
                  hidden_size=2688, inter_size=1856)]
    _write(aic, "b200_sxm/moe/trtllm/1.3.0/moe_perf.parquet", _aic("TRTLLM", "1.3.0", "moe", other))
    assert convert_aic("h100_sxm", data_root=aic).tables["moe_experts"]["gated"].all()


def test_aic_written_tables_validate(aic: Path, tmp_path: Path) -> None:
    paths = import_aic("h100_sxm", "vllm", out_dir=tmp_path / "out", data_root=aic)
    assert {p.stem for p in paths} == {"gemm", "attention_prefill", "attention_decode",
                                       "moe_experts", "all_reduce", "all_to_all"}
    tables = load_tables([tmp_path / "out"])
    assert set(tables["device"]) == {"h100-sxm"}
    assert (tables["latency_s"] > 0).all()


def test_aic_version_choice_and_reuse(aic: Path, tmp_path: Path) -> None:
    old = convert_aic("h100_sxm", version="0.9.0", data_root=aic)
    assert old.tables["gemm"]["m"].tolist() == [1] and "moe_experts" not in old.tables
    (aic / "h100_sxm/attention/vllm/0.22.0").mkdir()
    (aic / "h100_sxm/attention/vllm/0.22.0/reuse.yaml").write_text(
        "reuse:\n- table: generation_attention_perf\n  from_version: 0.24.0\n")
    imp = convert_aic("h100_sxm", version="0.22.0", data_root=aic)
    assert "attention_decode" in imp.tables and "gemm" not in imp.tables
    assert set(imp.tables["attention_decode"]["framework_version"]) == {"0.24.0"}
    # AIConfigurator's current version (systems/query_versions.yaml) wins over newer ones
    (aic.parent / "query_versions.yaml").write_text(
        "defaults:\n  vllm: {current: '0.10.0'}\n")
    assert convert_aic("h100_sxm", data_root=aic).tables["gemm"]["m"].tolist() == [1]


def test_version_key_orders_numerically() -> None:
    versions = ["0.5.10", "0.1.dev19262", "1.3.0rc23", "0.5.6.post2", "1.3.0", "0.24.0",
                "1.3.0rc20", "0.9.0", "2.27", "2.27.3", "0.5.6"]
    assert sorted(versions, key=version_key) == [
        "0.1.dev19262", "0.5.6", "0.5.6.post2", "0.5.10", "0.9.0", "0.24.0", "1.3.0rc20",
        "1.3.0rc23", "1.3.0", "2.27", "2.27.3"]
    assert version_key("2.0") == version_key("2")
    assert version_key("latest") < version_key("0.0.1")


def test_aic_device_names() -> None:
    assert [aic_device(s) for s in ("h100_sxm", "h200_sxm", "b200_sxm", "a100_sxm")] == [
        "h100-sxm", "h200", "b200", "a100-80g-sxm"]
    assert aic_device("rtx_pro_6000_server") == "rtx-pro-6000"  # found by its alias
    assert aic_device("b60") == "b60"  # a system no catalog entry names


def test_aic_errors(aic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProfileError, match="Systems with data: h100_sxm\\."):
        convert_aic("h999", data_root=aic)
    with pytest.raises(ProfileError, match="system 'a100_pcie'"):  # a folder without tables
        convert_aic("a100_pcie", data_root=aic)
    with pytest.raises(ProfileError, match="Backends measured there: vllm"):
        convert_aic("h100_sxm", "trtllm", data_root=aic)
    with pytest.raises(ProfileError, match="Versions measured there: 0.9.0, 0.24.0"):
        convert_aic("h100_sxm", version="7.0", data_root=aic)
    with pytest.raises(ProfileError, match="does not exist"):
        convert_aic("h100_sxm", data_root=aic / "missing")
    bad = pd.read_parquet(aic / "h100_sxm/moe/vllm/0.24.0/moe_perf.parquet").drop(columns="topk")
    bad.to_parquet(aic / "h100_sxm/moe/vllm/0.24.0/moe_perf.parquet", index=False)
    with pytest.raises(ProfileError, match="lacks the columns topk"):
        convert_aic("h100_sxm", data_root=aic)
    monkeypatch.setattr(importers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ProfileError, match=r"`pip install \S*plugins/predictors\[aic\]'?`"):
        convert_aic("h100_sxm")


def test_cli_commands(vidur: Path, aic: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(import_app, ["vidur", str(vidur), "-o", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    assert "gemm" in res.output and "skipped" in res.output
    assert (tmp_path / "v" / "gemm.parquet").is_file()
    res = runner.invoke(import_app, ["aic", "--system", "h100_sxm", "--backend", "vllm",
                                     "--data-root", str(aic), "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "moe_experts" in res.output and (tmp_path / "a" / "moe_experts.parquet").is_file()
    res = runner.invoke(import_app, ["aic", "--system", "nope", "--data-root", str(aic),
                                     "-o", str(tmp_path / "b")])
    assert isinstance(res.exception, ProfileError)


# -- the real data ----------------------------------------------------------------------


@pytest.mark.skipif(not (VIDUR_DATA / "profiling").is_dir(), reason="no Vidur data checkout")
def test_real_vidur_data(tmp_path: Path) -> None:
    imp = convert_vidur(VIDUR_DATA)
    rows = {op: len(df) for op, df in imp.tables.items()}
    assert rows == {"gemm": 80364, "attention_prefill": 4418, "attention_decode": 10240,
                    "all_reduce": 16424, "send_recv": 7952}
    g = imp.tables["gemm"]
    qkv = g[(g["device"] == "h100-sxm") & (g["model"] == "meta-llama/Llama-2-7b-hf")
            & (g["layer"] == "attn_pre_proj") & (g["m"] == 4096) & (g["tp_size"] == 1)]
    assert len(qkv) and set(qkv["n"]) == {12288}
    # 2·4096·12288·4096 FLOP at a few hundred TFLOP/s: about 0.6 ms
    assert ((qkv["latency_s"] > 0.3e-3) & (qkv["latency_s"] < 2e-3)).all()
    paths = imp.write(tmp_path)
    assert len(load_tables(paths)) == sum(rows.values())


def test_real_aic_h100_vllm(tmp_path: Path) -> None:
    pytest.importorskip("aiconfigurator_core")
    imp = convert_aic("h100_sxm", "vllm")
    paths = imp.write(tmp_path)  # validates every table before writing it
    assert {p.stem for p in paths} == set(imp.tables)
    rows = {op: len(df) for op, df in imp.tables.items()}
    for op in ("gemm", "attention_prefill", "attention_decode", "moe_experts"):
        assert rows[op] > 1000
    assert rows["all_reduce"] > 10 and rows["all_to_all"] > 10  # 2/4/8 GPUs × ~20 sizes
    assert all(set(df["device"]) == {"h100-sxm"} for df in imp.tables.values())
    moe = imp.tables["moe_experts"]
    gated = moe.groupby(["hidden_size", "inter_size", "num_experts", "top_k"])["gated"].all()
    assert not gated[(2688, 1856, 128, 6)] and gated[(4096, 1536, 128, 8)]
