"""The ``pd`` workflow: prefill on one pool of GPUs, decode on another, KV cache moved between.

Request path (DistServe / Splitwise / Mooncake style):

1. route to a prefill cluster (the least loaded per replica) and, through that
   cluster's router, to a replica; prefill there (batched, chunked if its
   scheduler chunks). The first token is emitted when the prefill ends.
2. the prefilled request keeps its KV on the prefill replica and queues (FIFO)
   for decode memory: a decode replica is chosen among those that can reserve
   blocks for its context now (the decode cluster with the least outstanding
   work per replica, then that cluster's router among its replicas that fit).
   While no decode replica has room the request waits, still holding its
   prefill memory, so a full decode pool slows prefill admission
   (backpressure).
3. the KV cache moves over the ``Network``: one flow from the prefill
   replica's send channel to the decode replica's receive channel, each with
   the bandwidth of all its GPUs' links (parallel streams = the shards), shared
   max-min fairly with concurrent transfers. Optionally streamed layer by layer
   so that most of it overlaps the prefill compute.
4. the prefill replica frees its blocks, the decode replica takes over the
   reserved ones, and the request decodes there to completion.

With ``prefix_cache`` on a decode cluster, the decode replica's own cache is
consulted when the request is placed (step 2): the prompt blocks it already
holds (by the trace's block hashes) are held there by reference, only the rest
is reserved and transferred, and the transferred prompt blocks are shared on
arrival, so later requests with the same prefix find them. A prefill cluster
with ``prefix_cache`` skips the cached part of the prefill as any replica does.

A request whose context can never fit a decode replica is rejected before its
prefill, with the reason, so nothing waits forever.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontier_core import (
    BuildContext,
    ConfigError,
    Link,
    Network,
    Request,
    effective_link,
)

if TYPE_CHECKING:
    import simpy

GB = 1e9


class PDOptions(BaseModel):
    """Options of the ``pd`` workflow (``deployment.workflow``)."""

    model_config = ConfigDict(extra="forbid")

    prefill: list[str] = Field(default_factory=lambda: ["prefill"], min_length=1,
                               description="clusters that run prefills")
    decode: list[str] = Field(default_factory=lambda: ["decode"], min_length=1,
                              description="clusters that run decodes")
    link: Literal["auto", "nvlink", "scaleout"] = Field(
        "auto",
        description="link the KV cache crosses: nvlink when prefill and decode share a "
        "node, scaleout (RDMA) between nodes; auto picks nvlink when both pools are of "
        "one GPU kind and fit in one node together",
    )
    bandwidth_gbs: float | None = Field(
        None, gt=0, description="per-GPU link bandwidth per direction in GB/s (1e9 B/s); "
        "overrides the GPU datasheet")
    latency_us: float | None = Field(None, ge=0, description="one-way link latency in µs")
    layerwise: bool = Field(
        False, description="stream the KV layer by layer as the prefill computes it")
    decode_watermark: float = Field(
        0.01, ge=0, lt=1,
        description="fraction of a decode replica's KV blocks kept free when reserving "
        "for an incoming transfer (room for running requests to grow)")
    timeseries_points: int = Field(200, ge=2, description="samples in pd_timeseries.csv")
    first_token: Literal["auto", "prefill", "decode"] = Field(
        "auto", description="who streams the first token to the client: prefill (when "
        "the prefill ends) or decode (when the decode replica takes the request into an "
        "iteration, as SGLang's router, TensorRT-LLM's disaggregated server and vLLM's "
        "proxy do); auto: decode when the decode clusters name an engine")
    reserve: Literal["auto", "after_prefill", "before_prefill"] = Field(
        "auto", description="when the decode side reserves a request's KV and batch slot: "
        "after its prefill (TensorRT-LLM, vLLM) or before it starts (SGLang's "
        "pre-allocation queue); auto: the decode cluster's engine's rule, else after")

    @model_validator(mode="after")
    def _disjoint(self) -> PDOptions:
        both = sorted(set(self.prefill) & set(self.decode))
        if both:
            raise ValueError(f"clusters {both} are listed as both prefill and decode; "
                             "a cluster serves one stage")
        return self


@dataclass(slots=True)
class Transfer:
    """One KV-cache transfer (seconds, bytes), for the report."""

    request: int
    src: str
    src_replica: int
    dst: str
    dst_replica: int
    start: float
    end: float
    nbytes: float  # moved over the link
    link: str
    # With a decode-side prefix cache: prompt tokens (and the decode replica's blocks)
    # found cached there, so not transferred, and the bytes that saves.
    cached_tokens: int = 0
    cached_blocks: int = 0
    skipped_bytes: float = 0.0


@dataclass(slots=True)
class _Decode:
    """What the workflow knows of one decode cluster."""

    name: str
    worker: Any  # ClusterWorker
    bytes_per_token: float
    seq_bytes: float  # the fixed part of a sequence's cache (linear-attention state, window)
    gpus: int
    watermark_blocks: int
    max_tokens: int
    slots: bool  # a reservation also needs a free batch slot (the engine's max batch)


class PDWorkflow:
    """Prefill/decode disaggregation over any number of prefill and decode clusters."""

    def __init__(self, opts: PDOptions, ctx: BuildContext) -> None:
        self.opts = opts
        self.ctx = ctx
        clusters = {c.name: c for c in ctx.config.deployment.clusters}
        for role, names in (("prefill", opts.prefill), ("decode", opts.decode)):
            missing = [n for n in names if n not in clusters]
            if missing:
                raise ConfigError(
                    f"deployment.workflow.{role} names clusters {missing} that the deployment "
                    f"does not define (defined: {', '.join(clusters)}). List the clusters that "
                    f"run {role}s, e.g. {role}: [{next(iter(clusters))}]."
                )
        unused = [n for n in clusters if n not in opts.prefill and n not in opts.decode]
        if unused:
            raise ConfigError(
                f"The pd workflow leaves clusters {unused} without a stage; add them to "
                "deployment.workflow.prefill or deployment.workflow.decode, or remove them."
            )
        self.cfg = clusters
        self.model = ctx.model
        self.transfers: list[Transfer] = []
        self.net: Network | None = None
        self._queue: deque[tuple[Request, Any]] = deque()
        self._links: dict[tuple[str, str], tuple[str, Link]] = {}
        self._channels: dict[tuple[str, int, str, str], Any] = {}
        self.reserved: dict[tuple[str, int], int] = {}
        self.reserved_requests: dict[tuple[str, int], int] = {}
        engines = [clusters[n].engine for n in opts.decode]
        named = all(e is not None for e in engines)
        self.first_token = (opts.first_token if opts.first_token != "auto"
                            else "decode" if named else "prefill")
        rule = "after_prefill"
        if opts.reserve != "auto":
            rule = opts.reserve
        elif named and {e.name.lower() for e in engines} == {"sglang"}:
            # SGLang's decode server pre-allocates KV (and a request slot) before the
            # prefill server may run the request: DecodePreallocQueue → send_metadata →
            # the prefill's bootstrap queue waits for it (sglang/srt/disaggregation/
            # decode.py, prefill.py: PrefillBootstrapQueue.pop_bootstrapped).
            rule = "before_prefill"
        self.reserve_rule = rule
        self.slots = named
        for p in opts.prefill:
            for d in opts.decode:
                self._links[(p, d)] = self._link_between(p, d)

    # ---- assembly-time helpers -------------------------------------------
    def clusters(self) -> list[str]:
        return [*self.opts.prefill, *self.opts.decode]

    def _link_between(self, p: str, d: str) -> tuple[str, Link]:
        """The link type and per-GPU effective link between two clusters."""
        cp, cd = self.cfg[p], self.cfg[d]
        hp, hd = self.ctx.hardware[cp.gpu], self.ctx.hardware[cd.gpu]
        kind = self.opts.link
        if kind == "auto":
            gpus = cp.replicas * cp.gpus_per_replica + cd.replicas * cd.gpus_per_replica
            kind = "nvlink" if cp.gpu == cd.gpu and gpus <= hp.nvlink_gpus else "scaleout"
        if kind == "nvlink":
            bw, lat = min(hp.nvlink_bw, hd.nvlink_bw), max(hp.nvlink_latency, hd.nvlink_latency)
        else:
            bw = min(hp.scaleout_bw, hd.scaleout_bw)
            lat = max(hp.scaleout_latency, hd.scaleout_latency)
        if self.opts.bandwidth_gbs is not None:
            bw = self.opts.bandwidth_gbs * GB
        if self.opts.latency_us is not None:
            lat = self.opts.latency_us * 1e-6
        assert self.ctx.transfer is not None
        return kind, effective_link(self.ctx.transfer, Link(bw, lat))

    def _bind(self, controller: Any) -> None:
        """First request: the clusters exist now; set up the network and decode pools."""
        self.ctl = controller
        self.env: simpy.Environment = controller.env
        self.net = Network(self.env)
        self.prefill = [controller.cluster(n) for n in self.opts.prefill]
        self.decode: list[_Decode] = []
        for n in self.opts.decode:
            cw = controller.cluster(n)
            c = self.cfg[n]
            kv = cw.replicas[0].kv
            self.decode.append(_Decode(
                n, cw, self.model.kv_bytes_per_token(c.tp) * c.tp,
                self.model.seq_bytes(c.tp) * c.tp, c.gpus_per_replica,
                int(self.opts.decode_watermark * kv.num_blocks), cw.max_tokens, self.slots))
            for rep in cw.replicas:
                rep.on_free = self._on_free
        self._max_decode = max(
            ((d.worker.replicas[0].kv.num_blocks - d.watermark_blocks) * d.worker.replicas[0].kv.block_size
             for d in self.decode), default=0)

    def _channel(self, cluster: str, replica: int, direction: str, kind: str, link: Link):
        key = (cluster, replica, direction, kind)
        ch = self._channels.get(key)
        if ch is None:
            assert self.net is not None
            gpus = self.cfg[cluster].gpus_per_replica
            ch = self.net.channel(f"{cluster}[{replica}].{direction}.{kind}", gpus * link.bandwidth)
            self._channels[key] = ch
        return ch

    # ---- the request's path ----------------------------------------------
    def run(self, request: Request, controller: Any):
        if self.net is None:
            self._bind(controller)
        env = self.env
        need = request.prompt_len + request.output_len
        if need > self._max_decode:
            controller.reject(
                request,
                f"needs more KV cache to decode than the largest decode replica holds "
                f"({self._max_decode} tokens); this request needs {need}",
            )
            return
        pc = min(self.prefill, key=lambda c: sum(r.outstanding_tokens for r in c.replicas)
                 / len(c.replicas))
        times = request.stage_times
        spot = None
        if self.reserve_rule == "before_prefill":
            # The decode side takes the request first (KV for the prompt and a batch slot);
            # the prefill server runs it only once that is done.
            spot = yield from self._wait_for_decode(request)
            times["kv_reserved"] = env.now
        request.stop_after_prefill = True
        yield pc.serve(request)
        if request.rejected or request.generated >= request.output_len:
            if spot is not None:
                self._unreserve(spot)
            return  # rejected, or the prefill's token was the only one
        src = pc.replicas[request.replica]
        prefill_end = env.now
        times["prefill_end"] = prefill_end
        if self.first_token == "decode":
            # The prefill's token travels with the KV; the decode server streams it.
            times["prefill_token"] = request.first_token
            request.first_token = float("nan")
        if spot is None:
            spot = yield from self._wait_for_decode(request)
            times["kv_reserved"] = env.now
        dec, idx, blocks, hold = spot
        start = env.now
        kind, link = self._links[(pc.name, dec.name)]
        tokens = request.computed
        cached = 0 if hold is None else min(hold.cached_tokens, tokens)
        # The KV of the tokens not cached there, and the sequence's fixed-size state (a
        # linear-attention layer's recurrent state, a sliding window's KV), which no cache
        # holds.
        nbytes = dec.bytes_per_token * (tokens - cached) + dec.seq_bytes
        send = nbytes
        if self.opts.layerwise and start == prefill_end:
            # Layer-wise streaming: the KV of each layer leaves as soon as it is computed,
            # so what the link could carry during the prefill (first scheduled -> end)
            # is already across; the last layer's share always remains.
            rate = min(self.cfg[pc.name].gpus_per_replica, dec.gpus) * link.bandwidth
            overlap = max(0.0, prefill_end - request.first_scheduled)
            send = max(nbytes / (self.model.num_layers / self.cfg[pc.name].pp),
                       nbytes - rate * overlap)
        chans = (self._channel(pc.name, src.index, "send", kind, link),
                 self._channel(dec.name, idx, "recv", kind, link))
        yield self.net.send(send, chans, link.latency)
        if hold is not None and start + hold.load_s > env.now:
            # Cached blocks copied back from the decode replica's host tier meanwhile.
            yield env.timeout(start + hold.load_s - env.now)
        end = env.now
        times["kv_transferred"] = end
        self.transfers.append(Transfer(
            request.id, pc.name, src.index, dec.name, idx, start, end, nbytes, kind,
            cached, 0 if hold is None else hold.shared_blocks, dec.bytes_per_token * cached))
        src.release(request)  # the prefill replica's blocks are free from here on
        dst = dec.worker.replicas[idx]
        dst.kv.adopt(request, blocks)
        self.reserved[(dec.name, idx)] -= blocks
        self.reserved_requests[(dec.name, idx)] -= 1
        if hold is not None:
            # The request now holds what was held for it, and its transferred prompt
            # blocks are shared from here on (their KV is on the decode replica now), as
            # a replica shares the prompt blocks it computes once the prefill is done.
            request.held, request.shared_blocks = hold.held, hold.shared_blocks
            dst.kv.publish(request)
        request.stop_after_prefill = False
        yield dec.worker.serve(request, replica=idx)

    def _wait_for_decode(self, request: Request):
        """Queue for decode memory (FIFO) until a decode replica reserves room for the
        request; returns the reservation."""
        ready = self.env.event()
        self._queue.append((request, ready))
        if len(self._queue) == 1:
            self._place()
        spot = yield ready
        return spot

    def _unreserve(self, spot) -> None:
        """Give back a reservation that will not be used (the request ended at prefill)."""
        dec, idx, blocks, _hold = spot
        rep = dec.worker.replicas[idx]
        rep.kv.unreserve(blocks)
        self.reserved[(dec.name, idx)] -= blocks
        self.reserved_requests[(dec.name, idx)] -= 1
        self._place()

    # ---- decode memory ---------------------------------------------------
    def _on_free(self, _replica: Any) -> None:
        if self._queue:
            self._place()

    def _place(self) -> None:
        """Reserve decode blocks for queued requests in arrival order (FIFO: a request
        that does not fit yet holds back the ones behind it, as a real KV connector's
        queue does); wake each one placed."""
        q = self._queue
        while q:
            request, ready = q[0]
            spot = self._reserve(request)
            if spot is None:
                return
            q.popleft()
            ready.succeed(spot)

    def _reserve(self, request: Request) -> tuple[_Decode, int, int, Request | None] | None:
        """Choose a decode replica for ``request`` and set memory aside there: the
        cluster, the replica's index, the blocks reserved (in the replica's blocks), and,
        when the replica has a prefix cache, a stand-in request holding the prompt's
        cached blocks by reference (its ``cached_tokens`` are not transferred). None
        when no decode replica has room now.

        A replica fits if it can take the context while keeping ``decode_watermark``
        of its blocks free, counting as taken none of the cached prompt blocks that other
        requests hold there (they are shared); only the uncached blocks are reserved.
        """
        # The prompt's KV and the first decode step's (before the prefill: the whole prompt).
        tokens = max(request.computed, request.prompt_len) + 1
        best = None
        for d in self.decode:
            if request.prompt_len + request.output_len > d.max_tokens:
                continue
            reps = d.worker.replicas
            need = reps[0].kv.blocks_for(tokens)
            # Cached prompt blocks other requests hold there are shared, not taken.
            fit = [r for r in reps if r.kv.free_blocks - need + r.kv.held_prefix_blocks(request)
                   >= d.watermark_blocks and (not d.slots or self._slot_free(d, r))]
            if not fit:
                continue
            load = sum(r.outstanding_tokens for r in reps) / len(reps)
            if best is None or load < best[0]:
                best = (load, d, fit, need)
        if best is None:
            return None
        _, d, fit, need = best
        # The router sees the request with its prompt hashes (``prefix_aware`` follows
        # the decode replicas' caches).
        rep = fit[d.worker.router.route(request, fit)]
        hold = None
        if rep.kv.caching and request.prefix:
            # A stand-in holds the cached blocks: until its KV arrives, the request still
            # holds its prefill replica's blocks, which ``held`` and ``blocks`` describe.
            hold = Request(request.id, request.arrival, request.prompt_len,
                           request.output_len, prefix=request.prefix,
                           prefix_block=request.prefix_block)
            hold.cached_tokens = rep.kv.match(hold)
            need = max(0, need - hold.shared_blocks)
        # Holding the cached blocks took at most the free blocks the fit check counted.
        ok = rep.kv.reserve(need)
        assert ok
        key = (d.name, rep.index)
        self.reserved[key] = self.reserved.get(key, 0) + need
        self.reserved_requests[key] = self.reserved_requests.get(key, 0) + 1
        return d, rep.index, need, hold

    def _slot_free(self, d: _Decode, rep: Any) -> bool:
        """The engine admits a transferred request only within its batch limit (SGLang's
        max_running_requests bounds the pre-allocation's request slots; TensorRT-LLM's
        capacity scheduler counts generation requests waiting for their KV against
        max_batch_size): running, waiting and reserved requests under ``max_num_seqs``."""
        limit = getattr(rep.scheduler, "max_seqs", None)
        if limit is None:
            return True
        # ``outstanding``: assigned there and not finished (a request that just finished
        # is still in ``running`` while the replica tells us it freed room).
        return rep.outstanding + self.reserved_requests.get((d.name, rep.index), 0) < limit

    def report(self, sim: Any, pids: dict[str, int]):
        from frontier_pd_disagg.report import pd_report

        return pd_report(self, sim, pids)
