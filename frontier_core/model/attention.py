"""Token mixers: the kinds of attention layer a model is built from.

A model is one or more groups of layers, each group of one kind (``ModelSpec.mixers``):
GQA attention over the whole context, GQA over a sliding window (gpt-oss), multi-head
latent attention (DeepSeek-V3 family), MLA with DeepSeek sparse attention (DeepSeek-V3.2,
GLM-5), Gated DeltaNet linear attention (Qwen3.5, Qwen3-Next) and Mamba-2 (Nemotron-H).
One class a kind says, for one layer of that kind under tensor parallelism ``tp``:

- its parameters (``params``);
- the cache it keeps per GPU: bytes per context token that grow with the sequence
  (``kv_bytes_per_token``) and bytes per sequence that do not (``seq_bytes``: a
  recurrent state, or the KV of a bounded window);
- its weight GEMMs and elementwise work at ``t`` tokens (``projections``);
- the operator calls that mix tokens for a batch (``calls``);
- the ModelSpec fields it reads from a Hugging Face config (``hf_fields``).

The model spec (sizes), the execution predictor (calls), the memory plan and the pd
transfer (cache bytes), the profiler (GEMM shapes) and ``model_from_hf_config`` all ask
these classes, so a new kind is one class here and one branch in ``mixers``. Units:
bytes, tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core.errors import ConfigError
from frontier_core.records import OpCall

if TYPE_CHECKING:
    from frontier_core.model.catalog import ModelSpec

_ACT = 2  # activations are bf16
_ones_cache = np.ones(256, np.int64)
_ones_cache.flags.writeable = False


def _ones(n: int) -> np.ndarray:
    """A shared read-only array of ``n`` ones (the q_lens of plain decodes)."""
    global _ones_cache
    if len(_ones_cache) < n:
        _ones_cache = np.ones(2 * n, np.int64)
        _ones_cache.flags.writeable = False
    return _ones_cache[:n]


class Mixer:
    """One group of ``layers`` layers of one kind, as one GPU of a TP group of ``tp``
    runs it."""

    kind = ""

    def __init__(self, model: ModelSpec, layers: int, tp: int = 1) -> None:
        from frontier_core.model.dtypes import DTYPE_BYTES

        self.model = model
        self.layers = layers
        self.tp = tp
        self.kv_elem = DTYPE_BYTES[model.kv_dtype]

    def params(self) -> int:
        """Parameters of one layer's mixer, its input norm included (whole, not per GPU)."""
        raise NotImplementedError

    def kv_bytes_per_token(self) -> float:
        """Cache bytes per context token of one layer on one GPU."""
        return 0.0

    def seq_bytes(self) -> float:
        """Cache bytes per sequence of one layer on one GPU that do not grow with it."""
        return 0.0

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        """The layer's weight GEMMs (and gates) at ``t`` tokens, GEMMs in ``dtype``."""
        raise NotImplementedError

    def calls(self, q: np.ndarray | None, kvp: np.ndarray | None, kvd: np.ndarray | None,
              wd: np.ndarray | None) -> list[OpCall]:
        """The token-mixing calls of one layer for a batch: prefills compute ``q`` tokens
        with ``kvp`` context (including them); decodes have ``kvd`` context and compute
        ``wd`` tokens each (None: one; more when verifying drafts)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.layers} {self.kind}"

    @staticmethod
    def hf_fields(cfg: dict[str, Any]) -> dict[str, Any]:
        """ModelSpec fields of this kind read from a Hugging Face config."""
        return {}


class Attention(Mixer):
    """Grouped-query attention (MHA when kv heads = heads), over the whole context or,
    with ``window``, over the last ``window`` tokens (gpt-oss's banded layers; the
    engines' hybrid allocators free the KV that leaves the window). With the model's
    ``attn_output_gate`` (Qwen3.5, Qwen3-Next) the query projection also yields a
    sigmoid gate applied to the attention output.

    TP splits the heads; KV heads are replicated when there are fewer than ranks.
    """

    kind = "gqa"

    def __init__(self, model: ModelSpec, layers: int, tp: int = 1, window: int = 0) -> None:
        super().__init__(model, layers, tp)
        self.window = window
        if window:
            self.kind = "swa"
        self.heads = max(1, model.num_heads // tp)
        self.kv_heads = max(1, math.ceil(model.num_kv_heads / tp))
        self.head_dim = model.hd
        self.gate = model.attn_output_gate
        self.dec_kv_heads, self.dec_head_dim = self.kv_heads, self.head_dim
        self.prefill_kv = self.decode_kv = {"kv_planes": 2, "kv_bytes": self.kv_elem}
        if window:
            self.prefill_kv = {**self.prefill_kv, "window": window}
            self.decode_kv = {**self.decode_kv, "window": window}

    def params(self) -> int:
        m, h, hd = self.model, self.model.hidden_size, self.model.hd
        q = h * m.num_heads * hd * (2 if self.gate else 1)
        kv = 2 * h * m.num_kv_heads * hd
        o = m.num_heads * hd * h
        bias = (m.num_heads + 2 * m.num_kv_heads) * hd if m.qkv_bias else 0
        norm = 2 * hd if m.qk_norm else 0
        return q + kv + o + bias + norm + h

    def kv_bytes_per_token(self) -> float:
        return 0.0 if self.window else 2 * self.kv_heads * self.head_dim * self.kv_elem

    def seq_bytes(self) -> float:
        # A windowed layer holds at most ``window`` tokens of each sequence.
        return 2 * self.window * self.kv_heads * self.head_dim * self.kv_elem

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        h, hd = self.model.hidden_size, self.head_dim
        q_heads = self.heads * (2 if self.gate else 1)
        ops = [OpCall("gemm", "qkv_proj", dtype, t, (q_heads + 2 * self.kv_heads) * hd, h),
               OpCall("gemm", "o_proj", dtype, t, h, self.heads * hd)]
        if self.gate:
            width = self.heads * hd  # sigmoid of the gate times the output: 3 passes
            ops.append(OpCall("elementwise", "attn_output_gate", "bf16", m=t,
                              bytes=3 * t * width * _ACT, flops=5.0 * t * width))
        return ops

    def calls(self, q: np.ndarray | None, kvp: np.ndarray | None, kvd: np.ndarray | None,
              wd: np.ndarray | None) -> list[OpCall]:
        """Decodes that verify drafts (``wd`` > 1 tokens) run as a varlen prefill over
        their ``wd`` query tokens, as vLLM's FlashAttention path does."""
        out = []
        if q is not None and len(q):
            out.append(OpCall("attention_prefill", "attention", "bf16", num_heads=self.heads,
                              num_kv_heads=self.kv_heads, head_dim=self.head_dim, q_lens=q,
                              kv_lens=kvp, extra=self.prefill_kv))
        if kvd is not None and len(kvd) and wd is not None and int(wd.max()) > 1:
            verify = wd > 1
            out.extend(self._verify(kvd, wd, verify))
            kvd = kvd[~verify]
        if kvd is not None and len(kvd):
            out.append(OpCall("attention_decode", "attention", "bf16", num_heads=self.heads,
                              num_kv_heads=self.dec_kv_heads, head_dim=self.dec_head_dim,
                              q_lens=_ones(len(kvd)), kv_lens=kvd, extra=self.decode_kv))
        return out

    def _verify(self, kvd: np.ndarray, wd: np.ndarray, verify: np.ndarray) -> list[OpCall]:
        return [OpCall("attention_prefill", "attention_verify", "bf16", num_heads=self.heads,
                       num_kv_heads=self.kv_heads, head_dim=self.head_dim,
                       q_lens=wd[verify], kv_lens=kvd[verify], extra=self.decode_kv)]

    @staticmethod
    def hf_fields(cfg: dict[str, Any]) -> dict[str, Any]:
        g = cfg.get
        mt = (g("model_type") or "").lower()
        out: dict[str, Any] = {}
        if mt in ("qwen2", "qwen2_moe") or g("attention_bias"):
            out["qkv_bias"] = True
        if mt.startswith(("qwen3", "qwen3_next", "qwen3_5")) or g("use_qk_norm"):
            out["qk_norm"] = True  # Qwen3's per-head norms; MiniMax-M2's use_qk_norm
        if mt.startswith(("qwen3_next", "qwen3_5")):
            out["attn_output_gate"] = bool(g("attn_output_gate", True))
        if g("sliding_window") and "sliding_attention" in (g("layer_types") or ()):
            out["sliding_window"] = g("sliding_window")
        return out

    def describe(self) -> str:
        if self.window:
            return f"{self.layers} on a {self.window}-token window"
        return f"{self.layers} {'gated ' if self.gate else ''}{self.kind}"


class LatentAttention(Attention):
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): keys and values cached as
    one compressed latent (``kv_lora_rank`` + rope dims per token, replicated on every
    TP rank). Prefill decompresses per-head keys and values in bf16; decode runs
    absorbed (FlashMLA and the like): every query head attends to the one shared latent,
    read once per token as both keys and values, in the KV dtype."""

    kind = "mla"

    def __init__(self, model: ModelSpec, layers: int, tp: int = 1) -> None:
        super().__init__(model, layers, tp)
        m = model
        self.kv_heads = self.heads
        self.head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        self.dec_kv_heads = 1
        self.dec_head_dim = m.kv_lora_rank + m.qk_rope_head_dim
        self.prefill_kv = {"kv_planes": 2, "kv_bytes": float(_ACT)}
        self.decode_kv = {"kv_planes": 1, "kv_bytes": self.kv_elem}

    def params(self) -> int:
        m, h = self.model, self.model.hidden_size
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.num_heads * qk
        else:
            q = h * m.num_heads * qk
        kv = (h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
              + m.kv_lora_rank * m.num_heads * (m.qk_nope_head_dim + m.v_head_dim))
        o = m.num_heads * m.v_head_dim * h
        return q + kv + o + h

    def kv_bytes_per_token(self) -> float:
        return (self.model.kv_lora_rank + self.model.qk_rope_head_dim) * self.kv_elem

    def seq_bytes(self) -> float:
        return 0.0

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        m, h, heads = self.model, self.model.hidden_size, self.heads
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        ops = []
        if m.q_lora_rank:
            ops.append(OpCall("gemm", "q_a_proj", dtype, t, m.q_lora_rank, h))
            ops.append(OpCall("gemm", "q_b_proj", dtype, t, heads * qk, m.q_lora_rank))
        else:
            ops.append(OpCall("gemm", "q_proj", dtype, t, heads * qk, h))
        ops.append(OpCall("gemm", "kv_a_proj", dtype, t, m.kv_lora_rank + m.qk_rope_head_dim, h))
        ops.append(OpCall("gemm", "kv_b_proj", dtype, t,
                          heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank))
        ops.append(OpCall("gemm", "o_proj", dtype, t, h, heads * m.v_head_dim))
        return ops

    def _verify(self, kvd: np.ndarray, wd: np.ndarray, verify: np.ndarray) -> list[OpCall]:
        # Verifying decodes stay absorbed: the kernel folds the query tokens into the
        # heads (FlashMLA's ``s_q``), priced as decodes with ``wd`` times the heads.
        out = []
        for w in np.unique(wd[verify]).tolist():
            sel = wd == w
            out.append(OpCall("attention_decode", "attention_verify", "bf16",
                              num_heads=self.heads * w, num_kv_heads=self.dec_kv_heads,
                              head_dim=self.dec_head_dim, q_lens=_ones(int(sel.sum())),
                              kv_lens=kvd[sel], extra=self.decode_kv))
        return out

    def describe(self) -> str:
        return f"{self.layers} mla"

    @staticmethod
    def hf_fields(cfg: dict[str, Any]) -> dict[str, Any]:
        g = cfg.get
        if not g("kv_lora_rank"):
            return {}
        return {"attention": "mla", "q_lora_rank": g("q_lora_rank") or 0,
                "kv_lora_rank": g("kv_lora_rank"), "qk_nope_head_dim": g("qk_nope_head_dim"),
                "qk_rope_head_dim": g("qk_rope_head_dim"), "v_head_dim": g("v_head_dim"),
                "num_kv_heads": g("num_attention_heads")}


class SparseLatentAttention(LatentAttention):
    """DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): MLA whose every query attends to
    the ``index_topk`` context tokens a lightning indexer selects.

    The indexer (``index_n_heads`` heads of ``index_head_dim``; ``wq_b`` from the query
    latent, ``wk`` and ``weights_proj`` from the hidden state, replicated on every TP rank
    as vLLM's and SGLang's ``Indexer`` keep them) scores every context token in fp8 and
    caches one fp8 key per token with an fp32 scale per 128 values. The attention then
    runs absorbed over the selected latents, prefill and decode alike (FlashMLA's sparse
    kernels): the (query, key) pairs and, for a decode, the latent rows read are those of
    a window of ``index_topk`` keys, which is how its calls say it (``extra["window"]``).
    """

    kind = "dsa"

    def __init__(self, model: ModelSpec, layers: int, tp: int = 1) -> None:
        super().__init__(model, layers, tp)
        m = model
        self.topk = m.index_topk
        # Prefill runs absorbed too: its calls have decode's shape.
        self.kv_heads, self.head_dim = self.dec_kv_heads, self.dec_head_dim
        self.prefill_kv = self.decode_kv = {"kv_planes": 1, "kv_bytes": self.kv_elem,
                                            "window": self.topk}
        self.index_bytes = m.index_head_dim + 4 * math.ceil(m.index_head_dim / 128)
        self.index_extra = {"kv_bytes": self.index_bytes}

    def params(self) -> int:
        m, h, d = self.model, self.model.hidden_size, self.model.index_head_dim
        indexer = m.q_lora_rank * m.index_n_heads * d + h * d + 2 * d + h * m.index_n_heads
        return super().params() + indexer

    def kv_bytes_per_token(self) -> float:
        return super().kv_bytes_per_token() + self.index_bytes

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        m, h, d = self.model, self.model.hidden_size, self.model.index_head_dim
        return super().projections(t, dtype) + [
            OpCall("gemm", "indexer_wq_b", dtype, t, m.index_n_heads * d, m.q_lora_rank),
            OpCall("gemm", "indexer_wk_weights", "bf16", t, d + m.index_n_heads, h),
        ]

    def calls(self, q: np.ndarray | None, kvp: np.ndarray | None, kvd: np.ndarray | None,
              wd: np.ndarray | None) -> list[OpCall]:
        out = []
        if q is not None and len(q):
            out.append(self._indexer(q, kvp))
            out.append(OpCall("attention_prefill", "attention", "bf16", num_heads=self.heads,
                              num_kv_heads=self.kv_heads, head_dim=self.head_dim, q_lens=q,
                              kv_lens=kvp, extra=self.prefill_kv))
        if kvd is not None and len(kvd):
            out.append(self._indexer(_ones(len(kvd)) if wd is None else wd, kvd))
            out.extend(super().calls(None, None, kvd, wd))
        return out

    def _indexer(self, q: np.ndarray, kv: np.ndarray) -> OpCall:
        """The lightning indexer's scoring of all ``kv`` context tokens for ``q`` queries."""
        m = self.model
        return OpCall("attention_index", "indexer", "fp8", num_heads=m.index_n_heads,
                      num_kv_heads=1, head_dim=m.index_head_dim, q_lens=q, kv_lens=kv,
                      extra=self.index_extra)

    def describe(self) -> str:
        return f"{self.layers} dsa (top {self.topk})"

    @staticmethod
    def hf_fields(cfg: dict[str, Any]) -> dict[str, Any]:
        g = cfg.get
        if not (g("kv_lora_rank") and g("index_topk")):
            return {}
        return {"index_topk": g("index_topk"), "index_n_heads": g("index_n_heads") or 0,
                "index_head_dim": g("index_head_dim") or 128}


