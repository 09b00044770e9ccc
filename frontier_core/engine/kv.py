"""Paged KV-cache accounting for one replica, in blocks of ``block_size`` tokens.

Blocks are counted, not named, which keeps the hot path to integer arithmetic.
With prefix caching, whole prompt blocks are also kept by content hash (the
trace's ``hash_ids``): a request whose prompt starts with cached blocks holds
them by reference instead of computing them again; when it leaves, its
computed prompt blocks stay cached. Cached blocks that no request holds are
counted as free (a scheduler may take them) and are evicted, least recently
used first, only when an allocation needs the room. With a host tier they move
to host memory instead (itself least-recently-used, bounded) and a later hit
copies them back over PCIe: the request's ``load_s`` grows by the copy time,
which the replica adds to the iteration that starts its prefill.
"""

from __future__ import annotations

from collections import OrderedDict

from frontier_core.records import Request


class PagedKVCache:
    """``num_blocks`` blocks of ``block_size`` tokens; requests hold whole blocks.

    ``free_blocks`` counts blocks no request holds, idle cached blocks included;
    ``idle_blocks`` is how many of those are cached (evictable).
    """

    __slots__ = ("block_size", "num_blocks", "free_blocks", "peak_used", "caching",
                 "entries", "idle", "idle_blocks", "stats", "host", "host_capacity",
                 "host_blocks", "load_s_per_block")

    def __init__(self, num_blocks: int, block_size: int, prefix_cache: bool = False,
                 host_blocks: int = 0, load_s_per_block: float = 0.0) -> None:
        self.block_size = block_size
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
        # host: blocks offloaded, tokens found there, blocks loaded back, blocks dropped
        self.stats = [0, 0, 0, 0, 0, 0, 0, 0]
        # The host tier: hash -> (blocks, tokens), least recently offloaded first.
        self.host: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.host_capacity = host_blocks
        self.host_blocks = 0
        self.load_s_per_block = load_s_per_block

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

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
        need = -(-tokens // self.block_size) - request.blocks - request.shared_blocks
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
            stale = self.host.pop(h, None)  # recomputed: the GPU copy supersedes it
            if stale is not None:
                self.host_blocks -= stale[0]

    def match(self, request: Request) -> int:
        """Hold the cached blocks that start ``request``'s prompt and count them as
        computed; returns the cached prompt tokens. A fully cached prompt still computes
        its last token (which yields the first output token), as vLLM does."""
        if not (self.caching and request.prefix) or request.held:
            return 0
        found = blocks = 0
        held = request.held
        for h in request.prefix:
            e = self.entries.get(h)
            if e is None:
                # In host memory: copy it back into free GPU blocks, if there is room.
                hb = self.host.pop(h, None)
                if hb is None:
                    break
                self.host_blocks -= hb[0]
                if not self._take(hb[0]):  # fails before evicting anything
                    self.host[h] = hb
                    self.host_blocks += hb[0]
                    break
                self.entries[h] = [1, hb[0], hb[1]]
                request.load_s += hb[0] * self.load_s_per_block
                self.stats[5] += hb[1]
                self.stats[6] += hb[0]
                held.append(h)
                found += hb[1]
                blocks += hb[0]
                continue
            if e[0] == 0:
                del self.idle[h]
                self.idle_blocks -= e[1]
                self.free_blocks -= e[1]
            e[0] += 1
            held.append(h)
            found += e[2]
            blocks += e[1]
        found = min(found, request.prompt_len)
        self.stats[0] += request.prompt_len
        self.stats[1] += found
        self.stats[2] += len(held)
        if found:
            request.shared_blocks = blocks
            request.computed = min(found, request.prompt_len - 1)
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
        return found

    def cached_prefix(self, request: Request) -> int:
        """Tokens of ``request``'s prompt this replica holds cached (no side effects)."""
        if not (self.caching and request.prefix):
            return 0
        found = 0
        for h in request.prefix:
            e = self.entries.get(h)
            if e is None:
                hb = self.host.get(h)
                if hb is None:
                    break
                found += hb[1]
                continue
            found += e[2]
        return min(found, request.prompt_len)

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
