"""Paged KV-cache accounting for one replica, in blocks of ``block_size`` tokens.

Blocks are counted, not named: prefix sharing (a later issue) will need block
identities; the counting allocator keeps the hot path to integer arithmetic.
"""

from __future__ import annotations

from frontier_core.records import Request


class PagedKVCache:
    """``num_blocks`` blocks of ``block_size`` tokens; requests hold whole blocks."""

    __slots__ = ("block_size", "num_blocks", "free_blocks", "peak_used")

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.free_blocks = num_blocks
        self.peak_used = 0

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def grow(self, request: Request, tokens: int) -> bool:
        """Let ``request`` hold blocks for ``tokens`` tokens; False (and no change) if short."""
        need = -(-tokens // self.block_size) - request.blocks
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        request.blocks += need
        used = self.num_blocks - self.free_blocks
        if used > self.peak_used:
            self.peak_used = used
        return True

    def release(self, request: Request) -> None:
        self.free_blocks += request.blocks
        request.blocks = 0

    def reserve(self, blocks: int) -> bool:
        """Set aside ``blocks`` for a request that is not here yet (e.g. KV arriving by
        transfer); False (and no change) if short. Hand them over with ``adopt``, or
        give them back with ``unreserve``."""
        if blocks > self.free_blocks:
            return False
        self.free_blocks -= blocks
        used = self.num_blocks - self.free_blocks
        if used > self.peak_used:
            self.peak_used = used
        return True

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
