"""The ``cross_cluster`` block: the experts of every MoE layer spread over several clusters.

A cluster's own GPUs run attention (and may keep some experts); the other experts live
on expert clusters (``deployment.expert_clusters``), GPU pools that serve no requests
and may serve several clusters. Per MoE layer and micro-batch: the gate's routing (one
draw, frontier-moe-ep's distributions) splits each token's ``top_k`` experts by the
cluster that holds them; tokens for a remote cluster cross the inter-cluster link, are
computed there by that cluster's GPUs (its own predictor chain) and come back; the
next layer waits for the slowest cluster. Every task is booked on a busy calendar
(``calendar.Calendar``): the attention GPUs and their network ports per iteration, and
each expert cluster's compute, receive port and send port for the whole run, so that
clusters sharing an expert cluster contend for it and micro-batches overlap each
other's transfers.

``placement`` says which cluster holds which experts: as given (``static``), or the
hottest experts, by expected shares or by observed loads, on the cluster with the most
compute per expert (``by_load``), re-evaluated every ``rebalance_every`` iterations with
the cost of moving the experts that change cluster.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontier_core import (
    BuildContext,
    ConfigError,
    LayerStep,
    Link,
    OpCall,
    WorkflowReport,
    effective_link,
)
from frontier_core.model.dtypes import gemm_dtype
from frontier_moe_ep.block import DTYPE_BYTES, ExpertGEMMs, QuietStats, slowest_rank
from frontier_moe_ep.calendar import Calendar, fit_both
from frontier_moe_ep.comm import AllToAll, copies
from frontier_moe_ep.routing import ExpertRouting, parse_routing

GiB = 1024**3


class LinkOptions(BaseModel):
    """The link between the cluster's attention GPUs and one expert cluster."""

    model_config = ConfigDict(extra="forbid")

    bandwidth_gbs: float | None = Field(
        None, gt=0, description="line rate per GPU per direction, GB/s (default: the lower "
        "scale-out bandwidth of the two GPU kinds; the run's transfer model applies)")
    latency_us: float | None = Field(
        None, ge=0, description="one-way latency, µs (default: the higher of the two kinds')")


class CrossOptions(BaseModel):
    """Options of the ``cross_cluster`` block, given per cluster under ``moe:``."""

    model_config = ConfigDict(extra="forbid")

    experts: dict[str, int | list[int]] = Field(
        description="which cluster holds which experts: an expert cluster's name, or this "
        "cluster's own name for experts on its own GPUs, to a count or a list of expert ids; "
        "counts that add up to more than the model's experts are copies of hot experts",
        min_length=1,
    )
    placement: Literal["static", "by_load"] = Field(
        "static", description="static: counts take expert ids in order, lists as given; "
        "by_load: the hottest experts to the cluster with the most compute per expert")
    rebalance_every: int = Field(
        0, ge=0, description="by_load only: re-place the experts by the loads observed over "
        "the last N iterations, paying to move the weights of those that change cluster "
        "(0: never)")
    routing: str = Field("balanced", description="frontier-moe-ep's routing distributions")
    micro_batches: int = Field(1, ge=1, description="micro-batches per iteration, which "
                               "overlap each other's transfers and remote compute")
    dispatch_dtype: Literal["bf16", "fp8"] = Field("bf16", description="activations sent "
                                                   "to the experts (results come back bf16)")
    links: dict[str, LinkOptions] = Field(
        default_factory=dict, description="per expert cluster: the link's bandwidth and latency")
    trace_iterations: int = Field(
        5, ge=0, description="iterations (per cluster) whose tasks go to the trace")

    @field_validator("routing")
    @classmethod
    def _routing(cls, v: str) -> str:
        parse_routing(v)
        return v


