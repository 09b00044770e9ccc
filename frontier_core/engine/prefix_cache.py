"""The prefix cache of ``PagedKVCache``: matching a prompt's cached blocks, recording a
waiting request's match, admitting it, and publishing what a request computed.

A request waiting in a queue holds no GPU blocks: the replica matches it before
each schedule only to record which cached blocks start its prompt (so that its
``computed`` tokens, and what admitting it costs, are known to the scheduler), and
the scheduler's first allocation for it (``grow``) takes them. Until then they
stay free and evictable; evicting one moves it to the host tier, or, without one,
cuts the match of the requests that recorded it short at that block. This is
vLLM's way: ``get_computed_blocks`` only looks the prompt up, and
``allocate_slots`` touches the hits (taking cached blocks with no holder out of
the free queue) when the scheduler admits the request
(v1/core/kv_cache_manager.py). So a preempted request, matched again at once,
gives all its blocks back: they stay cached, but free.

Host hits of a waiting request are kept in host memory for it (pinned) and copied
back when the scheduler admits it, as part of its first allocation. Engines do the
same: vLLM asks its KV
connector (LMCache, CPU offloading) how many tokens it can load when it schedules a
waiting request, and ``allocate_slots`` allocates blocks for those external tokens
together with the new ones, or leaves the request waiting (v1/core/sched/scheduler.py,
v1/core/kv_cache_manager.py); SGLang's HiCache counts a host hit as input tokens in
``PrefillAdder.add_one_req`` and copies it back (``init_load_back``) only for a
request it admits (managers/schedule_policy.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frontier_core.records import Request


class PrefixCache:
    """The prefix cache's methods of ``PagedKVCache`` (see the module's docstring).

    A mixin rather than an object of its own because its state is genuinely the cache's:
    a match takes free blocks from the pool and moves entries between the GPU and the
    tiers (``KVTiers``), and the pool's eviction cuts recorded matches short; all of it
    lives in ``PagedKVCache``'s slots, read on the hot path as plain attributes of one
    object. It holds no state and has no ``__init__``."""

    __slots__ = ()

    def _pin(self, h: int, request: Request) -> None:
        self.pins.setdefault(h, {})[id(request)] = request

    def _unpin(self, h: int, request: Request) -> None:
        """A waiting request no longer needs block ``h`` kept: a GPU copy supersedes the
        host one, and a host tier over its capacity (pinned blocks kept there) shrinks."""
        waiters = self.pins[h]
        del waiters[id(request)]
        if waiters:
            return
        del self.pins[h]
        hb = self.host.get(h)
        if hb is None:
            return
        if h in self.entries:
            del self.host[h]
            self.host_blocks -= hb[0]
            self.staged.discard(h)
        elif self.host_blocks > self.host_capacity:
            self._trim(0)

    def _before(self, request: Request, h: int) -> int:
        """Tokens of ``request``'s recorded match before block ``h``."""
        entries, host = self.entries, self.host
        pending = request.pending
        return sum(entries[x][2] if x in entries else host[x][1]
                   for x in pending[:pending.index(h)])

    def _forget(self, h: int, tokens: int, requests: list[Request] | None = None) -> None:
        """Entry ``h`` (``tokens`` tokens) was evicted and is nowhere now (or, for
        ``requests`` only, not worth copying back): the waiting requests that recorded
        it (or those of ``requests``) lose it and what follows it (the chain of hashes
        breaks there), as vLLM would find only the blocks before it when it schedules
        them. Their ``computed`` tokens and the hit counts shrink to match."""
        entries, host, stats = self.entries, self.host, self.stats
        waiters = self.pins[h]
        for r in list(waiters.values()) if requests is None else requests:
            del waiters[id(r)]
            pending = r.pending
            i = pending.index(h)
            gone = pending[i:]
            del pending[i:]
            kept = sum(entries[x][2] if x in entries else host[x][1] for x in pending)
            lost = sum(tokens if x == h else entries[x][2] if x in entries else host[x][1]
                       for x in gone)
            for x in dict.fromkeys(gone):
                if x != h and x not in pending:
                    self._unpin(x, r)
            limit = max(r.prompt_len, r.prefill_target)
            before = min(kept + lost, r.prompt_len)
            after = min(kept, r.prompt_len)
            stats[1] -= before - after
            stats[2] -= len(gone)
            r.computed = min(kept, limit - 1) if kept else 0
            if not r.preemptions:
                r.cached_tokens = after  # what its first admission will find
        if not waiters:
            del self.pins[h]

    def pending_blocks(self, request: Request) -> int:
        """Free blocks that admitting a waiting ``request`` takes for its recorded match:
        host blocks to copy back and cached blocks that no request holds (counted as
        free until then); cached blocks that running requests hold cost nothing. vLLM
        counts the same in ``allocate_slots`` (evictable hits, ``ref_cnt == 0``, are
        blocks to allocate). A scheduler that budgets admission in tokens counts them,
        as SGLang counts a host hit among the tokens a request adds
        (``PrefillAdder.add_one_req``)."""
        return self._pending_cost(request)[1] if request.pending else 0

    def _pending_cost(self, request: Request) -> tuple[int, int, set[int]]:
        """The blocks of ``request``'s pending match, the free blocks holding them takes,
        and the hashes of those (a hash may repeat; its blocks count once)."""
        entries, host = self.entries, self.host
        matched = cost = 0
        taken: set[int] = set()
        for h in request.pending:
            e = entries.get(h)
            b = e[1] if e is not None else host[h][0]
            matched += b
            if (e is None or e[0] == 0) and h not in taken:
                taken.add(h)
                cost += b
        return matched, cost, taken

    def _admit(self, request: Request, tokens: int) -> bool:
        """``grow`` for a waiting request with a recorded match: its first allocation
        also takes the blocks of its match (a GPU entry is held, and leaves the free
        blocks if nobody held it; a host block is copied back, its time going to
        ``load_s``), as vLLM's ``allocate_slots`` touches the cache hits and counts
        evictable ones and a connector's tokens among the blocks it allocates
        (v1/core/kv_cache_manager.py); False (and no change) if short. Every recorded
        block is still cached here: evicting one cut the match short (``_forget``)."""
        entries, host, pending = self.entries, self.host, request.pending
        matched, cost, taken = self._pending_cost(request)
        new = max(0, -(-tokens // self.block_size) + self.seq_blocks - request.blocks
                  - request.shared_blocks - matched)
        if cost + new > self.free_blocks:
            return False
        # Hold the GPU entries first, so that making room cannot evict them.
        idle, loads = self.idle, 0
        for h in pending:
            e = entries.get(h)
            if e is None:
                if h in taken:
                    taken.discard(h)
                    loads += host[h][0]
                continue
            if e[0] == 0:
                del idle[h]
                self.idle_blocks -= e[1]
                self.free_blocks -= e[1]
            e[0] += 1
            request.shared_blocks += e[1]
        self._take(new + loads)  # fits: checked above, and nothing held is evicted
        request.blocks += new
        held = request.held
        copied: set[int] = set()
        read = False
        for h in pending:
            e = entries.get(h)
            if e is None:  # copied back now
                b, t = host[h]
                entries[h] = [1, b, t]
                self.epoch += 1
                copied.add(h)
                request.shared_blocks += b
                read |= self._charge(request, h, b, t)
            elif h in copied:  # a repeat of a block copied back just now
                e[0] += 1
                request.shared_blocks += e[1]
            held.append(h)
        if read:
            request.load_s += self.disk_latency_s
        for h in dict.fromkeys(pending):
            self._unpin(h, request)
        request.pending = []
        return True

    def publish(self, request: Request) -> None:
        """Share the request's computed blocks that its hashes describe and that follow
        those it holds: each becomes a cache entry the request holds (so later requests
        with the same prefix may hold it too). Stops at a block cached meanwhile by another
        request.

        The hashes describe the prompt (a trace's ``hash_ids``), or ``prefix_tokens``
        tokens when set: a conversation turn's prompt and visible output, so that the
        output blocks it computed are cached when it leaves, as vLLM caches generated
        blocks, and the next turn finds them. Only fully computed blocks are shared (the
        last output token's KV is never computed)."""
        if not (self.caching and request.prefix):
            return
        size, bs = request.prefix_block, self.block_size
        end = request.prefix_tokens or request.prompt_len  # tokens the hashes describe
        done = min(request.computed, end)
        for i in range(len(request.held), len(request.prefix)):
            lo = i * size
            tokens = min(size, end - lo)
            if tokens <= 0 or lo + tokens > done:
                break
            h = request.prefix[i]
            blocks = -(-tokens // bs)
            if h in self.entries or blocks > request.blocks:
                break
            request.blocks -= blocks
            request.shared_blocks += blocks
            request.held.append(h)
            self.entries[h] = [1, blocks, tokens]
            self.epoch += 1
            if h not in self.pins:  # recomputed: the GPU copy supersedes it
                stale = self.host.pop(h, None)
                if stale is not None:
                    self.host_blocks -= stale[0]
                    self.staged.discard(h)
            if self.write_through:
                self._to_disk(h, blocks, tokens)

    def match(self, request: Request, queued: bool = False) -> int:
        """Find the cached blocks that start ``request``'s prompt and count them as
        computed; returns the cached prompt tokens. A fully cached prompt still computes
        its last token (which yields the first output token), as vLLM does.

        A ``queued`` request (waiting for the scheduler) only records them, in
        ``pending``: it holds nothing, and ``grow`` takes them when the scheduler admits
        it, as vLLM's scheduler looks a waiting request up (``get_computed_blocks``) and
        touches the hits only in ``allocate_slots``. Otherwise (a request admitted now,
        e.g. a decode replica's reservation for a transfer) the request holds them at
        once, by reference.

        A request not yet started (no blocks of its own) may be matched again: the match
        then goes on from the blocks it recorded or holds, picking up blocks cached since
        (the replica does this before each schedule for the head of its queue, as vLLM
        matches when it schedules a request). ``epoch`` counts cache entries created, so
        a replica can tell whether matching again can find anything new.

        A run of blocks in the host tier counts as cached when copying it back is faster
        than recomputing it; otherwise the match stops there: the prompt is computed from
        that block on, and publishing the result supersedes the host copy. A queued
        request keeps the run in host memory, pinned, and ``grow`` copies it back when it
        admits the request; a request admitted now copies the run back into free GPU
        blocks at once, while there is room. Either way the copy time is added to
        ``request.load_s``."""
        if (not (self.caching and request.prefix) or request.blocks
                or 0 < request.prefill_target <= request.computed):
            return 0  # it has started computing, or arrived with its KV (a transfer)
        first = request.matched_at < 0
        request.matched_at = self.epoch
        held, pending = request.held, request.pending
        entries, host, stats = self.entries, self.host, self.stats
        start = len(held) + len(pending)
        # Extending an earlier match: its entries are held, or recorded and so still
        # cached (evicting one cuts the record short), on the GPU or in the host tier.
        found = sum(entries[h][2] for h in held) if held else 0
        if pending:
            queued = True
            for h in pending:
                e = entries.get(h)
                found += e[2] if e is not None else host[h][1]
        pin = self._pin
        blocks = request.shared_blocks
        before = min(found, request.prompt_len)
        prefix = request.prefix
        i, n = start, len(prefix)
        while i < n:
            h = prefix[i]
            e = entries.get(h)
            if e is not None:
                if queued:
                    # Recorded, not held: it stays free and evictable until admission
                    # takes it (``_admit``).
                    pin(h, request)
                    pending.append(h)
                    found += e[2]
                    i += 1
                    continue
                if e[0] == 0:
                    del self.idle[h]
                    self.idle_blocks -= e[1]
                    self.free_blocks -= e[1]
                e[0] += 1
                held.append(h)
                found += e[2]
                blocks += e[1]
                i += 1
                continue
            if h not in host:
                if h not in self.disk:
                    break
                i, run_tokens, run_blocks = self._match_disk(request, queued, i, found)
                found += run_tokens
                blocks += run_blocks
                if i < 0:
                    break
                # The run is in the host tier now (queued), or held; go on from there.
                continue
            end, run_blocks, run_tokens = self._host_run(prefix, i)
            if not self._worth_loading(run_blocks, run_tokens, found):
                stats[8] += run_blocks
                stats[9] += run_tokens
                break
            if queued:
                for h in prefix[i:end]:
                    pin(h, request)
                    host.move_to_end(h)  # a hit: most recently used
                    pending.append(h)
                found += run_tokens
                i = end
                continue
            # Copy the run back into free GPU blocks, while there is room.
            while i < end:
                h = prefix[i]
                hb = host.pop(h, None)
                if hb is None:
                    break  # a repeat just loaded, or dropped by an eviction: look again
                self.host_blocks -= hb[0]
                if not self._take(hb[0]):  # fails before evicting anything
                    host[h] = hb
                    self.host_blocks += hb[0]
                    i = n
                    break
                entries[h] = [1, hb[0], hb[1]]
                if self._charge(request, h, *hb):
                    request.load_s += self.disk_latency_s
                held.append(h)
                found += hb[1]
                blocks += hb[0]
                i += 1
        # A preempted request recomputes its prompt and the tokens it generated; when its
        # hashes cover its output too (a conversation turn), those may be cached as well.
        limit = max(request.prompt_len, request.prefill_target)
        found = min(found, limit)
        if first:
            stats[0] += request.prompt_len
        stats[1] += min(found, request.prompt_len) - before
        stats[2] += len(held) + len(pending) - start
        if found:
            request.shared_blocks = blocks
            request.computed = min(found, limit - 1)
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
        return min(found, request.prompt_len)

    def cached_prefix(self, request: Request) -> int:
        """Tokens of ``request``'s prompt this replica holds cached (no side effects):
        on the GPU, or in the host or disk tier where loading them beats recomputing."""
        if not (self.caching and request.prefix):
            return 0
        prefix = request.prefix
        entries = self.entries
        found = i = 0
        n = len(prefix)
        while i < n:
            e = entries.get(prefix[i])
            if e is not None:
                found += e[2]
                i += 1
                continue
            end, run_blocks, run_tokens = self._host_run(prefix, i)
            disk = end == i
            if disk:
                end, run_blocks, run_tokens = self._disk_run(prefix, i)
            if end == i or not self._worth_loading(run_blocks, run_tokens, found, disk):
                break
            found += run_tokens
            i = end
        return min(found, request.prompt_len)

    def held_prefix_blocks(self, request: Request) -> int:
        """Blocks of ``request``'s cached prompt prefix on the GPU that other requests
        hold now (no side effects): ``match`` shares them without taking free blocks, so
        admitting ``request`` needs that many fewer. Counts up to the first block that
        is not on the GPU."""
        if not (self.caching and request.prefix):
            return 0
        entries = self.entries
        blocks = 0
        for h in request.prefix:
            e = entries.get(h)
            if e is None:
                break
            if e[0]:
                blocks += e[1]
        return blocks
