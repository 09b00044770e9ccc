"""The MoE block's pricing of a run of decode iterations of one batch shape, for an
iteration leap (frontier_core/engine/leap.py, frontier_core/execution/series.py).

Between two arrivals a replica decodes the same sequences iteration after iteration:
the tokens per rank stay the same and only the rest of each layer (its attention over
a context one token longer) changes. With a deterministic routing the block's own
part of such an iteration is then memoised (``MoEBlock.layer_ops``), and what is left
per iteration is the overlap schedule over the layers and the statistics. ``step_series``
prices an iteration from its ``other_s`` alone, with the same float operations, the
same credits and the same statistics, in the same order, as ``MoEBlock.step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from frontier_core import LayerStep

if TYPE_CHECKING:
    from frontier_moe_ep.block import MoEBlock


def step_series(block: MoEBlock, s: LayerStep) -> Callable[[float], float] | None:
    """``step(other_s) -> seconds``: ``block.step`` of ``s`` with its ``other_s``
    replaced, for the iterations of a leap (call it once per iteration, in order); None
    where the block's part of the iteration is not a replay of a memoised one: a
    random or live-balanced routing, drift, the trace, an iteration split in two
    micro-batches, a pass that is not one of the model's iterations, or a batch shape
    not priced yet (the first iteration of a shape is priced by ``step``)."""
    st = block.stats
    memo = block._token_memo
    if (memo is None or block.live is not None or block.opts.routing_drift
            or not st.recording or st.tracing() or not s.record
            or s.layers != block.layers or s.prefill):
        return None
    tok = s.tokens
    if int(tok.sum()) == 0 or (block.opts.two_batch_overlap and int(tok.max(initial=0)) >= 2):
        return None
    part = memo.get(block.memo_key(tok, False))
    if part is None:
        return None
    L = block.layers
    credit = s.credit
    replay = part.credits
    loads, kernel = part.loads, part.kernel
    kernels = st.kernels
    o = part.ops
    g, sh = o["gate"], o["shared"]
    d, e, c = o["dispatch"], o["experts"], o["combine"]
    # what ``add_step`` sums of the parts that do not change (views as ``_step`` passes)
    e_s, d_s, c_s = float(e[None].sum()), float(d[None].sum()), float(c[None].sum())
    trtllm = block.schedule == "trtllm"
    if trtllm:
        # ``staged``'s one-batch running sum: only the first column changes
        terms = np.stack([np.zeros(L), np.maximum(sh, d), e, c], axis=1)
        first = terms[:, 0]
        flat = terms.ravel()
    else:
        dec_s = d.sum()
        ex_s = e.sum()
        co_s = c.sum()

    def step(other: float) -> float:
        # NOTE: perf — ``_step`` of one memoised micro-batch, in its order: the part's
        # credits and loads, the schedule, then the statistics.
        for i, x in replay:
            credit[i] += x
        st.apply_loads(loads)
        if kernel is not None:
            kernels[kernel] += 1
            if kernel != "gather":
                st.last_kernel = kernel
        prep = np.full(L, other / 1)
        # ``_step``'s (prep + core) + gate and staged's (prep + gate) * 1.0 + core, with
        # core all zeros: adding or multiplying by them leaves these non-negative
        # seconds as they are, bit for bit
        pg = prep + g
        a = pg + sh
        if trtllm:
            first[:] = pg
            t = float(np.add.accumulate(flat)[-1])
        else:
            t = float(a.sum() + dec_s + ex_s + co_s)
        rest_s = float(prep.sum() + 0.0)
        st.steps += 1
        st.step_s.append(t)
        st.end_step()
        st.phase_s += (rest_s, float(a[None].sum()) - rest_s, e_s, d_s, c_s)
        st._rank_busy.clear()
        return t + 0.0

    return step
