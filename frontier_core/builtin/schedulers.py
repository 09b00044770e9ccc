"""Batch schedulers: vLLM-style continuous batching, Sarathi-style chunked prefill, Orca.

Each forms one iteration's batch from a replica's ``waiting`` and ``running``
requests, growing their KV allocations and preempting (recompute) when blocks
run out. Requests admitted from ``waiting`` move to ``running``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.sdk import (
    Batch,
    BatchLimits,
    Request,
    SchedulerView,
    WatermarkLimits,
    admit_chunks,
    admit_whole,
    continue_chunks,
    decode_running,
    remaining_output,
)


class VLLMOptions(WatermarkLimits):
    """Options of the ``vllm`` scheduler."""


def per_replica(opts: BaseModel, dp: int) -> BaseModel:
    """A scheduler's limits for a whole replica of ``dp`` DP attention ranks: each rank
    schedules its own batch under the configured limits (SGLang runs one scheduler per
    DP rank), so a replica's batch may hold ``dp`` times as many tokens and sequences."""
    if dp <= 1:
        return opts
    names = ("max_num_seqs", "max_num_batched_tokens", "token_budget")
    return opts.model_copy(update={k: getattr(opts, k) * dp for k in names if hasattr(opts, k)})


class VLLMScheduler:
    """vLLM (v0) default policy: prefill-priority continuous batching. If prompts are
    waiting and fit (token budget, sequence cap, free blocks above the watermark),
    the iteration is prefill-only; otherwise every running request decodes."""

    # While only requests holding their KV wait, running requests are read through
    # the SDK's blocks alone (docs/plugins.md, iteration leaping).
    running_via_sdk = True

    def __init__(self, opts: VLLMOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.watermark = opts.watermark

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        if view.waiting:
            admit_whole(view, batch, self.max_tokens, self.max_seqs, self.watermark)
            if batch.prefill:
                return batch
        decode_running(view, batch)
        return batch

    def skip_decodes(self, n: int) -> None:
        """Nothing to update for ``n`` schedules that decoded every running request."""


class SarathiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(256, ge=1)
    token_budget: int = Field(2048, ge=1, description="tokens per iteration (chunk size bound)")


class SarathiScheduler:
    """Sarathi-Serve: stall-free batching. Every iteration carries all running decodes,
    then fills the token budget with prefill chunks — ongoing partial prefills first,
    then new prompts — so long prompts never stall decodes."""

    # While only requests holding their KV wait, running requests are read through
    # the SDK's blocks alone (docs/plugins.md, iteration leaping).
    running_via_sdk = True

    def __init__(self, opts: SarathiOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.budget = opts.token_budget

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        budget = self.budget - decode_running(view, batch, self.budget)
        budget = continue_chunks(view, batch, budget)
        admit_chunks(view, batch, budget, self.max_seqs)
        return batch

    def skip_decodes(self, n: int) -> None:
        """Nothing to update for ``n`` schedules that decoded every running request."""


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

    # While only requests holding their KV wait, running requests are read through
    # the SDK's blocks alone (docs/plugins.md, iteration leaping).
    running_via_sdk = True

    def __init__(self, opts: BatchLimits) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.reserve = getattr(opts, "capacity", "guaranteed_no_evict") == "guaranteed_no_evict"

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting, running, kv = view.waiting, view.running, view.kv
        tokens = decode_running(view, batch)
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

    def skip_decodes(self, n: int) -> None:
        """Nothing to update for ``n`` schedules that decoded every running request."""


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

    # While only requests holding their KV wait, running requests are read through
    # the SDK's blocks alone (docs/plugins.md, iteration leaping).
    running_via_sdk = True

    def __init__(self, opts: SGLangOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.budget = opts.max_num_batched_tokens
        self.init_ratio = min(INIT_NEW_TOKEN_RATIO * opts.schedule_conservativeness, 1.0)
        self.min_ratio = min(self.init_ratio * MIN_NEW_TOKEN_RATIO_FACTOR, 1.0)
        self.decay = (self.init_ratio - self.min_ratio) / NEW_TOKEN_RATIO_DECAY_STEPS
        self.ratio = self.init_ratio
        self.retractions = 0

    def _reserved(self, view: SchedulerView) -> float:
        """Tokens admission keeps free for what running requests are yet to decode."""
        return remaining_output(view, CLIP_MAX_NEW_TOKENS) * self.ratio

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        budget = continue_chunks(view, batch, self.budget)
        if view.waiting and budget > 0:
            kv = view.kv
            ratio = self.ratio
            # The free KV less what running requests are yet to decode, taken only when
            # a prompt waits (requests that arrived with their KV join without it).
            room = ([kv.free_blocks * kv.block_size - self._reserved(view)]
                    if any(r.computed < r.prefill_target for r in view.waiting) else [])

            def admit(r: Request) -> bool:
                # Matched blocks that nobody holds (in host memory, or cached on the GPU
                # and evictable) leave the free KV when the request is admitted: they
                # count as tokens it adds.
                need = (r.prefill_target - r.computed
                        + min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS) * ratio)
                if r.pending:
                    need += kv.pending_blocks(r) * kv.block_size
                if room[0] < need and (view.running or batch.prefill):
                    return False
                room[0] -= need
                return True

            admit_chunks(view, batch, budget, self.max_seqs, admit)
        if not batch.prefill:
            n = len(view.running)
            decode_running(view, batch)
            if len(view.running) < n:  # retracted: KV ran out mid-decode
                self.retractions += 1
                self.ratio = self.init_ratio
            elif batch.decode:
                self.ratio = max(self.min_ratio, self.ratio - self.decay)
        return batch

    def skip_decodes(self, n: int) -> None:
        """``n`` schedules that decoded every running request, nothing retracted: the
        ratio decays once each (step by step, as the schedules would round it)."""
        ratio, low, decay = self.ratio, self.min_ratio, self.decay
        for _ in range(n):
            ratio = max(low, ratio - decay)
        self.ratio = ratio
