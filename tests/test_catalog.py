"""Model and GPU catalogs: published sizes, HF config.json loading, KV sizing."""

from __future__ import annotations

import json

import pytest

from frontier_core.builtin.hardware import HARDWARE
from frontier_core.builtin.models import MODELS
from frontier_core.errors import ConfigError
from frontier_core.model.catalog import model_from_hf_config
from frontier_core.model.dtypes import DTYPE_BYTES

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
    # Qwen3.5 model card: 397B total, 17B activated (its vision tower included, which
    # the spec leaves out); Qwen3-Next model card: 80B total, 3B activated.
    "qwen3.5-397b-a17b": 397.0,
    "qwen3.5-397b-a17b-fp8": 397.0,
    "qwen3-next-80b-a3b": 80.0,
    "nemotron-h-56b": 56.0,  # Nemotron-H paper (arXiv 2504.03624): 56B
    # GLM-5 release: 744B parameters (40B active); DeepSeek-V3.2: 671B (685B with MTP).
    "glm-5": 744.0,
    "glm-5-fp8": 744.0,
    "deepseek-v3.2": 671.0,
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


# The public configs' fields (Qwen/Qwen3-Next-80B-A3B-Instruct, Qwen/Qwen3.5-397B-A17B-FP8
# with its text_config, openai/gpt-oss-120b, moonshotai/Kimi-K2-Instruct), the fields
# Frontier reads and the quantization_config that sets the weight format.
QWEN3_NEXT_HF = {
    "model_type": "qwen3_next", "hidden_size": 2048, "intermediate_size": 5120,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "num_hidden_layers": 48, "full_attention_interval": 4, "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_value_head_dim": 128, "num_experts": 512, "num_experts_per_tok": 10,
    "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
    "vocab_size": 151936, "max_position_embeddings": 262144, "tie_word_embeddings": False,
}
QWEN35_HF = {
    "model_type": "qwen3_5_moe",
    "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    "text_config": {
        "model_type": "qwen3_5_moe_text", "hidden_size": 4096, "num_attention_heads": 32,
        "num_key_value_heads": 2, "head_dim": 256, "num_hidden_layers": 60,
        "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 15,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
        "linear_num_value_heads": 64, "linear_value_head_dim": 128, "num_experts": 512,
        "num_experts_per_tok": 10, "moe_intermediate_size": 1024,
        "shared_expert_intermediate_size": 1024, "vocab_size": 248320,
        "max_position_embeddings": 262144, "tie_word_embeddings": False,
    },
}
GPT_OSS_HF = {
    "model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "head_dim": 64,
    "num_attention_heads": 64, "num_key_value_heads": 8, "num_hidden_layers": 36,
    "layer_types": ["sliding_attention", "full_attention"] * 18, "sliding_window": 128,
    "num_local_experts": 128, "num_experts_per_tok": 4, "attention_bias": True,
    "vocab_size": 201088, "max_position_embeddings": 131072, "tie_word_embeddings": False,
    "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
        "lm_head"]},
}
KIMI_K2_HF = {
    **DEEPSEEK_V3_HF, "num_attention_heads": 64, "num_key_value_heads": 64,
    "n_routed_experts": 384, "first_k_dense_replace": 1, "vocab_size": 163840,
    "max_position_embeddings": 262144,
    "quantization_config": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}},
        "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                   "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]},
}

GLM5_HF = {
    "model_type": "glm_moe_dsa", "hidden_size": 6144, "intermediate_size": 12288,
    "moe_intermediate_size": 2048, "num_attention_heads": 64, "num_key_value_heads": 64,
    "num_hidden_layers": 78, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "first_k_dense_replace": 3, "q_lora_rank": 2048,
    "kv_lora_rank": 512, "qk_nope_head_dim": 192, "qk_rope_head_dim": 64, "v_head_dim": 256,
    "index_topk": 2048, "index_n_heads": 32, "index_head_dim": 128, "vocab_size": 154880,
    "topk_method": "noaux_tc",
    "max_position_embeddings": 202752, "tie_word_embeddings": False,
}

