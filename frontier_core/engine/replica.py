"""ReplicaWorker: one model instance (TP×PP GPUs) running continuous batching.

The loop is schedule -> predict the iteration -> advance time -> update
requests: one simpy event per iteration, never per token, or one per leap over
decode-only iterations that nothing else can interleave with (``leap_decodes``, in
frontier_core/engine/leap.py). With pipeline parallelism up to ``pp`` batches are in
flight; the next batch starts when the first stage is free, and a request is in at most
one batch at a time.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from frontier_core.engine.iterlog import ITER_FIELDS  # noqa: F401 - re-exported
from frontier_core.engine.kv import PagedKVCache, replica_kv_blocks  # noqa: F401 - re-exported
from frontier_core.engine.leap import RunningSeries, leap_decodes, leaping_enabled, timeout_at
from frontier_core.engine.roster import (
    ROSTER_MIN,
    apply_roster,
    offer_roster,
    roster_batch,
    roster_decode,
    roster_prefilling,
    roster_remaining,
    roster_taken,
)
from frontier_core.engine.visibility import hide_late, hide_short_ranks, match_waiting, unhide
from frontier_core.records import Batch, Request

if TYPE_CHECKING:
    import simpy

    from frontier_core.components import Scheduler
    from frontier_core.engine.roster import DecodeRoster
    from frontier_core.execution.predictor import ExecutionPredictor



class ReplicaWorker:
    """Implements ``SchedulerView`` for the scheduler: ``waiting``, ``running``, ``kv``,
    ``now``, ``preempt``."""

    def __init__(
        self,
        env: simpy.Environment,
        cluster: str,
        index: int,
        scheduler: Scheduler,
        executor: ExecutionPredictor,
        kv: PagedKVCache,
        on_reject: Callable[[Request, str], None],
        dp_balance: str = "round_robin",
    ) -> None:
        self.env = env
        self.cluster = cluster
        self.index = index
        self.scheduler = scheduler
        self.executor = executor
        self.kv = kv
        self.pp = executor.pp
        # DP attention: each arriving request goes to one rank (``dp_balance``: in turn,
        # as SGLang's data-parallel controller dispatches by default, or by load), and
        # its KV stays on that rank, within the rank's share of the pool.
        self.dp = executor.dp
        self._next_rank = 0
        self.dp_balance = dp_balance
        self.rank_requests = [0] * self.dp  # requests assigned and not finished, per rank
        # Prompt tokens (to prefill) of each rank's requests waiting for admission, and
        # those requests (their tokens, by request).
        self.rank_queued = [0] * self.dp
        self._queued: dict[Request, int] = {}
        if self.dp > 1:
            kv.rank_used = [0] * self.dp
            kv.rank_cap = kv.num_blocks // self.dp
        # Speculative decoding: each decode computes up to k + 1 tokens (schedulers grow
        # its KV by ``decode_width``); the cluster's speculator draws what is accepted.
        self.spec = executor.spec
        self.decode_width = 1 if self.spec is None else self.spec.k + 1
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.outstanding = 0  # requests assigned and not finished here
        # Requests that arrived with their KV and without a first-token time, whose
        # first iteration here streams it (PD with the engines' path).
        self._unstamped = 0
        self.outstanding_tokens = 0  # their prompt + output tokens
        self.busy_time = 0.0
        self.preemptions = 0
        self.inflight = 0
        self.iterations = array("d")
        self._on_reject = on_reject
        # Called with this replica after KV blocks are freed by a finished or released
        # request (a workflow waiting for memory here sets it; None costs one check).
        self.on_free: Callable[[ReplicaWorker], None] | None = None
        self._wake: simpy.Event | None = None
        # Prefix caching: waiting requests are matched against the cache just before a
        # schedule (``visibility.match_waiting``) when some arrived or the cache grew since.
        self._match_pending = False
        self._matched_epoch = -1
        # An engine that overlaps host and GPU work (vLLM's async scheduling, SGLang's
        # and TensorRT-LLM's overlap schedulers) schedules step n + 1 while step n runs,
        # from the requests it had received when step n started: a request that arrives
        # during a step is scheduled one step later than it would be without overlap.
        engine = getattr(executor, "engine", None)  # stand-in executors may have none
        self.overlap = engine is not None and engine.overlap
        self._cutoff = math.inf  # requests queued after this are not yet visible
        # Iteration leaping (``leap_decodes``): a scheduler that can skip its decode-only
        # schedules (``skip_decodes``) and an execution model that prices a decode-only
        # iteration from arrays (``decode_step``), without pipelining or speculation.
        self._skip_decodes = getattr(scheduler, "skip_decodes", None)
        self._decode_step = getattr(executor, "decode_step", None)
        self._decode_series = getattr(executor, "decode_series", None)
        self.leaps = 0  # leaps taken, and the iterations they covered
        self.leapt = 0
        self._leap_on = (leaping_enabled() and self.pp == 1 and self.spec is None
                         and self._skip_decodes is not None and self._decode_step is not None)
        # The running requests as arrays while every iteration decodes all of them
        # (frontier_core/engine/roster.py); the same switch as leaping.
        self._roster: DecodeRoster | None = None
        self._roster_due = False  # the last iteration decoded, and prefilled nothing
        # ... and decoded every running request with nothing waiting: the scheduler's
        # sequence cap (Sarathi's token budget) did not bind, so a roster's own schedule
        # may take them all (``roster_batch``)
        self._roster_every = False
        self._roster_min = ROSTER_MIN
        # The scheduler reads running requests only through the SDK's blocks, so it may
        # be called with the roster in place, those blocks answering from it through
        # the three hooks below (set by ``offer_roster`` for one schedule, None
        # otherwise); the batch its ``decode_running`` took from the roster.
        self._roster_admits = self._leap_on and getattr(scheduler, "running_via_sdk", False)
        self.decode_from_arrays: Callable[[Batch, int | None], int | None] | None = None
        self.prefilling_from_arrays: Callable[[], list[Request] | None] | None = None
        self.remaining_from_arrays: Callable[[int], int | None] | None = None
        self._roster_hooks = (partial(roster_decode, self), partial(roster_prefilling, self),
                              partial(roster_remaining, self))
        self._roster_batch: Batch | None = None
        self.rostered = 0  # iterations scheduled from the roster
        self.process = env.process(self._loop())

    # ---- SchedulerView ----------------------------------------------------
    @property
    def now(self) -> float:
        return self.env.now

    def preempt(self, request: Request) -> None:
        """Recompute preemption: drop the KV, requeue at the head of ``waiting``. Its
        computed blocks stay cached, free and evictable; matching it again only records
        them (it holds nothing while it waits), so the preemption frees its memory."""
        self.kv.release(request)
        request.computed = 0
        request.prefill_target = request.prompt_len + request.generated
        self.kv.match(request, queued=True)  # its blocks may still be cached (the
        request.preemptions += 1  # scheduler may take it back in this very schedule)
        self.preemptions += 1
        self.running.remove(request)
        self.waiting.appendleft(request)
        if self.dp > 1:
            self._queue_tokens(request)

    # ---- load, as routers see it ---------------------------------------
    @property
    def kv_usage(self) -> float:
        return self.kv.usage

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    # ---- entry points ---------------------------------------------------
    def enqueue(self, request: Request) -> None:
        # A fresh (or preempted) request prefills its prompt and the tokens it has
        # generated; one that arrives with its KV (e.g. transferred after a
        # remote prefill) goes straight to decoding.
        if request.computed == 0:
            request.prefill_target = request.prompt_len + request.generated
            self._match_pending = True
        else:
            request.prefill_target = request.computed
            if request.first_token != request.first_token:
                self._unstamped += 1  # its first token is streamed from here
        if self.dp > 1:
            k = self._pick_rank()
            request.dp_rank = k
            self.rank_requests[k] += 1
            held = request.blocks + request.shared_blocks
            if held:  # it arrived with its KV (adopted before it was given a rank)
                self.kv.rank_used[k] += held
            else:
                self._queue_tokens(request)
        request.queued_at = self.env.now
        self.waiting.append(request)
        self.outstanding += 1
        self.outstanding_tokens += request.prompt_len + request.output_len
        self._poke()

    def _pick_rank(self) -> int:
        """The DP attention rank of an arriving request, from per-rank counters kept on
        arrival, admission, preemption and finish (a few comparisons per rank, no scan
        over requests).

        round_robin: in turn (SGLang ``LoadBalanceMethod.ROUND_ROBIN``, its default).
        least_tokens: the fewest tokens, counted as an SGLang scheduler reports its load
        (``Scheduler.get_load``, managers/scheduler.py: KV tokens in use, less the
        evictable cache, plus the prompt tokens of its waiting queue; here the blocks
        its requests hold and the tokens its waiting requests will prefill), ties to
        the fewest requests, then the lowest rank (SGLang ``TOTAL_TOKENS``,
        data_parallel_controller.py ``DPBudget.dispatch``). least_requests: the fewest
        requests waiting or running, ties to the lowest rank (SGLang ``TOTAL_REQUESTS``);
        vLLM's DP client scores ``4 × waiting + running`` (v1/engine/core_client.py),
        which this counts without the weight."""
        how = self.dp_balance
        if how == "least_tokens":
            used, q, n = self.kv.rank_used, self.rank_queued, self.rank_requests
            assert used is not None
            bs = self.kv.block_size
            return min(range(self.dp), key=lambda i: (used[i] * bs + q[i], n[i]))
        if how == "least_requests":
            n = self.rank_requests
            return n.index(min(n))
        k = self._next_rank
        self._next_rank = (k + 1) % self.dp
        return k

    def _queue_tokens(self, request: Request) -> None:
        """Count a request that waits for admission (with nothing in the KV) on its rank:
        ``least_tokens`` weighs its prompt; the loop takes it off once it is admitted."""
        t = request.prefill_target - request.computed
        old = self._queued.get(request, 0)  # counted already (if it never left the queue)
        self._queued[request] = t
        self.rank_queued[request.dp_rank] += t - old

    def _admitted(self, request: Request) -> None:
        t = self._queued.pop(request, None)
        if t is not None:
            self.rank_queued[request.dp_rank] -= t

    def release(self, request: Request) -> None:
        """Free the KV of a request that left after prefill (its transfer is done)."""
        self.kv.release(request)
        self._poke()
        if self.on_free is not None:
            self.on_free(self)

    def _poke(self) -> None:
        w = self._wake
        if w is not None and not w.triggered:
            w.succeed()

    # ---- the loop -------------------------------------------------------
    def _loop(self):  # noqa: C901 - the engine's one hot loop, kept in one place
        env = self.env
        schedule = self.scheduler.schedule
        iteration = self.executor.iteration
        pp = self.pp
        rec = self.iterations.extend
        kv = self.kv
        spec = self.spec
        leap = self._leap_on
        # decode-only iterations of the same batch, priced as one series between events
        # NOTE: perf — where an iteration's pricing is dear (a per-iteration block, DP
        # ranks); a dense replica's is one attention call, about what the check costs
        dear = getattr(self.executor, "moe_step", None) is not None or self.dp > 1
        series = (RunningSeries(self._decode_series, self._decode_step)
                  if leap and dear and self._decode_series is not None else None)
        decodes = series if series is not None else self._decode_step
        while True:
            if (not self.waiting and not self.running) or self.inflight >= pp:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if kv.caching and (self._match_pending or kv.epoch != self._matched_epoch):
                match_waiting(self)
            batch = (roster_batch(self) if self._roster is not None or self._roster_due
                     else None)
            ro = self._roster
            if batch is None:
                admitted = len(self.running)
                late = hide_late(self) if self.overlap else None
                short = hide_short_ranks(self) if kv.rank_short else None
                offered = self._roster is not None or self._roster_due
                if offered:
                    offer_roster(self)
                batch = schedule(self)
                ro = roster_taken(self, batch) if offered else None
                if short:
                    unhide(self, short)
                if late:
                    self.waiting.extend(late)
            if not batch.prefill and not batch.decode:
                if len(self.running) > admitted:
                    # The scheduler only moved requests that arrived with their KV (a PD
                    # decode replica) into ``running``: they decode in the next schedule,
                    # at this same instant.
                    continue
                if late:
                    # Only requests the overlapped schedule could not see yet: they are
                    # seen in the next schedule, which starts now (nothing is running).
                    self._cutoff = math.inf
                    continue
                if not self.running and not self.inflight and self.waiting and self._unblock():
                    continue
                self._cutoff = math.inf  # idle: the next arrival is seen at once
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if spec is not None and batch.decode:
                spec.plan(batch, kv.block_size)
            now = env.now
            queued = self._queued
            for r in batch.prefill:
                if r.first_scheduled != r.first_scheduled:  # NaN: first time
                    r.first_scheduled = now
                if queued:
                    self._admitted(r)
            self._cutoff = now  # arrivals from here on wait for the schedule after next
            if ro is not None:
                it = (self.executor.mixed_step(batch, ro.comp + 1, ro.rank, self.index, now)
                      if batch.prefill else decodes(ro.comp + 1, ro.rank, self.index, now))
            elif series is not None and not batch.prefill:
                it = series.of(batch.decode, self.dp > 1, self.index, now)
            else:
                it = iteration(batch, self.index, now)
            if kv.host_capacity:
                # Cached blocks copied back from host memory arrive before the prefill.
                load = 0.0
                for r in batch.prefill:
                    if r.load_s:
                        load += r.load_s
                        r.load_s = 0.0
                it.stage += load
                it.latency += load
            rec((now, it.latency, len(batch.prefill), len(batch.decode),
                 batch.num_tokens, kv.num_blocks - kv.free_blocks))
            if pp == 1:
                lat = it.latency
                done = None
                every = (leap and not batch.prefill and not self.waiting and not self._unstamped
                         and len(batch.decode) == len(self.running) and not kv.rank_short)
                if every and now + lat < env.peek():
                    # The leap reads and moves the roster's arrays, or the requests
                    # (brought up to date first) where their prefix-cache matches count.
                    lro = ro if not kv.caching else None
                    if ro is not None and lro is None:
                        ro.sync()
                    step = leap_decodes(self, batch, now, lat, lro)
                    if step is not None:
                        now, lat, end = step
                        done = timeout_at(env, end)
                        ro = lro
                yield env.timeout(lat) if done is None else done
                self.busy_time += lat
                if ro is not None:
                    if batch.prefill:
                        self._apply(batch, start=now, decodes=False)
                    apply_roster(self, ro)
                else:
                    self._apply(batch, start=now)
                    if batch.decode or self._roster is None:
                        # The next schedule may come from a roster (one the scheduler's
                        # prefills left alone lives on), built then if it does.
                        self._roster = None
                        self._roster_due = (leap and len(self.running) >= self._roster_min
                                            and all(r.computed >= r.prefill_target
                                                    for r in batch.prefill))
                        self._roster_every = every
            else:
                members = {id(r) for r in batch.prefill}
                members.update(id(r) for r in batch.decode)
                self.running = [r for r in self.running if id(r) not in members]
                self.inflight += 1
                done = env.timeout(it.latency)
                done.callbacks.append(lambda _ev, b=batch, t=now: self._land(b, t))
                yield env.timeout(it.stage)
                self.busy_time += it.stage

    def _unblock(self) -> bool:
        """An idle replica whose head request cannot start. If other waiting requests
        hold KV (arrived by transfer), the newest of them gives it up and will
        recompute; if blocks are held by requests that left (their KV is still being
        transferred away), wait for their release; if the head alone holds blocks, it
        can never start: reject it. True when something changed."""
        kv = self.kv
        head = self.waiting[0]
        for r in reversed(self.waiting):
            # Blocks of its own, or cached blocks it holds by reference: either way,
            # memory the head could use. (A queued match holds nothing.)
            if r is not head and (r.blocks or r.shared_blocks):
                kv.release(r)
                r.computed = 0
                r.prefill_target = r.prompt_len + r.generated
                r.preemptions += 1
                self.preemptions += 1
                if self.dp > 1:
                    self._queue_tokens(r)
                return True
        if kv.free_blocks + head.blocks + head.shared_blocks < kv.num_blocks:
            return False  # parked blocks: release() will wake the loop
        self.waiting.popleft()
        self._finish(head, reject="does not fit in its DP rank's KV cache"
                     if kv.rank_used is not None and kv.blocks_for(head.prefill_target)
                     > kv.rank_cap else "does not fit in the replica's KV cache")
        return True

    def _land(self, batch: Batch, start: float) -> None:
        """A pipelined batch left the last stage: its survivors may be scheduled again."""
        self.inflight -= 1
        survivors = self._apply(batch, back_to_running=True, start=start)
        self.running.extend(survivors)
        self._poke()

    def _apply(self, batch: Batch, back_to_running: bool = False,
               start: float = 0.0, decodes: bool = True) -> list[Request]:
        """Advance every member by the tokens it computed; complete the finished ones.
        A decoding request without a first-token time (its first token came from a
        remote prefill, and this replica streams it: PD with the engines' path) gets the
        start of this iteration, when the engine hands the buffered token out. Without
        ``decodes``, only the prefills (the decode roster applies the decodes)."""
        now = self.env.now
        out: list[Request] = []
        finished = False
        publish = self.kv.publish if self.kv.caching else None
        for r, c in zip(batch.prefill, batch.chunks, strict=False):
            r.computed += c
            if r.computed >= r.prefill_target:
                if publish is not None:
                    publish(r)  # its prompt blocks are shared from now on
                r.generated += 1
                if r.first_token != r.first_token:
                    r.first_token = now
                if r.generated >= r.output_len or r.stop_after_prefill:
                    self._finish(r)
                    finished = True
                    continue
            out.append(r)
        append = out.append
        dec = batch.decode if decodes else []
        if self._unstamped:
            for r in dec:
                if r.first_token != r.first_token:
                    r.first_token = start
                    self._unstamped -= 1
        if batch.accepted:
            # Speculative step: the accepted drafts plus the target's own token.
            for r, a in zip(dec, batch.accepted, strict=True):
                g = r.generated + a + 1
                r.generated = g
                r.computed += a + 1
                if g >= r.output_len:
                    self._finish(r)
                    finished = True
                else:
                    append(r)
        else:
            # NOTE: perf — every decode advances by one, then the finished ones (found in
            # one pass) complete in batch order; finishing reads none of the others.
            for r in dec:
                r.generated += 1
                r.computed += 1
            done = [r for r in dec if r.generated >= r.output_len]
            if done:
                for r in done:
                    self._finish(r)
                finished = True
                out += [r for r in dec if r.generated < r.output_len]
            else:
                out += dec
        if finished and not back_to_running:
            self.running = [r for r in self.running if r.done is not None and not r.done.triggered]
        return out

    def _finish(self, r: Request, reject: str | None = None) -> None:
        self.outstanding -= 1
        self.outstanding_tokens -= r.prompt_len + r.output_len
        if self.dp > 1:
            self.rank_requests[r.dp_rank] -= 1
            self._admitted(r)  # rejected while it waited
        if reject is not None:
            self.kv.release(r)
            self._on_reject(r, reject)
            return
        if r.stop_after_prefill and r.generated < r.output_len:
            r.stage_times[f"{self.cluster}.done"] = self.env.now
        else:
            r.completion = self.env.now
            self.kv.release(r)
            if self.on_free is not None:
                self.on_free(self)
        r.done.succeed()
