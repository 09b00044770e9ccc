"""The host and disk tiers of the prefix cache (``PagedKVCache``), below the GPU.

With a host tier, cached blocks evicted from the GPU move to host memory (itself
least-recently-used, bounded) and a later hit copies them back over PCIe: the request's
``load_s`` grows by the copy time, which the replica adds to the iteration that starts
its prefill — unless recomputing those tokens is faster (``recompute_s``, from the
cluster's ExecutionPredictor), in which case the match stops there and the prompt is
computed from that block on.

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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frontier_core.records import Request


class KVTiers:
    """The host and disk tiers' methods of ``PagedKVCache``: offloading evicted entries,
    dropping and writing them down a tier, finding runs of a prompt's blocks there, and
    what copying them back costs.

    A mixin rather than an object of its own because its state is genuinely the cache's:
    the pool's eviction (``_take``) moves entries here, and a match or an admission
    (``PrefixCache``) reads the GPU entries, the tiers, the pins and the counters
    together; all of them are ``PagedKVCache``'s slots, and the hot path reads them as
    plain attributes of one object. It holds no state and has no ``__init__``."""

    __slots__ = ()

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
