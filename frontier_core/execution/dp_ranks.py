"""DP attention in the execution model: an iteration over ``dp`` attention ranks (or with
a per-iteration MoE block), priced at its slowest rank, and the load imbalance between
the ranks recorded over the run (``dp_summary``). Methods of ``ExecutionPredictor``,
written as functions of it.

A replica's batch is split over its ranks as the replica assigned them (a request's KV
lives on one rank); a layer waits for the slowest rank before its MoE block, which spans
all ranks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from frontier_core.components import LayerStep
from frontier_core.records import IterationTime

if TYPE_CHECKING:
    from frontier_core.execution.predictor import ExecutionPredictor

#: DP attention: the attention straggler is measured on every this many iterations
DP_STRAGGLER_EVERY = 8


def iteration_ranks(ex: ExecutionPredictor, q: np.ndarray | None, kvp: np.ndarray | None,
                     emits: np.ndarray | None, kvd: np.ndarray | None,
                     wd: np.ndarray | None, ids_p: np.ndarray | None,
                     ids_d: np.ndarray | None, replica: int, now: float) -> IterationTime:
    """An iteration over ``dp`` attention ranks, with a per-iteration MoE block."""
    m, dp, credit = ex.model, ex.dp, ex.credit
    empty = np.zeros(0, np.int64)
    q = empty if q is None else q
    kvp = empty if kvp is None else kvp
    emits = np.zeros(0, bool) if emits is None else emits
    kvd = empty if kvd is None else kvd
    nd = len(kvd)
    if dp == 1:
        # NOTE: perf — a decode batch has no prompt tokens and, without speculation, one
        # token per sequence: no sums over empty or all-ones arrays.
        nw = nd if wd is None else int(wd.sum())
        tokens = np.array([(int(q.sum()) if len(q) else 0) + nw], np.int64)
        seqs = (int(emits.sum()) if len(emits) else 0) + nw
        best, parts = ex._attention(q, kvp, kvd, wd)
        c, cc = ex._part("common", int(tokens[0]))
        worst, worst_t, worst_parts, worst_cc = c + best, int(tokens[0]), parts, cc
        worst_a = best
    else:
        wdv = np.ones(nd, np.int64) if wd is None else wd
        # A request stays on the DP rank its replica gave it (its KV lives there).
        rp = empty if ids_p is None else ids_p % dp
        rd = empty if ids_d is None else ids_d % dp
        tokens = (np.bincount(rp, weights=q, minlength=dp)
                  + np.bincount(rd, weights=wdv, minlength=dp)).astype(np.int64)
        seqs = int(np.bincount(rp[emits], minlength=dp).max(initial=0)
                   + np.bincount(rd, weights=wdv, minlength=dp).max(initial=0))
        # NOTE: perf — only ranks that can be the slowest are predicted: the most
        # tokens, the most prefill attention work, the most decode context.
        cand = {int(np.argmax(tokens))}
        if len(q):
            cand.add(int(np.argmax(np.bincount(rp, weights=q * kvp, minlength=dp))))
        if nd:
            cand.add(int(np.argmax(np.bincount(rd, weights=kvd * wdv, minlength=dp))))
        worst = -1.0
        priced = {}
        for r in sorted(cand):
            sp, sd = rp == r, rd == r
            a, parts = ex._attention(q[sp], kvp[sp], kvd[sd],
                                       None if wd is None else wd[sd])
            c, cc = ex._part("common", int(tokens[r]))
            priced[r] = c + a
            if c + a > worst:
                worst, worst_t, worst_parts, worst_cc = c + a, int(tokens[r]), parts, cc
                worst_a = a
        if ex.spec_of is None:
            ex._record_ranks(tokens, priced, worst, q, kvp, kvd, wd, rp, rd)
    eng = ex.engine
    # Each DP rank runs its own scheduler and replays its own graphs: per-rank sizes.
    rank_seqs = len(q) + nd if dp == 1 else max(1, -(-(len(q) + nd) // dp))
    if eng is not None:
        worst_t = ex._graph_tokens(worst_t, rank_seqs, not len(q))
    nl = m.num_layers
    for a, i in worst_parts:
        credit[i] += a * nl
    for j, v in enumerate(worst_cc):
        credit[j] += v * nl
    n_moe = ex.block_layers
    n_dense = nl - n_moe
    # Of the layers outside the block, those with a dense FFN (Nemotron-H has fewer).
    n_ffn = n_dense if m.ffn_layers is None else min(n_dense, m.ffn_layers)
    total = 0.0
    if n_dense:
        total += dense_layers(worst, *ex._part("dense", worst_t), n_dense, n_ffn, credit)
    if n_moe:
        if ex.moe_step is not None:
            rank_t = worst_t

            def rest_at(share: float) -> tuple[float, float]:
                # a micro-batch with ``share`` of the slowest rank's tokens: its
                # projections priced again at its own size, attention in proportion
                return (ex._part("common", max(1, math.ceil(rank_t * share)))[0],
                        worst_a * share)

            total += ex.moe_step(LayerStep(tokens, n_moe, worst, ex.answer, credit,
                                             replica, now, ex.spec_of is None,
                                             q is not None and len(q) > 0, rest_at))
        else:
            assert ex.moe_ffn is not None
            mo, mc = ex._sum(ex.moe_ffn.ops(worst_t))
            total += (worst + mo) * n_moe
            for j, v in enumerate(mc):
                credit[j] += v * n_moe
    extras, ec = ex._extras(worst_t, seqs)
    for j, v in enumerate(ec):
        credit[j] += v
    stage = total / ex.pp
    if eng is not None:
        return ex._with_host(stage + extras, stage * ex.pp + extras,
                               int(tokens.max()), rank_seqs)
    return IterationTime(stage + extras, stage * ex.pp + extras)


def dense_layers(worst: float, d: float, dc: list[float], n_dense: int, n_ffn: int,
                 credit: list[float]) -> float:
    """Seconds of the ``n_dense`` layers outside a per-iteration block: each one's
    attention side ``worst``, and for ``n_ffn`` of them a dense FFN of ``d`` seconds
    (credited ``dc`` per layer)."""
    for j, v in enumerate(dc):
        credit[j] += v * n_ffn
    return (worst + d) * n_dense if n_ffn == n_dense else worst * n_dense + d * n_ffn


def record_ranks(ex: ExecutionPredictor, tokens: np.ndarray, priced: dict[int, float], worst: float,
                  q: np.ndarray, kvp: np.ndarray, kvd: np.ndarray,
                  wd: np.ndarray | None, rp: np.ndarray, rd: np.ndarray) -> None:
    """Record an iteration's DP load imbalance, and on every ``DP_STRAGGLER_EVERY``-th
    iteration its attention straggler: the ranks not priced yet are priced then (a
    rank without tokens takes no time)."""
    dp = ex.dp
    ctx = (np.bincount(rp, weights=kvp, minlength=dp)
           + np.bincount(rd, weights=kvd, minlength=dp))
    mean, cmean = float(tokens.mean()), float(ctx.mean())
    ex.dp_stats.extend((float(tokens.max()) / mean if mean else 1.0,
                          float(ctx.max()) / cmean if cmean else 1.0))
    ex._dp_seen += 1
    # NOTE: perf — pricing every rank's attention costs dp predictions; a sample of
    # the iterations gives the straggler's distribution.
    if ex._dp_seen % DP_STRAGGLER_EVERY:
        return
    total = 0.0
    for r in np.flatnonzero(tokens).tolist():
        x = priced.get(r)
        if x is None:
            sp, sd = rp == r, rd == r
            a, _ = ex._attention(q[sp], kvp[sp], kvd[sd], None if wd is None else wd[sd])
            x = ex._part("common", int(tokens[r]))[0] + a
        total += x
    ex.dp_straggler.extend((worst, total / dp))


def dp_summary(ex: ExecutionPredictor) -> dict[str, object]:
    """DP attention load over the run (dp > 1), as distributions over iterations of:
    ``token_imbalance``, the most tokens computed on one rank over the mean over ranks;
    ``context_imbalance``, the same for the context (KV) tokens the ranks attend over;
    ``attention_straggler``, the slowest rank's attention-side time (attention and
    the per-token work around it) over the mean rank's. ``attention_wait_fraction``
    is the share of the ranks' attention-side time spent waiting for the slowest
    one, over the run."""
    a = np.frombuffer(ex.dp_stats, dtype=float).reshape(-1, 2)
    b = np.frombuffer(ex.dp_straggler, dtype=float).reshape(-1, 2)
    ratio = np.divide(b[:, 0], b[:, 1], out=np.ones(len(b)), where=b[:, 1] > 0)
    worst = float(b[:, 0].sum())
    return {"token_imbalance": _dist(a[:, 0]), "context_imbalance": _dist(a[:, 1]),
            "attention_straggler": _dist(ratio),
            "attention_wait_fraction": (worst - float(b[:, 1].sum())) / worst
            if worst > 0 else 0.0,
            "straggler_sampled_every": DP_STRAGGLER_EVERY}


def _dist(x: np.ndarray) -> dict[str, float]:
    """Mean, median, p90, p99 and max of a per-iteration ratio (1.0 when empty)."""
    if not len(x):
        return {"mean": 1.0, "p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0}
    p50, p90, p99 = np.percentile(x, (50, 90, 99))
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(x.max())}
