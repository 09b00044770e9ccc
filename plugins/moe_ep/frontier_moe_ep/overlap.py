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
    """``_program`` ready for ``staged``: the flat indices of the compute runs, which
    operations are GEMMs, and the walk over the steps as two functions (without and
    with the stretch of non-GEMM work beside a transfer), written out once as
    straight-line code (see ``_walker``)."""
    steps, flat_owner, flat, starts = _program(schedule, layers, micro_batches)
    width = len(_COLUMNS) * layers
    prog = [(kind, slot if kind == _COMPUTE else b * width + slot) for b, kind, slot in steps]
    is_gemm = np.repeat(np.array([c in GEMM_OPS for c in _COLUMNS]), layers)[flat]
    return flat_owner, flat, starts, is_gemm, _walker(prog, False), _walker(prog, True)


#: steps per generated function of a walk (compiling one function of every step of a
#: 61-layer model would take ~10 MiB for a moment)
_CHUNK = 96


def _walker(prog: list[tuple[int, int]], stretch: bool):
    """The walk over ``prog`` as straight-line code: ``walk(run_g, run_o, times, s)``
    returns the makespan. A compute run adds its seconds to the compute stream
    (``run_g`` + ``run_o``, or ``run_g`` alone without stretch); an issued transfer
    starts when both streams are free and ends ``times[i]`` later; a wait holds the
    compute stream until that transfer's end. With ``stretch``, the non-GEMM part of a
    run inside a transfer's window takes ``1 + s`` times as long, spread evenly over the
    run. The same floating-point operations, in the same order, as a loop over the steps
    would do."""
    # NOTE: perf — the loop over ~10 steps per layer and micro-batch costs more in
    # interpretation than in arithmetic; the generated code, one function per chunk of
    # steps, keeps the two streams' clocks local.
    issued: set[int] = set()
    parts = []
    for first in range(0, max(len(prog), 1), _CHUNK):
        lines = ["def part(g, o, t, s, d, comp, comm):"]
        for kind, i in prog[first:first + _CHUNK]:
            if kind == _COMPUTE:
                if stretch:
                    lines += [f"    r = g[{i}] + o[{i}]",
                              f"    if o[{i}] and comm > comp:",
                              f"        r += min(r, comm - comp) * o[{i}] / r * s",
                              "    comp += r"]
                else:
                    lines.append(f"    comp += g[{i}]")
            elif kind == _ISSUE:
                issued.add(i)
                lines += [f"    comm = (comm if comm > comp else comp) + t[{i}]",
                          f"    d[{i}] = comm"]
            elif i in issued:  # a wait for a transfer never issued waits for nothing
                lines.append(f"    if d[{i}] > comp: comp = d[{i}]")
        lines.append("    return comp, comm")
        scope: dict = {}
        exec(compile("\n".join(lines), "<overlap walk>", "exec"), scope)
        parts.append(scope["part"])

    def walk(g, o, t, s) -> float:
        d = {}
        comp = comm = 0.0
        for part in parts:
            comp, comm = part(g, o, t, s, d, comp, comm)
        return max(comp, comm)

    return walk


def staged(schedule: str, ops: list[dict[str, np.ndarray]], gemm_scale: float = 1.0,
           shared_sms_scale: float = 1.0) -> float:
    """Makespan of micro-batches (one dict of per-layer seconds per micro-batch, keys as
    above plus ``dispatch`` and ``combine``) run with an overlap schedule. GEMM operations
    take ``gemm_scale`` times their time (SGLang's prefill schedule gives DeepGEMM the SMs
    DeepEP's normal kernels leave); the other operations take ``shared_sms_scale`` times
    their time while a transfer is in flight (they share the GPU with the kernels that
    hold SMs), spread evenly over their run of compute."""
    layers = len(ops[0]["experts"])
    flat_owner, flat, starts, is_gemm, walk, walk_stretch = _flat_program(
        schedule, layers, len(ops))
    table = np.stack([np.concatenate([o[c] for c in _COLUMNS]) for o in ops])
    picked = table[flat_owner, flat]
    # NOTE: perf — each run of compute operations is summed at once (numpy), so the
    # walk only steps through compute runs and transfers.
    if len(starts):
        run_gemm = np.add.reduceat(np.where(is_gemm, picked, 0.0), starts) * gemm_scale
        run_other = np.add.reduceat(np.where(is_gemm, 0.0, picked), starts)
    else:
        run_gemm = run_other = np.zeros(0)
    stretch = shared_sms_scale - 1.0
    times = table.ravel().tolist()
    if not stretch:
        return walk((run_gemm + run_other).tolist(), None, times, 0.0)
    return walk_stretch(run_gemm.tolist(), run_other.tolist(), times, stretch)
