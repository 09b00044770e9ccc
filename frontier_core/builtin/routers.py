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


def _argmin(replicas: Sequence[Any], key) -> int:
    """Index of the replica with the smallest ``key`` (ties: the lowest index)."""
    best, load = 0, None
    for i, r in enumerate(replicas):
        k = key(r)
        if load is None or k < load:
            best, load = i, k
    return best


class LeastOutstanding:
    """The replica with the fewest unfinished requests (ties: lowest index)."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        return _argmin(replicas, lambda r: r.outstanding)


class LeastTokens:
    """The replica with the fewest outstanding prompt + output tokens."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        return _argmin(replicas, lambda r: r.outstanding_tokens)


class LeastKV:
    """The replica with the lowest KV-cache usage, then the shortest queue."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        return _argmin(replicas, lambda r: (r.kv.used_blocks / r.kv.num_blocks, len(r.waiting)))
