"""Batch schedulers: vLLM-style continuous batching, Sarathi-style chunked prefill, Orca.

Each forms one iteration's batch from a replica's ``waiting`` and ``running``
requests, growing their KV allocations and preempting (recompute) when blocks
run out. Requests admitted from ``waiting`` move to ``running``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.components import SchedulerView
from frontier_core.records import Batch, Request


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


def _continue_chunks(view: SchedulerView, batch: Batch, budget: int) -> int:
    """Add the next chunk of every running request still prefilling (a prompt cut by an
    earlier token budget), in order, within ``budget``; returns the budget left."""
    kv = view.kv
    for r in view.running:
        if budget <= 0:
            break
        if r.computed < r.prefill_target:
            chunk = min(r.prefill_target - r.computed, budget)
            if not kv.grow(r, r.computed + chunk):
                break
            batch.prefill.append(r)
            batch.chunks.append(chunk)
            budget -= chunk
    return budget


def _admit_chunks(view: SchedulerView, batch: Batch, budget: int, max_seqs: int,
                  admit: Callable[[Request], bool] | None = None) -> int:
    """Start waiting prompts in arrival order within ``budget`` tokens, the last one cut
    to fit (chunked prefill), while fewer than ``max_seqs`` run and ``admit`` (if given)
    accepts the head; returns the budget left."""
    waiting, running, kv = view.waiting, view.running, view.kv
    while waiting and budget > 0 and len(running) < max_seqs:
        r = waiting[0]
        remaining = r.prefill_target - r.computed
        if remaining <= 0:
            if not _admit_decode_ready(view, r):
                break
            continue
        if admit is not None and not admit(r):
            break
        chunk = min(remaining, budget)
        if not kv.grow(r, r.computed + chunk):
            break
        _start_prefill(view, batch, r, chunk)
        budget -= chunk
    return budget


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
        budget = self.budget - _decode_running(view, batch, self.budget)
        budget = _continue_chunks(view, batch, budget)
        _admit_chunks(view, batch, budget, self.max_seqs)
        return batch


class OrcaOptions(BatchLimits):
    capacity: Literal["guaranteed_no_evict", "max_utilization"] = Field(
        "guaranteed_no_evict", description="TensorRT-LLM's capacity scheduler policy: "
        "reserve each request's whole prompt + output before admitting it (never evicts), "
        "or admit what fits now and pause (recompute) the newest when KV runs out",
    )


class OrcaScheduler:
    """Orca / TensorRT-LLM in-flight batching: iteration-level scheduling of context
    and generation requests in one batch, generation first, new prompts whole (no
    chunking) up to ``max_num_batched_tokens``. The capacity policy decides admission:
    GUARANTEED_NO_EVICT admits a request only when blocks for its whole prompt + output
    can be reserved, so nothing is ever preempted (at the price of reserved, idle
    memory); MAX_UTILIZATION admits what fits now and pauses the newest request when a
    decode runs out of KV (TensorRT-LLM ``CapacitySchedulerPolicy``)."""

    def __init__(self, opts: BatchLimits) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.reserve = getattr(opts, "capacity", "guaranteed_no_evict") == "guaranteed_no_evict"

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
            if not kv.grow(r, r.prompt_len + r.output_len if self.reserve
                           else r.computed + max(chunk, 1)):
                break
            waiting.popleft()
            running.append(r)
            if chunk > 0:
                batch.prefill.append(r)
                batch.chunks.append(chunk)
                tokens += chunk
        return batch


class SGLangOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(4096, ge=1, description="running requests (max_running_requests)")
    max_num_batched_tokens: int = Field(
        8192, ge=1, description="prompt tokens in one prefill batch (chunked_prefill_size): "
        "the last prompt admitted is cut to fit and continues in the next prefill batch",
    )
    schedule_conservativeness: float = Field(
        1.0, ge=0, description="scales the share of each request's remaining output that "
        "admission keeps free for it (new_token_ratio starts at 0.7 × this)",
    )


# SGLang's admission estimate (python/sglang/global_config.py and
# managers/scheduler.py): new_token_ratio starts at 0.7 × schedule_conservativeness,
# decays linearly to 0.14 of that over 600 decode steps, and returns to the start after
# a retraction; remaining outputs count at most 4096 tokens (CLIP_MAX_NEW_TOKENS).
INIT_NEW_TOKEN_RATIO = 0.7
MIN_NEW_TOKEN_RATIO_FACTOR = 0.14
NEW_TOKEN_RATIO_DECAY_STEPS = 600
CLIP_MAX_NEW_TOKENS = 4096


class SGLangScheduler:
    """SGLang's default policy: prefill-first with chunked prefill. When a prefill batch
    can be formed — the unfinished chunk of a partly prefilled prompt first, then waiting
    prompts in arrival order up to ``max_num_batched_tokens`` tokens, the last one cut to
    fit — the iteration prefills only (``enable_mixed_chunk`` is off by default);
    otherwise every running request decodes (scheduler.py ``get_next_batch_to_run``).

    Admission (``PrefillAdder``) keeps room for the tokens running requests are yet to
    decode: a prompt is admitted only if the free KV, less ``new_token_ratio`` × every
    running request's remaining output, holds its prompt and that share of its own
    output. When a decode step runs out of KV, requests are retracted (their KV dropped,
    back to the queue: ``retract_decode``) and the ratio returns to its start."""

    def __init__(self, opts: SGLangOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.budget = opts.max_num_batched_tokens
        self.init_ratio = min(INIT_NEW_TOKEN_RATIO * opts.schedule_conservativeness, 1.0)
        self.min_ratio = min(self.init_ratio * MIN_NEW_TOKEN_RATIO_FACTOR, 1.0)
        self.decay = (self.init_ratio - self.min_ratio) / NEW_TOKEN_RATIO_DECAY_STEPS
        self.ratio = self.init_ratio
        self.retractions = 0

    def _reserved(self, running: list) -> float:
        """Tokens admission keeps free for what running requests are yet to decode."""
        left = 0
        for r in running:
            left += min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS)
        return left * self.ratio

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        budget = _continue_chunks(view, batch, self.budget)
        if view.waiting and budget > 0:
            kv = view.kv
            ratio = self.ratio
            room = [kv.free_blocks * kv.block_size - self._reserved(view.running)]

            def admit(r: Request) -> bool:
                # Matched blocks still in host memory are copied back into free KV when
                # the request is admitted: they count as the tokens it adds.
                need = (r.prefill_target - r.computed
                        + min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS) * ratio)
                if r.pending:
                    need += kv.pending_blocks(r) * kv.block_size
                if room[0] < need and (view.running or batch.prefill):
                    return False
                room[0] -= need
                return True

            _admit_chunks(view, batch, budget, self.max_seqs, admit)
        if not batch.prefill:
            n = len(view.running)
            _decode_running(view, batch)
            if len(view.running) < n:  # retracted: KV ran out mid-decode
                self.retractions += 1
                self.ratio = self.init_ratio
            elif batch.decode:
                self.ratio = max(self.min_ratio, self.ratio - self.decay)
        return batch
