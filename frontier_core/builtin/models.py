"""The kernel's model catalog: published architectures, from each model's config.json.

Parameter counts computed from these fields match the published sizes within
1% (tests/test_catalog.py checks every entry).
"""

from __future__ import annotations

from frontier_core.model.catalog import ModelSpec

_LLAMA3_VOCAB = 128256

MODELS: list[ModelSpec] = [
    ModelSpec(
        name="llama-2-7b", hf_id="meta-llama/Llama-2-7b-hf", num_layers=32, hidden_size=4096,
        num_heads=32, num_kv_heads=32, intermediate_size=11008, vocab_size=32000,
        max_context=4096,
    ),
    ModelSpec(
        name="llama-3.1-8b", hf_id="meta-llama/Llama-3.1-8B",
        aliases=("meta-llama/Llama-3.1-8B-Instruct", "nvidia/Llama-3.1-8B-Instruct-FP8"), num_layers=32, hidden_size=4096,
        num_heads=32, num_kv_heads=8, intermediate_size=14336, vocab_size=_LLAMA3_VOCAB,
        max_context=131072,
    ),
    # The usual draft model for speculative decoding with Llama-3.1-8B/70B (same tokenizer).
    ModelSpec(
        name="llama-3.2-1b", hf_id="meta-llama/Llama-3.2-1B", num_layers=16, hidden_size=2048,
        num_heads=32, num_kv_heads=8, head_dim=64, intermediate_size=8192,
        vocab_size=_LLAMA3_VOCAB, max_context=131072, tie_embeddings=True,
    ),
    ModelSpec(
        name="llama-3.1-70b", hf_id="meta-llama/Llama-3.1-70B",
        aliases=("meta-llama/Llama-3.1-70B-Instruct", "nvidia/Llama-3.1-70B-Instruct-FP8"),
        num_layers=80, hidden_size=8192,
        num_heads=64, num_kv_heads=8, intermediate_size=28672, vocab_size=_LLAMA3_VOCAB,
        max_context=131072,
    ),
    ModelSpec(
        name="qwen2-7b", hf_id="Qwen/Qwen2-7B", num_layers=28, hidden_size=3584, num_heads=28,
        num_kv_heads=4, intermediate_size=18944, vocab_size=152064, max_context=32768,
        qkv_bias=True,
    ),
    ModelSpec(
        name="qwen3-32b", hf_id="Qwen/Qwen3-32B", aliases=("nvidia/Qwen3-32B-NVFP4",),
        num_layers=64, hidden_size=5120, num_heads=64,
        num_kv_heads=8, head_dim=128, intermediate_size=25600, vocab_size=151936,
        max_context=40960, qk_norm=True,
    ),
    ModelSpec(
        name="mixtral-8x7b", hf_id="mistralai/Mixtral-8x7B-v0.1", num_layers=32, hidden_size=4096,
        num_heads=32, num_kv_heads=8, intermediate_size=14336, vocab_size=32000,
        max_context=32768, num_experts=8, top_k=2, moe_intermediate_size=14336,
    ),
    ModelSpec(
        name="mixtral-8x22b", hf_id="mistralai/Mixtral-8x22B-v0.1", num_layers=56,
        hidden_size=6144, num_heads=48, num_kv_heads=8, intermediate_size=16384,
        vocab_size=32768, max_context=65536, num_experts=8, top_k=2,
        moe_intermediate_size=16384,
    ),
    ModelSpec(
        name="qwen3-30b-a3b", hf_id="Qwen/Qwen3-30B-A3B", num_layers=48, hidden_size=2048,
        num_heads=32, num_kv_heads=4, head_dim=128, intermediate_size=6144, vocab_size=151936,
        max_context=40960, qk_norm=True, num_experts=128, top_k=8, moe_intermediate_size=768,
    ),
    ModelSpec(
        name="deepseek-v3", hf_id="deepseek-ai/DeepSeek-V3",
        # DeepSeek-R1 and the 0324/0528 updates ship DeepSeek-V3's config.json unchanged.
        # NVIDIA's re-quantised releases keep the architecture; their rows name the format.
        aliases=("deepseek-ai/DeepSeek-V3-0324", "deepseek-ai/DeepSeek-R1",
                 "deepseek-ai/DeepSeek-R1-0528", "nvidia/DeepSeek-R1-FP4",
                 "nvidia/DeepSeek-R1-NVFP4", "nvidia/DeepSeek-R1-0528-FP4",
                 "deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-V3.1-Terminus",
                 "nvidia/DeepSeek-V3.1-NVFP4"),
        num_layers=61, hidden_size=7168,
        num_heads=128, num_kv_heads=128, intermediate_size=18432, vocab_size=129280,
        max_context=163840, attention="mla", q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, num_experts=256, top_k=8,
        moe_intermediate_size=2048, num_shared_experts=1, first_dense_layers=3,
        n_group=8, topk_group=4,  # config.json: group-limited routing to 4 of 8 groups
        # Block-scaled fp8 (config.json quantization_config: e4m3, weight_block_size
        # [128, 128]).
        router_bias=True, weight_dtype="fp8_block",
    ),
    # Qwen3's largest MoE (config.json of Qwen/Qwen3-235B-A22B): 94 layers, GQA 64/4 heads
    # of 128 with QK norm, 128 experts (top 8) of width 1536 in every layer, no shared
    # expert. The FP8 release quantises the same weights block-wise (quantization_config
    # fmt e4m3, weight_block_size [128, 128]).
    ModelSpec(
        name="qwen3-235b-a22b", hf_id="Qwen/Qwen3-235B-A22B",
        aliases=("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Thinking-2507"),
        num_layers=94, hidden_size=4096, num_heads=64, num_kv_heads=4, head_dim=128,
        intermediate_size=12288, vocab_size=151936, max_context=40960, qk_norm=True,
        num_experts=128, top_k=8, moe_intermediate_size=1536,
    ),
    # MiniMax-M2 (config.json of MiniMaxAI/MiniMax-M2; M2.1 and M2.5 keep it): 62 layers of
    # full GQA attention, 48 query and 8 KV heads of 128 with QK norm (over the whole
    # projection, 7k weights a layer, left out) and partial RoPE; 256 experts (top 8, sigmoid
    # routing with a bias) of width 1536, no shared expert; block-scaled fp8 weights
    # (weight_block_size [128, 128]). The 3 MTP modules are not part of serving.
    ModelSpec(
        name="minimax-m2.5", hf_id="MiniMaxAI/MiniMax-M2.5",
        aliases=("MiniMaxAI/MiniMax-M2", "MiniMaxAI/MiniMax-M2.1"),
        num_layers=62, hidden_size=3072, num_heads=48, num_kv_heads=8, head_dim=128,
        intermediate_size=1536, vocab_size=200064, max_context=196608, qk_norm=True,
        num_experts=256, top_k=8, moe_intermediate_size=1536, router_bias=True,
        weight_dtype="fp8_block",
    ),
    # Kimi K2 / K2.5 (config.json of moonshotai/Kimi-K2-Instruct; K2.5's text_config has the
    # same fields): DeepSeek-V3's MLA with 64 heads, 384 routed experts (top 8) and one
    # shared expert of width 2048, one leading dense layer, a 163,840-token vocabulary.
    # K2.5's release stores the routed experts in int4 (quantization-aware trained, W4A16
    # with group-32 scales, left out of the bytes) and the rest in bf16. K2.5's vision
    # tower (MoonViT) is not modelled.
    ModelSpec(
        name="kimi-k2.5", hf_id="moonshotai/Kimi-K2.5",
        aliases=("moonshotai/Kimi-K2-Instruct", "moonshotai/Kimi-K2-Thinking",
                 "moonshotai/Kimi-K2-Instruct-0905"),
        num_layers=61, hidden_size=7168, num_heads=64, num_kv_heads=64, intermediate_size=18432,
        vocab_size=163840, max_context=262144, attention="mla", q_lora_rank=1536,
        kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        num_experts=384, top_k=8, moe_intermediate_size=2048, num_shared_experts=1,
        first_dense_layers=1, router_bias=True, expert_dtype="int4",
    ),
    # gpt-oss (config.json of openai/gpt-oss-120b and -20b): GQA 64/8 heads of 64 with
    # biases; layer_types alternate a 128-token sliding window and full attention (half
    # the layers each); attention sinks (one learned logit per head, no KV) are left out,
    # as are the experts' biases (0.03% of the weights). Experts (top 4, width 2880) in
    # mxfp4, everything else in bf16 (quantization_config modules_to_not_convert).
    ModelSpec(
        name="gpt-oss-120b", hf_id="openai/gpt-oss-120b", num_layers=36, hidden_size=2880,
        num_heads=64, num_kv_heads=8, head_dim=64, intermediate_size=2880, vocab_size=201088,
        max_context=131072, qkv_bias=True, num_experts=128, top_k=4,
        moe_intermediate_size=2880, router_bias=True, sliding_window=128, window_layers=18,
        expert_dtype="mxfp4",
    ),
    # Qwen3.5-397B-A17B (config.json of Qwen/Qwen3.5-397B-A17B, text_config): 60 layers,
    # every fourth one gated full attention (full_attention_interval 4: GQA 32/2 heads of
    # 256 with q/k norms and an output gate) and the other 45 Gated DeltaNet (16 query/key
    # and 64 value heads of 128, a 4-tap convolution); 512 routed experts (top 10) and one
    # shared expert, all of width 1024; a 248,320-token vocabulary. The vision tower and
    # the MTP module are not modelled; neither are the shared expert's 1-wide gates.
    ModelSpec(
        name="qwen3.5-397b-a17b", hf_id="Qwen/Qwen3.5-397B-A17B", num_layers=60,
        hidden_size=4096, num_heads=32, num_kv_heads=2, head_dim=256, intermediate_size=1024,
        vocab_size=248320, max_context=262144, qk_norm=True, attn_output_gate=True,
        num_experts=512, top_k=10, moe_intermediate_size=1024, num_shared_experts=1,
        linear_layers=45, linear_num_key_heads=16, linear_num_value_heads=64,
    ),
    # Qwen3-Next-80B-A3B (config.json of Qwen/Qwen3-Next-80B-A3B-Instruct): Qwen3.5's
    # layout at 48 layers (12 full attention, 36 Gated DeltaNet with 32 value heads), a
    # 2048-wide residual, 512 experts (top 10) and a shared expert of width 512.
    ModelSpec(
        name="qwen3-next-80b-a3b", hf_id="Qwen/Qwen3-Next-80B-A3B-Instruct",
        aliases=("Qwen/Qwen3-Next-80B-A3B-Thinking",), num_layers=48, hidden_size=2048,
        num_heads=16, num_kv_heads=2, head_dim=256, intermediate_size=5120,
        vocab_size=151936, max_context=262144, qk_norm=True, attn_output_gate=True,
        num_experts=512, top_k=10, moe_intermediate_size=512, num_shared_experts=1,
        linear_layers=36, linear_num_key_heads=16, linear_num_value_heads=32,
    ),
    # GLM-5 (config.json of zai-org/GLM-5, model_type glm_moe_dsa; GLM-5.1 keeps it): MLA
    # with 64 heads (q latent 2048, nope/rope/v head dims 192/64/256) and DeepSeek sparse
    # attention (a 32-head, 128-wide lightning indexer; every query attends to its top
    # 2048 tokens); 256 routed experts (top 8) and one shared expert of width 2048 after 3
    # dense layers of width 12288; a 154,880-token vocabulary; bf16 weights. The MTP
    # layer is not part of serving.
    ModelSpec(
        name="glm-5", hf_id="zai-org/GLM-5", aliases=("zhipuai/GLM-5", "zai-org/GLM-5.1"),
        num_layers=78, hidden_size=6144, num_heads=64, num_kv_heads=64,
        intermediate_size=12288, vocab_size=154880, max_context=202752, attention="mla",
        q_lora_rank=2048, kv_lora_rank=512, qk_nope_head_dim=192, qk_rope_head_dim=64,
        v_head_dim=256, num_experts=256, top_k=8, moe_intermediate_size=2048,
        num_shared_experts=1, first_dense_layers=3, router_bias=True, index_topk=2048,
        index_n_heads=32, index_head_dim=128,
    ),
    # Nemotron-H-56B (config.json of nvidia/Nemotron-H-56B-Base-8K, model_type nemotron_h):
    # 118 blocks, each one mixer or one MLP (hybrid_override_pattern): 54 Mamba-2 (256 heads
    # of 64, 8 groups, state size 256, a 4-tap convolution, chunks of 128), 10 GQA
    # attention (64/8 heads of 128) and 54 non-gated squared-ReLU MLPs of width 32768.
    # Frontier's layers pair a mixer with an FFN, so it is 64 layers of which 54 have
    # an MLP (ffn_layers); a 131,072-token vocabulary.
    ModelSpec(
        name="nemotron-h-56b", hf_id="nvidia/Nemotron-H-56B-Base-8K", num_layers=64,
        hidden_size=8192, num_heads=64, num_kv_heads=8, head_dim=128, intermediate_size=32768,
        vocab_size=131072, max_context=8192, gated_mlp=False, ffn_layers=54,
        linear_layers=54, linear_kind="mamba2", linear_num_key_heads=8,
        linear_key_head_dim=256, linear_num_value_heads=256, linear_value_head_dim=64,
        linear_chunk=128,
    ),
    # OPT (the models of the DistServe paper, OSDI '24): multi-head attention with biases,
    # a plain fc1/ReLU/fc2 MLP, LayerNorm, learned positions, tied embeddings. The
    # spec leaves out the learned positional table (2050 x hidden) and the non-QKV
    # biases: 0.09% of OPT-13B's parameters, 0.04% of OPT-66B's. The checkpoints are
    # fp16, the same 2 bytes as the default bf16.
    ModelSpec(
        name="opt-13b", hf_id="facebook/opt-13b", num_layers=40, hidden_size=5120, num_heads=40,
        num_kv_heads=40, intermediate_size=20480, vocab_size=50272, max_context=2048,
        tie_embeddings=True, qkv_bias=True, gated_mlp=False,
    ),
    ModelSpec(
        name="opt-66b", hf_id="facebook/opt-66b", num_layers=64, hidden_size=9216, num_heads=72,
        num_kv_heads=72, intermediate_size=36864, vocab_size=50272, max_context=2048,
        tie_embeddings=True, qkv_bias=True, gated_mlp=False,
    ),
]


