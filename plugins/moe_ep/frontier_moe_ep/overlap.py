"""Two-micro-batch overlap (DeepSeek/SGLang "two-batch overlap") as a dependency graph.

Each layer of each micro-batch b is a chain A_b (attention, gate, local shared
expert: compute) → D_b (dispatch: network) → E_b (experts: compute) → C_b
(combine: network), and A_b of the next layer needs C_b of this one. The
compute stream issues A0 A1 E0 E1 per layer and the network stream D0 D1 C0 C1;
a task starts when its stream is free and its predecessor is done. The step
therefore lies between max(compute, communication) and their sum, wherever the
per-layer times (stragglers included) put it.
"""

from __future__ import annotations

import numpy as np


def sequential(a: np.ndarray, d: np.ndarray, e: np.ndarray, c: np.ndarray) -> float:
    """One micro-batch: every layer's four phases one after another."""
    return float(a.sum() + d.sum() + e.sum() + c.sum())


def two_batch(a: np.ndarray, d: np.ndarray, e: np.ndarray, c: np.ndarray) -> float:
    """Makespan of two micro-batches; each argument is (2 × layers) seconds."""
    comp = comm = 0.0
    ready = [0.0, 0.0]  # when micro-batch b's previous layer has combined
    a, d, e, c = (x.tolist() for x in (a, d, e, c))
    for li in range(len(a[0])):
        a_end = [0.0, 0.0]
        for b in (0, 1):
            comp = max(comp, ready[b]) + a[b][li]
            a_end[b] = comp
        d_end = [0.0, 0.0]
        for b in (0, 1):
            comm = max(comm, a_end[b]) + d[b][li]
            d_end[b] = comm
        e_end = [0.0, 0.0]
        for b in (0, 1):
            comp = max(comp, d_end[b]) + e[b][li]
            e_end[b] = comp
        for b in (0, 1):
            comm = max(comm, e_end[b]) + c[b][li]
            ready[b] = comm
    return max(ready[0], ready[1], comp)
