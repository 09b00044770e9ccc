"""Paged KV-cache accounting for one replica, in blocks of ``block_size`` tokens.

Blocks are counted, not named, which keeps the hot path to integer arithmetic.
With prefix caching, whole prompt blocks are also kept by content hash (the
trace's ``hash_ids``): a request whose prompt starts with cached blocks holds
them by reference instead of computing them again; when it leaves, its computed
prompt blocks stay cached. Cached blocks that no request holds are counted as
free (a scheduler may take them) and are evicted, least recently used first, only
when an allocation needs the room; a leaving request's blocks join that order
tail first, so the end of its prompt is evicted before the start that other
prompts share. With a host tier they move
to host memory instead (itself least-recently-used, bounded) and a later hit
copies them back over PCIe: the request's ``load_s`` grows by the copy time,
which the replica adds to the iteration that starts its prefill — unless
recomputing those tokens is faster (``recompute_s``, from the cluster's
ExecutionPredictor), in which case the match stops there and the prompt is
computed from that block on.

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

A disk tier below the host tier models a distributed SSD KV store (DeepSeek's 3FS
KVCache, Mooncake Store), SGLang HiCache's L3 (``--hicache-storage-backend``): with
``write_back`` a block enters it when the host tier drops it, with ``write_through``
also when it is first computed (``--hicache-write-policy``); it drops its least
recently used blocks when full. It keeps its copy when a block is read back, as a
store keeps an object until its own eviction, so a block may be on disk and in a tier
above it; a match finds it in the highest. A run of prompt blocks found only on disk
counts as cached when reading it (``disk_s_per_block`` each, plus ``disk_latency_s``)
and copying it to the GPU over PCIe beats recomputing it. A waiting request's run is
read into the host tier at once and pinned there, as HiCache prefetches an L3 hit into
host memory while the request waits; such a block is *staged* until a request copies
it to the GPU, and that request's ``load_s`` carries both the read and the copy (the
request waits for the whole read: HiCache's ``wait_complete`` prefetch policy; overlap
with its time in the queue is not modelled). Writes cost no time (they are
asynchronous in HiCache; write bandwidth is not modelled). HiCache's tiers, prefetch
and write policies: sgl-project/sglang, docs/advanced_features/hicache_design.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from frontier_core.records import Request


class PagedKVCache:
    """``num_blocks`` blocks of ``block_size`` tokens; requests hold whole blocks.

    ``free_blocks`` counts blocks no request holds, idle cached blocks included;
    ``idle_blocks`` is how many of those are cached (evictable).

    The host tier holds up to ``host_blocks`` blocks; copying one back takes
    ``load_s_per_block`` seconds. ``recompute_s(tokens, context)`` estimates the seconds
    a prefill spends computing ``tokens`` prompt tokens that follow ``context`` cached
    ones; with it, a run of host-tier blocks is copied back only when that is faster
    than recomputing it (None: always copied back).

    ``seq_blocks`` more blocks are held by every sequence that holds any, whatever its
    length: the fixed-size part of its cache (the recurrent state of linear-attention
    layers, the KV of sliding-window layers), kept in the same pool as vLLM's hybrid
    allocator keeps it.

    The disk tier holds up to ``disk_blocks`` blocks; reading one takes
    ``disk_s_per_block`` seconds and a read (one request's run) ``disk_latency_s`` more.
    ``write_through`` writes every published block there too.
    """

    __slots__ = ("block_size", "num_blocks", "free_blocks", "peak_used", "caching",
                 "entries", "idle", "idle_blocks", "stats", "host", "host_capacity",
                 "host_blocks", "load_s_per_block", "recompute_s", "epoch", "seq_blocks",
                 "pins", "disk", "disk_capacity", "disk_blocks", "disk_s_per_block",
                 "disk_latency_s", "write_through", "staged", "rank_used", "rank_cap",
                 "rank_short")

    def __init__(self, num_blocks: int, block_size: int, prefix_cache: bool = False,
                 host_blocks: int = 0, load_s_per_block: float = 0.0,
                 recompute_s: Callable[[int, int], float] | None = None,
                 seq_blocks: int = 0, disk_blocks: int = 0, disk_s_per_block: float = 0.0,
                 disk_latency_s: float = 0.0, write_through: bool = False) -> None:
        self.block_size = block_size
        self.seq_blocks = seq_blocks
        self.num_blocks = num_blocks
        self.free_blocks = num_blocks
        self.peak_used = 0
        self.caching = prefix_cache
        # hash -> [references, blocks, tokens]; ``idle`` orders the unreferenced ones
        # from least to most recently used.
        self.entries: dict[int, list[int]] = {}
        self.idle: OrderedDict[int, None] = OrderedDict()
        self.idle_blocks = 0
        # lookups (prompt tokens asked), hits (tokens found), blocks hit, evicted blocks,
        # host: blocks offloaded, tokens found there, blocks loaded back, blocks dropped,
        # blocks and tokens left there because recomputing them was faster; disk: blocks
        # written, tokens found there, blocks read back, blocks dropped, blocks and tokens
        # left there because recomputing them was faster
        self.stats = [0] * 16
        # The host tier: hash -> (blocks, tokens), least recently offloaded first.
        self.host: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.host_capacity = host_blocks
        self.host_blocks = 0
        # hash -> the waiting requests whose recorded match includes it (by id). Pinned
        # in the host tier: never dropped from it meanwhile (SGLang protects a host node
        # the same way while it is in use). On the GPU it stays evictable; evicting it
        # cuts their matches short (``_forget``), or, with a host tier, moves it there.
        self.pins: dict[int, dict[int, Request]] = {}
        self.load_s_per_block = load_s_per_block
        self.recompute_s = recompute_s
        self.epoch = 0  # cache entries created so far (see ``match``)
        # The disk tier: hash -> (blocks, tokens), least recently used first.
        self.disk: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.disk_capacity = disk_blocks
        self.disk_blocks = 0
        self.disk_s_per_block = disk_s_per_block
        self.disk_latency_s = disk_latency_s
        self.write_through = write_through
        # Host entries read from disk that no request has copied to the GPU yet: the
        # request that does so pays the read.
        self.staged: set[int] = set()
        # DP attention (set by the replica when dp > 1): blocks held by the requests of
        # each rank, and each rank's share of the pool (see ``_grow_on_rank``).
        self.rank_used: list[int] | None = None
        self.rank_cap = 0
        self.rank_short = False  # an admission failed for want of room on its rank

    def blocks_for(self, tokens: int) -> int:
        """Blocks a sequence of ``tokens`` tokens holds (its fixed part included)."""
        return -(-tokens // self.block_size) + self.seq_blocks

    def _take(self, need: int) -> bool:
        """Take ``need`` free blocks, evicting idle cached ones if the rest is short."""
        if need > self.free_blocks:
            return False
        short = need - (self.free_blocks - self.idle_blocks)
        while short > 0:
            h, _ = self.idle.popitem(last=False)
            _, blocks, tokens = self.entries.pop(h)
            self.idle_blocks -= blocks
            self.stats[3] += blocks
            short -= blocks
            pinned = h in self.pins
            if pinned and self.host_capacity and self.recompute_s is not None:
                # In host memory a recorded block stays in a waiting request's match
                # only where copying it back beats recomputing it, as a fresh lookup
                # decides (``match``); the other matches are cut short at it.
                slower = [r for r in self.pins[h].values()
                          if not self._worth_loading(blocks, tokens, self._before(r, h))]
                if slower:
                    self._forget(h, tokens, slower)
                    pinned = h in self.pins
            if self.host_capacity >= blocks or (pinned and self.host_capacity):
                self._offload(h, blocks, tokens)
            elif self.disk_capacity:
                self._to_disk(h, blocks, tokens)
            if pinned and h not in self.host:
                self._forget(h, tokens)
        self.free_blocks -= need
        used = self.num_blocks - self.free_blocks
        if used > self.peak_used:
            self.peak_used = used
        return True

    def grow(self, request: Request, tokens: int) -> bool:
        """Let ``request`` hold blocks for ``tokens`` tokens; False (and no change) if short."""
        ru = self.rank_used
        if ru is not None:
            return self._grow_on_rank(request, tokens, ru)
        return self._grow_pool(request, tokens)

    def _grow_on_rank(self, request: Request, tokens: int, ru: list[int]) -> bool:
        """``grow`` for a replica of DP attention ranks, each with its own KV share (each
        DP rank of SGLang and vLLM is a scheduler with its own KV cache): a request that
        holds nothing here is admitted only if its rank can hold its whole prefill
        (``prefill_target``), and every block it holds (cache hits included) counts on
        its rank. Growth after admission (decodes, later chunks) draws on the pool."""
        k = request.dp_rank
        held = request.blocks + request.shared_blocks
        if not held and ru[k] + self.blocks_for(max(tokens, request.prefill_target)) > self.rank_cap:
            self.rank_short = True
            return False
        if not self._grow_pool(request, tokens):
            return False
        ru[k] += request.blocks + request.shared_blocks - held
        return True

    def _grow_pool(self, request: Request, tokens: int) -> bool:
        if request.pending:
            return self._admit(request, tokens)
        need = (-(-tokens // self.block_size) + self.seq_blocks - request.blocks
                - request.shared_blocks)
        if need <= 0:
            return True
        if self.idle_blocks == 0:  # NOTE: perf — the common case stays a few comparisons
            if need > self.free_blocks:
                return False
            self.free_blocks -= need
            request.blocks += need
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
            return True
        if not self._take(need):
            return False
        request.blocks += need
        return True

    def release(self, request: Request) -> None:
        if self.rank_used is not None:
            self.rank_used[request.dp_rank] -= request.blocks + request.shared_blocks
        if self.caching and request.prefix:
            self.publish(request)  # what it computed stays cached (e.g. when preempted)
        self.free_blocks += request.blocks
        request.blocks = 0
        # Tail first, so that the end of the prompt is evicted first and its start, which
        # other prompts share, last: vLLM frees a request's blocks in reverse order "so
        # that the tail blocks are freed first" into the free queue that it evicts from
        # the front (SingleTypeKVCacheManager.free, v1/core/single_type_kv_cache_manager.py;
        # BlockPool.free_blocks, v1/core/block_pool.py).
        for h in reversed(request.held):
            self._unref(h)
        if request.pending:
            for h in dict.fromkeys(request.pending):
                self._unpin(h, request)
            request.pending = []
        request.held = []
        request.shared_blocks = 0
        request.matched_at = -1

    def _unref(self, h: int) -> None:
        e = self.entries[h]
        e[0] -= 1
        if e[0] == 0:
            self.idle[h] = None  # most recently used
            self.idle_blocks += e[1]
            self.free_blocks += e[1]

    # ---- prefix caching ---------------------------------------------------------
    def _offload(self, h: int, blocks: int, tokens: int) -> None:
        """Keep an evicted entry in host memory, dropping the oldest unpinned entries
        there if full. If only pinned ones are left, a pinned entry is kept beyond the
        capacity (until unpinned) and any other is dropped."""
        host = self.host
        self.stats[4] += blocks
        if h in host:  # its host copy was kept, pinned, while the GPU one lived
            host.move_to_end(h)
            return
        if not self._trim(blocks) and h not in self.pins:
            self._dropped(h, blocks, tokens)
            return
        host[h] = (blocks, tokens)
        self.host_blocks += blocks

    def _trim(self, room: int) -> bool:
        """Drop the least recently used unpinned host entries until ``room`` more blocks
        fit in the capacity; False if pinned ones are in the way."""
        host, pins = self.host, self.pins
        skipped = 0
        while self.host_blocks + room > self.host_capacity:
            if not host:
                return False
            h, hb = host.popitem(last=False)
            if h in pins:
                # In use: it goes to the most recent end (NOTE: perf — so that pinned
                # entries do not pile up at the front and get scanned again each time).
                host[h] = hb
                skipped += 1
                if skipped >= len(host):
                    return False
                continue
            skipped = 0
            self.host_blocks -= hb[0]
            self._dropped(h, *hb)
        return True

    def _dropped(self, h: int, blocks: int, tokens: int) -> None:
        """The host tier lets entry ``h`` go: to the disk tier, with write-back."""
        self.stats[7] += blocks
        self.staged.discard(h)
        if self.disk_capacity and not self.write_through:
            self._to_disk(h, blocks, tokens)

    def _to_disk(self, h: int, blocks: int, tokens: int) -> None:
        """Write entry ``h`` to the disk tier (a refresh if it is there), dropping the
        least recently used entries there if full."""
        disk = self.disk
        if h in disk:
            disk.move_to_end(h)
            return
        stats = self.stats
        if blocks > self.disk_capacity:
            stats[13] += blocks
            return
        while self.disk_blocks + blocks > self.disk_capacity:
            _, db = disk.popitem(last=False)
            self.disk_blocks -= db[0]
            stats[13] += db[0]
        disk[h] = (blocks, tokens)
        self.disk_blocks += blocks
        stats[10] += blocks

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

    def _charge(self, request: Request, h: int, blocks: int, tokens: int) -> bool:
        """Host entry ``h`` is copied to the GPU for ``request``: the PCIe copy, and the
        disk read before it if the entry is staged (then True)."""
        stats = self.stats
        if h in self.staged:
            self.staged.discard(h)
            request.load_s += blocks * (self.load_s_per_block + self.disk_s_per_block)
            stats[11] += tokens
            stats[12] += blocks
            return True
        request.load_s += blocks * self.load_s_per_block
        stats[5] += tokens
        stats[6] += blocks
        return False

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

    def _host_run(self, prefix: tuple[int, ...], i: int) -> tuple[int, int, int]:
        """The run of host-tier entries that starts at ``prefix[i]``: where it ends (index),
        its blocks and its tokens."""
        host = self.host
        blocks = tokens = 0
        n = len(prefix)
        while i < n:
            hb = host.get(prefix[i])
            if hb is None:
                break
            blocks += hb[0]
            tokens += hb[1]
            i += 1
        return i, blocks, tokens

    def _worth_loading(self, blocks: int, tokens: int, context: int,
                       disk: bool = False) -> bool:
        """Whether copying ``blocks`` host blocks back (``load_s_per_block`` seconds each;
        read from ``disk`` first: ``disk_s_per_block`` more each, and ``disk_latency_s``)
        is faster than recomputing their ``tokens`` tokens after ``context`` cached ones."""
        if self.recompute_s is None:
            return True
        load = blocks * self.load_s_per_block
        if disk:
            load += blocks * self.disk_s_per_block + self.disk_latency_s
        return load < self.recompute_s(tokens, context)

    def _disk_run(self, prefix: tuple[int, ...], i: int) -> tuple[int, int, int]:
        """The run of entries found only in the disk tier that starts at ``prefix[i]``:
        where it ends (index), its blocks and its tokens."""
        disk, entries, host = self.disk, self.entries, self.host
        blocks = tokens = 0
        n = len(prefix)
        while i < n:
            h = prefix[i]
            db = disk.get(h)
            if db is None or h in entries or h in host:
                break
            blocks += db[0]
            tokens += db[1]
            i += 1
        return i, blocks, tokens

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

    def _match_disk(self, request: Request, queued: bool, i: int,
                    found: int) -> tuple[int, int, int]:
        """``match`` reached ``request.prefix[i]``, found only in the disk tier: take the
        run of disk entries there if reading it beats recomputing it. A ``queued``
        request's run is read into the host tier (staged, pinned for it; kept beyond the
        host's capacity like any pinned entry), and ``match`` goes on to record it from
        there; a request admitted now gets it copied into free GPU blocks at once, while
        there is room. Returns where ``match`` goes on (-1: stop after what was taken),
        and the tokens and blocks the request now holds from the run."""
        prefix, disk, host, stats = request.prefix, self.disk, self.host, self.stats
        end, run_blocks, run_tokens = self._disk_run(prefix, i)
        if not self._worth_loading(run_blocks, run_tokens, found, disk=True):
            stats[14] += run_blocks
            stats[15] += run_tokens
            return -1, 0, 0
        if queued:
            for h in prefix[i:end]:
                if h in host:
                    continue  # a repeat, read just now
                db = disk.get(h)
                if db is None:
                    break  # dropped while making room for the run's start
                disk.move_to_end(h)  # a hit: most recently used
                self._pin(h, request)
                self._trim(db[0])  # may fail: a pinned entry stays beyond the capacity
                host[h] = db
                self.host_blocks += db[0]
                self.staged.add(h)
            return i, 0, 0
        entries, held = self.entries, request.held
        read = False
        tokens = blocks = 0
        while i < end:
            h = prefix[i]
            db = disk.get(h)
            if db is None or h in entries:
                break  # a repeat just read, or dropped: ``match`` looks again
            disk.move_to_end(h)  # a hit: most recently used
            if not self._take(db[0]):  # fails before evicting anything
                i = -1
                break
            entries[h] = [1, db[0], db[1]]
            self.epoch += 1
            request.load_s += db[0] * (self.load_s_per_block + self.disk_s_per_block)
            stats[11] += db[1]
            stats[12] += db[0]
            read = True
            held.append(h)
            tokens += db[1]
            blocks += db[0]
            i += 1
        if read:
            request.load_s += self.disk_latency_s
        return i, tokens, blocks

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

    # ---- transfers -----------------------------------------------------------------
    def reserve(self, blocks: int) -> bool:
        """Set aside ``blocks`` for a request that is not here yet (e.g. KV arriving by
        transfer); False (and no change) if short. Hand them over with ``adopt``, or
        give them back with ``unreserve``."""
        return self._take(blocks)

    def unreserve(self, blocks: int) -> None:
        self.free_blocks += blocks

    def adopt(self, request: Request, blocks: int) -> None:
        """Make ``request`` the holder of ``blocks`` reserved earlier (it must hold none
        here: release its blocks elsewhere first)."""
        assert request.blocks == 0, "a request holds KV on one replica at a time"
        request.blocks = blocks

    @property
    def used_blocks(self) -> int:
        return self.num_blocks - self.free_blocks

    @property
    def usage(self) -> float:
        return (self.num_blocks - self.free_blocks) / self.num_blocks