class GatedDeltaNet(Mixer):
    """Gated DeltaNet linear attention (Yang, Kautz and Hatamizadeh, "Gated Delta
    Networks", ICLR 2025), the linear layers of Qwen3-Next and Qwen3.5.

    Per layer: ``in_proj_qkvz`` (queries and keys of ``linear_num_key_heads`` heads,
    values and output gates of ``linear_num_value_heads`` heads), ``in_proj_ba`` (decay
    and write strength per value head), a causal depthwise convolution of
    ``linear_conv_kernel`` taps over q, k and v, the delta-rule recurrence, a gated
    RMSNorm and ``out_proj`` (Hugging Face ``Qwen3NextGatedDeltaNet``).

    Instead of a KV cache each sequence keeps, per value head, a ``key_dim`` × ``value_dim``
    state in ``linear_state_dtype`` (SGLang's ``--mamba-ssm-dtype``, fp32 by default)
    and the last ``kernel - 1`` convolution inputs: fixed bytes, whatever the length.
    TP splits the heads. Its calls are ``linear_attention`` (see ``records.OpCall``):
    prefills run the chunked form, decodes one recurrent step.
    """

    kind = "gdn"
    #: flash-linear-attention's chunk length for Gated DeltaNet (BT = 64)
    chunk = 64

    def __init__(self, model: ModelSpec, layers: int, tp: int = 1) -> None:
        from frontier_core.model.dtypes import DTYPE_BYTES

        super().__init__(model, layers, tp)
        m = model
        self.k_heads = max(1, math.ceil(m.linear_num_key_heads / tp))
        self.v_heads = max(1, math.ceil(m.linear_num_value_heads / tp))
        self.dk, self.dv = m.linear_key_head_dim, m.linear_value_head_dim
        self.conv_dim = 2 * self.k_heads * self.dk + self.v_heads * self.dv
        self.state_elem = DTYPE_BYTES[m.linear_state_dtype]
        self.extra = {"v_head_dim": self.dv, "state_bytes": self.state_elem,
                      "chunk": m.linear_chunk or self.chunk}

    def params(self) -> int:
        m, h = self.model, self.model.hidden_size
        key = m.linear_num_key_heads * m.linear_key_head_dim
        value = m.linear_num_value_heads * m.linear_value_head_dim
        qkvz = h * (2 * key + 2 * value)
        ba = h * 2 * m.linear_num_value_heads
        conv = (2 * key + value) * m.linear_conv_kernel
        per_head = 2 * m.linear_num_value_heads  # dt_bias and A_log
        out = value * h
        return qkvz + ba + conv + per_head + m.linear_value_head_dim + out + h

    def seq_bytes(self) -> float:
        state = self.v_heads * self.dk * self.dv * self.state_elem
        conv = (self.model.linear_conv_kernel - 1) * self.conv_dim * _ACT
        return state + conv

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        h = self.model.hidden_size
        value = self.v_heads * self.dv
        kernel = self.model.linear_conv_kernel
        return [
            OpCall("gemm", "in_proj_qkvz", dtype, t, 2 * self.k_heads * self.dk + 2 * value, h),
            OpCall("gemm", "in_proj_ba", dtype, t, 2 * self.v_heads, h),
            # The convolution reads and writes its channels; the gated norm reads the
            # output and its gate and writes the result.
            OpCall("elementwise", "conv1d_gated_norm", "bf16", m=t,
                   bytes=(2 * self.conv_dim + 3 * value) * t * _ACT,
                   flops=(2.0 * kernel * self.conv_dim + 8.0 * value) * t),
            OpCall("gemm", "out_proj", dtype, t, h, value),
        ]

    def calls(self, q: np.ndarray | None, kvp: np.ndarray | None, kvd: np.ndarray | None,
              wd: np.ndarray | None) -> list[OpCall]:
        out = []
        if q is not None and len(q):
            out.append(self._call("linear_prefill", q))
        if kvd is not None and len(kvd):
            out.append(self._call("linear_decode", _ones(len(kvd)) if wd is None else wd))
        return out

    def _call(self, name: str, tokens: np.ndarray) -> OpCall:
        return OpCall("linear_attention", name, "bf16", num_heads=self.v_heads,
                      num_kv_heads=self.k_heads, head_dim=self.dk, q_lens=tokens,
                      extra=self.extra)

    def describe(self) -> str:
        return f"{self.layers} {self.kind}"

    @staticmethod
    def hf_fields(cfg: dict[str, Any]) -> dict[str, Any]:
        g = cfg.get
        if not g("linear_num_value_heads"):
            return {}
        return {"linear_num_key_heads": g("linear_num_key_heads"),
                "linear_num_value_heads": g("linear_num_value_heads"),
                "linear_key_head_dim": g("linear_key_head_dim") or 128,
                "linear_value_head_dim": g("linear_value_head_dim") or 128,
                "linear_conv_kernel": g("linear_conv_kernel_dim") or 4}


