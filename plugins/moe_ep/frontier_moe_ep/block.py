"""The MoE block: one iteration's MoE layers as a data-dependent micro-workflow.

Per MoE layer and micro-batch: gate GEMM → routing (tokens per expert, drawn
per iteration) → dispatch all-to-all → on every EP rank a grouped expert GEMM
over its local slots with their actual token counts → combine all-to-all;
shared experts run on the attention ranks (``local``) or are routed like the
others (``routed``). The layer waits for the slowest rank, in compute and in
communication. With ``ep: 1`` every GPU holds every expert sharded over TP (no
all-to-all; vLLM's default without expert parallelism).

Between the two, ``ep`` may be any divisor of dp×tp: the experts are split into ``ep``
groups, each expert sharded over the ``dp×tp / ep`` GPUs of its group (TensorRT-LLM's
``moe_tp_size`` × ``moe_ep_size``). Under TP attention (dp 1) every GPU already holds
every token, so no all-to-all runs: each GPU computes its experts' shard for the tokens
routed to them and the layer's TP all-reduce sums the parts. Under DP attention the
tokens of all DP ranks are first all-gathered to every GPU and the outputs
reduce-scattered back (TensorRT-LLM's ``allgather``/``reducescatter`` around the fused
MoE, SGLang's ``dp_gather``/``dp_scatter``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from frontier_core import (
    BuildContext,
    ConfigError,
    LayerStep,
    Link,
    OpCall,
    WorkflowReport,
    collective_time,
    effective_link,
)
from frontier_core.model.dtypes import gemm_dtype
from frontier_moe_ep.arrays import last_count, last_sum
from frontier_moe_ep.comm import (
    LL_HEADER,
    AllToAll,
    DeepEP,
    Traffic,
    busiest,
    copies,
    token_bytes,
    traffic,
)
from frontier_moe_ep.eplb import LiveEPLB
from frontier_moe_ep.overlap import sequential, staged, two_batch
from frontier_moe_ep.placement import Placement, build_placement
from frontier_moe_ep.routing import ExpertRouting, RoutingSpec, parse_routing
from frontier_moe_ep.series import step_series
from frontier_moe_ep.stats import CreditTape, Loads, QuietStats, TokenPart, _Stats

DTYPE_BYTES = {"bf16": 2.0, "fp8": 1.0}
#: batch shapes ``layer_ops`` keeps priced (its memo starts over when full)
TOKEN_MEMO_SIZE = 4096


class MoEOptions(BaseModel):
    """Options of the ``moe`` block, given per cluster under ``moe:``."""

    model_config = ConfigDict(extra="forbid")

    ep: int | None = Field(
        None, ge=1,
        description="expert-parallel degree: dp×tp (the default: experts spread over every GPU "
        "of a pipeline stage), 1 (every GPU holds every expert, sharded over TP) or a divisor "
        "of dp×tp between (each expert sharded over dp×tp/ep GPUs)",
    )
    routing: str = Field(
        "balanced",
        description="balanced, uniform, power_law:<alpha>, hot:<fraction>:<share> or "
        "replay:<file.csv> (columns layer, expert, count)",
    )
    placement: Literal["contiguous", "round_robin", "eplb"] = "contiguous"
    redundant_experts: int = Field(
        0, ge=0, description="extra expert slots for copies of hot experts (placement: eplb)"
    )
    eplb_policy: Literal["auto", "hierarchical", "global"] = Field(
        "auto", description="DeepSeek EPLB policy: hierarchical (expert groups onto nodes, "
        "then replicas onto GPUs), global, or auto (hierarchical when the nodes divide the "
        "model's expert groups)"
    )
    eplb_interval: int = Field(
        0, ge=0, description="iterations between rebalances from observed loads (placement: "
        "eplb; 0 keeps the first placement, from the expected loads, for the whole run)"
    )
    eplb_window: int | None = Field(
        None, ge=1, description="iterations of observed loads a rebalance uses (a sliding "
        "window; default eplb_interval, as SGLang's recorder buffer)"
    )
    routing_drift: int = Field(
        0, ge=0, description="iterations between drift steps of each layer's hot-expert order "
        "(skewed routings; 0: the order is fixed for the run)"
    )
    routing_drift_share: float = Field(
        0.25, gt=0, le=1, description="share of each layer's experts that swap places in the "
        "order of hot experts at each drift step"
    )
    dispatch_dtype: Literal["bf16", "fp8"] = Field(
        "bf16", description="element type of dispatched activations (combine is always bf16)"
    )
    shared_experts: Literal["local", "routed"] = Field(
        "local",
        description="local: shared experts run on each attention rank for its own tokens; "
        "routed: dispatched and combined like routed experts (DeepSeek's decode layout)",
    )
    all_to_all: Literal["auto", "deepep", "normal", "low_latency", "gather", "simple"] = Field(
        "auto",
        description="how tokens reach the experts under expert parallelism: deepep "
        "(DeepEP's normal kernels for batches with prompt tokens, its low-latency ones for "
        "decode-only batches, as SGLang's --deepep-mode auto), normal, low_latency, gather "
        "(all-gather / reduce-scatter over the DP ranks: vLLM's, SGLang's and TensorRT-LLM's "
        "default), simple (every token copy sent on its own over the run's transfer model) "
        "or auto (nothing to move under TP attention; else gather when the cluster names "
        "an engine, deepep when it does not)",
    )
    ll_nvlink: bool = Field(
        True, description="DeepEP's low-latency kernels reach GPUs of the same node over "
        "NVLink (DeepEP since 2025-06); false: over RDMA as well, as at first",
    )
    overlap_schedule: Literal["auto", "sglang", "two_streams", "trtllm"] = Field(
        "auto",
        description="how a layer's work overlaps: sglang (with two_batch_overlap, SGLang's "
        "DeepSeek strategies: the prefill schedule for batches with prompt tokens, the decode "
        "one with attention split in two stages otherwise), two_streams (with "
        "two_batch_overlap: attention, experts on one stream, dispatch, combine on the "
        "other, each starting when free), trtllm (TensorRT-LLM's: one batch, the shared "
        "experts on a second stream beside the routed path) or auto (trtllm when the "
        "cluster runs engine trtllm, else sglang)",
    )
    deepep_sms: int = Field(
        20, ge=0, description="SMs DeepEP's normal kernels take (DeepEP's Buffer.num_sms "
        "default, which SGLang keeps); SGLang's prefill schedule leaves the rest to the GEMMs",
    )
    two_batch_overlap: bool = Field(
        False, description="split each iteration into two micro-batches whose communication "
        "overlaps the other's compute"
    )
    trace_iterations: int = Field(
        20, ge=0, description="iterations (per cluster) whose per-EP-rank work goes to the trace"
    )

    @field_validator("routing")
    @classmethod
    def _routing(cls, v: str) -> str:
        parse_routing(v)
        return v


class MoEBlock:
    """The ``moe`` FFN block of one cluster (implements the kernel's ``MoELayers``)."""

    def __init__(self, options: MoEOptions, ctx: BuildContext) -> None:
        m, cc, dev = ctx.model, ctx.cluster, ctx.device
        assert cc is not None and dev is not None, "the moe block is built per cluster"
        index = next(i for i, c in enumerate(ctx.config.deployment.clusters) if c.name == cc.name)
        where = f"deployment.clusters[{index}].moe"
        self.model = m
        self.tp, self.dp = cc.tp, cc.dp
        group = cc.dp * cc.tp
        ep = options.ep if options.ep is not None else group
        if group % ep:
            raise ConfigError(
                f"{where}.ep is {ep}, which does not divide the dp×tp = {group} GPUs of a stage "
                f"of cluster {cc.name!r}: each expert is sharded over dp×tp/ep GPUs. Set ep to "
                f"a divisor of {group} ({group} spreads the experts, 1 shards them all)."
            )
        self.ep = ep
        #: GPUs each expert is sharded over (TensorRT-LLM's moe_tp_size)
        self.moe_tp = group // ep
        #: tokens reach the experts by all-gather / reduce-scatter over the stage (DP
        #: attention with experts sharded) instead of the all-to-all of pure EP
        self.gathered = cc.dp > 1 and ep < group
        #: the all-to-all of pure expert parallelism (ep = dp×tp): see ``all_to_all``
        self.moves = "none"
        if ep > 1 and ep == group:
            mode = options.all_to_all
            if mode == "auto":
                mode = "gather" if cc.engine is not None else "deepep"
                # Under TP attention every GPU already holds every token: vLLM runs no
                # all2all with one DP rank (use_all2all_kernels needs dp_size > 1) and
                # the layer's TP all-reduce sums the experts' outputs.
                mode = "none" if cc.dp == 1 else mode
            self.moves = "none" if mode == "gather" and cc.dp == 1 else mode
            self.gathered = self.moves == "gather"
        self.group = group
        self.opts = options
        e, r = m.num_experts, options.redundant_experts
        if r and (options.placement != "eplb" or ep == 1):
            raise ConfigError(
                f"{where}.redundant_experts is {r}: copies of hot experts need placement: eplb "
                "and ep > 1; set placement: eplb or drop redundant_experts."
            )
        if (e + r) % ep:
            raise ConfigError(
                f"{where}: {m.name}'s {e} experts + {r} redundant slots = {e + r} do not divide "
                f"over ep = {ep} ranks; choose redundant_experts so that {e} + it is a multiple "
                f"of {ep} (e.g. {(-e) % ep})."
            )
        self.slots = e + r
        self.per_rank = self.slots // ep
        self.spec: RoutingSpec = parse_routing(options.routing)
        # The block's own stream, seeded from the run's generator (deterministic per seed).
        self.rng = np.random.default_rng(int(ctx.rng.integers(2**63)))
        layers = m.num_moe_layers
        try:
            self.routing = ExpertRouting(self.spec, e, m.top_k, layers, self.rng,
                                         ctx.config.resolve)
        except ValueError as exc:
            raise ConfigError(
                f"{where}.routing: the expert-load file {self.spec.path!r} cannot be used: "
                f"{exc}. Give a CSV with columns layer, expert, count (one row per layer and "
                "expert; a path relative to the config file)."
            ) from None
        self._eplb_check(options, m, dev, where)
        self.placement = build_placement(options.placement, self.routing.p, ep, r,
                                         self.eplb_groups, self.eplb_nodes, options.eplb_policy)
        self.routing.spread_over(self.placement.rank_interleaved())
        self.layers = layers
        self.h = m.hidden_size
        self.k = m.top_k
        self.dtype = gemm_dtype(m.weight_dtype)
        self.shared_inter = math.ceil(m.num_shared_experts * m.moe_intermediate_size / cc.tp)
        self.routed_shared = options.shared_experts == "routed" and m.num_shared_experts > 0
        self.k_comm = self.k + (m.num_shared_experts if self.routed_shared else 0)
        self.disp_b = DTYPE_BYTES[options.dispatch_dtype] * self.h
        self.comb_b = DTYPE_BYTES["bf16"] * self.h
        transfer = ctx.transfer
        intra = Link(dev.nvlink_bw, dev.nvlink_latency)
        inter = Link(dev.scaleout_bw, dev.scaleout_latency)
        if transfer is not None:
            intra, inter = effective_link(transfer, intra), effective_link(transfer, inter)
        self.a2a = AllToAll(ep, dev.nvlink_gpus, intra, inter)
        # DeepEP's kernels run at their own measured shares of the line rates.
        self.deepep = DeepEP(ep, dev.nvlink_gpus,
                             Link(dev.nvlink_bw, intra.latency),
                             Link(dev.scaleout_bw, inter.latency), options.ll_nvlink)
        self._traffic: Traffic | None = None
        self._traffic_of: Placement | None = None
        self._traffic_rng = np.random.default_rng(int(ctx.rng.integers(2**63)))
        self.gpus_per_node = dev.nvlink_gpus
        self.gather_link = intra if group <= dev.nvlink_gpus else inter
        self.num_sms = dev.num_sms
        if options.deepep_sms >= dev.num_sms:
            raise ConfigError(
                f"{where}.deepep_sms is {options.deepep_sms}, but {dev.name} has "
                f"{dev.num_sms} SMs; DeepEP's kernels take a share of them (DeepEP's "
                "default is 20)."
            )
        self.schedule = options.overlap_schedule
        if self.schedule == "auto":
            self.schedule = ("trtllm" if cc.engine is not None and cc.engine.name == "trtllm"
                             else "sglang")
        if self.schedule == "trtllm" and options.two_batch_overlap:
            raise ConfigError(
                f"{where}: two_batch_overlap is on with TensorRT-LLM's overlap schedule, "
                "which splits no batch in two (its DeepSeek layer overlaps the shared experts "
                "with the routed experts inside one batch: modeling_deepseekv3.py). Set "
                "two_batch_overlap: false, or overlap_schedule: sglang or two_streams."
            )
        self.live = self._live_eplb(options, m, intra, inter)
        self.gemms = ExpertGEMMs(m, ep, self.per_rank, self.moe_tp, str(self.spec))
        self._gemm_memo: dict[tuple[str, int], tuple[float, int]] = {}
        self.stats = _Stats(ep, e, options.trace_iterations)
        #: parts of ``layer_ops`` by (tokens per rank, prefill): kept where the routing is
        #: deterministic (balanced, its experts fixed), None elsewhere
        self._token_memo: dict[tuple, TokenPart] | None = (
            {} if TOKEN_MEMO_SIZE > 0 and self.spec.kind == "balanced" and self.live is None
            else None)

    def _eplb_check(self, o: MoEOptions, m, dev, where: str) -> None:
        """Check the EPLB and drift options; find the expert groups and the nodes."""
        #: the model's expert groups (one when it has none) and the nodes the EP ranks span
        self.eplb_groups = int(getattr(m, "n_group", 1) or 1)
        ranks_per_node = max(1, dev.nvlink_gpus // self.moe_tp)
        self.eplb_nodes = -(-self.ep // ranks_per_node)
        eplb = o.placement == "eplb" and self.ep > 1
        for name, given in (("eplb_policy", o.eplb_policy != "auto"),
                            ("eplb_interval", o.eplb_interval > 0)):
            if given and not eplb:
                raise ConfigError(
                    f"{where}.{name} is set, but the placement is {o.placement!r} with ep = "
                    f"{self.ep}: it applies to placement: eplb with ep > 1. Set placement: eplb "
                    f"(and ep > 1) or drop {name}."
                )
        if o.eplb_window is not None and not o.eplb_interval:
            raise ConfigError(
                f"{where}.eplb_window is {o.eplb_window}, but eplb_interval is 0 (a static "
                "placement observes nothing): set eplb_interval to rebalance every so many "
                "iterations, or drop eplb_window."
            )
        g, n = self.eplb_groups, self.eplb_nodes
        if o.eplb_policy == "hierarchical" and (g % n or self.ep % n or m.num_experts % g):
            raise ConfigError(
                f"{where}.eplb_policy is hierarchical, but {m.name}'s {g} expert group(s) "
                f"cannot be packed onto the {n} node(s) that the {self.ep} EP ranks span "
                f"({ranks_per_node} per node): the nodes must divide the groups and the ranks. "
                "Use eplb_policy: auto or global."
            )
        if o.routing_drift and self.spec.kind in ("balanced", "uniform"):
            raise ConfigError(
                f"{where}.routing_drift is {o.routing_drift}, but routing {self.spec} has no "
                "hot experts to drift: use a skewed routing (power_law, zipf, hot or replay) "
                "or drop routing_drift."
            )
        self._ranks_per_node = ranks_per_node

    def _live_eplb(self, o: MoEOptions, m, intra: Link, inter: Link) -> LiveEPLB | None:
        """The live balancer when ``eplb_interval > 0``: it moves one expert's weights on
        one GPU (its share over the GPUs sharding it) per copy a rank receives."""
        if not o.eplb_interval:
            return None
        expert_bytes = m.routed_expert_bytes() / m.num_moe_layers / m.num_experts / self.moe_tp
        return LiveEPLB(o.eplb_interval, o.eplb_window or o.eplb_interval, self.ep,
                        self.eplb_groups, self.eplb_nodes, self._ranks_per_node, o.eplb_policy,
                        expert_bytes, intra, inter)

    # ---- memory ----------------------------------------------------------------
    def weight_bytes_per_gpu(self) -> float:
        """Routed-expert bytes on one GPU, all MoE layers (before pipeline splitting)."""
        m = self.model
        # per_rank expert slots of the GPU's EP group, each sharded over moe_tp GPUs
        return m.routed_expert_bytes() * self.per_rank / m.num_experts / self.moe_tp

    # ---- operator times ----------------------------------------------------------
    def _expert_times(self, rows: np.ndarray, tokens_in: int, answer
                      ) -> tuple[np.ndarray, list[int]]:
        return self.gemms.times(rows, tokens_in, answer)

    def _gemms(self, kind: str, t: int, answer) -> tuple[float, list[tuple[float, int]]]:
        """The gate GEMM or the shared experts' MLP of ``t`` tokens on one GPU."""
        if t <= 0:
            return 0.0, []
        if kind == "gate":
            shapes = [("moe_gate", self.model.num_experts, self.h)]
        elif kind == "shared":  # all shared experts, sharded over the attention TP group
            i = self.shared_inter
            shapes = [("shared_up", 2 * i, self.h), ("shared_down", self.h, i)]
        else:  # one routed copy of a shared expert, whole on its rank
            i = self.model.moe_intermediate_size
            shapes = [("shared_up_routed", 2 * i, self.h), ("shared_down_routed", self.h, i)]
        out = []
        for name, n, k in shapes:
            key = (name, t)
            hit = self._gemm_memo.get(key)
            if hit is None:
                dtype = "bf16" if name == "moe_gate" else self.dtype
                hit = self._gemm_memo[key] = answer(OpCall("gemm", name, dtype, t, n, k))
            out.append(hit)
        return sum(x for x, _ in out), out

    # ---- one iteration -------------------------------------------------------------
    def step(self, s: LayerStep) -> float:
        if not s.record or s.layers != self.layers:
            # A pass outside the model's iterations (an MTP layer): the mean layer of
            # this iteration's draw, times the layers asked for, kept out of the stats.
            saved, self.stats = self.stats, QuietStats()
            try:
                return self._step(s) * s.layers / self.layers
            finally:
                self.stats = saved
        return self._step(s)

    #: an iteration leap's pricing of one batch shape (frontier_moe_ep.series)
    step_series = step_series

    def _step(self, s: LayerStep) -> float:
        total_tokens = int(s.tokens.sum())
        if total_tokens == 0:
            return s.other_s * s.layers
        stall = self._between_iterations(s.now) if self.stats.recording else 0.0
        # A batch that cannot be split in two (no DP rank holds two tokens) runs as one.
        two = self.opts.two_batch_overlap and int(s.tokens.max(initial=0)) >= 2
        halves = ([(s.tokens + 1) // 2, s.tokens // 2] if two else [s.tokens])
        credit, answer = s.credit, s.answer
        trace = self.stats.tracing()
        if two and s.rest_at is not None:
            rest = s.rest_at(0.5)  # each micro-batch's projections priced at its size
        else:
            rest = (s.other_s / len(halves), 0.0)
        ops = [self.layer_ops(tok, rest, answer, credit, trace, s.prefill) for tok in halves]
        # (micro-batches × layers) each: compute before the dispatch, dispatch, experts,
        # combine (one batch: views, not copies)
        if two:
            a, d, e, c = (np.stack(x) for x in zip(
                *((o["attn_prepare"] + o["attn_core"] + o["gate"] + o["shared"],
                   o["dispatch"], o["experts"], o["combine"]) for o in ops), strict=True))
        else:
            o = ops[0]
            a = (o["attn_prepare"] + o["attn_core"] + o["gate"] + o["shared"])[None]
            d, e, c = o["dispatch"][None], o["experts"][None], o["combine"][None]
        if not two and self.schedule == "trtllm":
            t = staged("trtllm", ops)
        elif not two:
            t = sequential(a[0], d[0], e[0], c[0])
        elif self.schedule == "two_streams":
            t = two_batch(a, d, e, c)
        else:
            name = "sglang_prefill" if s.prefill else "sglang_decode"
            # SGLang's prefill schedule gives DeepGEMM the SMs that DeepEP's normal
            # kernels leave (deep_gemm_num_sms = SMs - DeepEPConfig.num_sms); the other
            # kernels share the GPU with them while a transfer is in flight
            scale = (self.num_sms / (self.num_sms - self.opts.deepep_sms)
                     if self.kernels(s.prefill) == "normal" else 1.0)
            t = staged(name, ops, scale if s.prefill else 1.0, scale)
        rest_s = sum(float(o["attn_prepare"].sum() + o["attn_core"].sum()) for o in ops)
        self.stats.add_step(t, a, d, e, c, rest_s, s.replica, s.now, trace)
        if self.live is not None and self.stats.recording:
            self.stats.stall_s += stall
            self.live.end_iteration(self.stats.last_ratio)
        return t + stall

    def _between_iterations(self, now: float) -> float:
        """Before a recorded iteration: a drift step of the routing every ``routing_drift``
        iterations, and a rebalance every ``eplb_interval``. Returns the seconds the
        iteration waits for the weight move: SGLang's ``EPLBManager`` rebalances between
        forward passes, every ``eplb_rebalance_num_iterations``, and moves all layers'
        weights before the next pass runs (``eplb_manager.py``; ``update_expert_location``
        blocks, ``expert_location_updater.py``)."""
        o, done = self.opts, self.stats.steps
        if o.routing_drift and done and done % o.routing_drift == 0:
            self.routing.drift(o.routing_drift_share)
        live = self.live
        if live is None or not live.due():
            return 0.0
        new = live.rebalance(self.placement.slot_expert, now)
        self.placement = Placement.from_slots(self.ep, new, self.model.num_experts)
        return live.history[-1].stall_s

    def kernels(self, prefill: bool) -> str:
        """The all-to-all kernels a batch uses: normal, low_latency or simple."""
        if self.moves == "deepep":
            return "normal" if prefill else "low_latency"
        return self.moves

    def traffic(self) -> Traffic:
        """The normal kernels' dedup factors (drawn on first use, and again when the
        placement changes)."""
        if self._traffic is None or self._traffic_of is not self.placement:
            m, pl = self.model, self.placement
            self._traffic_of = pl
            self._traffic = traffic(self.routing.p, pl.slot_expert, pl.per_rank,
                                    self.gpus_per_node, self.k, m.n_group, m.topk_group,
                                    self._traffic_rng)
        return self._traffic

    def phases(self, tok: np.ndarray, other: float, answer, credit, trace: bool = False,
               prefill: bool = False):
        """Per-layer seconds of one micro-batch of ``tok`` tokens per DP rank: (compute
        before the dispatch, dispatch, experts, combine), four arrays of length
        ``layers``. ``other`` is the rest of a layer's time; the answering backends'
        seconds are added to ``credit``. Public so that workflows that split a layer
        across clusters (attention here, experts there) can price its phases; they may
        replace ``a2a`` with an ``AllToAll`` over the link between the clusters."""
        o = self.layer_ops(tok, (other, 0.0), answer, credit, trace, prefill)
        return (o["attn_prepare"] + o["attn_core"] + o["gate"] + o["shared"], o["dispatch"],
                o["experts"], o["combine"])

    def layer_ops(self, tok: np.ndarray, rest: tuple[float, float], answer, credit,
                  trace: bool = False, prefill: bool = False) -> dict[str, np.ndarray]:
        """Per-layer seconds of each operation of one micro-batch of ``tok`` tokens per DP
        rank (the keys of ``overlap.SCHEDULES``, plus ``dispatch`` and ``combine``);
        ``rest`` is the rest of a layer, (projections and norms, attention)."""
        memo = self._token_memo
        if memo is None or trace:
            part = self._token_part(tok, answer, credit, trace, prefill)
        else:
            # NOTE: perf — with a deterministic routing everything but the attention
            # depends on the tokens per rank alone; a repeated batch shape replays its
            # credits and statistics in the order they were first made.
            key = self.memo_key(tok, prefill)
            part = memo.get(key)
            if part is None:
                tape = CreditTape(credit)
                part = self._token_part(tok, answer, tape, False, prefill)
                part.credits = tape.log
                if len(memo) >= TOKEN_MEMO_SIZE:
                    memo.clear()
                memo[key] = part
            else:
                for i, x in part.credits:
                    credit[i] += x
        stats = self.stats
        stats.apply_loads(part.loads)
        if part.kernel is not None:
            stats.kernels[part.kernel] += 1
            if part.kernel != "gather":
                stats.last_kernel = part.kernel
        L = self.layers
        return {"attn_prepare": np.full(L, rest[0]), "attn_core": np.full(L, rest[1]),
                **part.ops}

    def memo_key(self, tok: np.ndarray, prefill: bool) -> tuple:
        """The key of ``layer_ops``'s memo for ``tok`` tokens per rank: what its part
        depends on. An all-to-all moves each rank's tokens (the whole vector); gathered
        tokens, or none moved, leave the total and the most on one rank (the gate and
        shared experts' GEMMs), so batch shapes that differ only in which rank holds
        what share one entry."""
        if self.gathered or self.moves == "none":
            return int(tok.sum()), int(tok.max(initial=0)), prefill
        return tok.tobytes(), prefill

    def _token_part(self, tok: np.ndarray, answer, credit, trace: bool,
                    prefill: bool) -> TokenPart:
        """What ``layer_ops`` prices from the tokens per rank: every operation but the
        attention, the load statistics and the all-to-all kernels used."""
        L = self.layers
        T = int(tok.sum())
        counts = self.routing.draw(T)
        t_rank = int(tok.max(initial=0))
        gate, gparts = self._gemms("gate", t_rank, answer)
        for x, i in gparts:
            credit[i] += x * L
        shared = 0.0
        if self.shared_inter and not self.routed_shared:
            shared, sparts = self._gemms("shared", t_rank, answer)
            for x, i in sparts:
                credit[i] += x * L
        post = 0.0
        shared_load = 0.0
        if self.routed_shared:
            # Each token also visits its shared experts, dispatched like routed ones and
            # spread evenly over the EP ranks (every rank holds a copy).
            shared_load = T * self.model.num_shared_experts / self.ep
            sh, sparts = self._gemms("shared_routed", math.ceil(shared_load), answer)
            post = sh
            for x, i in sparts:
                credit[i] += x * L
        experts, slot_tok, rank_tok, loads = self.expert_phase(counts, T, answer, credit)
        kind = None
        if self.gathered:
            kind = "gather"
            # every GPU gathers all T tokens (bf16 activations) and reduce-scatters the
            # outputs of all T back to their DP ranks, over the DP group (the ranks that
            # hold different tokens: vLLM's AgRsAll2AllManager uses get_dp_group())
            nbytes = float(T) * self.comb_b
            disp = np.full(L, collective_time("all_gather", nbytes, self.dp, self.gather_link))
            comb = np.full(L, collective_time("reduce_scatter", nbytes, self.dp,
                                              self.gather_link))
        elif self.moves != "none":
            src = np.repeat(tok / self.tp, self.tp).astype(float)  # tokens each EP rank sends
            kind = self.kernels(prefill)
            if kind == "simple":
                moved = copies(src, rank_tok + shared_load, T, self.k_comm)
                disp = self.a2a.seconds(moved * self.disp_b).max(axis=1)
                comb = self.a2a.seconds(moved * self.comb_b).max(axis=1)
            else:
                disp, comb = self.deepep_phases(kind, src, rank_tok, shared_load)
        else:
            disp = comb = np.zeros(L)
        if trace:
            self.stats.trace_ranks(self, slot_tok, T, answer)
        ops = {"gate": np.full(L, gate), "shared": np.full(L, shared), "dispatch": disp,
               "experts": experts + post, "combine": comb}
        for v in ops.values():
            v.flags.writeable = False  # shared by every replay of a memoised part
        return TokenPart(ops, loads, kind)

    def deepep_phases(self, kind: str, src: np.ndarray, rank_tok: np.ndarray,
                      shared_load: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-layer dispatch and combine seconds of DeepEP's normal or low-latency
        kernels. Routed shared experts add ``shared_load`` copies to every rank, none of
        them shared with a routed expert's copy."""
        d, h = self.deepep, self.h
        dtype = self.opts.dispatch_dtype
        if src.sum() <= 0:
            return np.zeros(len(rank_tok)), np.zeros(len(rank_tok))
        if kind == "low_latency":
            c = d.ll_busiest(src, rank_tok + shared_load if shared_load else rank_tok)
            return (d.seconds(c, token_bytes(h, dtype, LL_HEADER), True),
                    d.seconds(c, token_bytes(h, "bf16"), True))
        tr = self.traffic()
        c = d.normal_copies(src, rank_tok, tr.gpu, tr.node)
        if shared_load:
            extra = d.normal_copies(src, np.full_like(rank_tok, shared_load, dtype=float),
                                    np.ones_like(tr.gpu), np.ones_like(tr.node))
            c = {key: c[key] + extra[key] for key in c}
        c = busiest(c)
        return (d.seconds(c, token_bytes(h, dtype), False),
                d.seconds(c, token_bytes(h, "bf16"), False))

    def expert_phase(self, counts: np.ndarray, tokens: int, answer, credit
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Loads]:
        """The experts of every MoE layer for drawn ``counts`` (layers × experts) of
        ``tokens`` tokens: per-layer seconds of the slowest EP rank, the tokens per slot
        (layers × ep × per rank) and per rank (layers × ep), and the load statistics to
        record."""
        slot_tok = self.placement.slot_tokens(counts)  # (L, ep, per_rank)
        rank_tok = last_sum(slot_tok)  # (L, ep)
        busy = last_count(slot_tok)  # (L, ep) slots with tokens
        experts = slowest_rank(slot_tok, rank_tok, tokens, self.gemms.times, answer, credit,
                               busy)
        if self.live is not None and self.stats.recording:
            self.live.observe(counts)
        return experts, slot_tok, rank_tok, Loads.of(counts, slot_tok, rank_tok, busy)

    # ---- the report --------------------------------------------------------------
    def report(self, pid: int, name: str) -> WorkflowReport:
        from frontier_moe_ep.report import block_report

        return block_report(self, pid, name)


class ExpertGEMMs:
    """The grouped expert GEMMs of one EP rank holding ``per_rank`` expert slots, priced
    as ``moe_experts`` calls with the slots' token counts."""

    def __init__(self, model, ep: int, per_rank: int, tp: int, routing: str) -> None:
        self.model = model
        self.ep, self.per_rank, self.tp = ep, per_rank, tp
        self.routing = routing
        self.dtype = gemm_dtype(model.experts_dtype)
        self.inter_local = math.ceil(model.moe_intermediate_size / tp)
        #: priced rows, keyed by ``times``' codes of (assignments, busy experts)
        self._memo: dict[int, tuple[float, int]] = {}

    def call(self, slot_tokens: np.ndarray, tokens_in: int, assigned: float) -> OpCall:
        """The ``moe_experts`` call of one rank: grouped GEMMs over its slots' token counts."""
        m = self.model
        return OpCall("moe_experts", "moe_experts", self.dtype, m=tokens_in, extra={
            "num_tokens": tokens_in, "hidden_size": m.hidden_size,
            "inter_size": m.moe_intermediate_size, "num_experts": m.num_experts,
            "top_k": m.top_k, "ep_size": self.ep, "tp_size": self.tp,
            "routing": self.routing, "tokens_per_expert": slot_tokens.astype(np.int64),
            "inter_size_local": self.inter_local, "num_local_experts": self.per_rank,
            "assignments": assigned, "gated": m.gated_mlp,
        })

    def times(self, rows: np.ndarray, tokens_in: int, answer) -> tuple[np.ndarray, list[int]]:
        """Seconds (and answering backend, -1 for none) of each row's grouped expert GEMMs;
        ``rows`` is (n, slots per rank) tokens."""
        rows = np.ceil(rows)  # a copy of a split expert handles whole tokens
        assigned = last_sum(rows)
        active = last_count(rows)
        memo = self._memo
        # NOTE: perf — memoised on (assignments, busy experts), which determine the
        # roofline exactly; the first call of a key passes its full distribution. The
        # key is one integer, assignments × 2^16 + busy experts (fewer than 2^16 slots;
        # sums of whole tokens: integral already).
        codes = (assigned.astype(np.int64) * 65536 + active).tolist()
        hits = list(map(memo.get, codes))
        if None in hits:
            for j, hit in enumerate(hits):
                if hit is None:
                    hit = memo.get(codes[j])  # an earlier row of this call may have priced it
                    if hit is None:
                        hit = ((0.0, -1) if not active[j] else answer(
                            self.call(rows[j], tokens_in, float(assigned[j]))))
                        if active[j]:
                            memo[codes[j]] = hit
                    hits[j] = hit
        return np.array([h[0] for h in hits], float), [h[1] for h in hits]


def slowest_rank(slot_tok: np.ndarray, rank_tok: np.ndarray, tokens: int, times, answer,
                 credit, busy: np.ndarray | None = None) -> np.ndarray:
    """Per-layer seconds of the slowest rank's experts, for tokens per slot (layers ×
    ranks × slots per rank) and per rank (layers × ranks); ``times(rows, tokens, answer)``
    prices rows of slot tokens. The answering backends' seconds go to ``credit``. ``busy``:
    the slots with tokens per rank, when known."""
    L, ranks = rank_tok.shape
    if ranks == 1:
        experts, who = times(slot_tok[:, 0], tokens, answer)
    else:
        busy = last_count(slot_tok) if busy is None else busy
        # NOTE: perf — the slowest rank is the one with the most tokens or the most
        # busy experts (weights to read); only those two are predicted per layer.
        layer = np.arange(L)
        most_tok, most_busy = np.argmax(rank_tok, axis=1), np.argmax(busy, axis=1)
        experts, who = times(slot_tok[layer, most_tok], tokens, answer)
        other_rank = most_busy != most_tok
        if other_rank.any():
            idx = layer[other_rank]
            alt, alt_who = times(slot_tok[idx, most_busy[idx]], tokens, answer)
            slower = alt > experts[idx]
            if slower.any():
                experts[idx[slower]] = alt[slower]
                for li, w in zip(idx[slower].tolist(), np.flatnonzero(slower).tolist(),
                                 strict=True):
                    who[li] = alt_who[w]
    for x, i in zip(experts.tolist(), who, strict=True):
        if i >= 0:
            credit[i] += x
    return experts
