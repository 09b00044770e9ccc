"""Request routers: which replica of a cluster gets a request."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.sdk import Request, argmin


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
        return argmin(replicas, lambda r: r.outstanding)


class LeastTokens:
    """The replica with the fewest outstanding prompt + output tokens."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        return argmin(replicas, lambda r: r.outstanding_tokens)


class LeastKV:
    """The replica with the lowest KV-cache usage, then the shortest queue."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        return argmin(replicas, lambda r: (r.kv.used_blocks / r.kv.num_blocks, len(r.waiting)))


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


class CacheAwareOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cache_threshold: float = Field(
        0.3, ge=0, le=1, description="route to the replica with the longest remembered "
        "prefix when it covers more than this share of the prompt",
    )
    balance_abs_threshold: int = Field(
        64, ge=0, description="load is imbalanced when the most and least loaded replicas "
        "differ by more than this many unfinished requests ...",
    )
    balance_rel_threshold: float = Field(
        1.5, ge=1, description="... and the most loaded has more than this many times the "
        "least loaded's; then the least loaded replica takes the request",
    )
    max_tree_tokens: int = Field(
        2**24, ge=1, description="prompt tokens the router remembers per replica (oldest "
        "forgotten first)",
    )


class CacheAware:
    """SGLang router's (sgl-router) default policy, ``cache_aware``
    (``sgl-router/src/policies/cache_aware.rs``; defaults from its ``RouterArgs``:
    cache_threshold 0.3, balance_abs_threshold 64, balance_rel_threshold 1.5). When load
    is imbalanced — unfinished requests differ by more than the absolute threshold *and*
    the most loaded holds more than the relative threshold times the least loaded's —
    the least loaded replica takes the request. Otherwise the router looks up the prompt
    in its own record of what it sent each replica (an approximate radix tree, not the
    replica's cache): a replica whose remembered prefix covers more than
    ``cache_threshold`` of the prompt takes it, else the replica with the smallest record.
    Either way the prompt is added to the chosen replica's record.

    Frontier records prompts as their prefix-block hashes (a prompt without hashes is
    text no other shares) and sizes records in tokens where sgl-router counts
    characters; its LRU eviction of 2^26 characters per replica every 120 s is a cap of
    ``max_tree_tokens`` (2^24: about four characters a token) applied as prompts arrive."""

    def __init__(self, options: CacheAwareOptions) -> None:
        self.o = options
        self.records: dict[Any, tuple[OrderedDict[Any, int], list[int]]] = {}
        self.unique = 0  # names the unmatched tail of each prompt in the records

    def _record(self, replica: Any) -> tuple[OrderedDict[Any, int], list[int]]:
        rec = self.records.get(replica)
        if rec is None:
            rec = self.records[replica] = (OrderedDict(), [0])
        return rec

    @staticmethod
    def _matched(entries: OrderedDict[Any, int], request: Request) -> int:
        found = 0
        for h in request.prefix or ():
            if h not in entries:
                break
            found += 1
        return min(found * request.prefix_block, request.prompt_len)

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        loads = [r.outstanding for r in replicas]
        hi, lo = max(loads), min(loads)
        if hi - lo > self.o.balance_abs_threshold and hi > lo * self.o.balance_rel_threshold:
            pick = loads.index(lo)
        else:
            recs = [self._record(r) for r in replicas]
            best, share = 0, -1.0
            if request.prefix and request.prompt_len:
                for i, (entries, _) in enumerate(recs):
                    s = self._matched(entries, request) / request.prompt_len
                    if s > share:
                        best, share = i, s
            if share > self.o.cache_threshold:
                pick = best
            else:
                pick = min(range(len(recs)), key=lambda i: recs[i][1][0])
        self._remember(replicas[pick], request)
        return pick

    def _remember(self, replica: Any, request: Request) -> None:
        entries, size = self._record(replica)
        covered = 0
        block = request.prefix_block
        for h in request.prefix or ():
            if h in entries:
                entries.move_to_end(h)
            else:
                entries[h] = block
                size[0] += block
            covered += block
        tail = request.prompt_len - covered
        if tail > 0:
            self.unique += 1
            entries[("tail", self.unique)] = tail
            size[0] += tail
        while size[0] > self.o.max_tree_tokens and entries:
            _, tokens = entries.popitem(last=False)
            size[0] -= tokens
