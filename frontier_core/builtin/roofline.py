"""The analytical roofline predictor: operator time from a GPU's datasheet.

For one kernel call (an ``OpCall``, shapes already per GPU)::

    time = max(FLOPs / (peak_flops(dtype) * compute_eff),
               bytes / (mem_bw * bw_eff)) + launch_s

Collectives use link bandwidth and latency instead (``collective_time``, or the
run's ``TransferModel`` when one is given), and ``cpu_overhead`` is a linear
model of host time per iteration. Works for any GPU the catalog describes; it
is the last predictor of a chain, answering whatever the profiled backends do
not cover. Units: seconds, bytes, FLOPs, tokens.

A kernel built-in (``predictor: roofline``), so that the kernel alone runs a model
end to end; frontier-predictors builds its learned backends on it (their features
are measured / roofline ratios) through the public names ``RooflinePredictor`` and
``RooflineOptions``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import mul as _mul
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from frontier_core.builtin.transfer import collective_time
from frontier_core.components import Link, TransferModel
from frontier_core.errors import ConfigError
from frontier_core.model.catalog import HardwareSpec
from frontier_core.model.dtypes import DTYPE_BYTES
from frontier_core.records import OpCall

# NOTE: perf — ndarray.sum() is this ufunc reduction behind a Python wrapper that costs
# more than the sum itself on a batch's short arrays.
_sum = np.add.reduce
_FEW = 16  # sequences a prefill call sums in Python

if TYPE_CHECKING:
    from frontier_core.components import BuildContext

# Achievable fraction of datasheet peak, (compute_eff, bw_eff), by GPU family.
# A family matches a hardware name that starts with it ("h100" matches "h100-sxm").
# Sources:
# - compute_eff is the large-GEMM MFU. Vidur's A100 profiles (shared/data/vidur,
#   profiling/compute/a100/*/mlp.csv: QKV/O/up/down GEMMs, num_tokens >= 2048)
#   have a median of 0.72 of 312 TFLOP/s (p25-p75 0.68-0.75); its H100 profiles
#   0.70 of 989 TFLOP/s (0.66-0.73). bf16 torch GEMMs measured for this table on
#   one H100 SXM (torch 2.11, cuBLAS; 4096^3 to 16384x16384x8192) reach
#   0.72-0.79.
# - bw_eff is the HBM efficiency of weight-streaming GEMMs (m <= 8, >= 20 MB of
#   weights) once the launch_s below is taken off: Vidur A100 median 0.78
#   (p25-p75 0.75-0.80), Vidur H100 median 0.89 (0.84-0.91); the H100 SXM
#   measurement gives 0.83-0.89 for GEMVs and 0.90 for a 1 GiB copy
#   (STREAM-like), so 0.85 for Hopper.
# - B200: no measurement here; 0.65 MFU assumes a younger software stack
#   reaches a smaller fraction of a higher peak (early public reports of
#   ~1.4-1.5 of 2.25 PFLOP/s dense bf16), HBM3e efficiency as Hopper's.
# - Other names get DEFAULT_EFFICIENCY, between the generations above, unless their
#   HardwareSpec gives its own ``efficiency`` (as the B300 and NVL72 entries do).
# RooflineOptions.compute_eff / bw_eff override both for a run.
EFFICIENCY: dict[str, tuple[float, float]] = {
    "a100": (0.72, 0.78),
    "a800": (0.72, 0.78),
    "h100": (0.72, 0.85),
    "h800": (0.72, 0.85),
    "h200": (0.72, 0.85),
    "b200": (0.65, 0.85),
}
DEFAULT_EFFICIENCY: tuple[float, float] = (0.70, 0.80)



def efficiency_for(hardware_name: str) -> tuple[float, float]:
    """(compute_eff, bw_eff) of a GPU kind from ``EFFICIENCY`` (longest matching
    family prefix of the lower-cased name), else ``DEFAULT_EFFICIENCY``."""
    name = hardware_name.lower()
    for family in sorted(EFFICIENCY, key=len, reverse=True):
        if name.startswith(family):
            return EFFICIENCY[family]
    return DEFAULT_EFFICIENCY




class RooflineOptions(BaseModel):
    """Options of the ``roofline`` predictor (``predictors: [{name: roofline, ...}]``)."""

    model_config = ConfigDict(extra="forbid")

    compute_eff: float | None = Field(
        None, gt=0, le=1, description="fraction of peak FLOP/s reached; None: EFFICIENCY table"
    )
    bw_eff: float | None = Field(
        None, gt=0, le=1, description="fraction of HBM bandwidth reached; None: EFFICIENCY table"
    )
    # A CUDA kernel launch costs a few microseconds of GPU idle time between
    # back-to-back kernels without CUDA graphs; 4 µs also makes the bw_eff above
    # consistent with the measured small-kernel times.
    launch_s: float = Field(4e-6, ge=0, description="seconds added to every kernel call")
    # Host time of one engine iteration: schedule + prepare_inputs (e2e) +
    # process_model_outputs medians from Vidur's vLLM-style engine on A100
    # (shared/data/vidur/legacy/profiling/a100/cpu_overheads.csv, batch 8-128).
    # Least-squares per model/TP: TP>=2 (CodeLlama-34B, Llama-2-70B,
    # InternLM-20B) 0.89-0.91 ms + 37-38 µs per sequence, i.e. ~1.2 ms at batch 8
    # and ~5.7 ms at 128; TP=1 (Llama-2-7B, phi-2) 0.34-0.37 ms + 36-37 µs per
    # sequence. The per-sequence cost is ~37 µs, not the ~10 µs first assumed;
    # defaults follow the multi-GPU fit. Set base to 0.35e-3 for one-GPU replicas.
    # Sampling (GPU work) and Ray's RPC time (an artefact of that engine) are left out.
    cpu_overhead_base_s: float = Field(0.9e-3, ge=0, description="host seconds per iteration")
    cpu_overhead_per_seq_s: float = Field(
        3.7e-5, ge=0, description="host seconds per sequence in the iteration"
    )


class RooflinePredictor:
    """Predicts every operator of ``records.OPS`` on one GPU kind from its datasheet.

    ``transfer`` (the run's transfer model), when given, times the collectives;
    otherwise ``collective_time`` does. Never returns None for an op in ``OPS``;
    returns None for an op name it does not know (the Predictor protocol's
    "not covered").
    """

    def __init__(
        self,
        options: RooflineOptions,
        device: HardwareSpec,
        transfer: TransferModel | None = None,
    ) -> None:
        self.options = options
        self.device = device
        self.transfer = transfer
        table_ce, table_be = device.efficiency or efficiency_for(device.name)
        self.compute_eff = options.compute_eff if options.compute_eff is not None else table_ce
        self.bw_eff = options.bw_eff if options.bw_eff is not None else table_be
        self.launch_s = options.launch_s
        fallback_peak = max(device.flops.values(), default=0.0)
        # NOTE: perf — per-dtype constants are computed once, so a prediction is
        # a dict lookup and a few multiplications (no memo needed: hashing the
        # key would cost as much as the arithmetic).
        self._s_per_byte = 1.0 / (device.mem_bw * self.bw_eff)
        self._rates: dict[str, tuple[float, float]] = {}
        for dtype, size in DTYPE_BYTES.items():
            peak = device.peak_flops(dtype) or fallback_peak
            if peak <= 0:
                raise ConfigError(
                    f"hardware {device.name!r} lists no FLOP/s (flops: {device.flops}); the "
                    "roofline predictor needs at least a bf16 figure. Add it to the hardware "
                    "entry of the config."
                )
            # (seconds per FLOP, seconds per element of this dtype moved to/from HBM)
            self._rates[dtype] = (1.0 / (peak * self.compute_eff), size * self._s_per_byte)
        self._links = {
            "intra": device.intra_link(),
            "inter": Link(device.scaleout_bw, device.scaleout_latency),
        }
        self._dispatch: dict[str, Callable[[OpCall], float]] = {
            "gemm": self._gemm,
            "attention_prefill": self._attention_prefill,
            "attention_decode": self._attention_decode,
            "moe_experts": self._moe_experts,
            "all_reduce": self._collective,
            "all_to_all": self._collective,
            "send_recv": self._collective,
            "all_gather": self._collective,
            "reduce_scatter": self._collective,
            "elementwise": self._elementwise,
            "cpu_overhead": self._cpu_overhead,
            "linear_attention": self._linear_attention,
            "attention_index": self._attention_index,
        }

    def predict(self, call: OpCall) -> float | None:
        """Seconds for ``call`` on this device (None for an op name outside ``OPS``)."""
        fn = self._dispatch.get(call.op)
        return None if fn is None else fn(call)

    # ---- helpers ----------------------------------------------------------
    def _rate(self, dtype: str) -> tuple[float, float]:
        try:
            return self._rates[dtype]
        except KeyError:
            raise ValueError(
                f"roofline: unknown dtype {dtype!r}; choose one of {sorted(DTYPE_BYTES)}"
            ) from None

    # ---- compute and memory ops ---------------------------------------------
    def _gemm(self, call: OpCall) -> float:
        # y[m, n] = x[m, k] · W[n, k]^T: 2mnk FLOPs; read x and W, write y.
        s_flop, s_elem = self._rate(call.dtype)
        m, n, k = call.m, call.n, call.k
        t_compute = 2.0 * m * n * k * s_flop
        t_memory = (m * k + n * k + m * n) * s_elem
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def _attention_prefill(self, call: OpCall) -> float:
        # Causal attention of q new tokens against kv context tokens per sequence:
        # query i of the chunk sees (kv - q + i) keys, so the score matrix has
        # sum_seq q·(kv - q/2 + 1/2) live entries; QK^T and PV cost 2 FLOPs per
        # entry and head-dim element each -> 4 · heads · head_dim · that sum.
        # Memory: read Q and write O (heads wide), read K and V (kv heads wide).
        s_flop, s_elem = self._rate(call.dtype)
        q, kv = call.q_lens, call.kv_lens
        if q is None or kv is None or len(q) == 0:
            return self.launch_s
        window = call.extra.get("window") if call.extra else None
        if not window and len(q) <= _FEW and q.dtype.kind == kv.dtype.kind == "i":
            # NOTE: perf — a few integer lengths (a prefill batch's usual size): the same
            # exact integer sums in Python, without a numpy call per term.
            ql, kl = q.tolist(), kv.tolist()
            sum_q, sum_kv = float(sum(ql)), float(sum(kl))
            pairs = (float(sum(map(_mul, ql, kl))) - 0.5 * float(sum(map(_mul, ql, ql)))
                     + 0.5 * sum_q)
        elif window:
            sum_q = float(_sum(q))
            # Sliding window of w keys (gpt-oss): query j of the chunk, at position
            # p = kv - q + j, sees min(w, p + 1) keys; K and V are read for the last
            # q + w positions at most.
            pairs = float((_band(kv, window) - _band(kv - q, window)).sum())
            sum_kv = float(np.minimum(kv, q + window).sum())
        else:
            sum_q = float(_sum(q))
            sum_kv = float(_sum(kv))
            pairs = float(np.dot(q, kv)) - 0.5 * float(np.dot(q, q)) + 0.5 * sum_q
        hd = call.head_dim
        planes, kv_elem = self._kv_layout(call, s_elem)
        t_compute = 4.0 * call.num_heads * hd * pairs * s_flop
        t_memory = (2.0 * sum_q * call.num_heads * s_elem
                    + planes * sum_kv * call.num_kv_heads * kv_elem) * hd
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def _kv_layout(self, call: OpCall, s_elem: float) -> tuple[float, float]:
        """(planes, seconds per KV element): 2 planes (keys and values) unless the call
        says one cached latent serves as both (absorbed MLA); KV elements of the cache's
        dtype (``kv_bytes``, e.g. 1 for an fp8 KV cache), else the call's dtype."""
        ex = call.extra
        if not ex:
            return 2.0, s_elem
        kv_bytes = ex.get("kv_bytes")
        return (float(ex.get("kv_planes", 2)),
                s_elem if kv_bytes is None else kv_bytes * self._s_per_byte)

    def _attention_decode(self, call: OpCall) -> float:
        # One query token per sequence against its kv context: 4 · heads · head_dim
        # FLOPs per context token; reads the whole KV cache (memory-bound) plus Q/O.
        s_flop, s_elem = self._rate(call.dtype)
        kv = call.kv_lens
        if kv is None or len(kv) == 0:
            return self.launch_s
        window = call.extra.get("window") if call.extra else None
        sum_kv = float(np.minimum(kv, window).sum() if window else _sum(kv))
        hd = call.head_dim
        planes, kv_elem = self._kv_layout(call, s_elem)
        t_compute = 4.0 * call.num_heads * hd * sum_kv * s_flop
        t_memory = (planes * sum_kv * call.num_kv_heads * kv_elem
                    + 2.0 * len(kv) * call.num_heads * s_elem) * hd
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def predict_series(self, call: OpCall, steps: int) -> np.ndarray | None:
        """Seconds of ``steps`` successive decode steps of ``call`` (step i has every
        context ``kv_lens + i``), as ``predict`` gives them one by one (the same float
        operations, element by element): an ``attention_decode`` call, windowed or not,
        or a ``linear_attention`` one (its state does not grow: the same every step);
        None for any other call. An iteration leap prices its attention so."""
        if call.op == "linear_attention":
            return np.full(steps, self._linear_attention(call))
        if call.op != "attention_decode":
            return None
        kv = call.kv_lens
        if kv is None or len(kv) == 0:
            return None
        s_flop, s_elem = self._rate(call.dtype)
        n = len(kv)
        i = np.arange(steps, dtype=np.int64)
        window = call.extra.get("window") if call.extra else None
        if window:
            # sum(min(kv + i, w)): the contexts below w - i in full, the others at w
            # (exact integer sums, as ``_attention_decode`` takes them)
            srt = np.sort(kv)
            below = np.searchsorted(srt, window - i, side="left")
            run = np.concatenate([[0], np.cumsum(srt)])
            sums = run[below] + below * i + (n - below) * int(window)
        else:
            sums = int(kv.sum()) + n * i
        sum_kv = sums.astype(float)
        hd = call.head_dim
        planes, kv_elem = self._kv_layout(call, s_elem)
        t_compute = 4.0 * call.num_heads * hd * sum_kv * s_flop
        t_memory = (planes * sum_kv * call.num_kv_heads * kv_elem
                    + 2.0 * n * call.num_heads * s_elem) * hd
        return np.where(t_compute > t_memory, t_compute, t_memory) + self.launch_s

    def _linear_attention(self, call: OpCall) -> float:
        # Gated DeltaNet over each sequence's q tokens, H value heads, key width dk, value
        # width dv (Yang et al., ICLR 2025; the flash-linear-attention kernels engines
        # run). A sequence keeps an H·dk·dv state: read once and written once per step.
        # A single token is one recurrent step, about 7·dk·dv FLOPs per head (decay,
        # read-out k·S, delta write k⊗δ, output q·S). More tokens run the chunked form,
        # chunks of C (extra["chunk"], 64 for Gated DeltaNet; Mamba-2's SSD scan has the
        # same terms: its state is head_dim × state size): per token and head 6·dk·dv FLOPs against the state (output,
        # state update, WY correction) and 4·C·(dk + dv) inside its chunk (q·k, k·k, the
        # attention-weighted values); each chunk's state is written and read back in
        # bf16, and the WY terms w and u (dk + dv per head) go through memory once.
        s_flop = self._rate(call.dtype)[0]
        q = call.q_lens
        if q is None or len(q) == 0:
            return self.launch_s
        ex = call.extra or {}
        h, kh, dk = call.num_heads, call.num_kv_heads, call.head_dim
        dv = ex.get("v_head_dim", dk)
        state_b = ex.get("state_bytes", 4)
        chunk = float(ex.get("chunk", _GDN_CHUNK))
        qf = q.astype(np.float64)
        tokens = float(qf.sum())
        span = np.minimum(qf, chunk)
        flops = h * (6.0 * dk * dv * tokens + 4.0 * (dk + dv) * float(np.dot(qf, span))
                     + dk * dv * float((qf == 1).sum()))
        multi = qf > 1
        chunks = float(np.ceil(qf[multi] / chunk).sum())
        state = h * dk * dv
        nbytes = (2.0 * len(q) * state * state_b  # state in and out
                  + 2.0 * chunks * state * 2  # per-chunk states, written and read
                  + tokens * (2 * kh * dk + 2 * h * dv + 2 * h) * 2  # q, k, v, g, beta, o
                  + 2.0 * float(qf[multi].sum()) * h * (dk + dv) * 2)  # w and u
        t_compute = flops * s_flop
        t_memory = nbytes * self._s_per_byte
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def _attention_index(self, call: OpCall) -> float:
        # The lightning indexer of DeepSeek sparse attention (DeepGEMM's fp8_mqa_logits
        # for prefill, fp8_paged_mqa_logits for decode): each query token scores every
        # causal context token, 2 FLOPs per head-dim element, head and pair, in the call's
        # dtype (fp8). Memory: each sequence's cached index keys (kv_bytes per token), the
        # queries, and the fp32 logits written and read back by the top-k selection.
        s_flop = self._rate(call.dtype)[0]
        q, kv = call.q_lens, call.kv_lens
        if q is None or kv is None or len(q) == 0:
            return self.launch_s
        sum_q = float(q.sum())
        pairs = float(np.dot(q, kv)) - 0.5 * float(np.dot(q, q)) + 0.5 * sum_q
        kv_bytes = (call.extra or {}).get("kv_bytes", call.head_dim)
        t_compute = 2.0 * call.num_heads * call.head_dim * pairs * s_flop
        nbytes = (float(kv.sum()) * kv_bytes + sum_q * call.num_heads * call.head_dim
                  + 2.0 * pairs * 4)
        t_memory = nbytes * self._s_per_byte
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def _moe_experts(self, call: OpCall) -> float:
        # The local experts' MLPs as one grouped GEMM. From call.extra:
        #   hidden_size h, inter_size_local (else inter_size) i, num_local_experts E
        #   (default 1), and
        #   tokens_per_expert (length-E counts) or else num_tokens: the (token,
        #   expert) assignments on this GPU, assumed spread evenly (min(E, T)
        #   experts busy), and gated (default true: gate, up and down projections,
        #   g = 3; false: up and down, g = 2). FLOPs = sum_e 2·g·t_e·h·i; bytes =
        #   g·h·i weights of every expert with >= 1 token, plus activations
        #   sum_e t_e·(2h + 2i) (x in, y out, the i-wide intermediate written and
        #   read once). Without hidden_size/inter_size, call.flops/call.bytes are
        #   used as for an elementwise op.
        s_flop, s_elem = self._rate(call.dtype)
        ex: dict[str, Any] = call.extra or {}
        h = ex.get("hidden_size", 0)
        # The per-GPU width when given (expert TP shards it); else inter_size is per GPU.
        i = ex.get("inter_size_local") or ex.get("inter_size", 0)
        if not (h and i):
            return self._elementwise(call)
        tpe = ex.get("tokens_per_expert")
        if tpe is not None:
            t = np.asarray(tpe)
            assignments = float(t.sum())
            active = int(np.count_nonzero(t))
        else:
            assignments = float(ex.get("num_tokens", call.m))
            active = int(min(ex.get("num_local_experts", 1), assignments))
        g = 3.0 if ex.get("gated", True) else 2.0
        t_compute = 2.0 * g * assignments * h * i * s_flop
        t_memory = (g * active * h * i + assignments * (2.0 * h + 2.0 * i)) * s_elem
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    def _elementwise(self, call: OpCall) -> float:
        s_flop = self._rate(call.dtype)[0]
        t_compute = call.flops * s_flop
        t_memory = call.bytes * self._s_per_byte
        return (t_compute if t_compute > t_memory else t_memory) + self.launch_s

    # ---- communication and host -----------------------------------------------
    def _collective(self, call: OpCall) -> float:
        if call.num_gpus <= 1:
            return 0.0
        link = self._links["inter"] if call.scope == "inter" else self._links["intra"]
        if self.transfer is not None:
            return float(self.transfer.transfer(call.op, call.bytes, call.num_gpus, link))
        return collective_time(call.op, call.bytes, call.num_gpus, link)

    def _cpu_overhead(self, call: OpCall) -> float:
        o = self.options
        return o.cpu_overhead_base_s + o.cpu_overhead_per_seq_s * call.num_seqs


#: Chunk length of flash-linear-attention's chunked Gated DeltaNet kernels
#: (``chunk_gated_delta_rule``, BT = 64), which vLLM and SGLang (a vendored copy in
#: sglang/srt/layers/attention/fla) run for prefill.
_GDN_CHUNK = 64.0


def _band(n: np.ndarray, w: int) -> np.ndarray:
    """Sum over positions p < n of min(w, p + 1): the (query, key) pairs of the first n
    positions under causal attention with a sliding window of w keys."""
    n = n.astype(np.float64)
    return np.where(n <= w, n * (n + 1) / 2, w * (w + 1) / 2 + (n - w) * w)


def build_roofline(options: RooflineOptions, ctx: BuildContext) -> RooflinePredictor:
    """Factory of the ``roofline`` component: the device and transfer model of ``ctx``."""
    if ctx.device is None:
        raise ConfigError(
            "the roofline predictor is built per cluster and needs the "
            "cluster's GPU kind; this build context has no device."
        )
    return RooflinePredictor(options, ctx.device, ctx.transfer)
