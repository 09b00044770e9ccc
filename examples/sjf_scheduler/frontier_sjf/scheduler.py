"""Shortest-job-first batching: waiting prompts are admitted shortest first.

Under queueing, serving short prompts first lowers the mean time to first token:
a long prompt then delays only the few requests behind it, not the many short
ones. The price is the long prompts' tail latency; a steady stream of short
prompts can starve a long one. The job size is the prompt length, which a real
server knows on arrival (the output length it does not).

Everything else follows vLLM's default policy, as the built-in ``vllm`` scheduler
does: prefill-only iterations while prompts fit, a small KV watermark when
admitting, and recompute preemption of the newest running request when a decode
step finds no free KV block.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from frontier_core import Batch, SchedulerView


class SJFOptions(BaseModel):
    """Options of the ``sjf`` scheduler, given next to its name in a run config."""

    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(256, ge=1, description="requests running on a replica at once")
    max_num_batched_tokens: int = Field(8192, ge=1, description="prompt tokens in one iteration")
    watermark: float = Field(
        0.01, ge=0, lt=1, description="fraction of KV blocks kept free when admitting prompts"
    )


class SJFScheduler:
    """A ``frontier_core.Scheduler``: each ``schedule(view)`` call forms one iteration."""

    def __init__(self, opts: SJFOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.watermark = opts.watermark

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting, running, kv = view.waiting, view.running, view.kv
        if waiting:
            # Reorder the replica's own queue in place: the engine appends arrivals to
            # it and preemption puts requests back at its head. sorted() is stable, so
            # equal prompts keep arrival order, and nearly linear on a mostly sorted queue.
            order = sorted(waiting, key=lambda r: r.prompt_len)
            waiting.clear()
            waiting.extend(order)
            reserve = int(self.watermark * kv.num_blocks)
            tokens = 0
            while waiting and len(running) < self.max_seqs:
                r = waiting[0]
                chunk = r.prefill_target - r.computed  # 0: it arrived with its KV (remote prefill)
                if tokens and tokens + chunk > self.max_tokens:
                    break
                need = kv.blocks_for(r.computed + chunk) - r.blocks
                if chunk and running and kv.free_blocks - need < reserve:
                    break
                if not kv.grow(r, r.computed + max(chunk, 1)):
                    break
                waiting.popleft()
                running.append(r)
                if chunk:
                    batch.prefill.append(r)
                    batch.chunks.append(chunk)
                    tokens += chunk
            if batch.prefill:
                return batch
        # No prompt admitted: every running request decodes one token. When the KV
        # cache is full, the newest running request gives its blocks back (recompute).
        i = 0
        while i < len(running):
            r = running[i]
            if kv.grow(r, r.computed + 1):
                batch.decode.append(r)
                i += 1
                continue
            victim = running[-1]
            view.preempt(victim)  # frees its KV and puts it back in `waiting`
            if victim is r:
                break
        return batch
