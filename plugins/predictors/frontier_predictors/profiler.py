"""`frontier profile`: time real kernels with torch and write profile tables.

For one model at one parallel layout, ``run_profile`` measures on the local
device the operator calls the simulator asks about and writes one table per
family (docs/profiles.md): ``gemm.csv``, ``attention_prefill.csv``,
``attention_decode.csv`` and, for a mixture-of-experts model, ``moe_experts.csv``.

- GEMMs: y = x·Wᵀ (``F.linear``) for every weight shape the simulator's
  execution model (``frontier_core.execution.predictor``) prices — QKV/O or the MLA
  projections, the dense MLP, the LM head — plus a MoE model's router and
  shared experts, over a grid of token counts m.
- Attention: heterogeneous batches whose lengths are drawn (seeded) from a
  uniform, a skewed (log-normal: most short, a few long) and a bimodal (80%
  short, 20% long) distribution; prefill of whole prompts (kv = q), chunked
  prefill over a cached prefix (kv > q, query i sees keys 0..kv-q+i), and
  decode (q = 1). Paths, padding-free on both devices:
  CUDA — ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention-2 over
  packed q/k/v with cumulative offsets; causal is bottom-right aligned), after
  a probe on a tiny batch checks it against an explicitly masked reference; if
  the probe fails (no flash kernel for this GPU or dtype) the CUDA fallback is
  the CPU path. CPU — a loop of ``F.scaled_dot_product_attention`` over the
  sequences (``is_causal`` for whole prompts, ``causal_lower_right`` for
  chunks, no mask for decode; GQA through ``enable_gqa``): torch 2.13 has no
  varlen kernel on CPU, and nested-jagged SDPA there supports neither causal
  masks nor GQA. The loop adds each call's fixed cost (dispatch, and a kernel
  launch on CUDA) per sequence to the measured time. MLA models are timed as
  the simulator describes their attention: heads = kv_heads per GPU, head_dim
  = qk_nope + qk_rope for q, k and v. The column ``impl`` of every row says
  which path measured it.
- MoE experts: the local experts of one expert-parallel rank, gate+up GEMM,
  SiLU·up, down GEMM, for tokens routed ``balanced`` or ``power_law:<alpha>``
  (alpha 1.01 and 1.2: expert popularity ∝ rank^-alpha over a seeded random
  order, each token picks top_k distinct experts by that popularity). The
  timed rank is the most loaded one, as it sets the layer's time.
  ``torch._grouped_mm`` when a probe shows it works on the device and dtype,
  else a loop over the experts with tokens (``impl`` says which). Routing,
  permutation and dispatch are not timed (they are other operators).

Timing: ``warmup`` untimed calls, then ``repeats`` timed calls; the row keeps
the median (``latency_s``) and the spread (``std_s``), in seconds. CUDA times
each call with a pair of CUDA events; CPU with ``time.perf_counter``. Tensors
are bf16 or fp16 on both devices, as the dtype column says: on a CPU without
AVX512-BF16 both run ~5x slower than fp32 (a 2-core EPYC: 15-25 vs ~115
GFLOP/s for 512x4096x4096), but a float32 measurement would be mislabelled.
Shapes, lengths, routings and tensor values depend only on the seed. Grids:
``GRIDS`` (the full CUDA grid, a smaller CPU grid, and ``--quick``: about 10-20 s
for Llama-3.1-8B at TP 1 on that 2-core CPU).

torch is the optional extra ``frontier-predictors[profile]``; it is imported
inside functions so that ``frontier --help`` does not load it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import numpy as np
import typer

from frontier_core import ModelSpec, install_hint, outdir
from frontier_predictors.profiles import ProfileError, validate, write_table

if TYPE_CHECKING:
    import pandas as pd

FAMILIES: tuple[str, ...] = ("gemm", "attention_prefill", "attention_decode", "moe_experts")
DISTS: tuple[str, ...] = ("uniform", "skewed", "bimodal")
ROUTINGS: tuple[str, ...] = ("balanced", "power_law:1.01", "power_law:1.2")
DTYPES: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16"}
# torch.cuda.get_device_name() substring -> hardware-catalog name (first match wins).
GPU_NAMES: tuple[tuple[str, str], ...] = (
    ("H100", "h100-sxm"), ("H200", "h200"), ("H800", "h800"),
    ("A100", "a100-80g-sxm"), ("A800", "a800"), ("B200", "b200"),
)
_INSTALL = f"{install_hint('frontier-predictors', 'profile')} (torch==2.13.0)"


@dataclass(frozen=True)
class Grid:
    """What to measure. Lengths are the longest a draw may give, in tokens; caps
    skip an attention batch whose q+k+v exceed ``attn_bytes`` or whose score
    matrix (Σ q·kv elements per head) exceeds ``attn_work``."""

    gemm_m: tuple[int, ...]
    prefill_batch: tuple[int, ...]
    prefill_len: tuple[int, ...]
    chunk_batch: tuple[int, ...]
    chunk_len: tuple[int, ...]
    prefix_len: tuple[int, ...]
    decode_batch: tuple[int, ...]
    decode_len: tuple[int, ...]
    moe_tokens: tuple[int, ...]
    attn_bytes: int
    attn_work: int
    warmup: int
    repeats: int


_POW2 = tuple(2**i for i in range(15))  # 1 .. 16384
GRIDS: dict[str, Grid] = {
    "cuda": Grid(
        gemm_m=(1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
                1536, 2048, 3072, 4096, 6144, 8192),
        prefill_batch=(1, 2, 4, 8, 16, 32), prefill_len=(128, 512, 2048, 8192, 32768),
        chunk_batch=(1, 4, 16), chunk_len=(256, 2048), prefix_len=(4096, 32768),
        decode_batch=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        decode_len=(512, 2048, 8192, 32768, 131072),
        moe_tokens=_POW2, attn_bytes=8 << 30, attn_work=1 << 31, warmup=5, repeats=20,
    ),
    "cpu": Grid(
        gemm_m=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        prefill_batch=(1, 2, 4, 8), prefill_len=(128, 512, 2048),
        chunk_batch=(1, 4), chunk_len=(256,), prefix_len=(2048,),
        decode_batch=(1, 4, 16, 64), decode_len=(512, 2048, 8192),
        moe_tokens=(1, 4, 16, 64, 256, 1024), attn_bytes=256 << 20, attn_work=1 << 26,
        warmup=1, repeats=5,
    ),
    # --quick: seconds on a 2-core CPU for CI; the same grid on any device.
    "quick": Grid(
        gemm_m=(1, 8),
        prefill_batch=(1, 4), prefill_len=(64, 256),
        chunk_batch=(4,), chunk_len=(64,), prefix_len=(512,),
        decode_batch=(1, 16), decode_len=(256, 2048),
        moe_tokens=(1, 4, 16), attn_bytes=64 << 20, attn_work=1 << 22, warmup=1, repeats=3,
    ),
}


# ---- shapes and cases: pure functions of the model, layout and seed ----------


def attention_shape(model: ModelSpec, tp: int, decode: bool = False) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) per GPU of the model's softmax-attention calls, as the
    execution predictor asks (``frontier_core.model.attention``): MLA prefill attends to
    decompressed per-head keys, MLA decode (absorbed) to the one shared latent."""
    from frontier_core.model.attention import Attention

    g = next((g for g in model.mixers(tp) if isinstance(g, Attention)), None)
    if g is None:
        raise ProfileError(f"{model.name} has no softmax attention layer to profile.")
    if decode:
        return g.heads, g.dec_kv_heads, g.dec_head_dim
    return g.heads, g.kv_heads, g.head_dim


