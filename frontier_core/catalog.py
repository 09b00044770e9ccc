"""Model architectures and GPU kinds: the records the catalogs and user configs describe.

Parameter counts and weight bytes are computed from the architecture, so a
catalog entry or a Hugging Face ``config.json`` is enough to size a deployment.
Units: bytes, FLOP/s, bytes/s, seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontier_core.errors import ConfigError

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp8_block": 1, "int8": 1,
               "int4": 0.5, "nvfp4": 0.5 + 1 / 16, "mxfp4": 0.5 + 1 / 32}
#: Scaled formats and the tensor-core type they compute in. ``fp8_block`` is fp8 with one
#: scale per 128×128 block of weights (and per 1×128 of activations), the format of
#: DeepSeek-V3's checkpoints (config.json quantization_config weight_block_size). Its
#: scales (one fp32 per 16,384 weights) add 1/4,096 of the weight bytes, left out.
#: Measured kernel tables keep it apart from per-tensor ``fp8``: other kernels run it
#: (DeepGEMM, block-scaled CUTLASS).
#:
#: The 4-bit formats carry their scales in their bytes: ``nvfp4`` (NVIDIA's NVFP4: E2M1
#: values with one FP8 E4M3 scale per 16, plus one fp32 scale per tensor, left out)
#: and ``mxfp4`` (OCP Microscaling Formats v1.0: E2M1 with one E8M0 scale per 32; the
#: experts of gpt-oss). Both compute on the fp4 tensor cores where a GPU has them
#: (Blackwell: ``flops["fp4"]``); elsewhere the weights are dequantised and the GEMM runs
#: at the bf16 rate (HardwareSpec.peak_flops), as Hopper's W4A16 kernels do.
#: ``int4`` is weight-only (W4A16: AWQ, GPTQ, Kimi K2's int4 experts): 4-bit weights
#: dequantised in the kernel, the math at the bf16 rate; its group scales (2 B per 32 to
#: 128 weights) are left out.
COMPUTE_DTYPE = {"fp8_block": "fp8", "nvfp4": "fp4", "mxfp4": "fp4", "int4": "bf16"}
#: Weight formats whose GEMMs are priced in that format (others compute in bf16).
GEMM_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "nvfp4", "mxfp4", "int4")


def gemm_dtype(weight_dtype: str) -> str:
    """The dtype a model's GEMMs (and expert GEMMs) are priced in."""
    return weight_dtype if weight_dtype in GEMM_DTYPES else "bf16"


