"""Batch schedulers: vLLM-style continuous batching, Sarathi-style chunked prefill, Orca.

Each forms one iteration's batch from a replica's ``waiting`` and ``running``
requests, growing their KV allocations and preempting (recompute) when blocks
run out. Requests admitted from ``waiting`` move to ``running``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.components import SchedulerView
from frontier_core.records import Batch


class BatchLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(256, ge=1, description="sequences in a batch")
    max_num_batched_tokens: int = Field(8192, ge=1, description="tokens in one iteration")


class VLLMOptions(BatchLimits):
    watermark: float = Field(
        0.01, ge=0, lt=1, description="fraction of KV blocks kept free when admitting prompts"
    )


def per_replica(opts: BaseModel, dp: int) -> BaseModel:
    """A scheduler's limits for a whole replica of ``dp`` DP attention ranks: each rank
    schedules its own batch under the configured limits (SGLang runs one scheduler per
    DP rank), so a replica's batch may hold ``dp`` times as many tokens and sequences."""
    if dp <= 1:
        return opts
    names = ("max_num_seqs", "max_num_batched_tokens", "token_budget")
    return opts.model_copy(update={k: getattr(opts, k) * dp for k in names if hasattr(opts, k)})


def _decode_running(view: SchedulerView, batch: Batch, budget: int | None = None) -> int:
    """Add every running request that is past its prefill to ``batch.decode``, growing its
    KV by the tokens a decode computes (one, or k + 1 under speculative decoding, never
    past its last output token) and preempting from the tail (newest first) when blocks
    run out. ``budget`` bounds the decode tokens. Returns the decode tokens added."""
    kv = view.kv
    bs = kv.block_size
    grow = kv.grow
    running = view.running
    decode = batch.decode
    append = decode.append
    w = getattr(view, "decode_width", 1)
    cap = budget // w if budget is not None else None
    i = 0
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


def _admit_decode_ready(view: SchedulerView, r) -> bool:
    """A waiting request that already holds its KV (e.g. after a remote prefill) joins
    ``running`` without a prefill step."""
    if not view.kv.grow(r, r.computed + 1):
        return False
    view.waiting.popleft()
    view.running.append(r)
    return True


def _start_prefill(view: SchedulerView, batch: Batch, r, chunk: int) -> None:
    """Move the head of ``waiting`` (whose KV was just grown) into ``running`` and the
    batch, prefilling ``chunk`` tokens."""
    view.waiting.popleft()
    view.running.append(r)
    batch.prefill.append(r)
    batch.chunks.append(chunk)


class VLLMScheduler:
    """vLLM (v0) default policy: prefill-priority continuous batching. If prompts are
    waiting and fit (token budget, sequence cap, free blocks above the watermark),
    the iteration is prefill-only; otherwise every running request decodes."""

    def __init__(self, opts: VLLMOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.watermark = opts.watermark

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting, running, kv = view.waiting, view.running, view.kv
        if waiting:
            reserve = int(self.watermark * kv.num_blocks)
            tokens = 0
            while waiting and len(running) < self.max_seqs:
                r = waiting[0]
                chunk = r.prefill_target - r.computed
                if chunk <= 0:
                    if not _admit_decode_ready(view, r):
                        break
                    continue
                if tokens and tokens + chunk > self.max_tokens:
                    break
                need = kv.blocks_for(r.computed + chunk) - r.blocks
                if kv.free_blocks - need < reserve and running:
                    break
                if not kv.grow(r, r.computed + chunk):
                    break
                _start_prefill(view, batch, r, chunk)
                tokens += chunk
            if batch.prefill:
                return batch
        _decode_running(view, batch)
        return batch


class SarathiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(256, ge=1)
    token_budget: int = Field(2048, ge=1, description="tokens per iteration (chunk size bound)")


class SarathiScheduler:
    """Sarathi-Serve: stall-free batching. Every iteration carries all running decodes,
    then fills the token budget with prefill chunks — ongoing partial prefills first,
    then new prompts — so long prompts never stall decodes."""

    def __init__(self, opts: SarathiOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.budget = opts.token_budget

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting, running, kv = view.waiting, view.running, view.kv
        budget = self.budget - _decode_running(view, batch, self.budget)
        for r in running:
            if budget <= 0:
                break
            if r.computed < r.prefill_target:
                chunk = min(r.prefill_target - r.computed, budget)
                if not kv.grow(r, r.computed + chunk):
                    break
                batch.prefill.append(r)
                batch.chunks.append(chunk)
                budget -= chunk
        while waiting and budget > 0 and len(running) < self.max_seqs:
            r = waiting[0]
            remaining = r.prefill_target - r.computed
            if remaining <= 0:
                if not _admit_decode_ready(view, r):
                    break
                continue
            chunk = min(remaining, budget)
            if not kv.grow(r, r.computed + chunk):
                break
            _start_prefill(view, batch, r, chunk)
            budget -= chunk
        return batch


class OrcaScheduler:
    """Orca: iteration-level scheduling with mixed batches; a request is admitted only
    when blocks for its whole prompt + output can be reserved, so nothing is ever
    preempted (at the price of reserved, idle memory)."""

    def __init__(self, opts: BatchLimits) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting, running, kv = view.waiting, view.running, view.kv
        tokens = _decode_running(view, batch)
        while waiting and len(running) < self.max_seqs:
            r = waiting[0]
            chunk = r.prefill_target - r.computed
            # The budget bounds the prompts added after the first: a prompt as long as the
            # budget would otherwise wait for an iteration without decodes, which never
            # comes while requests keep arriving.
            if batch.prefill and tokens + chunk > self.max_tokens:
                break
            if not kv.grow(r, r.prompt_len + r.output_len):
                break
            waiting.popleft()
            running.append(r)
            if chunk > 0:
                batch.prefill.append(r)
                batch.chunks.append(chunk)
                tokens += chunk
        return batch