class Mamba2(GatedDeltaNet):
    """Mamba-2 (Dao and Gu, "Transformers are SSMs", ICML 2024), the SSM layers of
    Nemotron-H. Its shapes are Gated DeltaNet's under other names: ``in_proj`` yields x
    and the gate z (``linear_num_value_heads`` heads of ``linear_value_head_dim``), B and
    C (``linear_num_key_heads`` groups of ``linear_key_head_dim``, the state size) and
    one dt per head; a causal convolution runs over x, B and C; each head keeps a
    head_dim × state-size state; a gated RMSNorm over the heads precedes ``out_proj``.
    The chunked scan (SSD) is priced as Gated DeltaNet's, with the model's chunk length
    (mamba_ssm's default 256 when the config gives none)."""

    kind = "mamba2"
    chunk = 256

    def params(self) -> int:
        m, h = self.model, self.model.hidden_size
        inner = m.linear_num_value_heads * m.linear_value_head_dim
        bc = 2 * m.linear_num_key_heads * m.linear_key_head_dim
        in_proj = h * (2 * inner + bc + m.linear_num_value_heads)
        conv = (inner + bc) * m.linear_conv_kernel
        per_head = 3 * m.linear_num_value_heads  # dt_bias, A_log, D
        return in_proj + conv + per_head + inner + inner * h + h

    def projections(self, t: int, dtype: str) -> list[OpCall]:
        h = self.model.hidden_size
        inner = self.v_heads * self.dv
        kernel = self.model.linear_conv_kernel
        return [
            OpCall("gemm", "in_proj", dtype, t,
                   2 * inner + 2 * self.k_heads * self.dk + self.v_heads, h),
            OpCall("elementwise", "conv1d_gated_norm", "bf16", m=t,
                   bytes=(2 * self.conv_dim + 3 * inner) * t * _ACT,
                   flops=(2.0 * kernel * self.conv_dim + 8.0 * inner) * t),
            OpCall("gemm", "out_proj", dtype, t, h, inner),
        ]

    @staticmethod
    def from_pattern(cfg: dict[str, Any], pattern: str, where: str) -> dict[str, Any]:
        """Nemotron-H's blocks (``hybrid_override_pattern``: M Mamba-2, * attention, - MLP)
        as Frontier's layers, one per mixer block, ``ffn_layers`` of them with an MLP; the
        Mamba fields under the linear layers' names."""
        unknown = sorted(set(pattern) - set("M*-"))
        if unknown:
            raise ConfigError(
                f"Hugging Face config {where!r} has hybrid_override_pattern blocks {unknown} "
                "that Frontier does not model (it knows M: Mamba-2, *: attention, -: MLP; "
                "Nemotron-H's MoE blocks E are not modelled). Describe the model with a "
                "catalog entry of your own.")
        g = cfg.get
        return {
            "num_hidden_layers": pattern.count("M") + pattern.count("*"),
            "linear_layers": pattern.count("M"), "ffn_layers": pattern.count("-"),
            "linear_kind": "mamba2", "linear_num_value_heads": g("mamba_num_heads"),
            "linear_value_head_dim": g("mamba_head_dim"), "linear_num_key_heads": g("n_groups"),
            "linear_key_head_dim": g("ssm_state_size"),
            "linear_conv_kernel_dim": g("conv_kernel") or 4,
            "linear_chunk": g("chunk_size") or 0,
            "head_dim": g("head_dim") or g("attention_head_dim"),
            "gated_mlp": g("mlp_hidden_act", "relu2") != "relu2",
            "mamba_num_heads": None,  # read: not an unmodelled Mamba field any more
        }