class ModelSpec(BaseModel):
    """A decoder-only transformer: GQA or MLA attention, dense or MoE feed-forward."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_id: str = ""
    aliases: tuple[str, ...] = Field(
        (), description="other Hugging Face ids of checkpoints with this architecture "
        "(instruction-tuned, re-quantised or same-architecture releases)",
    )
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(0, ge=0, description="0 means hidden_size // num_heads")
    intermediate_size: int = Field(gt=0, description="dense MLP width")
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0, description="longest sequence (prompt + output) in tokens")
    tie_embeddings: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    gated_mlp: bool = True
    attention: Literal["gqa", "mla"] = "gqa"
    # Multi-head latent attention (DeepSeek-V2/V3)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Mixture of experts
    num_experts: int = 0
    top_k: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    first_dense_layers: int = Field(0, description="leading layers with a dense MLP (DeepSeek)")
    router_bias: bool = False
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    # Sliding-window attention (gpt-oss): ``window_layers`` of the layers attend to the
    # last ``sliding_window`` tokens only, the others to the whole context.
    sliding_window: int = Field(0, ge=0, description="tokens a windowed layer attends to")
    window_layers: int = Field(0, ge=0, description="layers with sliding-window attention")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.attention == "mla" and not (self.kv_lora_rank and self.qk_rope_head_dim):
            raise ValueError("MLA attention needs kv_lora_rank and qk_rope_head_dim")
        if self.num_experts and not (self.top_k and self.moe_intermediate_size):
            raise ValueError("a MoE model needs top_k and moe_intermediate_size")
        if (self.window_layers > 0) != (self.sliding_window > 0) or \
                self.window_layers >= self.num_layers:
            raise ValueError("sliding-window attention needs both sliding_window and "
                             "window_layers, and at least one layer of full attention")
        for d in (self.weight_dtype, self.kv_dtype):
            if d not in DTYPE_BYTES:
                raise ValueError(f"unknown dtype {d!r}; choose one of {sorted(DTYPE_BYTES)}")
        return self

    # ---- derived sizes -------------------------------------------------
    @property
    def hd(self) -> int:
        """Head dimension of Q/K/V for GQA attention."""
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    def attention_params(self) -> int:
        """Parameters of one attention block, its input norm included."""
        h = self.hidden_size
        if self.attention == "mla":
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.num_heads * qk
            else:
                q = h * self.num_heads * qk
            kv = (
                h * (self.kv_lora_rank + self.qk_rope_head_dim)
                + self.kv_lora_rank
                + self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            )
            o = self.num_heads * self.v_head_dim * h
            return q + kv + o + h
        hd = self.hd
        q = h * self.num_heads * hd
        kv = 2 * h * self.num_kv_heads * hd
        o = self.num_heads * hd * h
        bias = (self.num_heads + 2 * self.num_kv_heads) * hd if self.qkv_bias else 0
        norm = 2 * hd if self.qk_norm else 0
        return q + kv + o + bias + norm + h

    def mlp_params(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    def ffn_params(self, layer: int) -> int:
        """Parameters of one feed-forward block (all experts), its norm included."""
        h = self.hidden_size
        if not self.is_moe or layer < self.first_dense_layers:
            return self.mlp_params(self.intermediate_size) + h
        gate = h * self.num_experts + (self.num_experts if self.router_bias else 0)
        experts = (self.num_experts + self.num_shared_experts) * self.mlp_params(
            self.moe_intermediate_size
        )
        return gate + experts + h

    def param_count(self) -> int:
        """All parameters (embeddings and LM head included; MTP modules excluded)."""
        emb = self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)
        layers = sum(self.attention_params() + self.ffn_params(i) for i in range(self.num_layers))
        return emb + layers + self.hidden_size

    def active_param_count(self) -> int:
        """Parameters touched per token (routed experts counted top_k times)."""
        if not self.is_moe:
            return self.param_count()
        idle = (self.num_experts - self.top_k) * self.mlp_params(self.moe_intermediate_size)
        return self.param_count() - idle * self.num_moe_layers

    def weight_bytes(self) -> float:
        return self.param_count() * DTYPE_BYTES[self.weight_dtype]

    def ffn_bytes(self) -> float:
        """Bytes of every layer's feed-forward block (experts, gates and norms included)."""
        params = sum(self.ffn_params(i) for i in range(self.num_layers))
        return params * DTYPE_BYTES[self.weight_dtype]

    def routed_expert_bytes(self) -> float:
        """Bytes of the routed experts of all MoE layers (the part expert parallelism
        splits; shared experts, gates and everything else are excluded)."""
        per_layer = self.num_experts * self.mlp_params(self.moe_intermediate_size)
        return per_layer * self.num_moe_layers * DTYPE_BYTES[self.weight_dtype]

    def kv_bytes_per_token(self, tp: int = 1) -> float:
        """KV-cache bytes per token per GPU for all layers, with tensor parallelism ``tp``.

        GQA splits KV heads over TP ranks (replicating when there are fewer heads
        than ranks); MLA's compressed latent is replicated on every rank.
        """
        b = DTYPE_BYTES[self.kv_dtype]
        if self.attention == "mla":
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * b
        heads = math.ceil(self.num_kv_heads / tp)
        # A windowed layer keeps at most ``sliding_window`` tokens of each sequence (the
        # engines' hybrid allocators free the rest); only the full layers grow with the
        # context. That bounded part (gpt-oss: 4.7 MB per sequence at TP 1) is not
        # reserved in the memory plan.
        return 2 * (self.num_layers - self.window_layers) * heads * self.hd * b


