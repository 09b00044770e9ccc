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

from functools import lru_cache

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
    # TensorRT-LLM splits no batch: its DeepSeek MoE runs the shared experts on an
    # auxiliary stream while the main one runs gate, dispatch, routed experts and combine
    # (tensorrt_llm/_torch/models/modeling_deepseekv3.py, Deepseekv3MoE.forward:
    # maybe_execute_in_parallel on AuxStreamType.MoeShared). Only the transfers leave the
    # compute units idle, so the shared experts fill the dispatch; when they outlast it
    # the routed experts wait for the SMs they hold.
    "trtllm": (0, ("attn_prepare", "attn_core", "gate", "dispatch_a", "shared",
                   "dispatch_b", "experts", "combine_a", "combine_b")),
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


#: columns of the per-micro-batch duration table ``staged`` gathers from
_COLUMNS = ("attn_prepare", "attn_core", "gate", "shared", "experts", "dispatch", "combine")
_ISSUE, _WAIT, _COMPUTE = 0, 1, 2
_DISPATCH, _COMBINE = _COLUMNS.index("dispatch"), _COLUMNS.index("combine")


@lru_cache(maxsize=64)
def _program(schedule: str, layers: int, micro_batches: int):
    """The schedule compiled for ``layers`` layers: the steps in issue order, each
    (micro-batch, kind, slot), where a compute step's slot indexes its run of consecutive
    compute operations and a transfer's slot its (phase, layer); plus, per compute run,
    the flat indices (column × layers + layer) of its operations."""
    delta, layer_ops = SCHEDULES[schedule]
    stages = _stages(layer_ops, layers)
    n = len(stages)
    order = [(0, i) for i in range(min(delta, n))]
    for i in range(n - delta):
        order += [(0, i + delta), (1, i)]
    order += [(1, i) for i in range(max(0, n - delta), n)]
    col = {c: i for i, c in enumerate(_COLUMNS)}
    steps: list[tuple[int, int, int]] = []
    runs: list[list[int]] = []
    for b, i in order:
        if b >= micro_batches:
            continue
        last_compute = False
        for op, li in stages[i]:
            if op.endswith(("_a", "_b")):
                phase = col[op[:-2]]
                steps.append((b, _ISSUE if op.endswith("_a") else _WAIT, phase * layers + li))
                last_compute = False
            else:
                if not last_compute:
                    steps.append((b, _COMPUTE, len(runs)))
                    runs.append([])
                runs[-1].append(col[op] * layers + li)
                last_compute = True
    lengths = np.array([len(r) for r in runs])
    flat = np.array([i for r in runs for i in r], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    owner = np.array([b for b, kind, _ in steps if kind == _COMPUTE], np.int64)
    return steps, np.repeat(owner, lengths), flat, starts


@lru_cache(maxsize=64)
def _flat_program(schedule: str, layers: int, micro_batches: int):
    """``_program`` ready for ``staged``: the steps as (kind, index), a transfer's index
    flat into the micro-batches' stacked duration table, and which operations are GEMMs."""
    steps, flat_owner, flat, starts = _program(schedule, layers, micro_batches)
    width = len(_COLUMNS) * layers
    prog = [(kind, slot if kind == _COMPUTE else b * width + slot) for b, kind, slot in steps]
    is_gemm = np.repeat(np.array([c in GEMM_OPS for c in _COLUMNS]), layers)[flat]
    return prog, flat_owner, flat, starts, is_gemm


def staged(schedule: str, ops: list[dict[str, np.ndarray]], gemm_scale: float = 1.0,
           shared_sms_scale: float = 1.0) -> float:
    """Makespan of micro-batches (one dict of per-layer seconds per micro-batch, keys as
    above plus ``dispatch`` and ``combine``) run with an overlap schedule. GEMM operations
    take ``gemm_scale`` times their time (SGLang's prefill schedule gives DeepGEMM the SMs
    DeepEP's normal kernels leave); the other operations take ``shared_sms_scale`` times
    their time while a transfer is in flight (they share the GPU with the kernels that
    hold SMs), spread evenly over their run of compute."""
    stretch = shared_sms_scale - 1.0
    if len(ops) == 1 and schedule == "trtllm" and not stretch:
        # NOTE: perf — one batch under TensorRT-LLM's schedule: each layer ends waiting
        # for its combine, so the walk below adds, layer after layer, the first compute
        # run (attention and gate: its GEMMs, scaled, then the attention core), the
        # longer of the shared experts and the dispatch (rounding is monotonic:
        # max(x + s, x + d) = x + max(s, d)), the routed experts and the combine. The
        # same additions in the same order: a running sum.
        o = ops[0]
        terms = np.stack([(o["attn_prepare"] + o["gate"]) * gemm_scale + o["attn_core"],
                          np.maximum(o["shared"] * gemm_scale, o["dispatch"]),
                          o["experts"] * gemm_scale, o["combine"]], axis=1)
        return float(np.add.accumulate(terms.ravel())[-1])
    layers = len(ops[0]["experts"])
    prog, flat_owner, flat, starts, is_gemm = _flat_program(schedule, layers, len(ops))
    table = np.stack([np.concatenate([o[c] for c in _COLUMNS]) for o in ops])
    picked = table[flat_owner, flat]
    # NOTE: perf — each run of compute operations is summed at once (numpy), so the
    # loop below only walks compute runs and transfers.
    if len(starts):
        run_gemm = np.add.reduceat(np.where(is_gemm, picked, 0.0), starts) * gemm_scale
        run_other = np.add.reduceat(np.where(is_gemm, 0.0, picked), starts)
    else:
        run_gemm = run_other = np.zeros(0)
    times = table.ravel().tolist()
    done = [0.0] * len(times)  # when each issued transfer ends
    comp = comm = 0.0
    run, other = (run_gemm + run_other).tolist(), run_other.tolist()
    for kind, i in prog:
        if kind == _COMPUTE:
            r = run[i]
            if stretch and comm > comp and other[i]:
                # the part of the run's non-GEMM work inside the transfer's window
                r += min(r, comm - comp) * other[i] / r * stretch
            comp += r
        elif kind == _ISSUE:
            comm = (comm if comm > comp else comp) + times[i]
            done[i] = comm
        elif done[i] > comp:
            comp = done[i]
    return max(comp, comm)
