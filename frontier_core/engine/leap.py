"""Iteration leaping: a replica's run of decode-only iterations in one simpy event.

Between two arrivals a replica mostly decodes the same batch, iteration after
iteration. When nothing else can happen before each of them starts,
``leap_decodes`` prices them in order (as stepping would), records them and applies
them at once, and the replica waits for one event at the end of the last
(``timeout_at``). The results are those of stepping one iteration at a time
(tests/test_leap.py compares both); ``FRONTIER_LEAP=0`` turns leaping off.
"""

from __future__ import annotations

import os
from heapq import heappush
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np
from simpy.events import NORMAL

from frontier_core.engine.iterlog import ITER_FIELDS
from frontier_core.records import IterationTime

if TYPE_CHECKING:
    import simpy

    from frontier_core.engine.replica import ReplicaWorker
    from frontier_core.engine.roster import DecodeRoster
    from frontier_core.records import Batch, Request

# What an iteration leap reads of each decoding request.
_LEAP_FIELDS = attrgetter("generated", "output_len", "computed", "blocks", "shared_blocks")
_COMPUTED = attrgetter("computed")
_RANK = attrgetter("dp_rank")
#: iterations a leap's first ``decode_series`` prices
_SERIES_FIRST = 32


def leaping_enabled() -> bool:
    """Iteration leaping (``leap_decodes``) is on unless ``FRONTIER_LEAP=0``: the results
    are the same either way; stepping one iteration at a time is the reference that the
    leap is tested against."""
    return os.environ.get("FRONTIER_LEAP", "1") != "0"