def _variant(of: str, **update: object) -> ModelSpec:
    """A catalog entry made from the entry ``of`` with some fields changed (a re-quantised
    release, a smaller sibling), validated as a new entry."""
    base = next(m for m in MODELS if m.name == of)
    return ModelSpec(**{**base.model_dump(), **update})


MODELS.append(_variant(
    "qwen3-235b-a22b", name="qwen3-235b-a22b-fp8", hf_id="Qwen/Qwen3-235B-A22B-FP8",
    aliases=("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "Qwen/Qwen3-235B-A22B-Thinking-2507-FP8"),
    weight_dtype="fp8_block"))
# DeepSeek-V3.2 (config.json of deepseek-ai/DeepSeek-V3.2, model_type deepseek_v32):
# DeepSeek-V3's architecture with DeepSeek sparse attention (a 64-head, 128-wide lightning
# indexer selecting 2048 tokens per query).
MODELS.append(_variant(
    "deepseek-v3", name="deepseek-v3.2", hf_id="deepseek-ai/DeepSeek-V3.2",
    aliases=("deepseek-ai/DeepSeek-V3.2-Exp", "deepseek-ai/DeepSeek-V3.2-Speciale"),
    index_topk=2048, index_n_heads=64, index_head_dim=128))
MODELS.append(_variant(
    "glm-5", name="glm-5-fp8", hf_id="zai-org/GLM-5-FP8", aliases=("zai-org/GLM-5.1-FP8",),
    weight_dtype="fp8_block"))
MODELS.append(_variant(
    "qwen3.5-397b-a17b", name="qwen3.5-397b-a17b-fp8", hf_id="Qwen/Qwen3.5-397B-A17B-FP8",
    weight_dtype="fp8_block"))
MODELS.append(_variant(
    "gpt-oss-120b", name="gpt-oss-20b", hf_id="openai/gpt-oss-20b", num_layers=24,
    num_experts=32, window_layers=12))
