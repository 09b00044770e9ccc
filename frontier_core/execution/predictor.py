"""ExecutionPredictor: one iteration of one replica -> operator calls -> seconds.

An iteration (prefill chunks plus decode tokens) is decomposed per layer into
the operator calls a real engine launches — QKV/O projections, attention over
the whole batch composition, the feed-forward block, norms and activations,
TP all-reduces — plus embedding, LM head, sampling, PP sends and host
overhead. Each call goes through the predictor chain in config order; the
first predictor that answers supplies the time, and the run reports how much
of the predicted time each backend supplied.

Only attention depends on the batch composition beyond its token count, so
everything else is memoised on the token count (and sampled sequences) —
except an FFN block that implements ``MoELayers`` (MoE routing drawn per
iteration): the kernel calls its ``step`` once per iteration instead.

With ``dp`` > 1 (DP attention) a replica's batch is split over ``dp`` attention
ranks as the replica assigned them (a request's KV lives on one rank); a layer waits for the
slowest rank before its MoE block, which spans all ranks.

Two parts of the class live in modules of their own, as functions of it bound into the
class body (``ExecutionPredictor.dp_summary`` and the others are methods as before): the
iteration over DP attention ranks and its load statistics
(frontier_core/execution/dp_ranks.py), and the pricing of an iteration leap's
decode-only iterations (frontier_core/execution/series.py).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from frontier_core.components import FFNBlock, MoELayers, Predictor
from frontier_core.errors import ConfigError
from frontier_core.execution import dp_ranks, series
from frontier_core.execution.dp_ranks import DP_STRAGGLER_EVERY
from frontier_core.model.catalog import HardwareSpec, ModelSpec
from frontier_core.model.dtypes import DTYPE_BYTES, gemm_dtype
from frontier_core.records import Batch, IterationTime, OpCall

# NOTE: perf — ndarray.sum() is this ufunc reduction behind a Python wrapper that costs
# more than the sum itself on a batch's short arrays.
_sum = np.add.reduce

# DP_STRAGGLER_EVERY (execution/dp_ranks.py) and IterationTime (records.py) are defined
# elsewhere and importable from here, as they were.
__all__ = ["DP_STRAGGLER_EVERY", "DenseFFN", "ExecutionPredictor", "IterationTime",
           "chain_answer", "dtype_bytes", "weight_bytes_per_gpu"]

if TYPE_CHECKING:
    from frontier_core.execution.engines import EngineModel
    from frontier_core.execution.speculative import Speculator

# Elementwise traffic per token per layer, in multiples of hidden_size activations:
# two RMSNorms (read+write each), RoPE on Q/K (~1), two residual adds (read 2,
# write 1 each). Counted as reads+writes of bf16 activations.
_ELEMENTWISE_PASSES_PER_LAYER = 12

_computed = attrgetter("computed")
_target = attrgetter("prefill_target")


class ExecutionPredictor:
    """Predicts iteration times for one cluster's replicas (one model, one GPU kind,
    one TP/PP layout)."""

    def __init__(
        self,
        model: ModelSpec,
        device: HardwareSpec,
        tp: int,
        pp: int,
        chain: Sequence[tuple[str, Predictor]],
        dense_ffn: FFNBlock,
        moe_ffn: FFNBlock | None = None,
        dp: int = 1,
        all_layers: bool = False,
        engine: EngineModel | None = None,
    ) -> None:
        if model.num_layers < pp:
            raise ConfigError(
                f"pp={pp} is larger than {model.name}'s {model.num_layers} layers; "
                "lower the cluster's pp."
            )
        self.model = model
        self.device = device
        self.tp = tp
        self.pp = pp
        self.chain = list(chain)
        self.credit = [0.0] * len(self.chain)
        self.dense_ffn = dense_ffn
        self.moe_ffn = moe_ffn
        self.dp = dp
        # Per iteration with dp > 1 (drafter passes excluded): the most tokens computed on
        # a rank over the mean, the same for the context tokens attended over, and the
        # slowest and the mean rank's attention-side seconds per layer (``dp_summary``).
        self.dp_stats = array("d")
        self.dp_straggler = array("d")
        self._dp_seen = 0
        # A block with a per-iteration ``step`` (MoE routing) is never memoised.
        self.moe_step = moe_ffn.step if isinstance(moe_ffn, MoELayers) else None
        # Optional: its pricing of a leap's iterations of one batch shape (``decode_series``)
        self.moe_series = (getattr(moe_ffn, "step_series", None) if self.moe_step is not None
                           else None)
        # A cluster ``ffn`` block runs every layer's feed-forward part, dense layers too.
        self.block_layers = model.num_layers if all_layers else model.num_moe_layers
        self._answer = self.answer = chain_answer(self.chain, device.name)
        self.dtype = gemm_dtype(model.weight_dtype)
        self.act_bytes = 2  # activations stay in bf16
        self.scope = "intra" if tp * pp <= device.nvlink_gpus else "inter"
        self.tp_scope = "intra" if tp <= device.nvlink_gpus else "inter"
        self.layers_per_stage = math.ceil(model.num_layers / pp)
        self._layer_memo: dict[int, tuple[float, list[float]]] = {}
        self._part_memo: dict[tuple[str, int], tuple[float, list[float]]] = {}
        self._extra_memo: dict[tuple[int, int], tuple[float, list[float]]] = {}
        self._recompute_memo: dict[tuple[int, int], float] = {}
        # Speculative decoding (frontier_core.execution.speculative): drafting cost per iteration.
        self.spec: Speculator | None = None
        # Host-side scheduling per pass; a drafter's passes run inside the target's
        # engine step, whose host overhead is counted once.
        self.host_overhead = engine is None
        # The serving engine (frontier_core.execution.engines): CUDA-graph padding and the host
        # time it adds to each iteration.
        self.engine = engine
        # Set on a drafter: the target it drafts for (its passes stay out of the
        # statistics of a shared per-iteration block).
        self.spec_of: ExecutionPredictor | None = None
        self._attn_shape()

    # ---- the chain ------------------------------------------------------
    def _sum(self, calls: list[OpCall]) -> tuple[float, list[float]]:
        credit = [0.0] * len(self.chain)
        total = 0.0
        for c in calls:
            t, i = self._answer(c)
            total += t
            credit[i] += t
        return total, credit

    # ---- shapes ---------------------------------------------------------
    def _attn_shape(self) -> None:
        m = self.model
        # The layer groups by attention kind (frontier_core.model.attention) and their share of
        # the layers; layers of different kinds are priced as their mean.
        self.mixers = m.mixers(self.tp)
        self.mixer_share = [g.layers / m.num_layers for g in self.mixers]
        first = self.mixers[0].projections(1, self.dtype)
        self.uniform = all(g.projections(1, self.dtype) == first for g in self.mixers[1:])

    def _layer_common_ops(self, t: int, group: int = 0) -> list[OpCall]:
        """A layer's calls besides attention and the FFN, for a layer of group ``group``."""
        h = self.model.hidden_size
        ops = self.mixers[group].projections(t, self.dtype)
        ops.append(
            OpCall(
                "elementwise", "norms_rope_residual", "bf16",
                m=t, bytes=_ELEMENTWISE_PASSES_PER_LAYER * t * h * self.act_bytes,
                flops=10.0 * t * h,
            )
        )
        if self.tp > 1:
            ops.extend(self._tp_all_reduce(t * h * self.act_bytes, t) * 2)
        return ops

    def _tp_all_reduce(self, nbytes: float, t: int) -> list[OpCall]:
        """One all-reduce of ``nbytes`` per GPU over the TP group. A group wider than a
        node runs hierarchically, as NCCL does across nodes: reduce-scatter inside the
        NVLink domain, an all-reduce of each GPU's shard with its peers in the other
        nodes over the scale-out network, then an all-gather inside the domain."""
        if self.tp_scope == "intra":
            return [OpCall("all_reduce", "tp_all_reduce", "bf16", m=t, bytes=nbytes,
                           num_gpus=self.tp, scope="intra")]
        local = min(self.device.nvlink_gpus, self.tp)
        nodes = math.ceil(self.tp / local)
        return [
            OpCall("reduce_scatter", "tp_reduce_scatter", "bf16", m=t, bytes=nbytes,
                   num_gpus=local, scope="intra"),
            OpCall("all_reduce", "tp_all_reduce", "bf16", m=t, bytes=nbytes / local,
                   num_gpus=nodes, scope="inter"),
            OpCall("all_gather", "tp_all_gather", "bf16", m=t, bytes=nbytes,
                   num_gpus=local, scope="intra"),
        ]

    # ---- memoised parts -------------------------------------------------
    def _layers(self, t: int) -> tuple[float, list[float]]:
        """Seconds for one pipeline stage's layers, without attention, at ``t`` tokens."""
        hit = self._layer_memo.get(t)
        if hit is not None:
            return hit
        m = self.model
        common, credit = self._common(t)
        dense, dcredit = self._sum(self.dense_ffn.ops(t))
        n_moe = m.num_moe_layers
        n_dense = m.num_dense_ffn_layers
        total = common * m.num_layers + dense * n_dense
        credit = [c * m.num_layers + dc * n_dense for c, dc in zip(credit, dcredit, strict=True)]
        if n_moe:
            assert self.moe_ffn is not None
            moe, mcredit = self._sum(self.moe_ffn.ops(t))
            total += moe * n_moe
            credit = [c + mc * n_moe for c, mc in zip(credit, mcredit, strict=True)]
        frac = 1.0 / self.pp
        res = (total * frac, [c * frac for c in credit])
        self._layer_memo[t] = res
        return res

    def _extras(self, t: int, seqs: int) -> tuple[float, list[float]]:
        """Embedding, final norm, LM head, sampling, PP sends and host overhead."""
        key = (t, seqs)
        hit = self._extra_memo.get(key)
        if hit is not None:
            return hit
        m, d = self.model, self.dtype
        h = m.hidden_size
        vocab = math.ceil(m.vocab_size / self.tp)
        ops = [OpCall("elementwise", "embedding", "bf16", m=t, bytes=2 * t * h * self.act_bytes)]
        if seqs:
            # No sequence ends its step here (only partial prefill chunks): no logits.
            ops += [
                OpCall("elementwise", "final_norm", "bf16", m=seqs,
                       bytes=2 * seqs * h * self.act_bytes),
                OpCall("gemm", "lm_head", d, seqs, vocab, h),
                OpCall("elementwise", "sampling", "fp32", m=seqs, bytes=3 * seqs * vocab * 4,
                       flops=5.0 * seqs * vocab, num_seqs=seqs),
            ]
        if self.host_overhead:
            ops.append(OpCall("cpu_overhead", "host", m=t, num_seqs=seqs))
        if self.pp > 1:
            send = OpCall("send_recv", "pp_send", "bf16", m=t, bytes=t * h * self.act_bytes,
                          num_gpus=2, scope=self.scope)
            ops.extend([send] * (self.pp - 1))
        res = self._sum(ops)
        self._extra_memo[key] = res
        return res

    def _part(self, kind: str, t: int) -> tuple[float, list[float]]:
        """Seconds of one layer's ``common`` part (everything but attention and the FFN)
        or ``dense`` FFN at ``t`` tokens, memoised."""
        key = (kind, t)
        hit = self._part_memo.get(key)
        if hit is None:
            hit = self._part_memo[key] = (self._common(t) if kind == "common"
                                          else self._sum(self.dense_ffn.ops(t)))
        return hit

    def _common(self, t: int) -> tuple[float, list[float]]:
        """Seconds of one layer's projections, norms and collectives at ``t`` tokens: the
        mean over the layer groups when their projections differ."""
        if self.uniform:
            return self._sum(self._layer_common_ops(t))
        total, credit = 0.0, [0.0] * len(self.chain)
        for g, share in enumerate(self.mixer_share):
            x, c = self._sum(self._layer_common_ops(t, g))
            total += x * share
            credit = [a + b * share for a, b in zip(credit, c, strict=True)]
        return total, credit

    # ---- the hot method -------------------------------------------------
    def iteration(self, batch: Batch, replica: int = 0, now: float = 0.0) -> IterationTime:
        """Seconds for one batch run by ``replica`` starting at ``now``; credits each
        backend with the time it supplied."""
        dec = batch.decode
        nd = len(dec)
        q, kvp, emits, ids_p = self.prefill_arrays(batch)
        kvd = wd = None
        if nd:
            kvd = np.fromiter(map(_computed, dec), np.int64, nd)
            if batch.spec:
                wd = np.asarray(batch.spec, np.int64) + 1  # verification: s+1 tokens
                kvd += wd
            else:
                kvd += 1
        ids_d = None
        if self.dp > 1:
            ids_d = np.fromiter((r.dp_rank for r in dec), np.int64, nd)
        it = self.run(q, kvp, emits, kvd, wd, ids_p, ids_d, replica, now)
        sp = self.spec
        if sp is not None:
            computed = None if kvd is None else kvd - (1 if wd is None else wd)
            drafts = None if wd is None else wd - 1
            if computed is not None and drafts is None:
                drafts = np.zeros(nd, np.int64)
            d = sp.draft_time(q, kvp, emits, computed, drafts, ids_p, ids_d, replica, now)
            it.stage += d
            it.latency += d
        return it

    def prefill_arrays(self, batch: Batch) -> tuple[np.ndarray | None, np.ndarray | None,
                                                   np.ndarray | None, np.ndarray | None]:
        """A batch's prefill chunks as ``run`` takes them: tokens, context after the
        chunk, whether the chunk ends the prompt (and so emits a token), and with
        dp > 1 the DP ranks (an empty array without prefills)."""
        pre = batch.prefill
        np_ = len(pre)
        q = kvp = emits = ids_p = None
        if np_:
            q = np.fromiter(batch.chunks, np.int64, np_)
            kvp = np.fromiter(map(_computed, pre), np.int64, np_) + q
            # Prefills whose last chunk this is emit a token (LM head and sampling).
            emits = kvp >= np.fromiter(map(_target, pre), np.int64, np_)
        if self.dp > 1:
            ids_p = np.fromiter((r.dp_rank for r in pre), np.int64, np_)
        return q, kvp, emits, ids_p

    # ---- the leap's pricing (frontier_core.execution.series) ------------
    decode_step = series.decode_step
    mixed_step = series.mixed_step
    decode_series = series.decode_series

    def run(self, q: np.ndarray | None, kvp: np.ndarray | None, emits: np.ndarray | None,
            kvd: np.ndarray | None, wd: np.ndarray | None, ids_p: np.ndarray | None,
            ids_d: np.ndarray | None, replica: int = 0, now: float = 0.0) -> IterationTime:
        """One forward pass given as arrays (see ``forward``); ``ids_p`` and ``ids_d``
        are the sequences' DP attention ranks (``Request.dp_rank``) when dp > 1."""
        if self.moe_step is not None or self.dp > 1:  # also every ``ffn`` block
            return self._iteration_ranks(q, kvp, emits, kvd, wd, ids_p, ids_d, replica, now)
        return self.forward(q, kvp, emits, kvd, wd)

    def forward(self, q: np.ndarray | None, kvp: np.ndarray | None, emits: np.ndarray | None,
                kvd: np.ndarray | None, wd: np.ndarray | None = None) -> IterationTime:
        """One forward pass of a replica without DP ranks or a per-iteration block.

        Prefill sequences compute ``q`` tokens each with ``kvp`` context (including
        them); ``emits`` marks those that yield a token. Decode sequences have ``kvd``
        context and compute ``wd`` tokens each (None: one; more when verifying drafts).
        """
        credit = self.credit
        dec_tokens = 0 if kvd is None else (len(kvd) if wd is None else int(_sum(wd)))
        # LM head and sampling run for every emitting prefill and every decode token.
        if q is None:
            t = seqs = dec_tokens
        elif len(q) <= 16:  # NOTE: perf — a few prefills: Python sums, no numpy call
            t = sum(q.tolist()) + dec_tokens
            seqs = (0 if emits is None else sum(emits.tolist())) + dec_tokens
        else:
            t = int(_sum(q)) + dec_tokens
            seqs = (0 if emits is None else int(_sum(emits))) + dec_tokens
        eng = self.engine
        n_seqs = dec_tokens if wd is None else len(kvd)
        n_seqs += 0 if q is None else len(q)
        t_run = t if eng is None else self._graph_tokens(t, n_seqs, q is None or not len(q))
        layers, lc = self._layers(t_run)
        extras, ec = self._extras(t, seqs)
        nl = self.model.num_layers / self.pp
        a, parts = self._attention(q, kvp, kvd, wd)
        attn = a * nl
        for x, i in parts:
            credit[i] += x * nl
        for j in range(len(credit)):
            credit[j] += lc[j] * self.pp + ec[j]
        stage = layers + attn
        if eng is not None:
            return self._with_host(stage + extras, stage * self.pp + extras, t, n_seqs)
        return IterationTime(stage + extras, stage * self.pp + extras)

    def _graph_tokens(self, t: int, seqs: int, decode_only: bool) -> int:
        """Tokens the layers run for: a batch that replays a CUDA graph is padded to the
        graph's captured size (tokens for vLLM; sequences, at the same tokens each, for
        engines that capture by batch size)."""
        eng = self.engine
        assert eng is not None
        mode, size = eng.graph(t, seqs, decode_only)
        if not mode:
            return t
        return size if eng.graph_by_tokens else t + (size - seqs) * max(1, t // max(1, seqs))

    def _with_host(self, stage: float, latency: float, t: int, seqs: int) -> IterationTime:
        """An iteration with its engine's host time: the CPU work of a step, hidden
        behind the GPU's forward pass when the engine overlaps them, and the hand-off gap
        (``EngineModel.step_s``)."""
        assert self.engine is not None
        extra = self.engine.step_s(stage, t, seqs) - stage
        return IterationTime(stage + extra, latency + extra)

    def _attention(self, q: np.ndarray | None, kvp: np.ndarray | None,
                   kvd: np.ndarray | None,
                   wd: np.ndarray | None = None) -> tuple[float, list[tuple[float, int]]]:
        """Per-layer token-mixing seconds of one rank's prefill (q, kv) and decode (kv)
        parts: the mean over the model's layers when they are of several kinds (windowed
        and full attention in gpt-oss, linear and full in Qwen3.5)."""
        answer = self._answer
        if len(self.mixers) == 1:
            parts = [answer(c) for c in self.mixers[0].calls(q, kvp, kvd, wd)]
            total = 0
            for a, _ in parts:
                total += a
            return total, parts
        total, parts = 0.0, []
        for g, share in zip(self.mixers, self.mixer_share, strict=True):
            gp = [answer(c) for c in g.calls(q, kvp, kvd, wd)]
            total += sum(a for a, _ in gp) * share
            parts += [(x * share, i) for x, i in gp]
        return total, parts

    # ---- DP attention ranks (frontier_core.execution.dp_ranks) ----------
    _iteration_ranks = dp_ranks.iteration_ranks
    _record_ranks = dp_ranks.record_ranks
    dp_summary = dp_ranks.dp_summary

    def recompute_s(self, tokens: int, context: int) -> float:
        """Seconds a prefill spends on ``tokens`` prompt tokens that follow ``context``
        cached ones (what recomputing evicted blocks costs, which the prefix cache's host
        tier weighs a copy over PCIe against): every layer's projections, norms,
        collectives and feed-forward block at ``tokens`` tokens, plus their attention over
        ``context + tokens`` keys. Embedding, LM head, sampling and host overhead are left
        out: the prefill pays them whether it recomputes or not.

        A block whose time is drawn per iteration (MoE routing, ``MoELayers``) is priced
        as the model's dense MLP at the same tokens, without drawing anything. Memoised
        on (tokens, context); it credits no backend: it is a what-if, not a run's time.
        """
        key = (tokens, context)
        hit = self._recompute_memo.get(key)
        if hit is not None:
            return hit
        if self.moe_step is None:
            layers = self._layers(tokens)[0] * self.pp  # one stage's layers, times stages
        else:
            per_layer = self._part("common", tokens)[0] + self._part("dense", tokens)[0]
            layers = per_layer * self.model.num_layers
        q = np.array([tokens], np.int64)
        attention, _ = self._attention(q, q + context, None)
        s = self._recompute_memo[key] = layers + attention * self.model.num_layers
        return s

    def credit_by_backend(self) -> dict[str, float]:
        """Predicted seconds supplied by each backend so far."""
        return {name: c for (name, _), c in zip(self.chain, self.credit, strict=True)}


class DenseFFN:
    """The dense (gated) MLP of a layer, sharded over TP: gate+up GEMM, activation, down GEMM."""

    def __init__(self, model: ModelSpec, tp: int) -> None:
        self.h = model.hidden_size
        self.inter = math.ceil(model.intermediate_size / tp)
        self.gated = model.gated_mlp
        self.dtype = gemm_dtype(model.weight_dtype)

    def ops(self, num_tokens: int) -> list[OpCall]:
        t = num_tokens
        up = (2 if self.gated else 1) * self.inter
        return [
            OpCall("gemm", "mlp_up", self.dtype, t, up, self.h),
            OpCall("elementwise", "mlp_act", "bf16", m=t, bytes=3 * t * self.inter * 2,
                   flops=8.0 * t * self.inter),
            OpCall("gemm", "mlp_down", self.dtype, t, self.h, self.inter),
        ]


def chain_answer(chain: Sequence[tuple[str, Predictor]], device: str):
    """``answer(call) -> (seconds, backend index)`` over a predictor chain."""

    def answer(call: OpCall) -> tuple[float, int]:
        for i, (_, p) in enumerate(chain):
            t = p.predict(call)
            if t is not None:
                return t, i
        names = ", ".join(n for n, _ in chain)
        raise ConfigError(
            f"No predictor in the chain [{names}] covers the operator {call.op!r} "
            f"({call.name}) on {device}. End the predictor list with 'roofline', "
            "which answers every operator."
        )

    if len(chain) != 1:
        return answer
    predict = chain[0][1].predict

    def answer_one(call: OpCall) -> tuple[float, int]:
        # NOTE: perf — a chain of one predictor (the default, roofline) without the loop.
        t = predict(call)
        return (t, 0) if t is not None else answer(call)

    return answer_one


def weight_bytes_per_gpu(model: ModelSpec, tp: int, pp: int) -> float:
    """Weights one GPU holds under TP×PP (embeddings and LM head split over TP)."""
    return model.weight_bytes() / (tp * pp)


def dtype_bytes(dtype: str) -> float:
    return DTYPE_BYTES[dtype]
