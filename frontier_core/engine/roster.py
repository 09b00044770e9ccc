"""The decode roster: a replica's running requests as arrays, between decode-only
iterations.

When an iteration decoded every running request and nothing waits, the next schedule
of a built-in scheduler decodes the same requests again, less the finished ones, after
growing the KV of those at a block boundary (``sdk.decode_running``). The roster keeps
what this schedule, the execution model and the completion check read of each request
(context, blocks, tokens generated, output length, DP rank) as arrays aligned with the
request list, so such an iteration is scheduled, priced and applied with array
operations, without a pass over the requests. Their ``Request`` objects fall behind
meanwhile: each is brought up to date when it finishes, and all of them before anything
else reads them (the scheduler, once an arrival, a prefill or a preemption ends the run
of such iterations, and an iteration leap); nothing outside the replica reads running
requests. The results are those of scheduling every iteration (tests/test_leap.py
compares both; ``FRONTIER_LEAP=0`` turns both off).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from frontier_core.records import Batch

if TYPE_CHECKING:
    from frontier_core.engine.replica import ReplicaWorker
    from frontier_core.records import Request

_FIELDS = attrgetter("computed", "blocks", "output_len", "generated", "dp_rank")

#: running requests from which a roster pays: below, its array operations cost more
#: than the passes over the requests they replace
ROSTER_MIN = 64


class DecodeRoster:
    """Arrays of the requests ``reqs`` (every running request, all decoding), in their
    order: ``comp`` their contexts (tokens computed), ``blk`` the blocks they hold,
    ``gen`` the tokens generated, ``olen`` their output lengths, ``rank`` their DP ranks
    (None with one rank). ``stale``: the objects' ``computed`` and ``generated`` lag
    the arrays (``sync``)."""

    __slots__ = ("reqs", "comp", "blk", "gen", "olen", "rank", "stale")

    def __init__(self, reqs: list[Request], dp: int) -> None:
        n = len(reqs)
        a = np.array(list(map(_FIELDS, reqs)), np.int64).reshape(n, 5)
        self.reqs = reqs
        self.comp, self.blk, self.olen, self.gen = (a[:, i].copy() for i in range(4))
        self.rank = a[:, 4].copy() if dp > 1 else None
        self.stale = False

    def sync(self) -> None:
        """Bring the request objects up to date."""
        if self.stale:
            for r, c, g in zip(self.reqs, self.comp.tolist(), self.gen.tolist(), strict=True):
                r.computed = c
                r.generated = g
            self.stale = False

    def drop(self, gone: np.ndarray) -> None:
        """Forget the requests at positions ``gone`` (ascending)."""
        reqs = list(self.reqs)
        for i in gone.tolist()[::-1]:
            del reqs[i]  # NOTE: perf — a few deletions from a list, not a pass over it
        self.reqs = reqs
        keep = np.ones(len(self.comp), bool)
        keep[gone] = False
        self.comp, self.blk, self.gen, self.olen = (
            self.comp[keep], self.blk[keep], self.gen[keep], self.olen[keep])
        if self.rank is not None:
            self.rank = self.rank[keep]


def roster_batch(rep: ReplicaWorker) -> Batch | None:
    """The batch the scheduler would make now, from the roster: its requests, after
    growing the KV of those at a block boundary (the calls ``decode_running`` makes, in
    its order), and the scheduler told of one skipped decode-only schedule. None, with
    the requests brought up to date, unless nothing waits, the running requests are the
    roster's, and no per-rank admission or first-token stamp is pending."""
    ro = rep._roster
    kv = rep.kv
    if ro is None:
        # The iteration just applied decoded every running request: a roster of them.
        rep._roster_due = False
        if rep.waiting or rep._unstamped or kv.rank_short or not rep.running:
            return None
        ro = rep._roster = DecodeRoster(list(rep.running), rep.dp)
    elif (not ro.reqs or rep.waiting or rep._unstamped or kv.rank_short
            or rep.running != ro.reqs):  # identity, element by element (C speed)
        ro.sync()
        return None
    edge = np.flatnonzero(ro.comp >= ro.blk * kv.block_size)
    if len(edge):
        reqs, grow, blk, comp = ro.reqs, kv.grow, ro.blk, ro.comp
        for i in edge.tolist():
            r = reqs[i]
            if not grow(r, int(comp[i]) + 1):
                # The scheduler takes over from here: the requests grown so far are past
                # their boundary, so it grows the rest in the same order and preempts.
                ro.sync()
                rep._roster = None
                return None
            blk[i] = r.blocks
    rep._skip_decodes(1)
    rep.rostered += 1
    return Batch(decode=ro.reqs)


def apply_roster(rep: ReplicaWorker, ro: DecodeRoster) -> None:
    """``ReplicaWorker._apply`` for a roster batch: every request advances by one token,
    then the finished ones (brought up to date first) complete in batch order; the
    roster follows."""
    comp, gen = ro.comp, ro.gen
    comp += 1
    gen += 1
    ro.stale = True
    done = np.flatnonzero(gen >= ro.olen)
    if len(done):
        reqs = ro.reqs
        for i in done.tolist():
            r = reqs[i]
            r.computed = int(comp[i])
            r.generated = int(gen[i])
            rep._finish(r)
        rep.running = [r for r in rep.running if r.done is not None and not r.done.triggered]
        ro.drop(done)
