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

The cache is one object, ``PagedKVCache``, whose methods live in three modules, one per
concern: the block pool (this module: taking, growing and releasing a request's
blocks, eviction, reservations for transfers), the prefix cache
(``frontier_core.engine.prefix_cache``: matching, publishing, waiting requests'
recorded matches) and the host and disk tiers below the GPU
(``frontier_core.engine.kv_tiers``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from frontier_core.engine.kv_tiers import KVTiers
from frontier_core.engine.prefix_cache import PrefixCache
from frontier_core.records import Request


def replica_kv_blocks(
    gpu_bytes: float,
    memory_fraction: float,
    weight_bytes_per_gpu: float,
    activation_bytes: float,
    kv_bytes_per_token_per_gpu: float,
    block_size: int,
) -> int:
    """Blocks that fit in one GPU's share after weights and the activation reserve."""
    free = gpu_bytes * memory_fraction - weight_bytes_per_gpu - activation_bytes
    if free <= 0:
        return 0
    return int(math.floor(free / (kv_bytes_per_token_per_gpu * block_size)))


class PagedKVCache(PrefixCache, KVTiers):
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

    def grow_each(self, reqs: list[Request], tokens: np.ndarray, blocks: np.ndarray,
                  shared: np.ndarray, ranks: np.ndarray | None) -> np.ndarray | None:
        """``grow(reqs[i], tokens[i])`` for every ``i`` in order, at once, where each of
        them would only take blocks from the free ones: ``blocks``, ``shared`` and
        ``ranks`` are what the requests hold and their DP ranks (None: one rank), as
        arrays aligned with ``reqs``. Returns the blocks each holds after, or None (and
        nothing changed) where calling ``grow`` one by one may do more or fail: cached
        blocks could be evicted, a request holds nothing (its rank's admission check),
        or the free blocks run short before the last.

        # NOTE: perf — a decode roster of thousands grows tens of them at every
        # iteration (every one with SGLang's page of one token): one take for all of
        # them instead of a call per request.
        """
        ru = self.rank_used
        if self.caching or self.idle_blocks or (ru is not None and ranks is None):
            return None
        if ru is not None and not (blocks + shared > 0).all():
            return None
        need = -(-tokens // self.block_size) + self.seq_blocks - blocks - shared
        grown = need > 0
        total = int(need[grown].sum())
        if total > self.free_blocks:
            return None
        if total:
            self.free_blocks -= total
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
        after = np.where(grown, blocks + need, blocks)
        at = np.flatnonzero(grown)
        for i, b in zip(at.tolist(), after[at].tolist(), strict=True):
            reqs[i].blocks = b
        if ru is not None:
            add = np.bincount(ranks[at], weights=need[at], minlength=len(ru))
            for k in np.flatnonzero(add).tolist():
                ru[k] += int(add[k])
        return after

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