def leap_decodes(rep: ReplicaWorker, batch: Batch, now: float, lat: float,
                 ro: DecodeRoster | None = None) -> tuple[float, float, float] | None:
    """Run the decode-only iterations that follow ``batch`` (just scheduled at ``now``,
    ``lat`` seconds long) in one simpy event, as long as nothing else can happen
    before each of them starts: no other event is pending before its start (so no
    arrival, transfer or completion elsewhere can reach this replica, nor look at
    it, meanwhile), no request finishes before the last one, nothing waits, and
    every block a decode grows into is free without evicting anything (or, with a
    fixed-size part per sequence, no decode grows at all). Under those conditions
    each skipped schedule would decode the same requests, so their iterations are
    priced in order (the same predictor calls and random draws, at the same start
    times), recorded, and applied at once: the requests advance by all but the last
    iteration now, which no one can observe before the last one's start; the last
    is applied by the loop when the returned delay has passed, as stepping would.
    Returns the start, latency and end time of the last iteration,
    or None when no second iteration fits. With the decode roster ``ro`` (the batch's
    requests as arrays, without prefix caching) the leap reads and advances the
    arrays instead of the requests, and the roster lives on.

    # NOTE: perf — between two arrivals a replica runs many decode-only iterations;
    # this replaces their schedules, batch walks and events with one pass over the
    # batch per leap.
    """
    env = rep.env
    horizon = env.peek()
    dec = batch.decode
    n = len(dec)
    kv = rep.kv
    if ro is not None:
        c, b, sh = ro.comp, ro.blk, ro.shared
        left = ro.olen - ro.gen
        ranks = ro.rank
    else:
        if kv.caching and any(r.pending for r in dec):
            return None
        a = np.array(list(map(_LEAP_FIELDS, dec)), np.int64).reshape(n, 5)
        c, b, sh = a[:, 2], a[:, 3], a[:, 4]
        left = a[:, 1] - a[:, 0]
        ranks = (np.fromiter((r.dp_rank for r in dec), np.int64, n) if rep.dp > 1
                 else None)
    # Iterations until the first request finishes: at most the last one of the leap.
    limit = int(left.min())
    bs = kv.block_size
    first = None
    if kv.seq_blocks:
        # decode_running's block check ignores the fixed part: stop before any grow.
        limit = min(limit, int((b * bs - c).min()))
    else:
        # Iteration j needs c + j tokens (its KV includes the new one): the first
        # iteration for which a request needs one more block.
        first = (b + sh) * bs - c + 1
        room = kv.free_blocks - kv.idle_blocks
    if limit < 2:
        return None
    run = rep._decode_step
    index = rep.index
    busy = rep.busy_time
    start, end = now, now + lat  # the last iteration planned (the first: ``batch``)
    # Blocks that can run short only if every request may grow by one every ``bs``
    # iterations: then check each iteration before pricing it.
    tight = first is not None and n * (limit // bs + 2) > room
    starts, lats = [], []
    j = 1
    # The predictor's pricing of a run of these iterations at once, where it has one
    # (``decode_series``): made when the first is priced, for a stretch that doubles
    # each time it runs out (a leap cut short by the next event prices few). One it
    # declines (e.g. while the MoE block traces its first iterations) is asked for
    # again after a stretch priced one by one.
    make = rep._decode_series
    series, base, upto = None, 0, 0
    while j < limit and end < horizon:
        if tight and int((np.maximum(j + 1 - first + bs, 0) // bs).sum()) > room:
            break
        j += 1
        busy += lat
        i = j - 2  # iteration j has every context c + j
        if make is not None and i >= upto:
            n_more = min(limit - 1 - i, max(_SERIES_FIRST, 2 * (upto - base)))
            series, base, upto = make(c + j, n_more, ranks), i, i + n_more
        if series is not None:
            start, lat = end, series(i - base)
        else:
            # a new array: the predictor may keep the one it was given
            start, lat = end, run(c + j, ranks, index, end).latency
        end = start + lat
        starts.append(start)
        lats.append(lat)
    if j == 1:
        return None
    used = kv.num_blocks - kv.free_blocks
    m = j - 1
    rows = np.empty((m, len(ITER_FIELDS)))
    rows[:, 0] = starts
    rows[:, 1] = lats
    rows[:, 2] = 0
    rows[:, 3:5] = n
    extra = 0
    if first is None:
        rows[:, 5] = used
    else:
        # Blocks the skipped schedules grew by each iteration (decode_running's grows,
        # all of them from free blocks): a request needs its next block from
        # iteration ``first`` on, and one more every ``bs`` iterations.
        js = np.arange(2, j + 1)
        grown = (np.maximum(js[:, None] - first[None, :] + bs, 0) // bs).sum(axis=1)
        rows[:, 5] = used + grown
        extra = int(grown[-1])
    rep.iterations.frombytes(rows.tobytes())
    rep.leaps += 1
    rep.leapt += j
    rep.busy_time = busy
    rep._skip_decodes(m)
    rep._cutoff = start
    if extra:
        blocks = np.maximum(b, -(-(c + j) // bs) - sh)
        grown = blocks - b
        kv.free_blocks -= extra
        used += extra
        if used > kv.peak_used:
            kv.peak_used = used
        for i in np.flatnonzero(grown).tolist():
            dec[i].blocks = int(blocks[i])
        if ro is not None:
            ro.blk = blocks
        ru = kv.rank_used
        if ru is not None and ranks is not None:
            add = np.bincount(ranks, weights=grown, minlength=rep.dp)
            for k in np.flatnonzero(add).tolist():
                ru[k] += int(add[k])
    if ro is not None:
        ro.comp += j - 1
        ro.gen += j - 1
        ro.stale = True
    else:
        for r in dec:
            r.generated += j - 1
            r.computed += j - 1
    return start, lat, end


class RunningSeries:
    """A replica's decode-only iterations priced by one ``decode_series`` for as long as
    its batch stays the same between events (other replicas' iterations in between, as
    on a cluster of many replicas where leaps stop at each sibling's next iteration).

    Called as ``decode_step`` is, with each iteration's contexts and DP ranks; when they
    are the last iteration's plus one (the same sequences, each one token further) it
    prices the iteration from a series made at the second such iteration (twice as long
    each time it runs out), else by ``decode_step``. A series prices exactly what
    ``decode_step`` would, in the same order, so the results are the same either way.
    """

    __slots__ = ("make", "step", "price", "i", "n", "expect", "ranks")

    def __init__(self, make, step) -> None:
        self.make = make  # ExecutionPredictor.decode_series
        self.step = step  # ExecutionPredictor.decode_step
        self.price = None
        self.i = self.n = 0  # the next step of the series, and its length
        self.expect: np.ndarray | None = None  # the contexts of the same batch's next one
        self.ranks: np.ndarray | None = None

    def of(self, dec: list[Request], ranked: bool, replica: int, now: float
           ) -> IterationTime:
        """The iteration of decodes ``dec`` (with their DP ranks when ``ranked``)."""
        n = len(dec)
        return self(np.fromiter(map(_COMPUTED, dec), np.int64, n) + 1,
                    np.fromiter(map(_RANK, dec), np.int64, n) if ranked else None,
                    replica, now)

    def __call__(self, kvd: np.ndarray, ranks: np.ndarray | None, replica: int,
                 now: float) -> IterationTime:
        exp, prev = self.expect, self.ranks
        same = (exp is not None and len(exp) == len(kvd) and bool((kvd == exp).all())
                and (ranks is prev or (ranks is not None and prev is not None
                                       and bool((ranks == prev).all()))))
        self.expect, self.ranks = kvd + 1, ranks
        if not same:
            self.price, self.i, self.n = None, 0, 0
            return self.step(kvd, ranks, replica, now)
        if self.i >= self.n:
            n = max(_SERIES_FIRST, 2 * self.n)
            self.price, self.i, self.n = self.make(kvd, n, ranks), 0, n
        if self.price is None:  # declined: asked again when this stretch ends
            self.i += 1
            return self.step(kvd, ranks, replica, now)
        lat = self.price(self.i)
        self.i += 1
        return IterationTime(lat, lat)


def timeout_at(env: simpy.Environment, at: float) -> simpy.Event:
    """A timeout that fires at exactly ``at``: the end time stepping reaches by adding
    each iteration's latency to the clock in turn. ``env.timeout(at - env.now)`` may
    miss it by an ulp (simpy adds the delay to the clock, and ``at`` need not be
    reachable from ``now`` by one rounded addition).

    # NOTE: perf — this is ``Environment.schedule``'s one line (simpy 4) with the time
    # given instead of a delay; the event is queued as a timeout created now would be.
    """
    d = at - env.now
    if env.now + d == at:
        return env.timeout(d)
    ev = env.event()
    ev._ok = True
    ev._value = None
    heappush(env._queue, (at, NORMAL, next(env._eid), ev))  # type: ignore[attr-defined]
    return ev
