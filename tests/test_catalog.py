"""Model and GPU catalogs: published sizes, HF config.json loading, KV sizing."""

from __future__ import annotations

import json

import pytest

from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.catalog import model_from_hf_config
from frontier_core.errors import ConfigError

# Published parameter counts (model cards / papers), in billions.
PUBLISHED = {
    "llama-2-7b": 6.74,
    "llama-3.1-8b": 8.03,
    "llama-3.1-70b": 70.6,
    "qwen2-7b": 7.62,
    "qwen3-32b": 32.8,
    "mixtral-8x7b": 46.7,
    "mixtral-8x22b": 140.6,
    "llama-3.2-1b": 1.24,  # meta-llama/Llama-3.2-1B: 1.23B (1,235,814,400)  # mistral.ai: 141B total, 39B active
    "qwen3-30b-a3b": 30.5,
    "deepseek-v3": 671.0,  # main model; the 14B MTP module is not part of serving
    "qwen3-235b-a22b": 235.0,  # Qwen3 technical report: 235B total, 22B activated
    "qwen3-235b-a22b-fp8": 235.0,
    "minimax-m2.5": 230.0,  # model card: 230B total, 10B active (without embeddings)
    "kimi-k2.5": 1030.0,  # Hugging Face: 1.03T parameters (Kimi K2's text model)
    "gpt-oss-120b": 116.83,  # gpt-oss model card: 116.83B total
    "gpt-oss-20b": 20.91,  # 20.91B
    # OPT: the checkpoints' exact counts (12,853,473,280 and 65,719,701,504 with the
    # learned positions and every bias); the OPT paper rounds them to 13B and 66B.
    "opt-13b": 12.85,
    "opt-66b": 65.72,
}
ACTIVE = {"mixtral-8x7b": 12.9, "mixtral-8x22b": 39.1, "qwen3-30b-a3b": 3.3, "deepseek-v3": 37.0,
          "qwen3-235b-a22b": 22.0}


@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_parameter_counts_match_published(m):
    assert m.param_count() / 1e9 == pytest.approx(PUBLISHED[m.name], rel=0.01)
    if m.name in ACTIVE:
        assert m.active_param_count() / 1e9 == pytest.approx(ACTIVE[m.name], rel=0.02)


def test_weight_bytes_follow_dtype():
    ds = next(m for m in MODELS if m.name == "deepseek-v3")
    assert ds.weight_bytes() == ds.param_count()  # fp8
    l8 = next(m for m in MODELS if m.name == "llama-3.1-8b")
    assert l8.weight_bytes() == 2 * l8.param_count()


def test_kv_bytes_per_token():
    by = {m.name: m for m in MODELS}
    # 2 (K,V) x 32 layers x 8 KV heads x 128 x 2 bytes
    assert by["llama-3.1-8b"].kv_bytes_per_token() == 131072
    assert by["llama-3.1-8b"].kv_bytes_per_token(tp=2) == 65536
    assert by["llama-3.1-8b"].kv_bytes_per_token(tp=16) == 131072 / 8  # heads replicate
    # MLA: (512 latent + 64 rope) x 61 layers x 2 bytes, not split by TP
    assert by["deepseek-v3"].kv_bytes_per_token(tp=8) == 576 * 61 * 2


LLAMA31_8B_HF = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
DEEPSEEK_V3_HF = {
    "model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "num_attention_heads": 128, "num_key_value_heads": 128,
    "num_hidden_layers": 61, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "first_k_dense_replace": 3, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False,
}


@pytest.mark.parametrize("cfg,name", [(LLAMA31_8B_HF, "llama-3.1-8b"), (DEEPSEEK_V3_HF, "deepseek-v3")])
def test_hf_config_matches_catalog(tmp_path, cfg, name):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = model_from_hf_config(tmp_path, name="x")
    ref = next(x for x in MODELS if x.name == name)
    assert m.param_count() == ref.param_count()
    assert m.kv_bytes_per_token() == ref.kv_bytes_per_token()


