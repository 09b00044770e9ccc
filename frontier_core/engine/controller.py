"""GlobalController: admits requests, runs each through the workflow, completes them.

Open-loop arrivals come from the workload's arrival times; a closed loop runs
``concurrency`` clients, each sending its next request when the previous one
finished (plus think time). With multi-turn conversations (see
frontier_core/workload/conversations.py) each conversation is one process that sends its turns
in order, each after the previous one completed: open loop, it starts at its first
turn's arrival time; closed loop, each client runs one conversation after another.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from frontier_core.engine import iterlog
from frontier_core.engine.replica import ITER_FIELDS
from frontier_core.engine.requestlog import RequestLog
from frontier_core.records import Request

if TYPE_CHECKING:
    import simpy

    from frontier_core.components import Workflow
    from frontier_core.engine.cluster import ClusterWorker
    from frontier_core.workload import Workload


class GlobalController:
    """Owns the workflow and the clusters. A finished request is recorded in ``log`` (compact
    columns) and released; ``active`` holds the ones not finished; ``requests`` lists every
    admitted request (the finished ones rebuilt from the log). Every ``iterlog.SPILL_EVERY``
    finished requests the replicas' iteration records move to ``iterlog``'s files."""

    def __init__(
        self,
        env: simpy.Environment,
        clusters: dict[str, ClusterWorker],
        workflow: Workflow,
        workload: Workload,
    ) -> None:
        self.env = env
        self.clusters = clusters
        self.workflow = workflow
        self.workload = workload
        self.log = RequestLog()
        self.active: dict[int, Request] = {}
        self._order = array("q")  # request ids in the order they were admitted
        self.iterlog = iterlog.IterationSpill(len(ITER_FIELDS))
        self.finished = 0
        self.total = len(workload)

    @property
    def requests(self) -> list[Request]:
        """Every admitted request in admission order: the finished ones rebuilt from the log
        (copies), the unfinished ones themselves. Builds the list on each access."""
        log, active = self.log, self.active
        where = {i: k for k, i in enumerate(log.cols["id"])}
        prefix = self.workload.prefix
        out = []
        for i in self._order:
            r = active.get(i)
            if r is None:
                r = log.request(where[i], None if prefix is None else prefix[i])
            out.append(r)
        return out

    def _done(self, request: Request) -> None:
        """A request has left the workflow (finished or rejected): record it, let it go."""
        self.finished += 1
        self.log.add(request)
        del self.active[request.id]
        if not self.finished % iterlog.SPILL_EVERY:
            self.iterlog.spill([r for cw in self.clusters.values() for r in cw.replicas])

    def cluster(self, name: str) -> ClusterWorker:
        return self.clusters[name]

    def reject(self, request: Request, reason: str) -> None:
        """Mark a request rejected; its stage event fires at once. ``reason`` is
        ``"kind; particulars"``: the kind, the same for every request rejected for the same
        cause, then this request's numbers (summary.json counts by kind)."""
        request.rejected = reason
        request.completion = self.env.now
        if request.done is not None and not request.done.triggered:
            request.done.succeed()

    def start(self) -> None:
        wl = self.workload
        if wl.conversation is not None:
            self._start_conversations()
        elif wl.closed_loop is None:
            self.env.process(self._open_loop())
        else:
            self._next = 0
            n = min(wl.closed_loop.concurrency, self.total)
            ramp = wl.closed_loop.ramp_up_s
            for k in range(n):
                self.env.process(self._client(k * ramp / wl.closed_loop.concurrency))

    def _new(self, i: int) -> Request:
        wl = self.workload
        r = Request(i, self.env.now, int(wl.prompt_len[i]), int(wl.output_len[i]))
        r.warmup = i < wl.warmup
        if wl.prefix is not None:
            r.prefix, r.prefix_block = wl.prefix[i], wl.prefix_block
            if wl.prefix_tokens is not None:
                r.prefix_tokens = int(wl.prefix_tokens[i])
        if wl.conversation is not None:
            r.conversation, r.turn = int(wl.conversation[i]), int(wl.turn[i])
        self.active[i] = r
        self._order.append(i)
        return r

    def _open_loop(self):
        env = self.env
        arrival = self.workload.arrival
        run = self.workflow.run
        for i in range(self.total):
            gap = float(arrival[i]) - env.now
            if gap > 0:
                yield env.timeout(gap)
            env.process(self._lifecycle(run, self._new(i)))

    def _lifecycle(self, run, request: Request):
        yield from run(request, self)
        self._done(request)

    def _client(self, delay: float = 0.0):
        env = self.env
        run = self.workflow.run
        think = self.workload.closed_loop.think_time_s
        if delay > 0:
            yield env.timeout(delay)
        while self._next < self.total:
            i = self._next
            self._next += 1
            r = self._new(i)
            yield from run(r, self)
            self._done(r)
            del r
            if think > 0:
                yield env.timeout(think)

    # ---- multi-turn conversations ---------------------------------------------------
    def _start_conversations(self) -> None:
        wl = self.workload
        assert wl.conversation is not None
        # Request indices of each conversation, turns in order; conversations are
        # numbered by their first request, so this list is in order of first turns.
        turns: list[list[int]] = [[] for _ in range(int(wl.conversation.max()) + 1)]
        for i, c in enumerate(wl.conversation.tolist()):
            turns[c].append(i)
        self._conversations = turns
        if wl.closed_loop is None:
            self.env.process(self._open_conversations())
        else:
            self._next = 0
            ramp = wl.closed_loop.ramp_up_s
            for k in range(min(wl.closed_loop.concurrency, len(turns))):
                self.env.process(self._conversation_client(k * ramp / wl.closed_loop.concurrency))

    def _open_conversations(self):
        env = self.env
        arrival = self.workload.arrival
        assert arrival is not None
        for turns in self._conversations:
            gap = float(arrival[turns[0]]) - env.now
            if gap > 0:
                yield env.timeout(gap)
            env.process(self._conversation(turns))

    def _conversation_client(self, delay: float = 0.0):
        env = self.env
        think = self.workload.closed_loop.think_time_s
        if delay > 0:
            yield env.timeout(delay)
        while self._next < len(self._conversations):
            turns = self._conversations[self._next]
            self._next += 1
            yield from self._conversation(turns)
            if think > 0:
                yield env.timeout(think)

    def _conversation(self, turns: list[int]):
        """Send a conversation's turns (request indices) in order: each later turn at
        max(its arrival time, the previous turn's completion + its think time). A
        rejected turn ends the conversation; its later turns are never sent."""
        env = self.env
        run = self.workflow.run
        wl = self.workload
        arrival, think = wl.arrival, wl.think_s
        assert think is not None
        for k, i in enumerate(turns):
            if k:
                wait = float(think[i])
                if arrival is not None:
                    wait = max(wait, float(arrival[i]) - env.now)
                if wait > 0:
                    yield env.timeout(wait)
            r = self._new(i)
            yield from run(r, self)
            self._done(r)
            if r.rejected is not None:
                self.total -= len(turns) - k - 1  # never sent
                return
