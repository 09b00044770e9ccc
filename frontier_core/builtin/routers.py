"""Request routers: which replica of a cluster gets a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class PrefixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    load_cap: int = Field(
        8, ge=0, description="a replica may take a request for its cached prefix while it "
        "has at most this many more unfinished requests than the least-loaded replica",
    )


class PrefixAware:
    """The replica holding the longest cached prefix of the request's prompt, among those
    within ``load_cap`` unfinished requests of the least loaded (ties: fewer unfinished
    requests, then the lowest index); without cached prefixes, the least loaded."""

    def __init__(self, options: PrefixOptions) -> None:
        self.cap = options.load_cap

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        loads = [r.outstanding for r in replicas]
        ceiling = min(loads) + self.cap
        best, key = 0, None
        for i, r in enumerate(replicas):
            if loads[i] > ceiling:
                continue
            k = (-r.kv.cached_prefix(request), loads[i])
            if key is None or k < key:
                best, key = i, k
        return best
