"""Paged KV-cache accounting for one replica, in blocks of ``block_size`` tokens.

Blocks are counted, not named, which keeps the hot path to integer arithmetic.
With prefix caching, whole prompt blocks are also kept by content hash (the
trace's ``hash_ids``): a request whose prompt starts with cached blocks holds
them by reference instead of computing them again (the replica matches waiting
requests before each schedule); when it leaves, its computed prompt blocks stay
cached. Cached blocks that no request holds are
counted as free (a scheduler may take them) and are evicted, least recently
used first, only when an allocation needs the room. With a host tier they move
to host memory instead (itself least-recently-used, bounded) and a later hit
copies them back over PCIe: the request's ``load_s`` grows by the copy time,
which the replica adds to the iteration that starts its prefill — unless
recomputing those tokens is faster (``recompute_s``, from the cluster's
ExecutionPredictor), in which case the match stops there and the prompt is
computed from that block on.
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
    """

    __slots__ = ("block_size", "num_blocks", "free_blocks", "peak_used", "caching",
                 "entries", "idle", "idle_blocks", "stats", "host", "host_capacity",
                 "host_blocks", "load_s_per_block", "recompute_s", "epoch", "seq_blocks")

    def __init__(self, num_blocks: int, block_size: int, prefix_cache: bool = False,
                 host_blocks: int = 0, load_s_per_block: float = 0.0,
                 recompute_s: Callable[[int, int], float] | None = None,
                 seq_blocks: int = 0) -> None:
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
        # blocks and tokens left there because recomputing them was faster
        self.stats = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        # The host tier: hash -> (blocks, tokens), least recently offloaded first.
        self.host: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.host_capacity = host_blocks
        self.host_blocks = 0
        self.load_s_per_block = load_s_per_block
        self.recompute_s = recompute_s
        self.epoch = 0  # cache entries created so far (see ``match``)

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
            if self.host_capacity >= blocks:
                self._offload(h, blocks, tokens)
        self.free_blocks -= need
        used = self.num_blocks - self.free_blocks
        if used > self.peak_used:
            self.peak_used = used
        return True

    def grow(self, request: Request, tokens: int) -> bool:
        """Let ``request`` hold blocks for ``tokens`` tokens; False (and no change) if short."""
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
        if self.caching and request.prefix:
            self.publish(request)  # what it computed stays cached (e.g. when preempted)
        self.free_blocks += request.blocks
        request.blocks = 0
        for h in request.held:
            e = self.entries[h]
            e[0] -= 1
            if e[0] == 0:
                self.idle[h] = None  # most recently used
                self.idle_blocks += e[1]
                self.free_blocks += e[1]
        request.held = []
        request.shared_blocks = 0
        request.matched_at = -1

    # ---- prefix caching ---------------------------------------------------------
    def _offload(self, h: int, blocks: int, tokens: int) -> None:
        """Keep an evicted entry in host memory, dropping the oldest there if full."""
        self.stats[4] += blocks
        while self.host_blocks + blocks > self.host_capacity:
            _, (b, _) = self.host.popitem(last=False)
            self.host_blocks -= b
            self.stats[7] += b
        self.host[h] = (blocks, tokens)
        self.host_blocks += blocks

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
            stale = self.host.pop(h, None)  # recomputed: the GPU copy supersedes it
            if stale is not None:
                self.host_blocks -= stale[0]

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

    def _worth_loading(self, blocks: int, tokens: int, context: int) -> bool:
        """Whether copying ``blocks`` host blocks back (``load_s_per_block`` seconds each)
        is faster than recomputing their ``tokens`` tokens after ``context`` cached ones."""
        if self.recompute_s is None:
            return True
        return blocks * self.load_s_per_block < self.recompute_s(tokens, context)

    def match(self, request: Request) -> int:
        """Hold the cached blocks that start ``request``'s prompt and count them as
        computed; returns the cached prompt tokens. A fully cached prompt still computes
        its last token (which yields the first output token), as vLLM does.

        A request not yet started (no blocks of its own) may be matched again: the match
        then goes on from the blocks it holds, picking up blocks cached since (the
        replica does this before each schedule for the head of its queue, as vLLM
        matches when it schedules a request). ``epoch`` counts cache entries created, so
        a replica can tell whether matching again can find anything new.

        A run of blocks in the host tier is copied back into free GPU blocks (its copy
        time added to ``request.load_s``) when that is faster than recomputing it;
        otherwise the match stops there: the prompt is computed from that block on, and
        publishing the result supersedes the host copy."""
        if (not (self.caching and request.prefix) or request.blocks
                or 0 < request.prefill_target <= request.computed):
            return 0  # it has started computing, or arrived with its KV (a transfer)
        first = request.matched_at < 0
        request.matched_at = self.epoch
        held = request.held
        entries, host, stats = self.entries, self.host, self.stats
        start = len(held)
        # Extending an earlier match: its entries are held, so they are still here.
        found = sum(entries[h][2] for h in held) if start else 0
        blocks = request.shared_blocks
        before = min(found, request.prompt_len)
        prefix = request.prefix
        i, n = start, len(prefix)
        while i < n:
            h = prefix[i]
            e = entries.get(h)
            if e is not None:
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
                break
            end, run_blocks, run_tokens = self._host_run(prefix, i)
            if not self._worth_loading(run_blocks, run_tokens, found):
                stats[8] += run_blocks
                stats[9] += run_tokens
                break
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
                request.load_s += hb[0] * self.load_s_per_block
                stats[5] += hb[1]
                stats[6] += hb[0]
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
        stats[2] += len(held) - start
        if found:
            request.shared_blocks = blocks
            request.computed = min(found, limit - 1)
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
        return min(found, request.prompt_len)

    def cached_prefix(self, request: Request) -> int:
        """Tokens of ``request``'s prompt this replica holds cached (no side effects):
        on the GPU, or in the host tier where copying them back beats recomputing."""
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
            if end == i or not self._worth_loading(run_blocks, run_tokens, found):
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
