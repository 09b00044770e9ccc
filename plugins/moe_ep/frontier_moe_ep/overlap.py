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


# ---- the engines' overlap schedules, as data ------------------------------------------
#
# SGLang runs two-batch overlap as two lists of operations, one per micro-batch, cut into
# stages by yields (python/sglang/srt/batch_overlap/operations_strategy.py). The stages
# run alternately, micro-batch b starting ``delta`` stages after a
# (operations.py, execute_overlapped_operations). Every operation is issued on the one
# compute stream in that order; ``dispatch_a``/``combine_a`` start a transfer on the
# communication stream and ``*_b`` waits for it. The layer's operations:
#
#   attn_prepare  the projections, norms and collectives before attention (common part)
#   attn_core     attention
#   gate          the router GEMM and top-k
#   shared        the shared experts (when they run beside the routed ones)
#   experts       the routed experts' grouped GEMMs
#   dispatch_a/b, combine_a/b   start / wait for the all-to-all
#   |             a yield: the end of a stage

#: (delta stages, one layer's operations): SGLang's DeepSeek strategies
#: (_compute_moe_deepseek_blog_prefill and _decode); Qwen3-MoE's are the same
#: without shared experts.
SCHEDULES: dict[str, tuple[int, tuple[str, ...]]] = {
    "sglang_prefill": (0, ("attn_prepare", "attn_core", "gate", "dispatch_a", "|",
                           "dispatch_b", "experts", "combine_a", "|",
                           "shared", "combine_b")),
    "sglang_decode": (2, ("attn_prepare", "|", "attn_core", "gate", "|",
                          "dispatch_a", "shared", "|",
                          "dispatch_b", "experts", "combine_a", "|",
                          "combine_b", "|")),
}
#: operations that are GEMMs (DeepGEMM's SM budget applies to them)
GEMM_OPS = frozenset({"attn_prepare", "gate", "shared", "experts"})


def _stages(ops: tuple[str, ...], layers: int) -> list[list[tuple[str, int]]]:
    """The model's operations (every layer's, in order) cut into stages at the yields."""
    stages: list[list[tuple[str, int]]] = [[]]
    for li in range(layers):
        for op in ops:
            if op == "|":
                stages.append([])
            else:
                stages[-1].append((op, li))
    return [s for s in stages if s]


def staged(schedule: str, ops: list[dict[str, np.ndarray]], gemm_scale: float = 1.0) -> float:
    """Makespan of micro-batches (one dict of per-layer seconds per micro-batch, keys as
    above plus ``dispatch`` and ``combine``) run with an overlap schedule. GEMM operations
    take ``gemm_scale`` times their time (SGLang's prefill schedule gives DeepGEMM the SMs
    DeepEP's normal kernels leave)."""
    delta, layer_ops = SCHEDULES[schedule]
    layers = len(ops[0]["experts"])
    stages = _stages(layer_ops, layers)
    n = len(stages)
    mb = [{k: v.tolist() for k, v in o.items()} for o in ops]
    comp = comm = 0.0
    done = [{}, {}]  # micro-batch -> (phase, layer) -> when its transfer ends

    def run(b: int, stage: list[tuple[str, int]]) -> None:
        nonlocal comp, comm
        d = mb[b]
        for op, li in stage:
            if op.endswith("_a"):
                phase = op[:-2]
                start = comm if comm > comp else comp
                comm = start + d[phase][li]
                done[b][phase, li] = comm
            elif op.endswith("_b"):
                end = done[b][op[:-2], li]
                if end > comp:
                    comp = end
            else:
                comp += d[op][li] * (gemm_scale if op in GEMM_OPS else 1.0)

    order = [(0, i) for i in range(min(delta, n))]
    for i in range(n - delta):
        order += [(0, i + delta), (1, i)]
    order += [(1, i) for i in range(max(0, n - delta), n)]
    for b, i in order:
        if b < len(mb):
            run(b, stages[i])
    return max(comp, comm)
