"""What a replica's scheduler sees of its queue: the requests an overlapped schedule
cannot see yet, and those of DP ranks without room, are taken off ``waiting`` for one
schedule and put back after it (``ReplicaWorker._loop``); the waiting requests' prefix
cache matches, refreshed before a schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frontier_core.engine.replica import ReplicaWorker
    from frontier_core.records import Request

# Waiting requests (from the head) matched against the prefix cache before a schedule,
# and looked at for room on their DP rank.
MATCH_WINDOW = 256


def hide_late(rep: ReplicaWorker) -> list[Request] | None:
    """Take the requests queued after the running step started off the tail of
    ``waiting`` (arrival order), to be put back after this schedule."""
    w = rep.waiting
    cut = rep._cutoff
    if not w or w[-1].queued_at <= cut:
        return None
    late = []
    while w and w[-1].queued_at > cut:
        late.append(w.pop())
    late.reverse()
    return late

def hide_short_ranks(rep: ReplicaWorker) -> list[Request] | None:
    """Take off ``waiting`` (for one schedule) each DP rank's requests from the first
    one that does not fit in the room left on that rank, counting the requests of the
    rank ahead of it: each rank has its own queue in the engines, so a rank without
    room must not hold back the others (schedulers stop at the first request that
    does not fit). Only the first ``MATCH_WINDOW`` waiting requests are looked at,
    and only after an admission failed for want of room on its rank
    (``PagedKVCache.rank_short``)."""
    kv = rep.kv
    kv.rank_short = False
    w = rep.waiting
    used, cap, need = kv.rank_used, kv.rank_cap, kv.blocks_for
    assert used is not None
    room = [cap - u for u in used]
    full = [False] * rep.dp
    keep: list[Request] = []
    hide: list[Request] = []
    for _ in range(min(len(w), MATCH_WINDOW)):
        r = w.popleft()
        k = r.dp_rank
        if not full[k] and not (r.blocks or r.shared_blocks):
            n = need(r.prefill_target)
            if n <= room[k]:
                room[k] -= n
            else:
                full[k] = True
        (hide if full[k] else keep).append(r)
    w.extendleft(reversed(keep))
    if not hide:
        return None
    kv.rank_short = True  # look again before the next schedule
    return hide

def unhide(rep: ReplicaWorker, hidden: list[Request]) -> None:
    """Put requests of full ranks back, behind the waiting requests queued before
    them (those the schedule preempted) and ahead of the rest; the order between
    ranks is free, each rank keeping its own."""
    w = rep.waiting
    first = hidden[0].queued_at
    front = []
    while w and w[0].queued_at < first:
        front.append(w.popleft())
    w.extendleft(reversed(hidden))
    w.extendleft(reversed(front))


def match_waiting(rep: ReplicaWorker) -> None:
    """Match the first ``MATCH_WINDOW`` waiting requests that have not started against
    the prefix cache, or extend their earlier match with blocks cached since (vLLM
    matches a request when it schedules it, so a burst of requests sharing a prompt
    finds the blocks the first of them computed). The match only records what is
    cached: a waiting request holds no GPU blocks, and the scheduler's first allocation
    for it takes them (see ``PagedKVCache.match``)."""
    kv = rep.kv
    epoch = kv.epoch
    rep._match_pending = False
    rep._matched_epoch = epoch
    match = kv.match
    for i, r in enumerate(rep.waiting):
        if i >= MATCH_WINDOW:
            break
        if r.matched_at != epoch and not r.blocks and r.prefix:
            got = match(r, queued=True)
            if not r.preemptions:
                r.cached_tokens = got  # prompt tokens found on its first admission
