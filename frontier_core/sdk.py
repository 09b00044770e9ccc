"""The building blocks of a scheduler or router plugin: the public, stable names a
policy needs, so that a plugin never imports ``frontier_core.builtin`` or another private
module. The kernel's own schedulers and routers are written with these and nothing else.

A scheduler's ``schedule(view)`` forms one iteration: it moves requests from
``view.waiting`` to ``view.running``, grows their KV (``view.kv.grow``), preempts when
blocks run out (``view.preempt``), and returns a ``Batch`` of prefill chunks and decodes.
The blocks below do each of those steps as the built-in policies do:

- ``decode_running``: every running request past its prefill decodes; when the KV cache
  is full the newest running request is preempted (recompute), as vLLM, SGLang and
  TensorRT-LLM's MAX_UTILIZATION do.
- ``admit_whole``: start waiting prompts whole, in queue order, within a token budget and
  a sequence cap, keeping a watermark of blocks free (vLLM's default admission).
- ``admit_chunks`` / ``continue_chunks``: chunked prefill: start prompts within a token
  budget, cutting the last one to fit, and continue partly prefilled ones.
- ``start_prefill`` / ``admit_decode_ready``: the single moves the above are made of.

A router's ``route(request, replicas)`` picks an index into ``replicas``, each a
``ReplicaView``; ``argmin`` picks the least loaded by any key.

``BatchLimits`` and ``WatermarkLimits`` are ready-made options models a scheduler can
extend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.components import (
    BuildContext,
    ComponentSpec,
    KVAllocator,
    NoOptions,
    ReplicaView,
    Router,
    Scheduler,
    SchedulerView,
)
from frontier_core.markers import hookimpl
from frontier_core.records import Batch, Request

__all__ = [
    "Batch",
    "BatchLimits",
    "BuildContext",
    "ComponentSpec",
    "KVAllocator",
    "NoOptions",
    "ReplicaView",
    "Request",
    "Router",
    "Scheduler",
    "SchedulerView",
    "WatermarkLimits",
    "admit_chunks",
    "admit_decode_ready",
    "admit_whole",
    "argmin",
    "continue_chunks",
    "decode_running",
    "hookimpl",
    "remaining_output",
    "start_prefill",
]


class BatchLimits(BaseModel):
    """A batch's limits, as engines name them (vLLM's ``--max-num-seqs`` and
    ``--max-num-batched-tokens``)."""

    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(256, ge=1, description="sequences in a batch")
    max_num_batched_tokens: int = Field(8192, ge=1, description="tokens in one iteration")


class WatermarkLimits(BatchLimits):
    """``BatchLimits`` and vLLM's admission watermark."""

    watermark: float = Field(
        0.01, ge=0, lt=1, description="fraction of KV blocks kept free when admitting prompts"
    )


def decode_running(view: SchedulerView, batch: Batch, budget: int | None = None) -> int:
    """Add every running request that is past its prefill to ``batch.decode``, growing its
    KV by the tokens a decode computes (one, or k + 1 under speculative decoding, never
    past its last output token) and preempting from the tail (newest first) when blocks
    run out. ``budget`` bounds the decode tokens. Returns the decode tokens added."""
    w = getattr(view, "decode_width", 1)
    cap = budget // w if budget is not None else None
    # The engine may hold the running requests as arrays (its decode roster): it then
    # makes this same batch without a pass over them.
    from_arrays = getattr(view, "decode_from_arrays", None)
    if from_arrays is not None:
        n = from_arrays(batch, cap)
        if n is not None:
            return n
    kv = view.kv
    bs = kv.block_size
    grow = kv.grow
    running = view.running
    decode = batch.decode
    append = decode.append
    i = 0
    if w == 1 and (cap is None or len(running) + len(decode) <= cap):
        # NOTE: perf — the common case in one pass: every request past its prefill
        # decodes and the cap cannot bind; those at a block boundary grow, in order. The
        # first one that cannot grow hands over (the ones before it decode) to the loop
        # below, which preempts.
        ready = [r for r in running if r.computed >= r.prefill_target]
        for r in [r for r in ready if r.computed >= r.blocks * bs]:
            if not grow(r, r.computed + 1):
                break
        else:
            decode += ready
            return len(decode)
        decode += ready[:next(j for j, x in enumerate(ready) if x is r)]
        i = next(j for j, x in enumerate(running) if x is r)
        victim = running[-1]  # as the loop below does when r cannot grow
        view.preempt(victim)
        if victim is r:
            return len(decode)
    # NOTE: perf — the per-request hot loop of every decode iteration: the block
    # check is inlined so that grow() is called only when a new block is needed.
    while i < len(running):
        r = running[i]
        c = r.computed
        if c < r.prefill_target:
            i += 1
            continue
        if cap is not None and len(decode) >= cap:
            break
        if w == 1:
            if c < r.blocks * bs or grow(r, c + 1):
                append(r)
                i += 1
                continue
        else:
            end = min(c + w, r.prompt_len + r.output_len - 1)
            if end <= r.blocks * bs or grow(r, end):
                append(r)
                i += 1
                continue
        victim = running[-1]
        view.preempt(victim)
        if victim is r:
            break
    return len(decode) * w


