"""The kernel's model catalog: published architectures, from each model's config.json.

Parameter counts computed from these fields match the published sizes within
1% (tests/test_catalog.py checks every entry).
"""

from __future__ import annotations

from frontier_core.catalog import ModelSpec

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
                 "nvidia/DeepSeek-R1-NVFP4", "nvidia/DeepSeek-R1-0528-FP4"),
        num_layers=61, hidden_size=7168,
        num_heads=128, num_kv_heads=128, intermediate_size=18432, vocab_size=129280,
        max_context=163840, attention="mla", q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, num_experts=256, top_k=8,
        moe_intermediate_size=2048, num_shared_experts=1, first_dense_layers=3,
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
    # K2.5's release stores the experts in int4 (quantization-aware trained, W4A16 with
    # group-32 scales) and the rest in bf16; here the whole model is int4, the format of
    # 97% of its weights. K2.5's vision tower (MoonViT) is not modelled.
    ModelSpec(
        name="kimi-k2.5", hf_id="moonshotai/Kimi-K2.5",
        aliases=("moonshotai/Kimi-K2-Instruct", "moonshotai/Kimi-K2-Thinking",
                 "moonshotai/Kimi-K2-Instruct-0905"),
        num_layers=61, hidden_size=7168, num_heads=64, num_kv_heads=64, intermediate_size=18432,
        vocab_size=163840, max_context=262144, attention="mla", q_lora_rank=1536,
        kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        num_experts=384, top_k=8, moe_intermediate_size=2048, num_shared_experts=1,
        first_dense_layers=1, router_bias=True, weight_dtype="int4",
    ),
    # gpt-oss (config.json of openai/gpt-oss-120b and -20b): GQA 64/8 heads of 64 with
    # biases; layer_types alternate a 128-token sliding window and full attention (half
    # the layers each); attention sinks (one learned logit per head, no KV) are left out,
    # as are the experts' biases (0.03% of the weights). Experts (top 4, width 2880) in
    # mxfp4, the format of 97% of the weights; the attention's bf16 weights (0.96B in the
    # 120b) are counted at mxfp4 too.
    ModelSpec(
        name="gpt-oss-120b", hf_id="openai/gpt-oss-120b", num_layers=36, hidden_size=2880,
        num_heads=64, num_kv_heads=8, head_dim=64, intermediate_size=2880, vocab_size=201088,
        max_context=131072, qkv_bias=True, num_experts=128, top_k=4,
        moe_intermediate_size=2880, router_bias=True, sliding_window=128, window_layers=18,
        weight_dtype="mxfp4",
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
MODELS.append(_variant(
    "gpt-oss-120b", name="gpt-oss-20b", hf_id="openai/gpt-oss-20b", num_layers=24,
    num_experts=32, window_layers=12))
