"""ClusterWorker: a pool of identical replicas behind a router (one stage's GPUs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from frontier_core.engine.replica import ReplicaWorker
from frontier_core.records import Request

if TYPE_CHECKING:
    import simpy

    from frontier_core.components import Router
    from frontier_core.execution.engines import EngineModel


class ClusterWorker:
    """Admits a request into one of its replicas, or rejects it with a reason when it
    can never be served here (longer than the model's context, or larger than a
    replica's whole KV cache)."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        replicas: list[ReplicaWorker],
        router: Router,
        max_context: int,
        on_reject: Callable[[Request, str], None],
        engine: EngineModel | None = None,
    ) -> None:
        self.env = env
        self.name = name
        self.replicas = replicas
        self.router = router
        self.max_context = max_context
        self._reject = on_reject
        kv = replicas[0].kv
        # With DP attention a request's KV lives on one rank: at most a rank's share.
        blocks = kv.num_blocks if kv.rank_used is None else kv.rank_cap
        self.max_tokens = (blocks - kv.seq_blocks) * kv.block_size
        # An engine's API server takes in requests one after another (tokenising each
        # prompt) before they reach a replica's scheduler; one server per replica.
        self.engine = engine
        self._ingress_free = [0.0] * len(replicas)

    def serve(self, request: Request, replica: int | None = None) -> simpy.Event:
        """Queue the request on a replica (the router's choice, or ``replica`` when a
        workflow already chose one, e.g. where it reserved KV blocks); the returned event
        fires when this stage is done (or at once if the request is rejected)."""
        request.done = ev = self.env.event()
        tokens = request.prompt_len + (1 if request.stop_after_prefill else request.output_len)
        if request.prompt_len + request.output_len > self.max_context:
            self._reject(
                request,
                f"prompt+output exceed the model's context of {self.max_context} tokens; "
                f"this request has {request.prompt_len + request.output_len}",
            )
            return ev
        if tokens > self.max_tokens:
            kv = self.replicas[0].kv
            self._reject(
                request,
                f"needs more KV cache than a replica of cluster {self.name!r} holds "
                f"{'' if kv.rank_used is None else 'on one DP rank '}"
                f"({self.max_tokens} tokens); this request needs {tokens}",
            )
            return ev
        i = self.router.route(request, self.replicas) if replica is None else replica
        first = not request.cluster  # entering its first stage: not yet tokenised
        request.cluster = self.name
        request.replica = i
        if first and self.engine is not None:
            now = self.env.now
            done = max(now, self._ingress_free[i]) + self.engine.ingress_s(request.prompt_len)
            self._ingress_free[i] = done
            if done > now:
                self.env.timeout(done - now).callbacks.append(
                    lambda _e, r=request, k=i: self.replicas[k].enqueue(r))
                return ev
        self.replicas[i].enqueue(request)
        return ev

    @property
    def busy_time(self) -> float:
        return sum(r.busy_time for r in self.replicas)