def admit_decode_ready(view: SchedulerView, r) -> bool:
    """A waiting request that already holds its KV (e.g. after a remote prefill) joins
    ``running`` without a prefill step."""
    if not view.kv.grow(r, r.computed + 1):
        return False
    view.waiting.popleft()
    view.running.append(r)
    return True


def start_prefill(view: SchedulerView, batch: Batch, r, chunk: int) -> None:
    """Move the head of ``waiting`` (whose KV was just grown) into ``running`` and the
    batch, prefilling ``chunk`` tokens."""
    view.waiting.popleft()
    view.running.append(r)
    batch.prefill.append(r)
    batch.chunks.append(chunk)


def continue_chunks(view: SchedulerView, batch: Batch, budget: int) -> int:
    """Add the next chunk of every running request still prefilling (a prompt cut by an
    earlier token budget), in order, within ``budget``; returns the budget left."""
    kv = view.kv
    from_arrays = getattr(view, "prefilling_from_arrays", None)
    prefilling = from_arrays() if from_arrays is not None else None
    if prefilling is None:
        # NOTE: perf — the few requests still prefilling, found in one pass over running.
        prefilling = [r for r in view.running if r.computed < r.prefill_target]
    for r in prefilling:
        if budget <= 0:
            break
        chunk = min(r.prefill_target - r.computed, budget)
        if not kv.grow(r, r.computed + chunk):
            break
        batch.prefill.append(r)
        batch.chunks.append(chunk)
        budget -= chunk
    return budget


def remaining_output(view: SchedulerView, clip: int) -> int:
    """Output tokens the running requests are yet to decode, each counted up to
    ``clip`` (what SGLang's admission keeps room for)."""
    from_arrays = getattr(view, "remaining_from_arrays", None)
    if from_arrays is not None:
        left = from_arrays(clip)
        if left is not None:
            return left
    left = 0
    for r in view.running:
        left += min(r.output_len - r.generated, clip)
    return left


def admit_chunks(view: SchedulerView, batch: Batch, budget: int, max_seqs: int,
                  admit: Callable[[Request], bool] | None = None) -> int:
    """Start waiting prompts in arrival order within ``budget`` tokens, the last one cut
    to fit (chunked prefill), while fewer than ``max_seqs`` run and ``admit`` (if given)
    accepts the head; returns the budget left."""
    waiting, running, kv = view.waiting, view.running, view.kv
    while waiting and budget > 0 and len(running) < max_seqs:
        r = waiting[0]
        remaining = r.prefill_target - r.computed
        if remaining <= 0:
            if not admit_decode_ready(view, r):
                break
            continue
        if admit is not None and not admit(r):
            break
        chunk = min(remaining, budget)
        if not kv.grow(r, r.computed + chunk):
            break
        start_prefill(view, batch, r, chunk)
        budget -= chunk
    return budget


def admit_whole(view: SchedulerView, batch: Batch, max_tokens: int, max_seqs: int,
                watermark: float = 0.0) -> int:
    """Start waiting prompts whole, in queue order, while fewer than ``max_seqs`` run, the
    prompts fit in ``max_tokens`` (the first always does) and admitting keeps a
    ``watermark`` share of the KV blocks free (unless nothing runs yet). A waiting request
    that already holds its KV (after a remote prefill) joins ``running`` directly.
    Returns the prompt tokens added to ``batch``."""
    waiting, running, kv = view.waiting, view.running, view.kv
    reserve = int(watermark * kv.num_blocks)
    tokens = 0
    while waiting and len(running) < max_seqs:
        r = waiting[0]
        chunk = r.prefill_target - r.computed
        if chunk <= 0:
            if not admit_decode_ready(view, r):
                break
            continue
        if tokens and tokens + chunk > max_tokens:
            break
        need = kv.blocks_for(r.computed + chunk) - r.blocks
        if kv.free_blocks - need < reserve and running:
            break
        if not kv.grow(r, r.computed + chunk):
            break
        start_prefill(view, batch, r, chunk)
        tokens += chunk
    return tokens


def argmin(replicas: Sequence[Any], key: Callable[[Any], Any]) -> int:
    """Index of the replica with the smallest ``key`` (ties: the lowest index)."""
    best, load = 0, None
    for i, r in enumerate(replicas):
        k = key(r)
        if load is None or k < load:
            best, load = i, k
    return best