@dataclass(eq=False)
class Holder:
    """Experts on one cluster: an expert cluster (``local`` False: its calendars are the
    run's, shared by every cluster it serves) or the attention cluster's own GPUs."""

    name: str
    local: bool
    gpus: int
    device: Any
    gemms: ExpertGEMMs
    answer: Any
    count: int
    slot_expert: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    slot_share: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    compute: Calendar = field(default_factory=Calendar)
    inbox: Calendar = field(default_factory=Calendar)
    outbox: Calendar = field(default_factory=Calendar)
    # Totals over the run, over every cluster it serves.
    expert_tokens: float = 0.0
    bytes_received: float = 0.0
    bytes_sent: float = 0.0
    straggler: int = 0
    pairs: int = 0
    served: set[str] = field(default_factory=set)
    trace: list[tuple] = field(default_factory=list)

    @property
    def per_gpu(self) -> int:
        return -(-self.count // self.gpus)

    def slot_tokens(self, counts: np.ndarray) -> np.ndarray:
        tok = np.take_along_axis(counts, self.slot_expert, axis=1) * self.slot_share
        return tok.reshape(len(counts), self.gpus, self.per_gpu)

    # ---- what the kernel reports for an expert cluster ----
    def summary(self, run_span: float) -> dict[str, Any]:
        return {
            "experts": self.count, "serves": sorted(self.served),
            "expert_tokens": self.expert_tokens,
            "busy_fraction": self.compute.busy_s / run_span if run_span > 0 else 0.0,
            "bytes_received": self.bytes_received, "bytes_sent": self.bytes_sent,
            "receive_busy_fraction": self.inbox.busy_s / run_span if run_span > 0 else 0.0,
            "send_busy_fraction": self.outbox.busy_s / run_span if run_span > 0 else 0.0,
            "straggler_share": self.straggler / self.pairs if self.pairs else 0.0,
        }

    def trace_events(self, pids: dict[str, int]) -> list[dict[str, Any]]:
        pid = pids[self.name]
        out: list[dict[str, Any]] = []
        for tid, label in enumerate(("receive (dispatch)", "experts", "send (combine)"), 1):
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                        "args": {"name": label}})
        for tid, start, dur, name, fin, fout in self.trace:
            ts = round(start * 1e6, 3)
            out.append({"ph": "X", "pid": pid, "tid": tid, "ts": ts,
                        "dur": round(dur * 1e6, 3), "name": name})
            if fin is not None:
                out.append({"ph": "f", "bp": "e", "id": fin, "pid": pid, "tid": tid, "ts": ts,
                            "name": "tokens", "cat": "experts"})
            if fout is not None:
                out.append({"ph": "s", "id": fout, "pid": pid, "tid": tid, "ts": ts,
                            "name": "tokens", "cat": "experts"})
        return out