def mixers(model: ModelSpec, tp: int = 1) -> list[Mixer]:
    """The model's layer groups, largest kinds first as the model lists them: full
    attention, then windowed attention, then linear attention."""
    m = model
    if m.attention == "mla":
        if m.index_topk:
            return [SparseLatentAttention(m, m.num_layers, tp)]
        return [LatentAttention(m, m.num_layers, tp)]
    full = m.num_layers - m.window_layers - m.linear_layers
    out: list[Mixer] = [Attention(m, full, tp)]
    if m.window_layers:
        out.append(Attention(m, m.window_layers, tp, window=m.sliding_window))
    if m.linear_layers:
        kind = Mamba2 if m.linear_kind == "mamba2" else GatedDeltaNet
        out.append(kind(m, m.linear_layers, tp))
    return out



# ---- Hugging Face config.json ------------------------------------------------------

#: ``layer_types`` entries -> the ModelSpec field that counts them (None: full attention,
#: the rest of the layers).
HF_LAYER_TYPES = {"full_attention": None, "sliding_attention": "window_layers",
                  "linear_attention": "linear_layers"}
#: Fields of attention kinds Frontier does not model: a config carrying one would be
#: priced as something else, so it is refused.
HF_UNMODELLED = {
    "mamba_num_heads": "Mamba layers outside a Nemotron-H block pattern",
    "attn_layer_period": "Jamba's Mamba layers",
    "sparse_attention_config": "MiniMax's block-sparse attention",
}
_KINDS = (Attention, LatentAttention, SparseLatentAttention, GatedDeltaNet)


