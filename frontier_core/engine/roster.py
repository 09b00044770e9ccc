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
else reads them (a scheduler that reads them directly, a preemption, an iteration
leap); nothing outside the replica reads running requests.

Admissions do not end the run either: a scheduler that reads running requests only
through the SDK's blocks (``running_via_sdk``: ``decode_running``, ``continue_chunks``,
``remaining_output``) is called with the roster in place, and those blocks answer from
it (``roster_decode`` and the others below). The requests it admits (arrived with their
KV, or prefilled beside the roster's decodes) join the roster when they first decode;
an iteration with prefill chunks prices them from their objects and the decodes from
the arrays (``mixed_step``). The results are those of scheduling every iteration
(tests/test_leap.py compares both; ``FRONTIER_LEAP=0`` turns both off).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from frontier_core.records import Batch

if TYPE_CHECKING:
    from frontier_core.engine.replica import ReplicaWorker
    from frontier_core.records import Request

_FIELDS = attrgetter("computed", "blocks", "output_len", "generated", "dp_rank",
                     "prefill_target", "shared_blocks")

#: requests at a block boundary from which ``_grow_edges`` grows them in one
#: ``grow_each`` rather than one ``grow`` each
_GROW_EACH = 16
#: running requests from which a roster pays: below, its array operations cost more
#: than the passes over the requests they replace
ROSTER_MIN = 64


class DecodeRoster:
    """Arrays of the requests ``reqs`` (every running request, all decoding), in their
    order: ``comp`` their contexts (tokens computed), ``blk`` the blocks they hold,
    ``gen`` the tokens generated, ``olen`` their output lengths, ``rank`` their DP ranks
    (None with one rank), ``shared`` the cached blocks they hold by reference.
    ``stale``: the objects' ``computed`` and ``generated`` lag the arrays (``sync``)."""

    __slots__ = ("reqs", "comp", "blk", "gen", "olen", "rank", "shared", "stale")

    def __init__(self, reqs: list[Request], a: np.ndarray, dp: int) -> None:
        self.reqs = reqs
        self.comp, self.blk, self.olen, self.gen = (a[:, i].copy() for i in range(4))
        self.rank = a[:, 4].copy() if dp > 1 else None
        self.shared = a[:, 6].copy()
        self.stale = False

    def extend(self, tail: list[Request], a: np.ndarray) -> None:
        """Append the requests ``tail`` (up to date), ``a`` their ``_arrays``."""
        self.reqs = self.reqs + tail
        self.comp, self.blk, self.olen, self.gen = (
            np.concatenate((x, a[:, i])) for i, x in
            enumerate((self.comp, self.blk, self.olen, self.gen)))
        if self.rank is not None:
            self.rank = np.concatenate((self.rank, a[:, 4]))
        self.shared = np.concatenate((self.shared, a[:, 6]))

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
        self.shared = self.shared[keep]


def _arrays(reqs: list[Request]) -> np.ndarray:
    """(requests × 7) int64: the ``_FIELDS`` of each request."""
    return np.array(list(map(_FIELDS, reqs)), np.int64).reshape(len(reqs), 7)


def _new_roster(rep: ReplicaWorker) -> DecodeRoster | None:
    """A roster of the running requests, if every one of them is past its prefill."""
    rep._roster_due = False
    running = rep.running
    if not running:
        return None
    a = _arrays(running)
    if not (a[:, 0] >= a[:, 5]).all():
        return None
    ro = rep._roster = DecodeRoster(list(running), a, rep.dp)
    return ro


def _drop(rep: ReplicaWorker, ro: DecodeRoster) -> None:
    """Bring the requests up to date and schedule without the roster from now on."""
    ro.sync()
    rep._roster = None


def _grow_edges(rep: ReplicaWorker, ro: DecodeRoster) -> bool:
    """Grow the KV of the roster's requests at a block boundary by one token, in order
    (what ``decode_running`` does first); False, with the roster dropped, where one
    cannot grow: the scheduler takes over from there (those grown so far are past their
    boundary, so it grows the rest in the same order and preempts)."""
    kv = rep.kv
    edge = np.flatnonzero(ro.comp >= ro.blk * kv.block_size)
    if len(edge) >= _GROW_EACH:
        reqs = ro.reqs
        after = kv.grow_each([reqs[i] for i in edge.tolist()], ro.comp[edge] + 1,
                             ro.blk[edge], ro.shared[edge],
                             None if ro.rank is None else ro.rank[edge])
        if after is not None:
            ro.blk[edge] = after
            return True
    if len(edge):
        reqs, grow, blk, comp = ro.reqs, kv.grow, ro.blk, ro.comp
        for i in edge.tolist():
            r = reqs[i]
            if not grow(r, int(comp[i]) + 1):
                _drop(rep, ro)
                return False
            blk[i] = r.blocks
    return True


def roster_batch(rep: ReplicaWorker) -> Batch | None:
    """The batch the scheduler would make now, from the roster (built first if the last
    schedule decoded every running request with nothing waiting): its requests, after growing the KV of those at a block boundary (the calls
    ``decode_running`` makes, in its order), and the scheduler told of one skipped
    decode-only schedule. None where the scheduler must be called: something waits, a
    first-token stamp or a per-rank admission is pending, or requests the roster does
    not hold run (``roster_decode`` may then still serve its ``decode_running``)."""
    if rep.waiting or rep._unstamped or rep.kv.rank_short:
        return None
    ro = rep._roster
    if ro is None:
        if not rep._roster_every:
            return None  # the scheduler's cap may bind: its decode_running checks
        ro = _new_roster(rep)
        if ro is None:
            return None
    elif not ro.reqs or rep.running != ro.reqs:  # identity, element by element (C speed)
        return None
    if not _grow_edges(rep, ro):
        return None
    rep._skip_decodes(1)
    rep.rostered += 1
    return Batch(decode=ro.reqs)


def offer_roster(rep: ReplicaWorker) -> None:
    """Before the scheduler is called: let the SDK's blocks answer from the roster (held,
    or due to be built) if the scheduler reads running requests only through them
    (``running_via_sdk``); otherwise bring the requests up to date and drop the
    roster."""
    ro = rep._roster
    rep._roster_batch = None
    if (rep._roster_admits and (ro is not None or rep._roster_due)
            and len(rep.running) >= rep._roster_min and not rep.kv.rank_short):
        rep.decode_from_arrays, rep.prefilling_from_arrays, rep.remaining_from_arrays = (
            rep._roster_hooks)
    elif ro is not None:
        _drop(rep, ro)


def roster_taken(rep: ReplicaWorker, batch: Batch) -> DecodeRoster | None:
    """After the scheduler returned ``batch``: the roster, if the batch's decodes are
    its requests (``roster_decode``; prefill chunks may come with them); None
    otherwise. A batch without decodes leaves the roster as it is (the next one may
    use it); any other drops it, with the requests up to date."""
    rep.decode_from_arrays = rep.prefilling_from_arrays = rep.remaining_from_arrays = None
    ro = rep._roster
    if ro is None or rep._roster_batch is batch:
        return ro
    if batch.decode:
        _drop(rep, ro)
    return None


def roster_decode(rep: ReplicaWorker, batch: Batch, cap: int | None) -> int | None:
    """``decode_running`` from the roster, for a scheduler called with the roster in
    place (``ReplicaWorker.decode_from_arrays``): the running requests the roster does
    not hold yet (admitted since, all past their prefill) join it, with their
    first-token time where it is pending, and every running request decodes.
    Returns the decode tokens, or None (with the requests up to date and the roster
    dropped) where ``decode_running`` must run: a request still prefills, the sequence
    cap binds, or a block cannot be grown."""
    ro = rep._roster
    running = rep.running
    if batch.decode or (cap is not None and len(running) > cap):
        if ro is not None:
            _drop(rep, ro)
        return None
    if ro is None:
        ro = _new_roster(rep)
        if ro is None:
            return None
        joined = ro.reqs
    else:
        n = len(ro.reqs)
        if running[:n] != ro.reqs:
            _drop(rep, ro)
            return None
        joined = running[n:]
        if joined:
            a = _arrays(joined)
            if not (a[:, 0] >= a[:, 5]).all():
                _drop(rep, ro)
                return None
            ro.extend(joined, a)
        elif not n:
            _drop(rep, ro)
            return None
    if rep._unstamped:
        # Admitted with their KV, without a first token: this iteration streams it.
        now = rep.env.now
        for r in joined:
            if r.first_token != r.first_token:
                r.first_token = now
                rep._unstamped -= 1
    if not _grow_edges(rep, ro):
        return None
    rep.rostered += 1
    batch.decode += ro.reqs
    rep._roster_batch = batch
    return len(batch.decode)


def roster_prefilling(rep: ReplicaWorker) -> list[Request] | None:
    """The running requests still prefilling, in order (``continue_chunks``), from the
    roster: only those it does not hold can be; None where it cannot tell."""
    ro = rep._roster
    running = rep.running
    if ro is None or running[:len(ro.reqs)] != ro.reqs:
        return None
    return [r for r in running[len(ro.reqs):] if r.computed < r.prefill_target]


def roster_remaining(rep: ReplicaWorker, clip: int) -> int | None:
    """Output tokens the running requests are yet to decode, each counted up to
    ``clip`` (``remaining_output``), the roster's from its arrays; None where it
    cannot tell."""
    ro = rep._roster
    running = rep.running
    n = len(ro.reqs) if ro is not None else 0
    if ro is None or running[:n] != ro.reqs:
        return None
    left = int(np.minimum(ro.olen - ro.gen, clip).sum())
    for r in running[n:]:
        left += min(r.output_len - r.generated, clip)
    return left


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
        running = rep.running
        n = len(reqs)
        ro.drop(done)
        # The running list is the roster's requests and those admitted after its
        # decodes (``roster_decode``): the same list, less the finished ones.
        rep.running = (ro.reqs + running[n:] if running[:n] == reqs else
                       [r for r in running if r.done is not None and not r.done.triggered])