MINIMAX_M2_HF = {
    "model_type": "minimax_m2", "hidden_size": 3072, "intermediate_size": 1536, "head_dim": 128,
    "num_attention_heads": 48, "num_key_value_heads": 8, "num_hidden_layers": 62,
    "num_local_experts": 256, "num_experts_per_tok": 8, "use_qk_norm": True,
    "use_routing_bias": True, "vocab_size": 200064, "max_position_embeddings": 196608,
    "tie_word_embeddings": False,
    "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128],
                            "modules_to_not_convert": ["gate", "e_score_correction_bias",
                                                       "lm_head"]},
}

NEMOTRON_H_HF = {
    "model_type": "nemotron_h", "hidden_size": 8192, "intermediate_size": 32768,
    "num_attention_heads": 64, "num_key_value_heads": 8, "attention_head_dim": 128,
    "num_hidden_layers": 118, "vocab_size": 131072, "max_position_embeddings": 8192,
    "tie_word_embeddings": False, "mlp_hidden_act": "relu2",
    # 54 Mamba-2 and 54 MLP blocks around 10 attention blocks
    "hybrid_override_pattern": "M-" * 27 + "*" * 10 + "M-" * 27,
    "mamba_num_heads": 256, "mamba_head_dim": 64, "ssm_state_size": 256, "n_groups": 8,
    "conv_kernel": 4, "chunk_size": 128,
}


@pytest.mark.parametrize("cfg,name", [
    (LLAMA31_8B_HF, "llama-3.1-8b"), (DEEPSEEK_V3_HF, "deepseek-v3"),
    (QWEN3_NEXT_HF, "qwen3-next-80b-a3b"), (QWEN35_HF, "qwen3.5-397b-a17b-fp8"),
    (GPT_OSS_HF, "gpt-oss-120b"), (KIMI_K2_HF, "kimi-k2.5"), (GLM5_HF, "glm-5"),
    (MINIMAX_M2_HF, "minimax-m2.5"), (NEMOTRON_H_HF, "nemotron-h-56b"),
    ({**DEEPSEEK_V3_HF, "model_type": "deepseek_v32", "index_topk": 2048, "index_n_heads": 64,
      "index_head_dim": 128}, "deepseek-v3.2")])
def test_hf_config_matches_catalog(tmp_path, cfg, name):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = model_from_hf_config(tmp_path, name="x")
    ref = next(x for x in MODELS if x.name == name)
    assert m.param_count() == ref.param_count()
    assert m.kv_bytes_per_token() == ref.kv_bytes_per_token()
    assert m.seq_bytes(4) == ref.seq_bytes(4)
    assert [(g.kind, g.layers) for g in m.mixers()] == [(g.kind, g.layers) for g in ref.mixers()]
    if "quantization_config" in cfg:
        assert (m.weight_dtype, m.experts_dtype) == (ref.weight_dtype, ref.experts_dtype)
        assert m.weight_bytes() == ref.weight_bytes()


@pytest.mark.parametrize("extra,match", [
    ({"layer_types": ["full_attention", "chunked_attention"] * 30}, "chunked_attention"),
    ({"hybrid_override_pattern": "MEM*E"}, "MoE blocks"),
    ({"mamba_num_heads": 128}, "Mamba layers"),
    ({"sparse_attention_config": {"use_sparse_attention": True}}, "block-sparse"),
    ({"quantization_config": {"quant_method": "bitsandbytes"}}, "bitsandbytes"),
])
def test_hf_config_that_changes_the_cost_unknowingly_is_an_error(tmp_path, extra, match):
    (tmp_path / "config.json").write_text(json.dumps({**QWEN3_NEXT_HF, **extra}))
    with pytest.raises(ConfigError, match=match):
        model_from_hf_config(tmp_path)


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
    from frontier_core.model.catalog import HardwareSpec, gpu_names

    mine = HardwareSpec(name="mi999x", flops={"bf16": 1e15}, mem_bytes=1e11, mem_bw=5e12,
                        nvlink_bw=4e11, scaleout_bw=5e10, aliases=("MI999X_OAM",))
    names = gpu_names([*HARDWARE, mine])
    assert names["b300_sxm"] == "b300" and names["h200_sxm"] == "h200"
    assert names["gb200"] == "gb200" and names["mi999x_oam"] == "mi999x"


