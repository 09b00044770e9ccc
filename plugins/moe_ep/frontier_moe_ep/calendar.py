"""Busy calendars: when a resource (a GPU pool's compute, one direction of a link) is
taken, over the whole run, by tasks of every replica that uses it.

A task goes to the earliest gap, at or after the moment it is ready, that is long
enough to hold it (work-conserving list scheduling), so the tasks of an iteration
that started later can use the gaps an earlier iteration left. Touching intervals are
merged and intervals that end before the current time are dropped, so a calendar
stays short.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Calendar:
    """Disjoint busy intervals of one resource, sorted; ``busy_s`` sums what was booked."""

    __slots__ = ("starts", "ends", "busy_s")

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.busy_s = 0.0

    def prune(self, now: float) -> None:
        """Forget intervals that end at or before ``now`` (no task can start before it)."""
        i = bisect_right(self.ends, now)
        if i:
            del self.starts[:i]
            del self.ends[:i]

    def fit(self, t: float, d: float) -> float:
        """The earliest start ≥ ``t`` of a free stretch ``d`` seconds long."""
        starts, ends = self.starts, self.ends
        i = bisect_right(ends, t)
        n = len(starts)
        while i < n and starts[i] - t < d:
            if ends[i] > t:
                t = ends[i]
            i += 1
        return t

    def book(self, s: float, d: float) -> None:
        """Mark ``[s, s + d)`` busy (it must be free: found by ``fit``)."""
        if d <= 0:
            return
        self.busy_s += d
        e = s + d
        starts, ends = self.starts, self.ends
        i = bisect_left(starts, s)
        joins_prev = i > 0 and ends[i - 1] >= s
        joins_next = i < len(starts) and starts[i] <= e
        if joins_prev and joins_next:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif joins_prev:
            ends[i - 1] = e
        elif joins_next:
            starts[i] = s
        else:
            starts.insert(i, s)
            ends.insert(i, e)


def fit_both(a: Calendar, b: Calendar, t: float, d: float) -> float:
    """The earliest start ≥ ``t`` at which both calendars are free for ``d`` seconds (a
    transfer that holds the sender's and the receiver's port at once)."""
    while True:
        t1 = a.fit(t, d)
        t2 = b.fit(t1, d)
        if t2 == t1:
            return t1
        t = t2
