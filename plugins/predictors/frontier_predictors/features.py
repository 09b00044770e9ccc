"""Features of one operator call, shared by training (table rows) and prediction (OpCalls).

A profile-table row becomes an ``OpCall`` (``row_to_call``); every model sees
calls only, so a trained model and the simulator compute features the same
way. ``Featurizer.features(call)`` returns the feature vector and the
roofline time of the call on the featurizer's device; the learned backends
predict ``log(measured / roofline)``, which generalises across shapes better
than raw time.

Distributional features (``kind="dist"``) describe the whole batch: number of
sequences; sum, mean, max, min, std and CV of q_lens and kv_lens; the
attention work Σq·kv; KV bytes read; and tile/wave quantisation (tiles of
query rows or tokens per expert against the GPU's SM count). Proxy features
(``kind="proxy"``, the approach of earlier simulators) reduce the batch to its
size and one mean length per side before the same computation, so the two
differ only in what they know about the batch's composition.

A ``moe_experts`` call without per-expert counts (a table row) gets the counts
its routing implies on the timed EP rank (``routed_rank_loads``), so training
rows and the simulator's calls (which carry the drawn counts) are featurized
and normalised alike.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from frontier_core import DTYPE_BYTES, HardwareSpec, OpCall

# Tile sizes of the kernels being modelled: 128-row output tiles for Hopper/Ampere
# GEMMs and FlashAttention query blocks; 64-row tiles for grouped expert GEMMs.
GEMM_TILE = 128
ATTN_Q_TILE = 128
EXPERT_TILE = 64
# CTA tiles (rows x columns) whose waves over the SMs are GEMM features.
GEMM_TILES = ((64, 64), (128, 128), (128, 256), (256, 128), (64, 256))

# A code per format for the trees to split on: bits, and 9 for block-scaled fp8 (other
# kernels than per-tensor fp8).
DTYPE_CLASS = {"bf16": 16, "fp16": 16, "fp8": 8, "fp8_block": 9, "nvfp4": 4, "mxfp4": 5, "int4": 3,
               "w4afp8": 6}
SCOPES = {"intra": 0, "inter": 1}
COMM_OPS = ("all_reduce", "all_to_all", "send_recv")

# A stand-in for devices outside the hardware catalog (e.g. ``cpu`` profiles): its
# roofline is only a smooth, monotone feature; the learned ratio absorbs its scale.
NOMINAL_DEVICE = HardwareSpec(
    name="nominal", description="placeholder for devices outside the catalog",
    flops={"bf16": 1e12, "fp16": 1e12, "fp8": 2e12}, mem_bytes=64e9, mem_bw=50e9,
    nvlink_bw=10e9, scaleout_bw=10e9, num_sms=16,
)


def routing_alpha(routing: str) -> float:
    """0 for balanced/counts routing, else the power-law exponent."""
    if routing.startswith("power_law:"):
        return float(routing.split(":", 1)[1])
    return 0.0


def expected_tokens_per_expert(assignments: float, num_local: int, alpha: float) -> np.ndarray:
    """Expected tokens of each local expert under power-law popularity (alpha 0: even).

    Expert popularity ∝ rank^-alpha over the local experts, sorted; a summary of
    the skew when a table row or call gives no counts.
    """
    n = max(1, num_local)
    if alpha <= 0:
        return np.full(n, assignments / n)
    w = np.arange(1, n + 1, dtype=float) ** -alpha
    return assignments * w / w.sum()


@functools.lru_cache(maxsize=4096)
def routed_rank_loads(num_tokens: int, num_experts: int, top_k: int, ep_size: int,
                      alpha: float) -> np.ndarray:
    """Tokens of each expert of the timed EP rank, sorted descending, when a call gives
    no counts: the routing of AIConfigurator's MoE tables (read from its collector, see
    ``benchmarks/validate_moe.py``), which ``routing`` names in them.

    Balanced (alpha 0): token i takes experts (i + j·ceil(E/k)) mod E; rank 0 is timed.
    Power law: one load per expert drawn from a density ∝ x^-alpha on [1, 0.8·T] ([0.01,
    2] when T·k ≤ E), scaled to T·k, capped at T; the hottest rank is timed. Mean of the
    sorted loads over 8 fixed-seed draws (the measurement averages fresh draws).
    """
    t, e, k = max(1, num_tokens), max(1, num_experts), max(1, top_k)
    ep = max(1, min(ep_size, e))
    local = e // ep
    if alpha <= 0:
        stride = math.ceil(e / k)
        i = np.arange(t, dtype=np.float64)[:, None]
        j = np.arange(k, dtype=np.float64)[None, :]
        sel = (i + j * stride) % e if t >= stride else np.floor((i * stride / t + j * stride) % e)
        c = np.bincount(sel.astype(np.int64).ravel(), minlength=e)[:local]
        return np.sort(c.astype(float))[::-1]
    lo, hi = (1.0, max(1.0, 0.8 * t)) if t * k > e else (0.01, 2.0)
    a = 1.0 - alpha
    u = np.random.default_rng(0).random((8, e))
    x = ((hi**a - lo**a) * u + lo**a) ** (1.0 / a)
    c = np.minimum(np.round(x / x.sum(axis=1, keepdims=True) * (t * k)), t)
    # what the cap and rounding took goes evenly to the others (AIC: round-robin)
    c = np.minimum(c + (t * k - c.sum(axis=1, keepdims=True)) / e, t)
    r = c[:, : local * ep].reshape(8, ep, local)
    hot = r[np.arange(8), np.argmax(r.sum(axis=2), axis=1)]
    return np.sort(hot, axis=1)[:, ::-1].mean(axis=0)


def _arr(v: Any) -> np.ndarray | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return np.asarray(v, dtype=np.int64)


def _int(v: Any, default: int = 0) -> int:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return int(v)


def _gated(v: Any) -> bool:
    """A row's ``gated`` (validated to booleans); absent or empty means gated."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return True
    return bool(v)