def test_four_bit_weights_count_their_block_scales():
    """nvfp4: 4-bit values plus one 1-byte scale per 16 (0.5625 B per weight); mxfp4: one
    per 32 (0.53125 B). Both compute on fp4 tensor cores where the GPU has them."""
    from frontier_core.model.dtypes import DTYPE_BYTES, gemm_dtype

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
    # W4A8: 4-bit weights, the math on the fp8 tensor cores
    assert by["h200"].peak_flops("w4afp8") == by["h200"].flops["fp8"]
    assert DTYPE_BYTES["w4afp8"] == 0.5 and gemm_dtype("w4afp8") == "w4afp8"


def test_a_sliding_window_models_kv_grows_only_with_its_full_layers():
    """gpt-oss: half the layers attend to the last 128 tokens; per token of context, only
    the 18 full layers' keys and values accumulate."""
    g = {m.name: m for m in MODELS}["gpt-oss-120b"]
    assert g.kv_bytes_per_token() == 2 * 18 * 8 * 64 * 2
    assert g.kv_bytes_per_token(tp=8) == 2 * 18 * 1 * 64 * 2
    with pytest.raises(ValueError, match="sliding-window"):
        type(g)(**{**g.model_dump(), "window_layers": 36})  # no full-attention layer left


def test_sliding_window_kv_per_sequence_is_bounded_by_the_window():
    g = {m.name: m for m in MODELS}["gpt-oss-120b"]
    # 18 windowed layers x 128 tokens x (K, V) x 8 KV heads x 64 x 2 bytes
    assert g.seq_bytes() == 18 * 128 * 2 * 8 * 64 * 2
    assert g.seq_bytes(tp=8) == g.seq_bytes() / 8


def test_linear_attention_keeps_a_fixed_state_per_sequence():
    """Qwen3.5: only the 15 full-attention layers' KV grows with the context; each of the
    45 Gated DeltaNet layers keeps 64 value heads of 128 x 128 fp32 state and 3 steps of
    its convolution's 12,288 channels, split over TP."""
    q = {m.name: m for m in MODELS}["qwen3.5-397b-a17b"]
    assert q.kv_bytes_per_token() == 2 * 15 * 2 * 256 * 2
    state = 64 * 128 * 128 * 4
    conv = 3 * (2 * 16 * 128 + 64 * 128) * 2
    assert q.seq_bytes() == 45 * (state + conv)
    assert q.seq_bytes(tp=4) == pytest.approx(q.seq_bytes() / 4)
    assert [(g.kind, g.layers) for g in q.mixers()] == [("gqa", 15), ("gdn", 45)]
    with pytest.raises(ValueError, match="linear_num_key_heads"):
        type(q)(**{**q.model_dump(), "linear_num_key_heads": 0})


def test_sparse_attention_caches_the_latent_and_the_indexer_keys():
    """GLM-5: every token keeps its 576-wide MLA latent and a 128-wide fp8 indexer key with
    one fp32 scale, on every TP rank; each query attends to at most 2048 tokens."""
    g = {m.name: m for m in MODELS}["glm-5"]
    assert g.kv_bytes_per_token(tp=8) == 78 * (576 * 2 + 128 + 4)
    (mix,) = g.mixers(8)
    assert (mix.kind, mix.topk, mix.heads) == ("dsa", 2048, 8)
    with pytest.raises(ValueError, match="index_n_heads"):
        type(g)(**{**g.model_dump(), "index_n_heads": 0})