class HardwareSpec(BaseModel):
    """One GPU kind, from its datasheet. Bandwidths are per GPU and per direction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    flops: dict[str, float] = Field(description="dense FLOP/s by dtype (bf16, fp16, fp8)")
    mem_bytes: float = Field(gt=0, description="HBM capacity")
    mem_bw: float = Field(gt=0, description="HBM bandwidth")
    nvlink_bw: float = Field(gt=0, description="NVLink bandwidth per GPU per direction")
    nvlink_latency: float = Field(3e-6, ge=0)
    nvlink_switched: bool = Field(
        True, description="the node's GPUs reach each other through NVSwitch, one hop each "
        "(HGX/DGX); false for a ring of point-to-point links or bridges")
    scaleout_bw: float = Field(gt=0, description="IB/RoCE bandwidth per GPU per direction")
    scaleout_latency: float = Field(8e-6, ge=0)
    pcie_bw: float = Field(32e9, gt=0, description="host link per direction")
    gpus_per_node: int = Field(8, gt=0, description="GPUs per server (host)")
    nvlink_domain: int | None = Field(
        None, gt=0, description="GPUs that reach each other over NVLink: the server's "
        "(None, HGX/DGX) or a rack's (72 in an NVL72 rack of 4-GPU trays)")
    num_sms: int = Field(108, gt=0)
    cost_per_hour: float = Field(0.0, ge=0, description="USD per GPU-hour, for planning")
    aliases: tuple[str, ...] = Field(
        (), description="other names of this GPU kind: AIConfigurator's system name, the "
        "`system` of benchmark files")
    efficiency: tuple[float, float] | None = Field(
        None, description="(compute, HBM) fraction of the datasheet peaks that kernels "
        "reach, for the roofline; None: its table by GPU family")

    @property
    def nvlink_gpus(self) -> int:
        """GPUs in one NVLink domain: TP, EP and PD groups up to this size talk over NVLink."""
        return self.nvlink_domain or self.gpus_per_node

    def peak_flops(self, dtype: str) -> float:
        dtype = COMPUTE_DTYPE.get(dtype, dtype)
        if dtype in self.flops:
            return self.flops[dtype]
        if dtype in ("fp16", "bf16"):
            return self.flops.get("bf16", self.flops.get("fp16", 0.0))
        return self.flops.get("bf16", 0.0)


def gpu_names(specs: Iterable[HardwareSpec]) -> dict[str, str]:
    """Every name and alias of ``specs`` (lower-cased) -> the catalog name."""
    out: dict[str, str] = {}
    for spec in specs:
        for n in (spec.name, *spec.aliases):
            out.setdefault(n.lower(), spec.name)
    return out


# ---- Hugging Face config.json --------------------------------------------


def model_from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (a file or a folder holding one) from disk.

    Understands the Llama/Qwen2/Qwen3/Mistral/Mixtral/Qwen3-MoE/DeepSeek-V3 field
    names. No hub access: the file must already be local.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        cfg = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"Hugging Face config {str(p)!r} does not exist. Point model.hf_config at a "
            "local config.json (or the folder holding it); Frontier does not download models."
        ) from None
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"Hugging Face config {str(p)!r} is not valid JSON (line {e.lineno}: {e.msg})."
        ) from None
    g = cfg.get
    try:
        heads = g("num_attention_heads")
        fields: dict = dict(
            name=name or g("_name_or_path") or p.parent.name or "hf-model",
            num_layers=g("num_hidden_layers"),
            hidden_size=g("hidden_size"),
            num_heads=heads,
            num_kv_heads=g("num_key_value_heads") or heads,
            head_dim=g("head_dim") or 0,
            intermediate_size=g("intermediate_size"),
            vocab_size=g("vocab_size"),
            max_context=g("max_position_embeddings") or 4096,
            tie_embeddings=bool(g("tie_word_embeddings", False)),
        )
        mt = (g("model_type") or "").lower()
        if mt == "qwen2" or mt == "qwen2_moe":
            fields["qkv_bias"] = True
        if mt in ("qwen3", "qwen3_moe"):
            fields["qk_norm"] = True
        if g("attention_bias"):
            fields["qkv_bias"] = True
        if g("kv_lora_rank"):
            fields.update(
                attention="mla",
                q_lora_rank=g("q_lora_rank") or 0,
                kv_lora_rank=g("kv_lora_rank"),
                qk_nope_head_dim=g("qk_nope_head_dim"),
                qk_rope_head_dim=g("qk_rope_head_dim"),
                v_head_dim=g("v_head_dim"),
                num_kv_heads=heads,
            )
        experts = g("n_routed_experts") or g("num_local_experts") or g("num_experts") or 0
        if experts:
            fields.update(
                num_experts=experts,
                top_k=g("num_experts_per_tok"),
                moe_intermediate_size=g("moe_intermediate_size") or g("intermediate_size"),
                num_shared_experts=g("n_shared_experts") or 0,
                first_dense_layers=g("first_k_dense_replace") or 0,
                router_bias=mt.startswith("deepseek_v3"),
            )
        return ModelSpec(**fields)
    except (TypeError, ValueError) as e:
        msg = str(e).splitlines()
        raise ConfigError(
            f"Hugging Face config {str(p)!r} cannot be read as a decoder model: "
            f"{'; '.join(m.strip() for m in msg[:4])}. It needs num_hidden_layers, hidden_size, "
            "num_attention_heads, intermediate_size and vocab_size."
        ) from None