def hf_layout(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """A config with a block layout (Nemotron-H's pattern) rewritten as Frontier's layers;
    an error for a field of a kind Frontier does not model."""
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str):
        cfg = {**cfg, **Mamba2.from_pattern(cfg, pattern, where)}
    for key, what in HF_UNMODELLED.items():
        if cfg.get(key) is not None:
            raise ConfigError(
                f"Hugging Face config {where!r} has {key!r}: {what}, which Frontier does not "
                "model; it would be priced as plain attention. Describe the model with a "
                "catalog entry of your own, or use a model Frontier knows (frontier models).")
    return cfg


def hf_fields(cfg: dict[str, Any], num_layers: int, where: str) -> dict[str, Any]:
    """ModelSpec fields for a config's attention kinds and how many layers each has:
    ``layer_types`` (gpt-oss, Qwen3.5), Qwen3-Next's ``full_attention_interval``, a block
    layout's counts (``hf_layout``), then each kind's own fields."""
    g = cfg.get
    out: dict[str, Any] = {}
    types = g("layer_types")
    if types:
        unknown = sorted({t for t in types if t not in HF_LAYER_TYPES})
        if unknown:
            raise ConfigError(
                f"Hugging Face config {where!r} has layer_types {unknown} that Frontier does "
                f"not model (it knows {', '.join(HF_LAYER_TYPES)}); they would be priced as "
                "full attention. Describe the model with a catalog entry of your own.")
        for t, field in HF_LAYER_TYPES.items():
            if field and types.count(t):
                out[field] = types.count(t)
    elif g("linear_kind") == "mamba2":
        out.update({k: g(k) for k in ("linear_layers", "linear_kind", "ffn_layers",
                                      "linear_chunk")})
    elif g("full_attention_interval") and g("linear_num_value_heads"):
        out["linear_layers"] = num_layers - num_layers // g("full_attention_interval")
    for kind in _KINDS:
        out.update(kind.hf_fields(cfg))
    if not out.get("linear_layers"):
        out = {k: v for k, v in out.items() if not k.startswith("linear_")}
    return out