def test_amd_instinct_gpus_are_a_full_mesh_and_pcie_cards_a_ring():
    """MI300X: 7 Infinity Fabric links per GPU, one to each peer; a group of n GPUs uses
    n - 1 of them, so a 2-GPU all-reduce runs over one link while an 8-GPU one uses all
    seven. L40S: no NVLink, a ring over PCIe."""
    from frontier_core.builtin.transfer import collective_time

    by = {h.name: h for h in HARDWARE}
    mi = by["mi300x"]
    assert mi.mesh_links == 7 and not mi.nvlink_switched and mi.nvlink_gpus == 8
    link = mi.intra_link()
    big = 1 << 30
    t2, t8 = (collective_time("all_reduce", big, n, link) for n in (2, 8))
    per_link = mi.nvlink_bw / 7
    assert t2 == pytest.approx(big / per_link + 2 * mi.nvlink_latency)
    assert t8 == pytest.approx(2 * 7 / 8 * big / mi.nvlink_bw + 2 * mi.nvlink_latency)
    assert t8 < t2
    assert by["mi355x"].peak_flops("mxfp4") == pytest.approx(10e15)
    l40s = by["l40s"].intra_link()
    assert not l40s.switched and l40s.mesh_links == 0
    assert collective_time("all_reduce", 1024, 8, l40s) > 14 * by["l40s"].nvlink_latency


def test_a_checkpoint_with_4_bit_experts_keeps_the_rest_in_bf16():
    """gpt-oss-120b's release: mxfp4 experts (0.53125 B a weight with their scales), bf16
    everything else: 65.2 GB on Hugging Face; all-mxfp4 would be 62.0 GB."""
    g = {m.name: m for m in MODELS}["gpt-oss-120b"]
    assert (g.weight_dtype, g.experts_dtype) == ("bf16", "mxfp4")
    assert g.weight_bytes() / 1e9 == pytest.approx(65.2, rel=0.01)
    routed = g.routed_expert_bytes() / DTYPE_BYTES["mxfp4"]
    assert g.weight_bytes() == pytest.approx(routed * 0.53125 + (g.param_count() - routed) * 2)


def test_mamba2_layers_keep_a_state_and_some_layers_have_no_mlp():
    """Nemotron-H-56B: 54 Mamba-2 layers of 256 heads x 64 x 256 fp32 state (and 3 steps
    of the convolution over x, B and C); only its 10 attention layers keep KV; 54 of its
    64 mixer layers are followed by an MLP."""
    n = {m.name: m for m in MODELS}["nemotron-h-56b"]
    assert [(g.kind, g.layers) for g in n.mixers()] == [("gqa", 10), ("mamba2", 54)]
    assert n.kv_bytes_per_token() == 2 * 10 * 8 * 128 * 2
    conv = 3 * (256 * 64 + 2 * 8 * 256) * 2
    assert n.seq_bytes() == 54 * (256 * 64 * 256 * 4 + conv)
    assert n.num_dense_ffn_layers == 54
    assert sum(n.ffn_params(i) > 0 for i in range(n.num_layers)) == 54


def test_a_runs_weight_format_override_covers_the_experts_unless_they_are_named(registry):
    from simhelpers import small_config

    from frontier_core.assemble import resolve_model

    def model(**m):
        return resolve_model(small_config(model={"name": "gpt-oss-120b", **m}), registry)

    assert model(weight_dtype="fp8").experts_dtype == "fp8"
    both = model(weight_dtype="fp8", expert_dtype="nvfp4")
    assert (both.weight_dtype, both.experts_dtype) == ("fp8", "nvfp4")
    with pytest.raises(ConfigError, match="unknown dtype 'fp5'"):
        model(expert_dtype="fp5")


def test_group_limited_routing_fields_are_checked_and_read_from_hf(tmp_path):
    from frontier_core.builtin.models import MODELS
    from frontier_core.model.catalog import ModelSpec, model_from_hf_config

    ds = next(m for m in MODELS if m.name == "deepseek-v3")
    assert (ds.n_group, ds.topk_group) == (8, 4)
    base = ds.model_dump()
    for bad in ({"n_group": 3}, {"topk_group": 9}, {"n_group": 128, "topk_group": 1}):
        with pytest.raises(ValueError, match="n_group"):
            ModelSpec(**{**base, **bad})
    cfg = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
           "num_hidden_layers": 4, "hidden_size": 1024, "num_attention_heads": 8,
           "num_key_value_heads": 8, "intermediate_size": 2048, "vocab_size": 1000,
           "max_position_embeddings": 4096, "n_routed_experts": 64,
           "num_experts_per_tok": 4, "moe_intermediate_size": 256, "n_group": 4,
           "topk_group": 2}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    m = model_from_hf_config(p)
    assert (m.n_group, m.topk_group) == (4, 2)
