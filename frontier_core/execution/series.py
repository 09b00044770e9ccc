"""The execution model's pricing for an iteration leap (frontier_core/engine/leap.py):
a decode-only iteration from its arrays (``decode_step``), and a run of them priced at
once where the predictor chain allows it (``decode_series``). Methods of
``ExecutionPredictor``, written as functions of it; the calls they make, and so the
results, are those ``ExecutionPredictor.iteration`` makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from frontier_core.execution.predictor import ExecutionPredictor
    from frontier_core.records import Batch, IterationTime


def decode_step(ex: ExecutionPredictor, kvd: np.ndarray, ranks: np.ndarray | None,
                replica: int = 0, now: float = 0.0) -> IterationTime:
    """``iteration`` of a decode-only batch without speculation, from its arrays: each
    sequence's context ``kvd`` (its new token included) and, with dp > 1, its DP
    rank. An iteration leap (``frontier_core.engine.leap``) prices its iterations with
    it; the calls, and so the results, are those ``iteration`` makes."""
    if ex.spec is not None:
        raise ValueError("decode_step prices iterations without speculative decoding")
    ids_p = None if ranks is None else np.zeros(0, np.int64)
    return ex.run(None, None, None, kvd, None, ids_p, ranks, replica, now)


def mixed_step(ex: ExecutionPredictor, batch: Batch, kvd: np.ndarray,
               ranks: np.ndarray | None, replica: int = 0, now: float = 0.0) -> IterationTime:
    """``iteration`` of ``batch`` (its prefill chunks, and decodes without speculation)
    with the decodes given as arrays, as ``decode_step`` takes them (the decode roster's
    mixed iterations); the calls, and so the results, are those ``iteration`` makes."""
    if ex.spec is not None:
        raise ValueError("mixed_step prices iterations without speculative decoding")
    q, kvp, emits, ids_p = ex.prefill_arrays(batch)
    return ex.run(q, kvp, emits, kvd if len(kvd) else None, None, ids_p, ranks, replica, now)


def decode_series(ex: ExecutionPredictor, kvd: np.ndarray, steps: int,
                  ranks: np.ndarray | None = None) -> Callable[[int], float] | None:
    """Up to ``steps`` successive decode-only iterations of one batch (step i: every
    context ``kvd + i``; with dp > 1 each sequence on its DP rank in ``ranks``) priced
    at once where the predictor chain allows it: a first predictor whose
    ``predict_series`` covers the one call of each kind of token mixing, and a
    per-iteration block (MoE; with dp > 1 there is one) only with its
    ``step_series``. Returns
    ``price(i)``, the latency of step i, which credits the backends as ``iteration``
    would (call it once per step, in order); None when not priced so. Everything
    but the attention is the same at every step (memoised on the tokens)."""
    if ex.spec is not None:
        return None
    if ex.dp > 1:
        return None if ranks is None else _ranks_series(ex, kvd, ranks, steps)
    if ex.moe_step is not None:
        return _moe_series(ex, kvd, steps)
    got = _attention_series(ex, kvd, steps, False)
    if got is None:
        return None
    a, parts = got
    n = len(kvd)
    eng = ex.engine
    layers, lc = ex._layers(n if eng is None else ex._graph_tokens(n, n, True))
    extras, ec = ex._extras(n, n)
    pp = ex.pp
    nl = ex.model.num_layers / pp
    add = [x * pp + y for x, y in zip(lc, ec, strict=True)]
    credit = ex.credit
    with_host = ex._with_host

    def price(i: int) -> float:
        # NOTE: perf — ``forward``'s arithmetic for a decode-only batch, in its order
        for p in parts:
            credit[0] += p[i] * nl
        for j, v in enumerate(add):
            credit[j] += v
        stage = layers + a[i] * nl
        if eng is not None:
            return with_host(stage + extras, stage * pp + extras, n, n).latency
        return stage * pp + extras

    return price


def _attention_series(ex: ExecutionPredictor, kvd: np.ndarray, steps: int,
                      arrays: bool) -> tuple[list[float], list[list[float]]] | None:
    """``_attention`` of ``steps`` decode steps (step i: every context ``kvd + i``):
    the per-layer token-mixing seconds of each step, and the part credited to the first
    predictor for each kind of layer; when each kind prices with one call that the
    first predictor's ``predict_series`` covers (and so answers), else None. ``arrays``:
    the callers' empty prefill arrays (``iteration_ranks``) rather than None
    (``forward``)."""
    series = getattr(ex.chain[0][1], "predict_series", None)
    if series is None:
        return None
    empty = np.zeros(0, np.int64) if arrays else None
    got = []
    for g in ex.mixers:
        calls = g.calls(empty, empty, kvd, None)
        if len(calls) != 1:
            return None
        a = series(calls[0], steps)
        if a is None:
            return None
        got.append(a)
    if len(got) == 1:
        a = got[0].tolist()
        return a, [a]
    # NOTE: perf — ``_attention``'s several kinds: each kind's seconds times its share
    # of the layers, summed in order from 0.0
    parts = [a * share for a, share in zip(got, ex.mixer_share, strict=True)]
    total = np.zeros(steps)
    for p in parts:
        total = total + p
    return total.tolist(), [p.tolist() for p in parts]


def _moe_series(ex: ExecutionPredictor, kvd: np.ndarray,
                steps: int) -> Callable[[int], float] | None:
    """``decode_series`` with a per-iteration block (dp 1): ``iteration_ranks``'s
    arithmetic for a decode-only batch, in its order, with the block's own pricing of
    the batch shape (its optional ``step_series``)."""
    from frontier_core.components import LayerStep
    from frontier_core.execution.dp_ranks import dense_layers

    if ex.moe_series is None or ex.spec_of is not None:
        return None
    n = len(kvd)
    tokens = np.array([n], np.int64)
    eng = ex.engine
    worst_t = n if eng is None else ex._graph_tokens(n, n, True)
    nl = ex.model.num_layers
    n_moe = ex.block_layers
    n_dense = nl - n_moe
    n_ffn = n_dense if ex.model.ffn_layers is None else min(n_dense, ex.model.ffn_layers)
    c, cc = ex._part("common", n)
    credit = ex.credit
    block = ex.moe_series(LayerStep(tokens, n_moe, c, ex.answer, credit, 0, 0.0, True,
                                    False, None))
    if block is None:
        return None
    got = _attention_series(ex, kvd, steps, True)
    if got is None:
        return None
    a, parts = got
    d, dc = ex._part("dense", worst_t) if n_dense else (0.0, [])
    extras, ec = ex._extras(worst_t, n)

    def price(i: int) -> float:
        # NOTE: perf — ``iteration_ranks``'s arithmetic for a decode-only batch at dp 1
        for p in parts:
            credit[0] += p[i] * nl
        for j, v in enumerate(cc):
            credit[j] += v * nl
        worst = c + a[i]
        total = 0.0
        if n_dense:
            total += dense_layers(worst, d, dc, n_dense, n_ffn, credit)
        if n_moe:
            total += block(worst)
        return _ranks_end(ex, total, extras, ec, n, n)

    return price


def _ranks_series(ex: ExecutionPredictor, kvd: np.ndarray, ranks: np.ndarray,
                  steps: int) -> Callable[[int], float] | None:
    """``decode_series`` over dp > 1 attention ranks with a per-iteration block:
    ``iteration_ranks`` and ``record_ranks`` for a decode-only batch, in their order,
    each rank's attention from its own series, the block's from its ``step_series``."""
    from frontier_core.components import LayerStep
    from frontier_core.execution.dp_ranks import DP_STRAGGLER_EVERY, dense_layers

    if ex.moe_series is None or ex.spec_of is not None:
        return None
    dp = ex.dp
    rd = ranks % dp
    ones = np.ones(len(kvd), np.int64)
    tokens = np.bincount(rd, weights=ones, minlength=dp).astype(np.int64)
    seqs = int(np.bincount(np.zeros(0, np.int64), minlength=dp).max(initial=0)
               + np.bincount(rd, weights=ones, minlength=dp).max(initial=0))
    credit = ex.credit
    nl = ex.model.num_layers
    n_moe = ex.block_layers
    n_dense = nl - n_moe
    n_ffn = n_dense if ex.model.ffn_layers is None else min(n_dense, ex.model.ffn_layers)
    block = ex.moe_series(LayerStep(tokens, n_moe, 0.0, ex.answer, credit, 0, 0.0, True,
                                    False, None))
    if block is None:
        return None
    busy = np.flatnonzero(tokens).tolist()
    # NOTE: perf — each rank's sequences (in batch order), and its attention series and
    # common part made when first needed: a leap or a running batch that soon changes
    # uses the one or two candidate ranks, the sampled straggler every rank at one step.
    order = np.argsort(rd, kind="stable")
    cut = np.searchsorted(rd[order], np.arange(dp + 1)).tolist()
    empty = np.zeros(0, np.int64)
    attn: dict[int, tuple[list[float], list[list[float]]]] = {}
    common: dict[int, tuple[float, list[float]]] = {}

    def rank_kvd(r: int) -> np.ndarray:
        return kvd[order[cut[r]:cut[r + 1]]]

    def series_of(r: int) -> tuple[list[float], list[list[float]]] | None:
        got = attn.get(r)
        if got is None:
            got = _attention_series(ex, rank_kvd(r), steps, True)
            if got is not None:
                attn[r] = got
        return got

    def common_of(r: int) -> tuple[float, list[float]]:
        got = common.get(r)
        if got is None:
            got = common[r] = ex._part("common", int(tokens[r]))
        return got

    top = int(np.argmax(tokens))
    # each rank's context at step i: its sequences' contexts plus i each (exact sums)
    ctx0 = np.bincount(rd, weights=kvd, minlength=dp)
    per = tokens.astype(float)
    ctx_top = np.argmax(ctx0[None, :] + per[None, :] * np.arange(steps)[:, None],
                        axis=1).tolist()
    if series_of(top) is None:  # every rank's calls are of the same kinds
        return None
    t_max = float(tokens.max())
    t_mean = float(tokens.mean())
    t_ratio = t_max / t_mean if t_mean else 1.0
    eng = ex.engine
    rank_seqs = max(1, -(-len(kvd) // dp))
    stats, strag = ex.dp_stats, ex.dp_straggler
    most = int(tokens.max())

    def price(i: int) -> float:
        # NOTE: perf — ``iteration_ranks`` (dp > 1) for a decode-only batch, in its order
        worst = -1.0
        priced = {}
        for r in sorted({top, ctx_top[i]}):
            a = series_of(r)[0][i]  # type: ignore[index]
            c, cc = common_of(r)
            priced[r] = c + a
            if c + a > worst:
                worst, w_rank, worst_cc = c + a, r, cc
        ctx = ctx0 + per * i
        cmean = float(ctx.mean())
        stats.extend((t_ratio, float(ctx.max()) / cmean if cmean else 1.0))
        ex._dp_seen += 1
        if not ex._dp_seen % DP_STRAGGLER_EVERY:
            total = 0.0
            for r in busy:
                x = priced.get(r)
                if x is None:
                    x = common_of(r)[0] + ex._attention(empty, empty, rank_kvd(r) + i)[0]
                total += x
            strag.extend((worst, total / dp))
        worst_t = int(tokens[w_rank])
        if eng is not None:
            worst_t = ex._graph_tokens(worst_t, rank_seqs, True)
        for p in attn[w_rank][1]:
            credit[0] += p[i] * nl
        for j, v in enumerate(worst_cc):
            credit[j] += v * nl
        total = 0.0
        if n_dense:
            total += dense_layers(worst, *ex._part("dense", worst_t), n_dense, n_ffn, credit)
        if n_moe:
            total += block(worst)
        return _ranks_end(ex, total, *ex._extras(worst_t, seqs), most, rank_seqs)

    return price


def _ranks_end(ex: ExecutionPredictor, total: float, extras: float, ec: list[float],
               tokens: int, seqs: int) -> float:
    """``iteration_ranks``'s end: the model's layers (``total``) over the pipeline
    stages, the per-iteration extras credited, and the engine's host time."""
    credit = ex.credit
    for j, v in enumerate(ec):
        credit[j] += v
    stage = total / ex.pp
    if ex.engine is not None:
        return ex._with_host(stage + extras, stage * ex.pp + extras, tokens, seqs).latency
    return stage * ex.pp + extras