def row_to_call(row: dict[str, Any]) -> OpCall:
    """The OpCall a profile-table row measured (shapes per GPU, as the simulator emits)."""
    op = row["op"]
    dtype = row["dtype"]
    if op == "gemm":
        return OpCall("gemm", "gemm", dtype, m=_int(row["m"]), n=_int(row["n"]), k=_int(row["k"]))
    if op in ("attention_prefill", "attention_decode"):
        return OpCall(op, "attention", dtype, num_heads=_int(row["num_heads"]),
                      num_kv_heads=_int(row["num_kv_heads"]), head_dim=_int(row["head_dim"]),
                      q_lens=_arr(row["q_lens"]), kv_lens=_arr(row["kv_lens"]))
    if op == "moe_experts":
        return moe_call(
            dtype=dtype, num_tokens=_int(row["num_tokens"]), hidden_size=_int(row["hidden_size"]),
            inter_size=_int(row["inter_size"]), num_experts=_int(row["num_experts"]),
            top_k=_int(row["top_k"]), ep_size=_int(row["ep_size"], 1),
            tp_size=_int(row["tp_size"], 1), routing=str(row["routing"]),
            tokens_per_expert=_arr(row.get("tokens_per_expert")),
            gated=_gated(row.get("gated")),
        )
    scope = row.get("scope")
    scope = scope if scope in SCOPES else "intra"
    return OpCall(op, op, dtype, bytes=float(row["bytes"]), num_gpus=_int(row["num_gpus"]),
                  scope=scope)


