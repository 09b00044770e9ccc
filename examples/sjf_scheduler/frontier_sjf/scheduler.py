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

from frontier_core.sdk import (
    Batch,
    SchedulerView,
    WatermarkLimits,
    admit_whole,
    decode_running,
)


class SJFOptions(WatermarkLimits):
    """Options of the ``sjf`` scheduler, given next to its name in a run config:
    ``max_num_seqs`` (requests running on a replica at once), ``max_num_batched_tokens``
    (prompt tokens in one iteration) and ``watermark`` (the share of KV blocks kept free
    when admitting prompts), with vLLM's defaults."""


class SJFScheduler:
    """A ``frontier_core.sdk.Scheduler``: each ``schedule(view)`` call forms one iteration."""

    def __init__(self, opts: SJFOptions) -> None:
        self.max_seqs = opts.max_num_seqs
        self.max_tokens = opts.max_num_batched_tokens
        self.watermark = opts.watermark

    def schedule(self, view: SchedulerView) -> Batch:
        batch = Batch()
        waiting = view.waiting
        if waiting:
            # Reorder the replica's own queue in place: the engine appends arrivals to
            # it and preemption puts requests back at its head. sorted() is stable, so
            # equal prompts keep arrival order, and nearly linear on a mostly sorted queue.
            order = sorted(waiting, key=lambda r: r.prompt_len)
            waiting.clear()
            waiting.extend(order)
            # Then vLLM's admission: whole prompts within the token budget, a watermark
            # of KV blocks kept free.
            admit_whole(view, batch, self.max_tokens, self.max_seqs, self.watermark)
            if batch.prefill:
                return batch
        # No prompt admitted: every running request decodes one token. When the KV
        # cache is full, the newest running request gives its blocks back (recompute).
        decode_running(view, batch)
        return batch
