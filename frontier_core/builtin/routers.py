"""Request routers: which replica of a cluster gets a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from frontier_core.records import Request


class RoundRobin:
    """Replicas in turn."""

    def __init__(self) -> None:
        self.next = 0

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        i = self.next % len(replicas)
        self.next = i + 1
        return i


class LeastOutstanding:
    """The replica with the fewest unfinished requests (ties: lowest index)."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        best, load = 0, None
        for i, r in enumerate(replicas):
            if load is None or r.outstanding < load:
                best, load = i, r.outstanding
        return best


class LeastTokens:
    """The replica with the fewest outstanding prompt + output tokens."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        best, load = 0, None
        for i, r in enumerate(replicas):
            if load is None or r.outstanding_tokens < load:
                best, load = i, r.outstanding_tokens
        return best


class LeastKV:
    """The replica with the lowest KV-cache usage, then the shortest queue."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        best, load = 0, None
        for i, r in enumerate(replicas):
            key = (r.kv.num_blocks - r.kv.free_blocks) / r.kv.num_blocks, len(r.waiting)
            if load is None or key < load:
                best, load = i, key
        return best
