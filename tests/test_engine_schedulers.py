"""The engines' scheduling policies on hand-made queues: vLLM V1 (running first, then
waiting, in one token budget), SGLang (prefill-first, admission that keeps room for
future decode tokens, retraction), TensorRT-LLM (GUARANTEED_NO_EVICT)."""

from __future__ import annotations

from frontier_core.builtin.schedulers import (
    INIT_NEW_TOKEN_RATIO,
    BatchLimits,
    OrcaScheduler,
    SarathiOptions,
    SarathiScheduler,
    SGLangOptions,
    SGLangScheduler,
)
from frontier_core.records import Batch, Request
from frontier_core.testing import FakeReplica


def View(blocks: int, requests: list[tuple[int, int]], block_size: int = 16) -> FakeReplica:
    """A replica as a scheduler sees it, without the engine: (prompt, output) requests."""
    return FakeReplica(requests, num_blocks=blocks, block_size=block_size)


def _apply(view: FakeReplica, batch: Batch) -> None:
    view.finish_iteration(batch)


def test_vllm_v1_schedules_running_first_then_waiting_in_one_budget() -> None:
    sched = SarathiScheduler(SarathiOptions(token_budget=100, max_num_seqs=8))
    view = View(1000, [(30, 50), (30, 50)])
    _apply(view, sched.schedule(view))  # both prompts, 60 tokens
    view.waiting.extend([Request(2, 0.0, 500, 50, prefill_target=500),
                         Request(3, 0.0, 20, 50, prefill_target=20)])
    batch = sched.schedule(view)
    # Two decodes first (2 tokens), then the head of the queue gets the other 98 as a
    # chunk; the prompt behind it waits (FCFS, no skipping ahead).
    assert [r.id for r in batch.decode] == [0, 1]
    assert [r.id for r in batch.prefill] == [2] and batch.chunks == [98]
    _apply(view, batch)
    batch = sched.schedule(view)
    # The partial prefill continues before new prompts.
    assert [r.id for r in batch.prefill][0] == 2 and batch.chunks[0] == 98


def test_sglang_is_prefill_first() -> None:
    sched = SGLangScheduler(SGLangOptions(max_num_batched_tokens=64))
    view = View(1000, [(40, 8), (40, 8)])
    batch = sched.schedule(view)
    # 40 + the first 24 tokens of the second prompt; no decodes in a prefill batch.
    assert [r.id for r in batch.prefill] == [0, 1] and batch.chunks == [40, 24]
    _apply(view, batch)
    batch = sched.schedule(view)
    assert [r.id for r in batch.prefill] == [1] and batch.chunks == [16] and not batch.decode
    _apply(view, batch)
    batch = sched.schedule(view)
    assert not batch.prefill and [r.id for r in batch.decode] == [0, 1]


def test_sglang_admission_keeps_room_for_running_requests_to_decode() -> None:
    # 20 blocks of 16 = 320 tokens. The first request (32 prompt + 400 output) reserves
    # 0.7 × 400 = 280 tokens of future decode; a second 32-token prompt with the same
    # output does not fit beside it, though its prompt alone would.
    sched = SGLangScheduler(SGLangOptions())
    view = View(20, [(32, 400), (32, 400)])
    batch = sched.schedule(view)
    assert [r.id for r in batch.prefill] == [0]
    assert sched.ratio == INIT_NEW_TOKEN_RATIO
    _apply(view, batch)
    assert not sched.schedule(view).prefill and len(view.waiting) == 1
    # Decode steps lower the estimate (towards 0.14 × 0.7 over 600 steps).
    assert sched.ratio < INIT_NEW_TOKEN_RATIO


def test_sglang_retracts_when_decode_runs_out_and_resets_the_ratio() -> None:
    sched = SGLangScheduler(SGLangOptions(schedule_conservativeness=0.0))  # admit greedily
    view = View(4, [(16, 64), (16, 64)])  # 64 tokens of KV: both prompts fit, not their outputs
    _apply(view, sched.schedule(view))
    assert len(view.running) == 2
    for _ in range(40):
        batch = sched.schedule(view)
        _apply(view, batch)
        if sched.retractions:
            break
    assert sched.retractions == 1 and len(view.waiting) == 1
    assert sched.ratio == sched.init_ratio


def test_trtllm_guaranteed_no_evict_reserves_the_whole_request() -> None:
    sched = OrcaScheduler(BatchLimits(max_num_batched_tokens=8192, max_num_seqs=64))
    # 10 blocks of 16: one request of 32 + 100 tokens (9 blocks) fits, a second waits
    # even though its prompt alone would fit today.
    view = View(10, [(32, 100), (32, 100)])
    batch = sched.schedule(view)
    assert [r.id for r in batch.prefill] == [0] and len(view.waiting) == 1
    assert view.running[0].blocks == 9
    _apply(view, batch)
    for _ in range(120):
        _apply(view, sched.schedule(view))
        assert not view.running or view.running[0].id in (0, 1)  # never preempted
    assert not view.waiting


def test_trtllm_max_utilization_admits_what_fits_now_and_pauses_the_newest() -> None:
    from frontier_core.builtin.schedulers import OrcaOptions

    sched = OrcaScheduler(OrcaOptions(capacity="max_utilization"))
    view = View(10, [(32, 100), (32, 100)])
    batch = sched.schedule(view)
    # Both prompts fit today (2 + 2 blocks), so both start...
    assert [r.id for r in batch.prefill] == [0, 1]
    _apply(view, batch)
    paused = 0
    for _ in range(200):
        before = len(view.running)
        _apply(view, sched.schedule(view))
        paused += len(view.running) < before and bool(view.waiting)
    # ...and the newest is paused when their outputs outgrow the cache; all finish.
    assert paused >= 1 and not view.running and not view.waiting


def test_schedulers_are_named_by_policy_with_the_old_names_as_aliases(registry) -> None:
    for policy, alias in (("prefill_priority", "vllm"), ("chunked_prefill", "sarathi"),
                          ("inflight_batching", "orca"), ("prefill_first", "sglang")):
        assert registry.get("scheduler", policy).factory is registry.get("scheduler", alias).factory