def test_hf_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        model_from_hf_config(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        model_from_hf_config(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text(json.dumps({"hidden_size": 10}))
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        model_from_hf_config(tmp_path / "partial.json")


def test_hardware_catalog_has_required_kinds():
    names = {h.name for h in HARDWARE}
    assert {"a100-80g-sxm", "a800", "h100-sxm", "h800", "h200", "b200"} <= names
    by = {h.name: h for h in HARDWARE}
    assert by["h100-sxm"].mem_bw == pytest.approx(3.35e12)
    assert by["h200"].mem_bytes == pytest.approx(141e9)
    assert by["h800"].nvlink_bw < by["h100-sxm"].nvlink_bw  # export variant
    for h in HARDWARE:
        assert h.peak_flops("bf16") > 1e14


def test_blackwell_ultra_and_nvl72_entries_carry_their_datasheet_figures():
    by = {h.name: h for h in HARDWARE}
    b300, gb200, gb300 = by["b300"], by["gb200"], by["gb300"]
    assert b300.peak_flops("fp4") == pytest.approx(14e15)
    assert b300.peak_flops("bf16") == pytest.approx(2.25e15)
    assert gb300.peak_flops("fp4") == pytest.approx(15e15)
    assert gb200.peak_flops("fp8") == pytest.approx(5e15)
    assert b300.mem_bytes == pytest.approx(288.4e9) and gb300.mem_bw == pytest.approx(8e12)
    assert (b300.nvlink_gpus, gb200.nvlink_gpus, gb300.nvlink_gpus) == (8, 72, 72)
    assert by["h100-sxm"].nvlink_gpus == by["h100-sxm"].gpus_per_node == 8


def test_gpu_names_find_a_gpu_by_any_of_its_names():
    from frontier_core.catalog import HardwareSpec, gpu_names

    mine = HardwareSpec(name="mi999x", flops={"bf16": 1e15}, mem_bytes=1e11, mem_bw=5e12,
                        nvlink_bw=4e11, scaleout_bw=5e10, aliases=("MI999X_OAM",))
    names = gpu_names([*HARDWARE, mine])
    assert names["b300_sxm"] == "b300" and names["h200_sxm"] == "h200"
    assert names["gb200"] == "gb200" and names["mi999x_oam"] == "mi999x"


def test_four_bit_weights_count_their_block_scales():
    """nvfp4: 4-bit values plus one 1-byte scale per 16 (0.5625 B per weight); mxfp4: one
    per 32 (0.53125 B). Both compute on fp4 tensor cores where the GPU has them."""
    from frontier_core.catalog import DTYPE_BYTES, gemm_dtype

    ds = {m.name: m for m in MODELS}["deepseek-v3"]
    n = ds.param_count()
    assert ds.model_copy(update={"weight_dtype": "nvfp4"}).weight_bytes() == pytest.approx(
        n * 0.5625)
    assert DTYPE_BYTES["mxfp4"] == 0.53125
    by = {h.name: h for h in HARDWARE}
    assert by["b200"].peak_flops("nvfp4") == by["b200"].flops["fp4"]
    assert by["gb300"].peak_flops("mxfp4") == pytest.approx(15e15)
    assert by["h100-sxm"].peak_flops("mxfp4") == by["h100-sxm"].flops["bf16"]  # dequantised
    assert gemm_dtype("nvfp4") == "nvfp4"


def test_a_sliding_window_models_kv_grows_only_with_its_full_layers():
    """gpt-oss: half the layers attend to the last 128 tokens; per token of context, only
    the 18 full layers' keys and values accumulate."""
    g = {m.name: m for m in MODELS}["gpt-oss-120b"]
    assert g.kv_bytes_per_token() == 2 * 18 * 8 * 64 * 2
    assert g.kv_bytes_per_token(tp=8) == 2 * 18 * 1 * 64 * 2
    with pytest.raises(ValueError, match="sliding-window"):
        type(g)(**{**g.model_dump(), "window_layers": 36})  # no full-attention layer left
