"""Model architectures and GPU kinds: the records the catalogs and user configs describe.

Parameter counts and weight bytes are computed from the architecture, so a
catalog entry or a Hugging Face ``config.json`` is enough to size a deployment.
Units: bytes, FLOP/s, bytes/s, seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontier_core.errors import ConfigError
from frontier_core.model.dtypes import COMPUTE_DTYPE, DTYPE_BYTES
from frontier_core.records import Link

if TYPE_CHECKING:
    from frontier_core.model.attention import Mixer

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
    # Group-limited gating (DeepSeek-V3's config.json n_group, topk_group): the experts
    # form n_group equal groups of consecutive ids, and each token's top_k experts are
    # chosen among the experts of its topk_group best groups only.
    n_group: int = Field(1, ge=1, description="expert groups of the router (1: no groups)")
    topk_group: int = Field(1, ge=1, description="groups a token's experts may come from")
    router_bias: bool = False
    weight_dtype: str = "bf16"
    expert_dtype: str = Field(
        "", description="format of the routed experts' weights where a checkpoint keeps them "
        "apart (gpt-oss: mxfp4 experts, bf16 elsewhere); empty: weight_dtype")
    kv_dtype: str = "bf16"
    # Sliding-window attention (gpt-oss): ``window_layers`` of the layers attend to the
    # last ``sliding_window`` tokens only, the others to the whole context.
    sliding_window: int = Field(0, ge=0, description="tokens a windowed layer attends to")
    window_layers: int = Field(0, ge=0, description="layers with sliding-window attention")
    # DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): an MLA model whose queries attend
    # to the ``index_topk`` tokens a lightning indexer selects.
    index_topk: int = Field(0, ge=0, description="tokens each query attends to (0: all)")
    index_n_heads: int = Field(0, ge=0, description="heads of the lightning indexer")
    index_head_dim: int = Field(128, gt=0)
    attn_output_gate: bool = Field(
        False, description="the query projection also yields a sigmoid gate on the "
        "attention output (Qwen3-Next, Qwen3.5)")
    # Linear attention (Gated DeltaNet: Qwen3-Next, Qwen3.5): ``linear_layers`` of the
    # layers keep a fixed-size recurrent state per sequence instead of a KV cache.
    linear_layers: int = Field(0, ge=0, description="layers with Gated DeltaNet attention")
    linear_num_key_heads: int = Field(0, ge=0)
    linear_num_value_heads: int = Field(0, ge=0)
    linear_key_head_dim: int = Field(128, gt=0)
    linear_value_head_dim: int = Field(128, gt=0)
    linear_conv_kernel: int = Field(4, gt=0, description="taps of the causal convolution")
    linear_state_dtype: str = Field(
        "fp32", description="recurrent state dtype (SGLang's --mamba-ssm-dtype default)")
    linear_kind: Literal["gdn", "mamba2"] = Field(
        "gdn", description="the linear layers' kind: Gated DeltaNet, or Mamba-2 (Nemotron-H: "
        "value heads are its heads of mamba_head_dim, key heads its groups, the key width "
        "its state size)")
    linear_chunk: int = Field(0, ge=0, description="chunk length of the chunked scan "
                              "(0: the kind's kernel default)")
    ffn_layers: int | None = Field(
        None, ge=0, description="layers that have a feed-forward block (Nemotron-H's 54 MLP "
        "blocks next to its 64 attention and Mamba blocks); None: every layer")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.attention == "mla" and not (self.kv_lora_rank and self.qk_rope_head_dim):
            raise ValueError("MLA attention needs kv_lora_rank and qk_rope_head_dim")
        if self.num_experts and not (self.top_k and self.moe_intermediate_size):
            raise ValueError("a MoE model needs top_k and moe_intermediate_size")
        if self.n_group > 1 and (not self.num_experts or self.num_experts % self.n_group
                                 or self.topk_group > self.n_group
                                 or self.topk_group * self.num_experts // self.n_group
                                 < self.top_k):
            raise ValueError("n_group must divide num_experts, and topk_group (at most n_group) "
                             "groups must hold at least top_k experts")
        if (self.window_layers > 0) != (self.sliding_window > 0) or \
                self.window_layers + self.linear_layers >= self.num_layers:
            raise ValueError("sliding-window attention needs both sliding_window and "
                             "window_layers, and at least one layer of full attention")
        if self.linear_layers and not (self.linear_num_key_heads and self.linear_num_value_heads):
            raise ValueError("linear attention layers need linear_num_key_heads and "
                             "linear_num_value_heads")
        if self.index_topk and not (self.attention == "mla" and self.index_n_heads
                                    and self.q_lora_rank):
            raise ValueError("sparse attention (index_topk) is modelled on MLA with a query "
                             "latent (q_lora_rank) and needs index_n_heads")
        if self.ffn_layers is not None and (self.is_moe or self.ffn_layers > self.num_layers):
            raise ValueError("ffn_layers is for dense models and at most num_layers")
        if self.linear_layers and self.attention == "mla":
            raise ValueError("linear attention layers are modelled next to GQA layers only")
        for d in (self.weight_dtype, self.kv_dtype, self.linear_state_dtype,
                  self.expert_dtype or "bf16"):
            if d not in DTYPE_BYTES:
                raise ValueError(f"unknown dtype {d!r}; choose one of {sorted(DTYPE_BYTES)}")
        return self

    # ---- derived sizes -------------------------------------------------
    @property
    def hd(self) -> int:
        """Head dimension of Q/K/V for GQA attention."""
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def experts_dtype(self) -> str:
        """The routed experts' weight format."""
        return self.expert_dtype or self.weight_dtype

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def num_dense_ffn_layers(self) -> int:
        """Layers with a dense feed-forward block."""
        if self.is_moe:
            return self.first_dense_layers
        return self.num_layers if self.ffn_layers is None else self.ffn_layers

    def mixers(self, tp: int = 1) -> list[Mixer]:
        """The model's layer groups by attention kind (``frontier_core.model.attention``)."""
        from frontier_core.model.attention import mixers

        return mixers(self, tp)

    def attention_params(self) -> int:
        """Parameters of one attention block, its input norm included (the mean over the
        layers when they are of several kinds)."""
        groups = self.mixers()
        return sum(g.params() * g.layers for g in groups) // self.num_layers

    def _attention_params_total(self) -> int:
        return sum(g.params() * g.layers for g in self.mixers())

    def mlp_params(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    def ffn_params(self, layer: int) -> int:
        """Parameters of one feed-forward block (all experts), its norm included."""
        h = self.hidden_size
        if self.ffn_layers is not None and layer >= self.ffn_layers:
            return 0  # a layer without a feed-forward block
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
        ffn = sum(self.ffn_params(i) for i in range(self.num_layers))
        return emb + self._attention_params_total() + ffn + self.hidden_size

    def active_param_count(self) -> int:
        """Parameters touched per token (routed experts counted top_k times)."""
        if not self.is_moe:
            return self.param_count()
        idle = (self.num_experts - self.top_k) * self.mlp_params(self.moe_intermediate_size)
        return self.param_count() - idle * self.num_moe_layers

    def _routed_params(self) -> int:
        return self.num_experts * self.mlp_params(self.moe_intermediate_size) * self.num_moe_layers

    def _bytes(self, params: int) -> float:
        """Bytes of ``params`` parameters that include every routed expert: those in the
        experts' format, the rest in ``weight_dtype``."""
        routed = self._routed_params()
        return ((params - routed) * DTYPE_BYTES[self.weight_dtype]
                + routed * DTYPE_BYTES[self.experts_dtype])

    def weight_bytes(self) -> float:
        return self._bytes(self.param_count())

    def ffn_bytes(self) -> float:
        """Bytes of every layer's feed-forward block (experts, gates and norms included)."""
        return self._bytes(sum(self.ffn_params(i) for i in range(self.num_layers)))

    def routed_expert_bytes(self) -> float:
        """Bytes of the routed experts of all MoE layers (the part expert parallelism
        splits; shared experts, gates and everything else are excluded)."""
        return self._routed_params() * DTYPE_BYTES[self.experts_dtype]

    def kv_bytes_per_token(self, tp: int = 1) -> float:
        """KV-cache bytes per context token per GPU for all layers, with tensor
        parallelism ``tp``: what grows with the sequence (``seq_bytes`` is the rest).

        GQA splits KV heads over TP ranks (replicating when there are fewer heads
        than ranks); MLA's compressed latent is replicated on every rank.
        """
        return sum(g.kv_bytes_per_token() * g.layers for g in self.mixers(tp))

    def seq_bytes(self, tp: int = 1) -> float:
        """Cache bytes per sequence per GPU that do not grow with its length: the
        recurrent state of linear-attention layers and the KV of sliding-window layers
        (bounded by the window)."""
        return sum(g.seq_bytes() * g.layers for g in self.mixers(tp))


class HardwareSpec(BaseModel):
    """One GPU kind, from its datasheet. Bandwidths are per GPU and per direction."""

    # allow_inf_nan=False: a user's GPU with .nan or .inf figures would run and print
    # plausible-looking latencies.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    description: str = ""
    flops: dict[str, Annotated[float, Field(gt=0)]] = Field(
        description="dense FLOP/s by dtype (bf16, fp16, fp8)")
    mem_bytes: float = Field(gt=0, description="HBM capacity")
    mem_bw: float = Field(gt=0, description="HBM bandwidth")
    nvlink_bw: float = Field(gt=0, description="NVLink bandwidth per GPU per direction")
    nvlink_latency: float = Field(3e-6, ge=0)
    nvlink_switched: bool = Field(
        True, description="the node's GPUs reach each other through NVSwitch, one hop each "
        "(HGX/DGX); false for a ring of point-to-point links or bridges")
    mesh_links: int = Field(
        0, ge=0, description="point-to-point links per GPU when the node's GPUs form a full "
        "mesh (AMD Infinity Fabric: 7, nvlink_bw being their sum); 0: a switch or a ring")
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

    def intra_link(self) -> Link:
        """The link between GPUs of one NVLink (or Infinity Fabric) domain."""
        return Link(self.nvlink_bw, self.nvlink_latency, self.nvlink_switched,
                    self.mesh_links)

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


def _hf_weight_format(qc: dict | None, where: str) -> str | None:
    """The weight format a ``quantization_config`` names (None: unquantised)."""
    if not qc:
        return None
    method = str(qc.get("quant_method", "")).lower()
    if method == "fp8":
        return "fp8_block" if qc.get("weight_block_size") else "fp8"
    if method == "mxfp4":
        return "mxfp4"
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin") and qc.get("bits", 4) == 4:
        return "int4"
    if method == "modelopt":
        algo = str(qc.get("quant_algo", "")).upper()
        if algo in ("NVFP4", "FP8"):
            return algo.lower()
    if method == "compressed-tensors":
        groups = qc.get("config_groups") or {}
        bits = {(g.get("weights") or {}).get("num_bits") for g in groups.values()}
        types = {(g.get("weights") or {}).get("type") for g in groups.values()}
        if bits == {4} and types <= {"int", None}:
            return "int4"
        if bits == {8} and types == {"float"}:
            return "fp8"
    raise ConfigError(
        f"Hugging Face config {where!r} has a quantization_config Frontier cannot price "
        f"(quant_method {method!r}). Frontier prices fp8 (per-tensor or block-scaled), nvfp4, "
        "mxfp4 and int4 weight-only checkpoints; set model.weight_dtype in a model entry of "
        "your own instead.")


def model_from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (a file or a folder holding one) from disk.

    Understands the Llama/Qwen2/Qwen3/Mistral/Mixtral/Qwen3-MoE/DeepSeek-V3/Kimi-K2 field
    names, gpt-oss's and Qwen3.5's ``layer_types`` (sliding-window and linear attention),
    Qwen3-Next's ``full_attention_interval``, a multimodal checkpoint's ``text_config`` and
    the weight format of its ``quantization_config``. The attention kinds read their own
    fields (``frontier_core.model.attention.hf_fields``); a field of a kind Frontier does not
    model (``attention.HF_UNMODELLED``, an unknown ``layer_types`` entry) is an error, not
    a silent default. No hub access: the file must already be local.
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
    where = str(p)
    qc = cfg.get("quantization_config")
    if "num_hidden_layers" not in cfg and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "quantization_config": qc}  # a multimodal checkpoint
    from frontier_core.model.attention import hf_fields, hf_layout

    cfg = hf_layout(cfg, where)
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
            # An all-MoE model's config may give only the experts' width.
            intermediate_size=g("intermediate_size") or g("moe_intermediate_size"),
            vocab_size=g("vocab_size"),
            max_context=g("max_position_embeddings") or 4096,
            tie_embeddings=bool(g("tie_word_embeddings", False)),
        )
        mt = (g("model_type") or "").lower()
        if "gated_mlp" in cfg:  # a block layout's MLP (Nemotron-H: squared ReLU)
            fields["gated_mlp"] = cfg["gated_mlp"]
        fields.update(hf_fields(cfg, fields["num_layers"], where))
        experts = g("n_routed_experts") or g("num_local_experts") or g("num_experts") or 0
        if experts:
            width = g("moe_intermediate_size") or g("intermediate_size")
            shared = g("n_shared_experts") or 0
            if not shared and g("shared_expert_intermediate_size"):
                # One wide shared expert (Qwen-MoE), counted in routed-expert widths.
                shared = max(1, round(g("shared_expert_intermediate_size") / width))
            fields.update(
                num_experts=experts,
                top_k=g("num_experts_per_tok") or g("experts_per_token"),
                moe_intermediate_size=width,
                num_shared_experts=shared,
                first_dense_layers=g("first_k_dense_replace") or 0,
                n_group=g("n_group") or 1,
                topk_group=(g("topk_group") or 1) if (g("n_group") or 1) > 1 else 1,
                # A routing bias: DeepSeek-V3's aux-loss-free balancing (topk_method
                # noaux_tc, its e_score_correction_bias), gpt-oss's router bias.
                router_bias=(mt.startswith(("deepseek_v3", "gpt_oss"))
                             or g("topk_method") == "noaux_tc" or bool(g("use_routing_bias"))),
            )
        fmt = _hf_weight_format(qc, where)
        if fmt:
            # A checkpoint that leaves attention unquantised (gpt-oss's
            # modules_to_not_convert, Kimi's compressed-tensors ignore list) quantises
            # the routed experts only.
            skipped = " ".join(map(str, (qc or {}).get("modules_to_not_convert") or
                                   (qc or {}).get("ignore") or []))
            if experts and "attn" in skipped:
                fields["expert_dtype"] = fmt
            else:
                fields["weight_dtype"] = fmt
        return ModelSpec(**fields)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        msg = str(e).splitlines()
        raise ConfigError(
            f"Hugging Face config {str(p)!r} cannot be read as a decoder model: "
            f"{'; '.join(m.strip() for m in msg[:4])}. It needs num_hidden_layers, hidden_size, "
            "num_attention_heads, intermediate_size and vocab_size."
        ) from None