def gemm_shapes(model: ModelSpec, tp: int) -> dict[tuple[int, int], list[str]]:
    """Weight shapes (n, k) per GPU with the names that use them.

    The projections of every attention kind of the model (``frontier_core.model.attention``),
    ``DenseFFN`` and the LM head, so the profiled shapes are the ones the simulator
    asks about; a MoE model adds its router (n = num_experts) and shared experts
    (TP-sharded).
    """
    m, h = model, model.hidden_size
    out: dict[tuple[int, int], list[str]] = {}

    def add(name: str, n: int, k: int) -> None:
        names = out.setdefault((n, k), [])
        if name not in names:
            names.append(name)

    for g in model.mixers(tp):
        for op in g.projections(1, "bf16"):
            if op.op == "gemm":
                add(op.name, op.n, op.k)
    gate = 2 if m.gated_mlp else 1
    inter = math.ceil(m.intermediate_size / tp)
    add("mlp_up", gate * inter, h)
    add("mlp_down", h, inter)
    if m.is_moe:
        add("moe_router", m.num_experts, h)
        if m.num_shared_experts:
            shared = math.ceil(m.num_shared_experts * m.moe_intermediate_size / tp)
            add("shared_expert_up", gate * shared, h)
            add("shared_expert_down", h, shared)
    add("lm_head", math.ceil(m.vocab_size / tp), h)
    return out


