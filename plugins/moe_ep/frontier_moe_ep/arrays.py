"""Reductions over a short last axis, bit for bit what numpy's own give, without its
per-row inner loops (which dominate when the axis holds a few slots or GPUs).

numpy adds the items of a contiguous last axis in a fixed order (``pairwise_sum`` in
numpy/_core/src/umath/loops_utils.h.src): fewer than 8 one after another; from 8, eight
running sums of strided items, combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the
rest one after another. The tests compare with ``x.sum(axis=-1)``. Meant for the
block's non-negative token counts (numpy's would turn a sum of negative zeros positive)."""

from __future__ import annotations

import numpy as np


def last_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=-1)`` of a float array, the same floats."""
    n = x.shape[-1]
    if n < 2 or n >= 16:
        return x.sum(axis=-1)
    c = [x[..., i] for i in range(n)]
    if n < 8:
        out = c[0] + c[1]
        for v in c[2:]:
            out += v
        return out
    out = ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]))
    for v in c[8:]:
        out += v
    return out


def last_count(x: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(x > 0, axis=-1)``: positive items along the last axis."""
    n = x.shape[-1]
    if not 2 <= n < 16:
        return np.count_nonzero(x > 0, axis=-1)
    out = np.add(x[..., 0] > 0, x[..., 1] > 0, dtype=np.intp)
    for i in range(2, n):
        out += x[..., i] > 0
    return out