def moe_call(*, dtype: str, num_tokens: int, hidden_size: int, inter_size: int,
             num_experts: int, top_k: int, ep_size: int = 1, tp_size: int = 1,
             routing: str = "balanced", tokens_per_expert: np.ndarray | None = None,
             gated: bool = True) -> OpCall:
    """A ``moe_experts`` OpCall for one EP rank, in the format the predictors read.

    ``extra`` holds the profile-table fields (``num_tokens``: tokens entering the
    layer; ``inter_size``: the expert's full intermediate size, sharded over
    ``tp_size``) and the per-GPU quantities the roofline reads
    (``inter_size_local``, ``num_local_experts``, ``assignments``). ``gated``: the
    experts have gate and up projections (SwiGLU); false for one up projection.
    """
    local = max(1, num_experts // max(1, ep_size))
    inter_local = max(1, inter_size // max(1, tp_size))
    if tokens_per_expert is not None:
        assignments = float(np.sum(tokens_per_expert))
    else:
        assignments = num_tokens * top_k / max(1, ep_size)
    extra = {
        "num_tokens": num_tokens, "hidden_size": hidden_size, "inter_size": inter_size,
        "num_experts": num_experts, "top_k": top_k, "ep_size": ep_size, "tp_size": tp_size,
        "routing": routing, "tokens_per_expert": tokens_per_expert, "gated": bool(gated),
        "inter_size_local": inter_local, "num_local_experts": local, "assignments": assignments,
    }
    return OpCall("moe_experts", "moe_experts", dtype, m=num_tokens, extra=extra)


def _stats(x: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """sum, mean, max, min, std, cv of a non-empty int array."""
    s = float(x.sum())
    n = len(x)
    mean = s / n
    if n > 1:
        std = float(np.sqrt(max(0.0, float(np.dot(x, x)) / n - mean * mean)))
    else:
        std = 0.0
    return s, mean, float(x.max()), float(x.min()), std, (std / mean if mean > 0 else 0.0)


def _lg(x: float) -> float:
    return math.log2(x) if x > 0 else -1.0


# GEMMs with more tokens than this share a memoised ratio per block of 8 tokens
# (``gemm_memo_m``): the blocks keep every tile count of the GEMM features constant, and
# the single benchmark case walks the trees ~40% less often. Measured on it (AIC H100
# forest): mean TPOT and end-to-end latency +0.3%, TTFT +0.1% against exact m; 16-token
# blocks moved them 1.2%.
GEMM_EXACT_M = 1024
GEMM_M_BLOCK = 8


def gemm_memo_m(m: int) -> int:
    """The m whose predicted ratio a GEMM of ``m`` tokens uses: m itself up to
    ``GEMM_EXACT_M``, else the top of its block of ``GEMM_M_BLOCK`` tokens."""
    return m if m <= GEMM_EXACT_M else -(-m // GEMM_M_BLOCK) * GEMM_M_BLOCK


class Featurizer:
    """Feature vectors of OpCalls on one device, for the ``dist`` or ``proxy`` view."""

    def __init__(self, device: HardwareSpec, kind: str = "dist") -> None:
        from frontier_core import RooflineOptions, RooflinePredictor

        if kind not in ("dist", "proxy"):
            raise ValueError(f"feature kind {kind!r}")
        self.device = device
        self.kind = kind
        # Plain datasheet roofline without launch or host terms: a shape feature.
        self.roofline = RooflinePredictor(RooflineOptions(launch_s=0.0), device)
        self.sms = device.num_sms

    # Saved models hold the device's datasheet as plain data and rebuild the roofline on
    # load, so that a model folder survives changes to the kernel's classes.
    def __getstate__(self) -> dict[str, Any]:
        return {"device": self.device.model_dump(), "kind": self.kind}

    def __setstate__(self, state: dict[str, Any]) -> None:
        dev = state["device"]
        if isinstance(dev, HardwareSpec):  # pickled whole by an earlier version
            dev = dict(dev.__dict__)
        self.__init__(HardwareSpec.model_validate(dev), state["kind"])  # type: ignore[misc]

    # ---- public -------------------------------------------------------------
    def features(self, call: OpCall) -> tuple[np.ndarray, float]:
        """(feature vector, roofline seconds) of ``call``; the vector's layout depends on op."""
        op = call.op
        if op == "gemm":
            return self._gemm(call)
        if op == "attention_prefill" or op == "attention_decode":
            if self.kind == "proxy":
                call = self._proxy(call)
            return self._attention(call)
        if op == "moe_experts":
            return self._moe(call)
        return self._comm(call)

    def roofline_time(self, call: OpCall) -> float:
        return self._rl(call)

    # ---- per op ---------------------------------------------------------------
    def _rl(self, call: OpCall) -> float:
        if call.op == "moe_experts":
            ex = call.extra or {}
            view = OpCall("moe_experts", dtype=call.dtype, m=call.m, extra={
                "hidden_size": ex["hidden_size"], "inter_size": ex["inter_size_local"],
                "num_local_experts": ex["num_local_experts"],
                "tokens_per_expert": self._moe_loads(ex), "num_tokens": ex["assignments"],
                "gated": ex.get("gated", True),
            })
            t = self.roofline.predict(view)
        else:
            t = self.roofline.predict(call)
        return max(float(t or 0.0), 1e-9)

    @staticmethod
    def _moe_loads(ex: dict[str, Any]) -> np.ndarray:
        """Tokens per local expert: the call's counts, else those its routing implies."""
        tpe = ex.get("tokens_per_expert")
        if tpe is not None:
            return np.asarray(tpe, dtype=float)
        return routed_rank_loads(int(ex["num_tokens"]), int(ex["num_experts"]), int(ex["top_k"]),
                                 int(ex["ep_size"]), routing_alpha(str(ex.get("routing"))))

    def _gemm(self, c: OpCall) -> tuple[np.ndarray, float]:
        m, n, k = c.m, c.n, c.k
        rl = self._rl(c)
        tiles = math.ceil(m / GEMM_TILE) * math.ceil(n / GEMM_TILE)
        waves = tiles / self.sms
        wave_eff = tiles / (math.ceil(waves) * self.sms) if tiles else 1.0
        m_eff = m / (math.ceil(m / 16) * 16)
        flops = 2.0 * m * n * k
        byts = (m * k + n * k + m * n) * DTYPE_BYTES.get(c.dtype, 2)
        # Other common CTA tiles (64x128, 128x256) and their last-wave occupancy:
        # cuBLAS/CUTLASS heuristics switch between them with the shape.
        t64 = math.ceil(m / 64) * math.ceil(n / 128)
        t256 = math.ceil(m / 128) * math.ceil(n / 256)
        f = [
            DTYPE_CLASS.get(c.dtype, 16), _lg(m), _lg(n), _lg(k), _lg(flops), _lg(byts),
            _lg(flops / byts), _lg(tiles), min(waves, 64.0), wave_eff, m_eff,
            _lg(t64), t64 / (math.ceil(t64 / self.sms) * self.sms),
            _lg(t256), t256 / (math.ceil(t256 / self.sms) * self.sms),
            m % 64, m % 128, n % 256, k % 256, _lg(rl),
        ]
        # waves and last-wave occupancy of more tiles (64x64 ... 256x128); output size,
        # K per output tile (split-K territory) and the small side. Validation on
        # AIC's H100 tables: median error of held-out (n, k) shapes 3.5% -> 3.3%.
        for tm, tn in GEMM_TILES:
            tt = math.ceil(m / tm) * math.ceil(n / tn)
            w = tt / self.sms
            f += [min(w, 64.0), tt / (math.ceil(w) * self.sms)]
        f += [_lg(m * n), _lg(k * self.sms / max(1, m * n)), n % 128, k % 128, m % 32,
              _lg(min(m, n))]
        return np.array(f), rl

    def _proxy(self, c: OpCall) -> OpCall:
        q, kv = c.q_lens, c.kv_lens
        n = len(q)
        pq = np.full(n, max(1, round(float(q.mean()))), np.int64)
        pkv = np.maximum(np.full(n, round(float(kv.mean())), np.int64), pq)
        return OpCall(c.op, c.name, c.dtype, num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
                      head_dim=c.head_dim, q_lens=pq, kv_lens=pkv)

    def _attention(self, c: OpCall) -> tuple[np.ndarray, float]:
        q, kv = c.q_lens, c.kv_lens
        rl = self._rl(c)
        n = len(q)
        hq, hkv, hd = c.num_heads, c.num_kv_heads, c.head_dim
        if c.op == "attention_decode":
            qs = (float(n), 1.0, 1.0, 1.0, 0.0, 0.0)
            work = float(kv.sum())
            # split-KV decode kernels: one CTA per (sequence, kv head, 512-token split)
            tiles = float(np.sum((kv + 511) // 512)) * hkv
        else:
            qs = _stats(q)
            work = float(np.dot(q, kv)) - 0.5 * float(np.dot(q, q))
            tiles = float(np.sum((q + ATTN_Q_TILE - 1) // ATTN_Q_TILE)) * hq
        ks = _stats(kv)
        kv_bytes = ks[0] * hkv * hd * 2 * DTYPE_BYTES.get(c.dtype, 2)
        waves = tiles / self.sms
        wave_eff = tiles / (math.ceil(waves) * self.sms) if tiles else 1.0 if tiles > 0 else 0.0
        f = [
            DTYPE_CLASS.get(c.dtype, 16), hq, hkv, hd, hq / max(1, hkv), _lg(n),
            _lg(qs[0]), _lg(qs[1]), _lg(qs[2]), _lg(qs[3]), qs[5],
            _lg(ks[0]), _lg(ks[1]), _lg(ks[2]), _lg(ks[3]), ks[5],
            _lg(work * hq * hd), _lg(kv_bytes), _lg(tiles), min(waves, 64.0), wave_eff, _lg(rl),
        ]
        # FlashAttention-3 packs the query heads of a GQA group into the rows of one
        # tile (pack_gqa): CTAs of 64/128/192 such rows per KV head, their waves and
        # last-wave occupancy. Validation on AIC's H100 prefill table: held-out head
        # configurations within 10% 90.1% -> 91.4%.
        group = hq // max(1, hkv)
        decode = c.op == "attention_decode"
        qg = None if decode else q * group
        for tile in (64, 128, 192):
            pt = (n * -(-group // tile) if qg is None else float(np.sum((qg + tile - 1) // tile)))
            pt *= hkv
            w = pt / self.sms
            f += [_lg(pt), min(w, 64.0), pt / (math.ceil(w) * self.sms) if pt > 0 else 0.0]
        f += [group, _lg((ks[0] if decode else float(np.dot(q, kv))) * hkv * hd)]
        return np.array(f), rl

    def _moe(self, c: OpCall) -> tuple[np.ndarray, float]:
        ex = c.extra or {}
        rl = self._rl(c)
        local = ex["num_local_experts"]
        t = self._moe_loads(ex)
        alpha = routing_alpha(str(ex.get("routing", "balanced")))
        h, i, tok = ex["hidden_size"], ex["inter_size_local"], ex["num_tokens"]
        assign = float(t.sum())
        tmax = float(t.max()) if len(t) else 0.0
        mean = assign / max(1, len(t))
        active = float(np.count_nonzero(t >= 0.5))
        # grouped-GEMM row tiles of 64 and 128 tokens per expert, and their waves over
        # the SMs with 128-wide tiles of the fused gate+up (2i) output
        tiles = float(np.sum(np.ceil(t / EXPERT_TILE)))
        tiles128 = float(np.sum(np.ceil(t / GEMM_TILE)))
        waves = tiles * math.ceil(2 * i / GEMM_TILE) / self.sms
        eb = DTYPE_BYTES.get(c.dtype, 2)
        mats = 3.0 if ex.get("gated", True) else 2.0  # gate, up, down or up, down
        flops = 2.0 * mats * assign * h * i
        w_bytes = mats * active * h * i * eb
        f = np.array([
            DTYPE_CLASS.get(c.dtype, 16), _lg(tok), _lg(h), _lg(i), _lg(local),
            ex["top_k"], _lg(ex["ep_size"]), _lg(ex["tp_size"]), alpha, _lg(assign),
            _lg(tmax), (float(t.std()) / mean) if mean > 0 else 0.0,
            active / max(1, local), _lg(active), _lg(tiles), _lg(tiles128), _lg(waves),
            _lg(w_bytes), _lg(flops), _lg(flops / max(w_bytes, 1.0)),
            # every token of the layer is permuted and combined on the timed rank
            _lg(tok * h), _lg(tok * ex["top_k"] * h), _lg(tmax * h * i), _lg(rl), mats,
        ])
        return f, rl

    def _comm(self, c: OpCall) -> tuple[np.ndarray, float]:
        rl = self._rl(c)
        g = max(1, c.num_gpus)
        f = np.array([
            COMM_OPS.index(c.op) if c.op in COMM_OPS else -1, g, SCOPES.get(c.scope, 0),
            _lg(c.bytes), 2.0 * (g - 1) / g, _lg(rl),
        ])
        return f, rl

    # ---- memo -----------------------------------------------------------------
    @staticmethod
    def memo_key(call: OpCall) -> tuple[Any, ...]:
        """A coarse key under which calls share one predicted measured/roofline ratio.

        Sizes are bucketed in log2 steps of 1/8 (~9%) for sums and 1/4 for maxima;
        the roofline time of the exact call still scales the shared ratio, so
        predictions remain continuous in the sizes. Batch size is exact up to 32; a
        GEMM's m (tokens) exact up to ``GEMM_EXACT_M`` (see ``gemm_memo_m``).
        """
        op = call.op
        dc = DTYPE_CLASS.get(call.dtype, 16)
        if op == "attention_prefill" or op == "attention_decode":
            q, kv = call.q_lens, call.kv_lens
            n = len(q)
            nb = n if n <= 32 else 32 + round(16 * math.log2(n / 32))
            qk = (0, 0) if op == "attention_decode" else (
                round(8 * _lg(float(q.sum()))), round(4 * _lg(float(q.max()))))
            return (op, dc, call.num_heads, call.num_kv_heads, call.head_dim, nb, qk,
                    round(8 * _lg(float(kv.sum()))), round(4 * _lg(float(kv.max()))))
        if op == "gemm":
            return (op, dc, gemm_memo_m(call.m), call.n, call.k)
        if op == "moe_experts":
            ex = call.extra or {}
            tpe = ex.get("tokens_per_expert")
            skew = (0, 0) if tpe is None else (
                round(8 * _lg(float(np.max(tpe)))), int(np.count_nonzero(tpe)))
            return (op, dc, ex["num_tokens"], ex["hidden_size"], ex["inter_size"],
                    ex["num_experts"], ex["top_k"], ex["ep_size"], ex["tp_size"],
                    str(ex.get("routing")), skew, ex.get("gated", True))
        return (op, call.num_gpus, call.scope, round(16 * _lg(call.bytes)))

    # ---- coverage -------------------------------------------------------------
    # index of the GPU count in a collective's ``scale``
    SCALE_GPUS = 1

    @staticmethod
    def scale(call: OpCall) -> np.ndarray:
        """The raw sizes whose training range bounds what a model may answer (log2)."""
        op = call.op
        if op == "gemm":
            return np.array([_lg(call.m), _lg(call.n), _lg(call.k)])
        if op.startswith("attention_"):
            q, kv = call.q_lens, call.kv_lens
            return np.array([
                _lg(len(q)), _lg(float(q.max())), _lg(float(kv.max())), _lg(float(kv.sum())),
                _lg(call.num_heads), _lg(call.num_kv_heads), _lg(call.head_dim),
            ])
        if op == "moe_experts":
            ex = call.extra or {}
            return np.array([
                _lg(ex["num_tokens"]), _lg(ex["hidden_size"]), _lg(ex["inter_size_local"]),
                _lg(ex["num_local_experts"]),
            ])
        return np.array([_lg(call.bytes), _lg(call.num_gpus)])


def batch_features(calls: list[OpCall], feat: Featurizer) -> tuple[np.ndarray, np.ndarray]:
    """Stacked feature matrix and roofline times of calls of one op."""
    rows = [feat.features(c) for c in calls]
    return np.vstack([r[0] for r in rows]), np.array([r[1] for r in rows])