def draw_lengths(rng: np.random.Generator, dist: str, size: int, lo: int, hi: int) -> np.ndarray:
    """``size`` lengths in [lo, hi] tokens from ``dist`` (uniform, skewed, bimodal)."""
    if dist == "uniform":
        x = rng.integers(lo, hi + 1, size)
    elif dist == "skewed":  # log-normal: median hi/16, a long tail up to hi
        x = np.rint(np.exp(rng.normal(math.log(max(lo, hi / 16)), 1.0, size)))
    elif dist == "bimodal":  # 80% short (<= hi/8), 20% long (>= hi/2)
        short = rng.integers(lo, max(lo, hi // 8) + 1, size)
        long = rng.integers(max(lo, hi // 2), hi + 1, size)
        x = np.where(rng.random(size) < 0.2, long, short)
    else:
        raise ValueError(f"unknown length distribution {dist!r}")
    return np.clip(x, lo, hi).astype(np.int64)


@dataclass(frozen=True)
class AttentionCase:
    """One attention call: ``kind`` is prompt, chunk or decode; lengths in tokens."""

    kind: str
    dist: str
    q_lens: np.ndarray
    kv_lens: np.ndarray


def attention_cases(op: str, grid: Grid, model: ModelSpec, tp: int, seed: int,
                    batches: int = 1) -> list[AttentionCase]:
    """The batches of ``op`` (attention_prefill or attention_decode) on ``grid``:
    ``batches`` draws per cell (batch size, length cap, distribution).

    Every draw happens in a fixed order from a generator seeded by (seed, op), so
    the same seed and ``batches`` give the same batches whatever else is profiled;
    batches over the grid's caps are dropped after drawing.
    """
    rng = np.random.default_rng([seed, FAMILIES.index(op)])
    heads, kv_heads, hd = attention_shape(model, tp, op == "attention_decode")
    ctx = model.max_context
    cases: list[AttentionCase] = []
    if op == "attention_prefill":
        for b in grid.prefill_batch:
            for length in grid.prefill_len:
                for dist in DISTS:
                    for _ in range(batches):
                        q = draw_lengths(rng, dist, b, 1, min(length, ctx))
                        cases.append(AttentionCase("prompt", dist, q, q.copy()))
        for b in grid.chunk_batch:
            for chunk in grid.chunk_len:
                for prefix in grid.prefix_len:
                    for dist in DISTS:
                        for _ in range(batches):
                            q = draw_lengths(rng, dist, b, 1, min(chunk, ctx // 2))
                            p = draw_lengths(rng, dist, b, 1, min(prefix, ctx // 2))
                            cases.append(AttentionCase("chunk", dist, q, q + p))
    else:
        for b in grid.decode_batch:
            for length in grid.decode_len:
                for dist in DISTS:
                    for _ in range(batches):
                        kv = draw_lengths(rng, dist, b, 1, min(length, ctx))
                        cases.append(AttentionCase("decode", dist, np.ones(b, np.int64), kv))

    def fits(c: AttentionCase) -> bool:
        size = (int(c.q_lens.sum()) * heads + 2 * int(c.kv_lens.sum()) * kv_heads) * hd * 2
        return size <= grid.attn_bytes and int((c.q_lens * c.kv_lens).sum()) <= grid.attn_work

    return [c for c in cases if fits(c)]


def expert_counts(rng: np.random.Generator, num_tokens: int, num_experts: int, top_k: int,
                  ep: int, routing: str) -> np.ndarray:
    """Tokens of each local expert of the most loaded EP rank (length num_experts/ep).

    ``num_tokens`` tokens enter the layer across the EP group and each picks
    ``top_k`` distinct experts; rank r holds experts [r·E/ep, (r+1)·E/ep).
    ``balanced`` deals the num_tokens·top_k assignments round-robin (counts
    differ by at most 1); ``power_law:<alpha>`` draws them (Gumbel top-k, i.e.
    sampling without replacement) from popularity ∝ rank^-alpha.
    """
    local = num_experts // ep
    if routing == "balanced":
        total = num_tokens * top_k
        counts = np.full(num_experts, total // num_experts, np.int64)
        counts[: total % num_experts] += 1
    else:
        alpha = float(routing.split(":", 1)[1])
        rank = rng.permutation(num_experts)
        logp = -alpha * np.log1p(rank)
        keys = logp + rng.gumbel(size=(num_tokens, num_experts))
        picks = np.argpartition(-keys, top_k - 1, axis=1)[:, :top_k]
        counts = np.bincount(picks.ravel(), minlength=num_experts).astype(np.int64)
    per_rank = counts.reshape(ep, local)
    return per_rank[int(np.argmax(per_rank.sum(axis=1)))].copy()


# ---- torch and the device --------------------------------------------------


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ProfileError(
            "`frontier profile` runs kernels with torch, which is not installed in this "
            f"environment. Install the profiling extra: {_INSTALL}; for GPU profiling "
            "install a CUDA build of torch 2.13.0 from pytorch.org instead."
        ) from None
    return torch


def device_label(cuda_name: str | None) -> str:
    """The hardware-catalog name for a torch device name (None: the CPU), else a
    slug of the name. Every H100 maps to h100-sxm (PCIe and NVL included): give
    --device-name when another catalog entry fits better."""
    if cuda_name is None:
        return "cpu"
    for needle, name in GPU_NAMES:
        if needle in cuda_name:
            return name
    return "-".join("".join(c if c.isalnum() else " " for c in cuda_name.lower()).split())


def _resolve_device(torch: Any, device: str) -> str:
    has_cuda = bool(torch.cuda.is_available())
    if device == "cuda" and not has_cuda:
        raise ProfileError(
            f"--device cuda was given, but torch {torch.__version__} sees no CUDA GPU (a CPU "
            "build of torch, no driver, or CUDA_VISIBLE_DEVICES hides the GPUs). Use "
            "--device cpu (or auto), or install a CUDA build of torch 2.13.0."
        )
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


def _rand(torch: Any, shape: tuple[int, ...], dt: Any, dev: str, scale: float = 1.0) -> Any:
    """Normal(0, scale²) data. On CPU a random block of at most 2^20 values is
    tiled along the first axis: filling a 1 GB weight with randn takes seconds
    there, and a GEMM's speed does not depend on the values repeating."""
    rows = max(1, min(shape[0], (1 << 20) // max(1, math.prod(shape[1:]))))
    if dev == "cuda" or rows == shape[0]:
        return torch.randn(shape, dtype=dt, device=dev).mul_(scale)
    block = torch.randn((rows, *shape[1:]), dtype=dt, device=dev).mul_(scale)
    out = torch.empty(shape, dtype=dt, device=dev)
    for i in range(0, shape[0], rows):
        out[i:i + rows] = block[: shape[0] - i]
    return out


class _Bench:
    """Times calls on one device (see the module docstring for the protocol)."""

    def __init__(self, torch: Any, device: str, warmup: int, repeats: int) -> None:
        self.torch, self.cuda, self.warmup, self.repeats = torch, device == "cuda", warmup, repeats

    def __call__(self, fn: Callable[[], object]) -> tuple[float, float]:
        """(median, standard deviation) of ``repeats`` calls of ``fn``, in seconds."""
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        if self.cuda:
            torch.cuda.synchronize()
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(self.repeats)]
            for start, end in events:
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize()
            times = [start.elapsed_time(end) * 1e-3 for start, end in events]
        else:
            times = []
            for _ in range(self.repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        spread = statistics.pstdev(times) if len(times) > 1 else 0.0
        return max(statistics.median(times), 1e-9), spread


# ---- kernels -----------------------------------------------------------------


def packed_qkv(torch: Any, q_lens: Sequence[int], kv_lens: Sequence[int], heads: int,
               kv_heads: int, hd: int, dt: Any, dev: str) -> tuple[Any, Any, Any]:
    """Random q [Σq, heads, hd] and k, v [Σkv, kv_heads, hd]: sequences back to back."""
    tq, tk = int(sum(q_lens)), int(sum(kv_lens))
    return (_rand(torch, (tq, heads, hd), dt, dev), _rand(torch, (tk, kv_heads, hd), dt, dev),
            _rand(torch, (tk, kv_heads, hd), dt, dev))


def attention_loop(torch: Any, q: Any, k: Any, v: Any, q_lens: Sequence[int],
                   kv_lens: Sequence[int]) -> Callable[[], list[Any]]:
    """One SDPA call per sequence over packed q/k/v; a chunk sees its cached prefix
    (lower-right causal). Each call returns [1, heads, q, hd]."""
    from torch.nn.attention.bias import causal_lower_right
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    gqa = q.shape[1] != k.shape[1]
    calls = []
    qs = ks = 0
    for ql, kl in zip(map(int, q_lens), map(int, kv_lens), strict=True):
        # Contiguous [1, heads, len, hd] copies, so the timed call does not copy.
        qi = q[qs:qs + ql].transpose(0, 1).unsqueeze(0).contiguous()
        ki = k[ks:ks + kl].transpose(0, 1).unsqueeze(0).contiguous()
        vi = v[ks:ks + kl].transpose(0, 1).unsqueeze(0).contiguous()
        if ql == 1:
            kw: dict[str, Any] = {}
        elif ql == kl:
            kw = {"is_causal": True}
        else:
            kw = {"attn_mask": causal_lower_right(ql, kl)}
        calls.append((qi, ki, vi, kw))
        qs, ks = qs + ql, ks + kl

    def run() -> list[Any]:
        return [sdpa(qi, ki, vi, enable_gqa=gqa, **kw) for qi, ki, vi, kw in calls]

    return run


def attention_varlen(torch: Any, q: Any, k: Any, v: Any, q_lens: Sequence[int],
                     kv_lens: Sequence[int]) -> Callable[[], Any]:
    """One FlashAttention varlen call over packed q/k/v (CUDA); returns [Σq, heads, hd]."""
    from torch.nn.attention.varlen import varlen_attn

    ql = torch.tensor([int(x) for x in q_lens], dtype=torch.int32)
    kl = torch.tensor([int(x) for x in kv_lens], dtype=torch.int32)
    cu_q = torch.nn.functional.pad(ql.cumsum(0, dtype=torch.int32), (1, 0)).to(q.device)
    cu_k = torch.nn.functional.pad(kl.cumsum(0, dtype=torch.int32), (1, 0)).to(q.device)
    max_q, max_k = int(ql.max()), int(kl.max())
    # FlashAttention aligns its causal mask bottom-right: query i of a chunk sees
    # keys 0..kv-q+i. Decode (every q = 1) needs no mask.
    window = (-1, 0) if max_q > 1 else (-1, -1)
    gqa = q.shape[1] != k.shape[1]

    def run() -> Any:
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, window_size=window,
                           enable_gqa=gqa)

    return run


def reference_attention(torch: Any, q: Any, k: Any, v: Any, q_lens: Sequence[int],
                        kv_lens: Sequence[int]) -> Any:
    """Float32 attention over packed [tokens, heads, dim] tensors with an explicit
    mask: query i of a sequence sees keys 0..kv-q+i. The probes' ground truth."""
    out, qs, ks = [], 0, 0
    group = q.shape[1] // k.shape[1]
    for ql, kl in zip(map(int, q_lens), map(int, kv_lens), strict=True):
        qi = q[qs:qs + ql].float().transpose(0, 1)
        ki = k[ks:ks + kl].float().transpose(0, 1).repeat_interleave(group, 0)
        vi = v[ks:ks + kl].float().transpose(0, 1).repeat_interleave(group, 0)
        s = qi @ ki.transpose(1, 2) / math.sqrt(q.shape[2])
        mask = torch.ones(ql, kl, dtype=torch.bool, device=q.device).tril(kl - ql)
        out.append((s.masked_fill(~mask, float("-inf")).softmax(-1) @ vi).transpose(0, 1))
        qs, ks = qs + ql, ks + kl
    return torch.cat(out)


def attention_agrees(torch: Any, make: Callable[..., Callable[[], Any]], dt: Any, dev: str,
                     hd: int) -> bool:
    """Whether the kernel built by ``make`` runs here and masks as the simulator
    means on a tiny GQA batch (a prompt, a chunk over a prefix, a decode)."""
    q_lens, kv_lens = [3, 4, 1], [7, 4, 5]
    torch.manual_seed(0)
    q, k, v = packed_qkv(torch, q_lens, kv_lens, 4, 2, hd, dt, dev)
    try:
        got = make(torch, q, k, v, q_lens, kv_lens)()
    except Exception:  # no kernel for this device, dtype or head_dim
        return False
    if isinstance(got, list):
        got = torch.cat([o[0].transpose(0, 1) for o in got])
    want = reference_attention(torch, q, k, v, q_lens, kv_lens)
    return bool((got.float() - want).abs().max() < 2e-2)


def expert_weights(torch: Any, experts: int, h: int, inter: int, gated: bool, dt: Any,
                   dev: str) -> tuple[Any, Any]:
    """w1 [experts, (2 if gated else 1)·inter, h] (gate and up) and w2 [experts, h, inter]."""
    up = (2 if gated else 1) * inter
    return (_rand(torch, (experts, up, h), dt, dev, h**-0.5),
            _rand(torch, (experts, h, inter), dt, dev, inter**-0.5))


def moe_kernel(torch: Any, counts: np.ndarray, w1: Any, w2: Any, grouped: bool) -> Callable[[], Any]:
    """The local experts' MLPs on ``counts[e]`` tokens each (tokens sorted by expert):
    gate+up GEMM, SiLU(gate)·up (SiLU alone if not gated), down GEMM. ``grouped``:
    two ``torch._grouped_mm`` calls; else a loop over the experts with tokens."""
    F = torch.nn.functional
    inter = w2.shape[2]
    gated = w1.shape[1] == 2 * inter
    x = _rand(torch, (int(counts.sum()), w1.shape[2]), w1.dtype, w1.device.type)

    def act(y: Any) -> Any:
        return F.silu(y[:, :inter]) * y[:, inter:] if gated else F.silu(y)

    if grouped:
        offs = torch.tensor(np.cumsum(counts), dtype=torch.int32, device=w1.device)
        w1t, w2t = w1.transpose(-2, -1), w2.transpose(-2, -1)  # column-major per expert

        def run() -> Any:
            return torch._grouped_mm(act(torch._grouped_mm(x, w1t, offs=offs)), w2t, offs=offs)

        return run
    bounds = np.concatenate([[0], np.cumsum(counts)])
    slices = [(x[bounds[i]:bounds[i + 1]], w1[i], w2[i]) for i in range(len(counts)) if counts[i]]

    def run_loop() -> list[Any]:
        return [F.linear(act(F.linear(xe, a)), b) for xe, a, b in slices]

    return run_loop


def grouped_mm_works(torch: Any, dt: Any, dev: str) -> bool:
    """Whether torch._grouped_mm runs here on uneven (and empty) groups and agrees
    with the expert loop."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    counts = np.array([3, 0, 5, 8])
    w1, w2 = expert_weights(torch, len(counts), 64, 32, True, dt, dev)
    torch.manual_seed(0)
    try:
        got = moe_kernel(torch, counts, w1, w2, True)()
    except Exception:  # no grouped GEMM kernel for this device or dtype
        return False
    torch.manual_seed(0)
    want = torch.cat(moe_kernel(torch, counts, w1, w2, False)())
    return bool(torch.allclose(got.float(), want.float(), rtol=5e-2, atol=5e-2))


# ---- the profile -------------------------------------------------------------


def parse_ops(text: str | Sequence[str] | None, model: ModelSpec) -> tuple[str, ...]:
    """The op families to profile: a comma list or sequence, None for all that apply."""
    applicable = FAMILIES if model.is_moe else FAMILIES[:3]
    if text is None:
        return applicable
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    names = [s for s in names if s]
    for n in names:
        if n not in FAMILIES:
            raise ProfileError(
                f"--ops names {n!r}, which `frontier profile` does not measure. Give a comma "
                f"list of {', '.join(FAMILIES)} (collectives are not profiled here)."
            )
    if "moe_experts" in names and not model.is_moe:
        raise ProfileError(
            f"--ops asks for moe_experts, but {model.name} has no experts (num_experts = 0). "
            f"Drop moe_experts from --ops, or profile a mixture-of-experts model."
        )
    if not names:
        raise ProfileError(f"--ops is empty. Give a comma list of {', '.join(applicable)}.")
    return tuple(dict.fromkeys(names))


def _check_flags(model: ModelSpec, tp: int, ep: int, moe_tp: int, repeats: int | None,
                 warmup: int | None, dtype: str, device: str, out_dir: Path,
                 batches: int = 1, overwrite: bool = False) -> None:
    """Every flag that can be checked before torch is imported."""
    for flag, value, low in (("--tp", tp, 1), ("--ep", ep, 1), ("--moe-tp", moe_tp, 1),
                             ("--repeats", repeats, 1), ("--warmup", warmup, 0),
                             ("--batches", batches, 1)):
        if value is not None and value < low:
            raise ProfileError(f"{flag} is {value}; it must be an integer >= {low}.")
    if device not in ("auto", "cpu", "cuda"):
        raise ProfileError(f"--device {device!r} is not a device. Use auto, cpu or cuda.")
    if out_dir.exists() and not out_dir.is_dir():
        raise ProfileError(f"-o/--out {out_dir} exists and is not a folder. Choose a folder.")
    # New, empty or earlier profile tables; never a folder Frontier did not write.
    outdir.check(out_dir, "profile", overwrite, option="-o/--out")
    if dtype not in DTYPES:
        raise ProfileError(
            f"--dtype {dtype!r} cannot be profiled. Use bf16 or fp16 (fp8 GEMMs need scaled "
            "matmuls, which `frontier profile` does not run)."
        )
    if model.is_moe and model.num_experts % ep:
        raise ProfileError(
            f"--ep {ep} does not divide {model.name}'s {model.num_experts} experts. Choose an "
            "expert-parallel degree that divides the expert count."
        )


def run_profile(
    model: ModelSpec,
    *,
    out_dir: Path,
    tp: int = 1,
    ep: int = 1,
    moe_tp: int | None = None,
    ops: str | Sequence[str] | None = None,
    quick: bool = False,
    device: str = "auto",
    dtype: str = "bf16",
    seed: int = 0,
    repeats: int | None = None,
    warmup: int | None = None,
    device_name: str | None = None,
    progress: Callable[[str], None] | None = None,
    batches: int = 1,
    overwrite: bool = False,
) -> list[Path]:
    """Measure ``model``'s kernels at tensor parallelism ``tp`` and write the tables.

    ``ep`` spreads the experts over EP ranks and ``moe_tp`` (default tp/ep,
    at least 1) splits each expert's width. ``repeats``/``warmup`` default to
    the grid's (20/5 on CUDA, 5/1 on CPU, 3/1 with ``quick``). ``batches``
    heterogeneous attention batches are drawn per grid cell. Returns the
    written files, one per family in ``ops``, under ``out_dir``.

    ``out_dir`` is a results folder of kind ``"profile"`` (``frontier_core.app.outdir``):
    new, empty or earlier profile tables, which are replaced (files Frontier did not
    write are kept); ``overwrite`` allows the results of another command there. The
    tables are written together once every family is measured.
    """
    families = parse_ops(ops, model)
    moe_tp = moe_tp if moe_tp is not None else max(1, tp // ep)
    out_dir = Path(out_dir)
    _check_flags(model, tp, ep, moe_tp, repeats, warmup, dtype, device, out_dir, batches,
                 overwrite)
    torch = _torch()
    dev = _resolve_device(torch, device)
    grid = GRIDS["quick" if quick else dev]
    repeats = grid.repeats if repeats is None else repeats
    warmup = grid.warmup if warmup is None else warmup
    label = device_name or device_label(torch.cuda.get_device_name() if dev == "cuda" else None)
    dt = getattr(torch, DTYPES[dtype])
    bench = _Bench(torch, dev, warmup, repeats)
    common = {"device": label, "dtype": dtype, "repeats": repeats}
    say = progress or (lambda _msg: None)
    tables: dict[str, list[dict[str, Any]]] = {}
    # Tensor values come from torch's generators, forked so that the caller's
    # state is left alone and seeded so that reruns use the same data.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if dev == "cuda" else []), \
            torch.inference_mode():
        torch.manual_seed(seed)
        for fam in families:
            say(f"profiling {fam} ({label}, torch device {dev}, {dtype})")
            if fam == "gemm":
                rows = _profile_gemm(torch, model, tp, grid, bench, dt, dev)
            elif fam == "moe_experts":
                rows = _profile_moe(torch, model, ep, moe_tp, grid, seed, bench, dt, dev)
            else:
                rows = _profile_attention(torch, fam, model, tp, grid, seed, bench, dt, dev,
                                          batches)
            tables[fam] = [common | {"op": fam} | r for r in rows]

    def writer(tmp: Path) -> None:
        for fam, fam_rows in tables.items():
            _write(fam, fam_rows, tmp)

    outdir.write(out_dir, "profile", writer, overwrite, option="-o/--out")
    return [out_dir / f"{fam}.csv" for fam in tables]


def _write(fam: str, rows: list[dict[str, Any]], out_dir: Path) -> Path:
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows)
    validate(frame, f"<{fam} rows being written>")  # a bug here, not at the reader
    return write_table(frame, out_dir / f"{fam}.csv")


def _profile_gemm(torch: Any, model: ModelSpec, tp: int, grid: Grid, bench: _Bench,
                  dt: Any, dev: str) -> list[dict[str, Any]]:
    rows = []
    for (n, k), names in gemm_shapes(model, tp).items():
        w = _rand(torch, (n, k), dt, dev, k**-0.5)
        for m in grid.gemm_m:
            x = _rand(torch, (m, k), dt, dev)
            lat, std = bench(lambda x=x, w=w: torch.nn.functional.linear(x, w))
            rows.append({"m": m, "n": n, "k": k, "latency_s": lat, "std_s": std,
                         "name": "+".join(names)})
        del w
    return rows


def _profile_attention(torch: Any, op: str, model: ModelSpec, tp: int, grid: Grid, seed: int,
                       bench: _Bench, dt: Any, dev: str, batches: int = 1
                       ) -> list[dict[str, Any]]:
    heads, kv_heads, hd = attention_shape(model, tp, op == "attention_decode")
    varlen = dev == "cuda" and attention_agrees(torch, attention_varlen, dt, dev, hd)
    make = attention_varlen if varlen else attention_loop
    rows = []
    for c in attention_cases(op, grid, model, tp, seed, batches):
        q, k, v = packed_qkv(torch, c.q_lens, c.kv_lens, heads, kv_heads, hd, dt, dev)
        fn = make(torch, q, k, v, c.q_lens, c.kv_lens)
        if not varlen:
            del q, k, v  # the loop holds its own per-sequence copies
        lat, std = bench(fn)
        del fn
        rows.append({"num_heads": heads, "num_kv_heads": kv_heads, "head_dim": hd,
                     "q_lens": c.q_lens, "kv_lens": c.kv_lens, "latency_s": lat, "std_s": std,
                     "kind": c.kind, "dist": c.dist,
                     "impl": "varlen_attn" if varlen else "sdpa_loop"})
    return rows


def _profile_moe(torch: Any, model: ModelSpec, ep: int, moe_tp: int, grid: Grid, seed: int,
                 bench: _Bench, dt: Any, dev: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng([seed, FAMILIES.index("moe_experts")])
    h, inter = model.hidden_size, math.ceil(model.moe_intermediate_size / moe_tp)
    grouped = grouped_mm_works(torch, dt, dev)
    w1, w2 = expert_weights(torch, model.num_experts // ep, h, inter, model.gated_mlp, dt, dev)
    rows = []
    for t in grid.moe_tokens:
        for routing in ROUTINGS:
            counts = expert_counts(rng, t, model.num_experts, model.top_k, ep, routing)
            impl = "grouped_mm" if grouped else "expert_loop"
            try:
                lat, std = bench(moe_kernel(torch, counts, w1, w2, grouped))
            except RuntimeError:
                if not grouped:
                    raise
                # A shape the grouped kernel rejects (e.g. a width it cannot align).
                impl = "expert_loop"
                lat, std = bench(moe_kernel(torch, counts, w1, w2, False))
            # inter_size is the expert's full width; tp_size says how it was split
            rows.append({"num_tokens": t, "hidden_size": h,
                         "inter_size": model.moe_intermediate_size,
                         "num_experts": model.num_experts, "top_k": model.top_k,
                         "ep_size": ep, "tp_size": moe_tp, "routing": routing,
                         "gated": model.gated_mlp,
                         "tokens_per_expert": counts, "latency_s": lat, "std_s": std,
                         "num_local_experts": len(counts), "impl": impl})
    return rows


# ---- the CLI command (registered by plugin.py) --------------------------------


def profile_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the profile tables.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Catalog model (`frontier models`).")] = "llama-3.1-8b",
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree: shapes per GPU.")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="Expert-parallel degree (MoE models).")] = 1,
    moe_tp: Annotated[Optional[int], typer.Option("--moe-tp", help="TP degree inside each expert. Default: tp/ep, at least 1.")] = None,  # noqa: UP045
    ops: Annotated[Optional[str], typer.Option("--ops", help=f"Comma list of {', '.join(FAMILIES)}. Default: all that apply.")] = None,  # noqa: UP045
    quick: Annotated[bool, typer.Option("--quick", help="A small grid: seconds on a CPU, for CI.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    device_name: Annotated[Optional[str], typer.Option("--device-name", help="Hardware name for the device column. Default: from the GPU's name.")] = None,  # noqa: UP045
    dtype: Annotated[str, typer.Option("--dtype", help="bf16 or fp16.")] = "bf16",
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Timed calls per row (median kept). Default: 20 on CUDA, 5 on CPU, 3 with --quick.")] = None,  # noqa: UP045
    warmup: Annotated[Optional[int], typer.Option("--warmup", help="Untimed calls before timing. Default: 5 on CUDA, 1 on CPU and with --quick.")] = None,  # noqa: UP045
    seed: Annotated[int, typer.Option("--seed", help="Seed of batch lengths and routings.")] = 0,
    batches: Annotated[int, typer.Option("--batches", help="Attention batches drawn per grid cell (batch size, length, distribution): more heterogeneous rows from one run.")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing a Frontier results folder of another kind (e.g. a trained model); never a folder Frontier did not write.")] = False,
) -> None:
    """Time GEMMs, attention and expert kernels with torch on this machine; write profile tables."""
    from rich.console import Console
    from rich.table import Table

    from frontier_core import load_registry
    from frontier_predictors.profiles import read_table

    spec = load_registry().get("model", model, where="--model")
    err = Console(stderr=True)
    t0 = time.perf_counter()
    paths = run_profile(spec, out_dir=out, tp=tp, ep=ep, moe_tp=moe_tp, ops=ops, quick=quick,
                        device=device, dtype=dtype, seed=seed, repeats=repeats, warmup=warmup,
                        device_name=device_name, progress=lambda m: err.print(m, highlight=False),
                        batches=batches, overwrite=overwrite)
    layout = f"tp{tp}" + (f" ep{ep} moe-tp{moe_tp or max(1, tp // ep)}" if spec.is_moe else "")
    table = Table(title=f"{spec.name} {layout} profile", header_style="bold")
    for col in ("table", "rows", "device", "impl", "path"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for p in paths:
        df = read_table(p)
        impl = ", ".join(sorted(df["impl"].unique())) if "impl" in df.columns else "torch"
        table.add_row(p.stem, str(len(df)), str(df["device"].iloc[0]), impl, str(p))
    Console().print(table)
    Console().print(f"{len(paths)} tables in {time.perf_counter() - t0:.1f}s → {out}/")