class Layout:
    """Run-scoped: the routing, which holder holds which experts per layer, and the
    rebalancing; shared by every cluster whose block names the same placement."""

    def __init__(self, key: tuple, opts: CrossOptions, model, holders: list[Holder],
                 ids: dict[str, list[int]], rng: np.random.Generator, resolve) -> None:
        self.key = key
        self.opts = opts
        self.model = model
        self.holders = holders
        self.L, self.E = model.num_moe_layers, model.num_experts
        self.routing = ExpertRouting(parse_routing(opts.routing), self.E, model.top_k, self.L,
                                     rng, resolve)
        self.expert_bytes = model.routed_expert_bytes() / self.E / max(self.L, 1)  # one layer
        self.flow = 0
        self.iterations = 0
        self.observed = np.zeros((self.L, self.E))
        self.rebalances = 0
        self.experts_moved = 0
        self.bytes_moved = 0.0
        self.stall_s = 0.0
        if opts.placement == "by_load":
            self.assign(self.routing.p)
        else:
            self._place({h.name: np.tile(np.array(ids[h.name], np.int64), (self.L, 1))
                         for h in holders}, self.routing.p)

    def next_flow(self) -> int:
        self.flow += 1
        return self.flow

    def rank(self) -> list[Holder]:
        """Holders from the most compute per expert to the least (FLOP/s, then memory
        bandwidth, of all its GPUs over the experts it holds)."""
        dtype = self.holders[0].gemms.dtype
        return sorted(self.holders, key=lambda h: (
            -h.device.peak_flops(dtype) * h.gpus / h.count,
            -h.device.mem_bw * h.gpus / h.count, self.holders.index(h)))

    def assign(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """``by_load``: per layer, the hottest experts fill the fastest holder's count, the
        next ones the next holder's; counts beyond the model's experts take copies of
        the experts with the highest load per copy. Returns the new ids per holder."""
        ranked = self.rank()
        L, E = p.shape
        ids = {h.name: np.zeros((L, h.count), np.int64) for h in self.holders}
        for li in range(L):
            order = np.lexsort((np.arange(E), -p[li]))
            copies = np.zeros(E, np.int64)
            taken: dict[str, list[int]] = {h.name: [] for h in ranked}
            j = 0
            for h in ranked:
                while len(taken[h.name]) < h.count and j < E:
                    e = int(order[j])
                    taken[h.name].append(e)
                    copies[e] += 1
                    j += 1
            for h in ranked:  # copies fill what is left
                mine = set(taken[h.name])
                while len(taken[h.name]) < h.count:
                    load = np.where([e in mine for e in range(E)], -1.0,
                                    p[li] / np.maximum(copies, 1))
                    e = int(np.argmax(load))
                    taken[h.name].append(e)
                    mine.add(e)
                    copies[e] += 1
            for h in ranked:
                ids[h.name][li] = taken[h.name]
        self._place(ids, p)
        return ids

    def _place(self, ids: dict[str, np.ndarray], p: np.ndarray) -> None:
        """Each holder's experts over its GPUs: heaviest first (expected load per copy),
        each on the least-loaded GPU with room; empty slots hold nothing."""
        L, E = p.shape
        copies = np.zeros((L, E))
        for x in ids.values():
            for li in range(L):
                np.add.at(copies[li], x[li], 1)
        for h in self.holders:
            x = ids[h.name]
            per = h.per_gpu
            se = np.zeros((L, h.gpus * per), np.int64)
            sh = np.zeros((L, h.gpus * per))
            for li in range(L):
                load = p[li][x[li]] / copies[li][x[li]]
                fill = np.zeros(h.gpus)
                room = np.full(h.gpus, per)
                for s in np.lexsort((x[li], -load)):
                    free = np.flatnonzero(room)
                    g = free[np.argmin(fill[free])]
                    slot = g * per + (per - room[g])
                    se[li, slot] = x[li][s]
                    sh[li, slot] = 1.0 / copies[li][x[li][s]]
                    fill[g] += load[s]
                    room[g] -= 1
            h.slot_expert, h.slot_share = se, sh
        self.ids = ids

    def observe(self, counts: np.ndarray) -> None:
        self.observed += counts

    def end_iteration(self, now: float, links: dict[str, Link]) -> float:
        """Count an iteration; every ``rebalance_every`` iterations re-place the experts
        by the observed loads. Returns the stall: the seconds until the moved weights
        have arrived (each holder receives its new experts over its GPUs' links in
        parallel), which every remote holder's compute is also booked for."""
        self.iterations += 1
        n = self.opts.rebalance_every
        if not n or self.iterations % n or self.opts.placement != "by_load":
            return 0.0
        old = {k: v.copy() for k, v in self.ids.items()}
        seen = self.observed
        self.observed = np.zeros_like(seen)
        if not seen.any():
            return 0.0
        new = self.assign(seen / np.maximum(seen.sum(axis=1, keepdims=True), 1.0))
        self.rebalances += 1
        stall = 0.0
        for h in self.holders:
            moved = sum(len(set(new[h.name][li].tolist()) - set(old[h.name][li].tolist()))
                        for li in range(self.L))
            if not moved:
                continue
            link = links[h.name]
            nbytes = moved * self.expert_bytes
            self.experts_moved += moved
            self.bytes_moved += nbytes
            stall = max(stall, link.latency + nbytes / (h.gpus * link.bandwidth))
        if stall > 0:
            self.stall_s += stall
            for h in self.holders:
                if not h.local:
                    h.compute.book(h.compute.fit(now, stall), stall)
        return stall


class CrossClusterBlock:
    """Implements the kernel's ``MoELayers`` for the MoE layers of one cluster."""

    def __init__(self, options: CrossOptions, ctx: BuildContext) -> None:
        m, cc, dev = ctx.model, ctx.cluster, ctx.device
        assert cc is not None and dev is not None and ctx.answer_for is not None
        index = next(i for i, c in enumerate(ctx.config.deployment.clusters) if c.name == cc.name)
        where = f"deployment.clusters[{index}].moe"
        self.where = where
        if cc.pp > 1:
            raise ConfigError(
                f"{where}: cross_cluster books each MoE layer's tasks on the expert clusters' "
                f"calendars in layer order, which pipeline stages would interleave; pp is "
                f"{cc.pp}. Use pp: 1 and more dp or replicas."
            )
        self.opts = options
        self.model = m
        self.name = cc.name
        self.tp, self.dp = cc.tp, cc.dp
        self.L = m.num_moe_layers
        self.h = m.hidden_size
        self.k = m.top_k
        self.dtype = gemm_dtype(m.weight_dtype)
        self.disp_b = DTYPE_BYTES[options.dispatch_dtype] * self.h
        self.comb_b = DTYPE_BYTES["bf16"] * self.h
        self.shared_inter = math.ceil(m.num_shared_experts * m.moe_intermediate_size / cc.tp)
        pools = {p.name: p for p in ctx.config.deployment.expert_clusters}
        self._check_names(options, pools, cc.name, where)
        self.layout = self._layout(options, ctx, pools, where)
        self.holders = self.layout.holders
        self.local = next((h for h in self.holders if h.local), None)
        for h in self.holders:
            h.served.add(cc.name)
        self.links = {h.name: self._link(h, dev, ctx, where) for h in self.holders}
        if self.local is not None:
            intra = Link(dev.nvlink_bw, dev.nvlink_latency)
            inter = Link(dev.scaleout_bw, dev.scaleout_latency)
            if ctx.transfer is not None:
                intra, inter = effective_link(ctx.transfer, intra), effective_link(ctx.transfer, inter)
            self.a2a = AllToAll(cc.dp * cc.tp, dev.nvlink_gpus, intra, inter)
        self._memo: dict[tuple[str, int], tuple[float, int]] = {}
        self.stats = _Stats(len(self.holders), options.trace_iterations)

    # ---- construction ----------------------------------------------------------------
    def _check_names(self, o: CrossOptions, pools: dict, own: str, where: str) -> None:
        m = self.model
        for name in list(o.experts) + list(o.links):
            if name != own and name not in pools:
                raise ConfigError(
                    f"{where}: {name!r} is neither this cluster ({own!r}) nor one of "
                    f"deployment.expert_clusters ({', '.join(pools) or 'none defined'}); name "
                    "an expert cluster defined there, or this cluster for experts on its own GPUs."
                )
        if own in o.links:
            raise ConfigError(f"{where}.links.{own}: experts on the cluster's own GPUs use its "
                              "NVLink all-to-all, not a link; remove it.")
        seen: set[int] = set()
        total = 0
        for name, v in o.experts.items():
            if isinstance(v, int):
                if not 1 <= v <= m.num_experts:
                    raise ConfigError(
                        f"{where}.experts.{name} is {v}; a cluster holds between 1 and "
                        f"{m.name}'s {m.num_experts} experts (each at most once).")
                total += v
                continue
            if o.placement == "by_load":
                raise ConfigError(
                    f"{where}.experts.{name} lists expert ids, but placement by_load chooses "
                    "the experts itself; give a count per cluster, or placement: static.")
            bad = [e for e in v if not 0 <= e < m.num_experts]
            dup = {e for e in v if v.count(e) > 1}
            if bad or dup or not v:
                raise ConfigError(
                    f"{where}.experts.{name}: "
                    + (f"expert ids {bad[:5]} are outside 0..{m.num_experts - 1}" if bad else
                       f"experts {sorted(dup)[:5]} are listed twice" if dup else "the list is empty")
                    + "; list each expert a cluster holds once.")
            seen.update(v)
            total += len(v)
        counts_only = all(isinstance(v, int) for v in o.experts.values())
        if counts_only and total < m.num_experts:
            raise ConfigError(
                f"{where}.experts hold {total} experts in all, but {m.name} has "
                f"{m.num_experts}; every expert must live somewhere: raise the counts.")
        if not counts_only:
            if any(isinstance(v, int) for v in o.experts.values()):
                raise ConfigError(f"{where}.experts mixes counts and lists of ids; give all "
                                  "clusters counts or all of them lists.")
            missing = sorted(set(range(m.num_experts)) - seen)
            if missing:
                raise ConfigError(
                    f"{where}.experts: {len(missing)} experts are on no cluster (e.g. "
                    f"{missing[:5]}); every expert must be listed on at least one cluster.")
        if o.rebalance_every and o.placement != "by_load":
            raise ConfigError(f"{where}.rebalance_every needs placement: by_load (static "
                              "placements never move); set placement: by_load or drop it.")

    def _layout(self, o: CrossOptions, ctx: BuildContext, pools: dict, where: str) -> Layout:
        key = (tuple((k, v if isinstance(v, int) else tuple(v)) for k, v in o.experts.items()),
               o.placement, o.rebalance_every, o.routing)
        layouts = ctx.shared.setdefault("cross_cluster_layouts", {})
        claimed = ctx.shared.setdefault("expert_clusters", {})
        hit = layouts.get(key)
        if hit is not None:
            return hit
        for name in o.experts:
            if name in claimed:
                raise ConfigError(
                    f"{where}.experts places experts on {name!r}, which another cluster's "
                    "block already lays out differently; clusters that share an expert "
                    "cluster must give the same experts, placement, rebalance_every and "
                    "routing.")
        m, cc = self.model, ctx.cluster
        holders = []
        ids: dict[str, list[int]] = {}
        nxt = 0
        for name, v in o.experts.items():
            count = v if isinstance(v, int) else len(v)
            if isinstance(v, int):  # static counts: the next ids in order, wrapping
                ids[name] = [(nxt + j) % m.num_experts for j in range(v)]
                nxt = (nxt + v) % m.num_experts
            else:
                ids[name] = list(v)
            if name == cc.name:
                gpus, dev, answer = cc.dp * cc.tp, ctx.device, None
            else:
                pc = pools[name]
                gpus, dev, answer = pc.gpus, ctx.hardware[pc.gpu], ctx.answer_for(pc.gpu)
            gemms = ExpertGEMMs(m, gpus, -(-count // gpus), 1, o.routing)
            holders.append(Holder(name, name == cc.name, gpus, dev, gemms, answer, count))
        rng = np.random.default_rng(int(ctx.rng.integers(2**63)))
        layout = Layout(key, o, m, holders, ids, rng, ctx.config.resolve)
        self._check_memory(layout, pools, where)
        layouts[key] = layout
        for h in holders:
            if not h.local:
                claimed[h.name] = h
        return layout

    def _check_memory(self, layout: Layout, pools: dict, where: str) -> None:
        per_expert = self.model.routed_expert_bytes() / self.model.num_experts  # all layers
        for h in layout.holders:
            if h.local:
                continue  # the kernel's memory plan counts them (weight_bytes_per_gpu)
            pc = pools[h.name]
            need = h.per_gpu * per_expert
            room = h.device.mem_bytes * pc.gpu_memory_fraction - GiB
            if need > room:
                raise ConfigError(
                    f"{where}.experts.{h.name}: each of the {h.gpus} {pc.gpu} GPUs of expert "
                    f"cluster {h.name!r} needs {need / GiB:.1f} GiB for its {h.per_gpu} "
                    f"experts but has {room / GiB:.1f} GiB; give it more gpus or fewer experts."
                )

    def _link(self, h: Holder, dev, ctx: BuildContext, where: str) -> Link:
        if h.local:
            return Link(dev.nvlink_bw, dev.nvlink_latency)
        o = self.opts.links.get(h.name, LinkOptions())
        link = Link(min(dev.scaleout_bw, h.device.scaleout_bw),
                    max(dev.scaleout_latency, h.device.scaleout_latency))
        link = Link(o.bandwidth_gbs * 1e9 if o.bandwidth_gbs is not None else link.bandwidth,
                    o.latency_us * 1e-6 if o.latency_us is not None else link.latency)
        return effective_link(ctx.transfer, link) if ctx.transfer is not None else link

    # ---- memory (the kernel's plan) ---------------------------------------------------
    def weight_bytes_per_gpu(self) -> float:
        """Routed-expert bytes on one of the cluster's own GPUs, all MoE layers."""
        if self.local is None:
            return 0.0
        return self.model.routed_expert_bytes() / self.model.num_experts * self.local.per_gpu

    # ---- operator times ---------------------------------------------------------------
    def _gemm(self, name: str, t: int, n: int, k: int, answer, credit) -> float:
        if t <= 0:
            return 0.0
        key = (name, t)
        hit = self._memo.get(key)
        if hit is None:
            dtype = "bf16" if name == "moe_gate" else self.dtype
            hit = self._memo[key] = answer(OpCall("gemm", name, dtype, t, n, k))
        credit[hit[1]] += hit[0] * self.L
        return hit[0]

    # ---- one iteration -----------------------------------------------------------------
    def step(self, s: LayerStep) -> float:
        if not s.record or s.layers != self.L:
            # A pass outside the model's iterations (an MTP layer): the mean layer of this
            # iteration's timeline, booked nowhere and kept out of the statistics.
            return self._step(s, commit=False) * s.layers / self.L
        return self._step(s, commit=True)

    def _step(self, s: LayerStep, commit: bool) -> float:
        total = int(s.tokens.sum())
        if total == 0:
            return s.other_s * s.layers
        L, holders = self.L, self.holders
        H = len(holders)
        mb = max(1, min(self.opts.micro_batches, total))
        m = self.model
        a = np.zeros((L, mb))
        d = np.zeros((H, L, mb))  # data seconds on the link (latency apart)
        f = np.zeros((H, L, mb))
        c = np.zeros((H, L, mb))
        assigned = np.zeros((H, L, mb))
        lat = np.array([self.links[h.name].latency for h in holders])
        for i in range(mb):
            tok = (s.tokens + (mb - 1 - i)) // mb
            t = int(tok.sum())
            if t == 0:
                continue
            rank = int(tok.max())
            pre = s.other_s * t / total
            pre += self._gemm("moe_gate", rank, m.num_experts, self.h, s.answer, s.credit)
            if self.shared_inter:
                si = self.shared_inter
                pre += self._gemm("shared_up", rank, 2 * si, self.h, s.answer, s.credit)
                pre += self._gemm("shared_down", rank, self.h, si, s.answer, s.credit)
            a[:, i] = pre
            counts = self.layout.routing.draw(t)
            if commit:
                self.layout.observe(counts)
            per_gpu = rank / self.tp  # the busiest attention GPU's tokens
            for j, h in enumerate(holders):
                slot_tok = h.slot_tokens(counts)
                rank_tok = slot_tok.sum(axis=2)
                got = rank_tok.sum(axis=1)
                assigned[j, :, i] = got
                answer = s.answer if h.local else h.answer
                f[j, :, i] = slowest_rank(slot_tok, rank_tok, t, h.gemms.times, answer, s.credit)
                if h.local:
                    src = np.repeat(tok / self.tp, self.tp).astype(float)
                    moved = copies(src, rank_tok, t, (got / t)[:, None])
                    d[j, :, i] = self.a2a.seconds(moved * self.disp_b).max(axis=1)
                    c[j, :, i] = self.a2a.seconds(moved * self.comb_b).max(axis=1)
                else:
                    bw = self.links[h.name].bandwidth
                    most = np.maximum(per_gpu * got / t, rank_tok.max(axis=1))
                    d[j, :, i] = most * self.disp_b / bw
                    c[j, :, i] = most * self.comb_b / bw
        lat_local = np.array([0.0 if h.local else 1.0 for h in holders]) * lat
        span, last, trace = self._timeline(s, a, d, f, c, lat_local, commit)
        stall = 0.0
        if commit:
            stall = self.layout.end_iteration(s.now + span, self.links)
            self.stats.add(self, span + stall, a, d, f, c, assigned, last, stall)
            if trace is not None:
                self.stats.trace.append((s.replica, trace))
        return span + stall

    def _timeline(self, s: LayerStep, a, d, f, c, lat, commit: bool):
        """Book every task of the iteration and return its span, the holder each
        (layer, micro-batch) waited for last (−1: none), and trace records."""
        holders = self.holders
        L, mb = a.shape
        H = len(holders)
        now = s.now
        if commit:
            for h in holders:
                if not h.local:
                    h.compute.prune(now)
                    h.inbox.prune(now)
                    h.outbox.prune(now)
            comp = [h.compute for h in holders]
            inbox = [h.inbox for h in holders]
            outbox = [h.outbox for h in holders]
        else:  # a what-if pass: private copies of nothing, booked nowhere that lasts
            comp = [Calendar() for _ in holders]
            inbox = [Calendar() for _ in holders]
            outbox = [Calendar() for _ in holders]
        attn, nic_out, nic_in, nvl_d, nvl_c = (Calendar() for _ in range(5))
        back = [now] * mb
        last = np.full((L, mb), -1, np.int64)
        keep = commit and self.stats.tracing()
        rec: list[tuple] | None = [] if keep else None
        layout = self.layout
        A, D, F, C = a.tolist(), d.tolist(), f.tolist(), c.tolist()
        lats = lat.tolist()
        for li in range(L):
            a_end = [0.0] * mb
            for i in range(mb):
                x = A[li][i]
                st = attn.fit(back[i], x)
                attn.book(st, x)
                a_end[i] = st + x
                if rec is not None:
                    rec.append(("attention", st, x, li, i, -1))
            d_end = [[0.0] * mb for _ in range(H)]
            f_end = [[0.0] * mb for _ in range(H)]
            for i in range(mb):
                for j in range(H):
                    x = D[j][li][i]
                    if x <= 0 and F[j][li][i] <= 0:
                        d_end[j][i] = -1.0  # nothing routed there
                        continue
                    if holders[j].local:
                        st = nvl_d.fit(a_end[i], x)
                        nvl_d.book(st, x)
                    else:
                        st = fit_both(nic_out, inbox[j], a_end[i], x)
                        nic_out.book(st, x)
                        inbox[j].book(st, x)
                    d_end[j][i] = st + x + lats[j]
                    if rec is not None:
                        rec.append(("dispatch", st, x, li, i, j))
            for i in range(mb):
                for j in range(H):
                    if d_end[j][i] < 0:
                        f_end[j][i] = -1.0
                        continue
                    x = F[j][li][i]
                    cal = attn if holders[j].local else comp[j]
                    st = cal.fit(d_end[j][i], x)
                    cal.book(st, x)
                    f_end[j][i] = st + x
                    if rec is not None:
                        rec.append(("experts", st, x, li, i, j))
            for i in range(mb):
                done, who = a_end[i], -1
                for j in range(H):
                    if f_end[j][i] < 0:
                        continue
                    x = C[j][li][i]
                    if holders[j].local:
                        st = nvl_c.fit(f_end[j][i], x)
                        nvl_c.book(st, x)
                    else:
                        st = fit_both(outbox[j], nic_in, f_end[j][i], x)
                        outbox[j].book(st, x)
                        nic_in.book(st, x)
                    end = st + x + lats[j]
                    if rec is not None:
                        rec.append(("combine", st, x, li, i, j))
                    if end > done:
                        done, who = end, j
                back[i] = done
                last[li, i] = who
        span = max(back) - now
        self._ports = (nic_out.busy_s, nic_in.busy_s)
        return span, last, (self._flows(rec, layout) if rec is not None else None)

    def _flows(self, rec: list[tuple], layout: Layout) -> tuple[list, list]:
        """Trace records with flow ids: attention → dispatch → experts → combine of each
        (layer, micro-batch, holder). Returns the attention slices (start, seconds, name,
        outgoing flow ids) and the local experts' slices (phase, start, seconds, name, flow
        in, flow out); remote holders keep their slices for their own trace."""
        att: dict[tuple[int, int], tuple] = {}
        local: list[tuple] = []
        ids: dict[tuple[int, int, int], list[int]] = {}
        for kind, st, dur, li, i, j in rec:
            if kind == "attention":
                att[(li, i)] = (st, dur, f"L{li} mb{i}", [])
                continue
            fl = ids.setdefault((li, i, j), [layout.next_flow() for _ in range(3)])
            step = ("dispatch", "experts", "combine").index(kind)
            fin, fout = fl[step], (fl[step + 1] if step < 2 else None)
            if step == 0:
                att[(li, i)][3].append(fin)
            h = self.holders[j]
            name = f"L{li} mb{i} {self.name}"
            if h.local:
                local.append((step, st, dur, name, fin, fout))
            else:
                h.trace.append((step + 1, st, dur, name, fin, fout))
        return list(att.values()), local

    # ---- the report ----------------------------------------------------------------------
    def report(self, pid: int, name: str) -> WorkflowReport:
        from frontier_moe_ep.cross_report import block_report

        return block_report(self, pid, name)


class _Stats:
    def __init__(self, holders: int, trace_iterations: int) -> None:
        self.steps = 0
        self.span = array("d")
        self.attention_s = 0.0
        self.dispatch_s = np.zeros(holders)
        self.experts_s = np.zeros(holders)
        self.combine_s = np.zeros(holders)
        self.expert_tokens = np.zeros(holders)
        self.bytes_out = np.zeros(holders)  # sent to the holder (dispatch)
        self.bytes_back = np.zeros(holders)  # received from it (combine)
        self.straggler = np.zeros(holders, np.int64)
        self.pairs = 0
        self.stall_s = 0.0
        # Seconds the busiest attention GPU's network port sent (dispatch) and received
        # (combine) for the expert clusters.
        self.port_s = np.zeros(2)
        self.trace_left = trace_iterations
        self.trace: list[tuple[int, list[tuple]]] = []
        self.quiet = QuietStats()

    def tracing(self) -> bool:
        return self.trace_left > 0

    def add(self, block: CrossClusterBlock, span, a, d, f, c, assigned, last, stall) -> None:
        self.steps += 1
        self.span.append(span)
        self.stall_s += stall
        self.attention_s += float(a.sum())
        self.port_s += block._ports
        self.dispatch_s += d.sum(axis=(1, 2))
        self.experts_s += f.sum(axis=(1, 2))
        self.combine_s += c.sum(axis=(1, 2))
        tok = assigned.sum(axis=(1, 2))
        self.expert_tokens += tok
        self.bytes_out += tok * block.disp_b
        self.bytes_back += tok * block.comb_b
        who = last[last >= 0]  # (layer, micro-batch) pairs that sent tokens somewhere
        hits = np.bincount(who, minlength=len(block.holders))
        self.straggler += hits
        self.pairs += len(who)
        for j, h in enumerate(block.holders):
            h.expert_tokens += float(tok[j])
            h.bytes_received += float(tok[j]) * block.disp_b
            h.bytes_sent += float(tok[j]) * block.comb_b
            h.straggler += int(hits[j])
            h.pairs += len(who)
        if self.trace_left > 0:
            self.trace_left -= 1


__all__ = ["CrossClusterBlock", "CrossOptions", "Holder", "Layout"]
