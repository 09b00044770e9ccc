"""The ping-pong timeline of one iteration: a dependency graph with resource constraints.

Per layer l and micro-batch i there are four tasks: attention A(l, i) on the
attention GPUs, the activations' send A→F, the feed-forward part F(l, i) on the
FFN GPUs, and the results' send F→A. Each runs on its own resource (attention
compute, FFN compute, and each direction of the link), which takes tasks in
(layer, micro-batch) order, MegaScale-Infer's round robin. A task starts when
its resource is free and its predecessor is done; A(l + 1, i) waits for
F→A(l, i). Uneven micro-batches, MoE stragglers and slow links therefore show
up as idle time (bubbles) on the resources that wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESOURCES = ("attention", "a2f", "ffn", "f2a")


@dataclass
class Timeline:
    """``makespan``, each resource's busy seconds, and ``critical``: the seconds of each
    resource on the critical path (the chain of tasks, each started by the one before
    it, that ends last; idle time on it counts for none); ``starts`` (4 × layers ×
    micro-batches, resource order as ``RESOURCES``) when asked for."""

    makespan: float
    busy: np.ndarray
    critical: np.ndarray
    starts: np.ndarray | None = None


def pingpong(a: np.ndarray, a2f: np.ndarray, f: np.ndarray, f2a: np.ndarray,
             keep: bool = False) -> Timeline:
    """The timeline of tasks with durations (layers × micro-batches) per resource."""
    layers, m = a.shape
    dur = (a.tolist(), a2f.tolist(), f.tolist(), f2a.tolist())
    free = [0.0, 0.0, 0.0, 0.0]
    back = [0.0] * m  # when micro-batch i's previous layer came back to attention
    # The critical path ending at each resource's last task and at each micro-batch's
    # last task: seconds per resource along the chain of binding predecessors.
    zero = (0.0, 0.0, 0.0, 0.0)
    path_res = [zero] * 4
    path_mb = [zero] * m
    starts = np.zeros((4, layers, m)) if keep else None
    for li in range(layers):
        for i in range(m):
            ready = back[i]
            path = path_mb[i]
            for r in range(4):
                if free[r] > ready:  # waited for its resource
                    s, path = free[r], path_res[r]
                else:  # waited for its predecessor (or nothing)
                    s = ready
                d = dur[r][li][i]
                ready = free[r] = s + d
                path = path_res[r] = path[:r] + (path[r] + d,) + path[r + 1:]
                if starts is not None:
                    starts[r, li, i] = s
            back[i] = ready
            path_mb[i] = path
    busy = np.array([a.sum(), a2f.sum(), f.sum(), f2a.sum()])
    last = max(range(m), key=back.__getitem__)
    return Timeline(back[last], busy, np.array(path_mb[last]), starts)


def steady_state(t_a: float, t_f: float, t_c: float, layers: int, m: int) -> float:
    """The closed form for constant per-micro-batch times when the pipeline never
    stalls (T_a = T_f, m ≥ 2(1 + T_c / T_f)): (T_a + T_f + 2 T_c) + T_f (m L − 1)."""
    return (t_a + t_f + 2 * t_c) + t_f * (m * layers - 1)
