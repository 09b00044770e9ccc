"""The ``af`` block: a cluster's feed-forward part on separate GPUs, ping-ponged.

The cluster's own GPUs (``dp`` ranks of ``tp``) become the attention side: they
hold the attention weights and the KV cache. ``ffn_gpus`` more GPUs per replica
(possibly of another kind) hold every layer's feed-forward part: a MoE model's
experts spread over them (expert parallelism, through frontier-moe-ep's block),
a dense FFN replicated on each. Each iteration is split into ``micro_batches``
micro-batches; per layer and micro-batch the activations go A→F, the FFN runs,
and the results come back F→A, all priced per iteration and laid out by the
ping-pong dependency graph (``schedule.pingpong``).
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Literal

import numpy as np
from frontier_moe_ep.block import QuietStats
from pydantic import BaseModel, ConfigDict, Field

from frontier_af_pingpong.schedule import RESOURCES, pingpong
from frontier_core import (
    BuildContext,
    ConfigError,
    LayerStep,
    Link,
    OpCall,
    WorkflowReport,
    effective_link,
    install_hint,
)
from frontier_core.model.dtypes import gemm_dtype

GiB = 1024**3


class AFOptions(BaseModel):
    """Options of the ``af`` block, given per cluster under ``ffn:``."""

    model_config = ConfigDict(extra="forbid")

    ffn_gpus: int = Field(ge=1, description="GPUs of the FFN side per replica (n_f)")
    ffn_gpu: str | None = Field(None, description="GPU kind of the FFN side (default: the cluster's)")
    micro_batches: int = Field(2, ge=1, description="micro-batches per iteration (m)")
    link: Literal["auto", "nvlink", "scaleout"] = Field(
        "auto", description="auto: NVLink when both sides are one GPU kind and fit in one node"
    )
    bandwidth_gbs: float | None = Field(
        None, gt=0, description="line rate per GPU per direction, GB/s (the run's transfer "
        "model's efficiency applies)")
    latency_us: float | None = Field(None, ge=0)
    dispatch_dtype: Literal["bf16", "fp8"] = Field("bf16", description="activations A→F")
    moe: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the expert side's moe block (routing, placement, "
        "redundant_experts) for a mixture-of-experts model",
    )
    trace_iterations: int = Field(10, ge=0, description="iterations whose ping-pong goes to the trace")


class AFBlock:
    """Implements the kernel's ``MoELayers`` for every layer, with ``offloads_ffn``."""

    offloads_ffn = True

    def __init__(self, options: AFOptions, ctx: BuildContext) -> None:
        m, cc, dev = ctx.model, ctx.cluster, ctx.device
        assert cc is not None and dev is not None and ctx.answer_for is not None
        index = next(i for i, c in enumerate(ctx.config.deployment.clusters) if c.name == cc.name)
        where = f"deployment.clusters[{index}].ffn"
        self.opts = options
        self.model = m
        self.external_gpus = options.ffn_gpus
        self.n_a, self.tp = cc.dp, cc.tp
        self.n_f = options.ffn_gpus
        self.m = options.micro_batches
        if cc.pp > 1:
            raise ConfigError(
                f"{where}: the af block runs every layer's FFN on one FFN side per replica, "
                f"which pipeline stages would share; pp is {cc.pp}. Use pp: 1 and more dp."
            )
        self.memory_fraction = cc.gpu_memory_fraction
        gpu_f = options.ffn_gpu or cc.gpu
        if gpu_f not in ctx.hardware:
            raise ConfigError(
                f"{where}.ffn_gpu is {gpu_f!r}, which is not a GPU kind of the catalog or the "
                f"config; choose one of {', '.join(sorted(ctx.hardware))}."
            )
        self.dev_f = ctx.hardware[gpu_f]
        self.answer_f = ctx.answer_for(gpu_f)
        self.h = m.hidden_size
        self.dtype = gemm_dtype(m.weight_dtype)
        self.moe = None
        if m.is_moe:
            self.moe = self._expert_side(ctx, cc, gpu_f, where)
        self.k = m.top_k if m.is_moe else 1
        self.shared = m.num_shared_experts if m.is_moe else 0
        self.disp_b = (1.0 if options.dispatch_dtype == "fp8" else 2.0) * self.h
        self.comb_b = 2.0 * self.h
        self.link = self._link(ctx, cc, dev, where)
        self._check_memory(where, gpu_f)
        self._memo: dict[tuple[str, int], tuple[float, int]] = {}
        self.stats = _Stats(options.trace_iterations)

    # ---- construction ----------------------------------------------------------------
    def _expert_side(self, ctx: BuildContext, cc: Any, gpu_f: str, where: str):
        try:
            from frontier_moe_ep.block import MoEBlock, MoEOptions
        except ImportError:
            raise ConfigError(
                f"{where}: {self.model.name} is a mixture-of-experts model; its expert side "
                "needs the frontier-moe-ep distribution: install it with "
                f"{install_hint('frontier-moe-ep')}."
            ) from None
        from pydantic import ValidationError

        extra = set(self.opts.moe) & {"ep", "two_batch_overlap", "shared_experts",
                                      "dispatch_dtype", "trace_iterations", "all_to_all",
                                      "ll_nvlink", "overlap_schedule", "deepep_sms"}
        if extra:
            raise ConfigError(
                f"{where}.moe sets {sorted(extra)}, which the af block decides itself (experts "
                f"spread over the {self.n_f} FFN GPUs, tokens sent over the attention-FFN "
                "link, micro-batches ping-ponged, shared experts on the FFN side; "
                "dispatch_dtype and trace_iterations are af's own options); remove them "
                "from moe."
            )
        live = sorted(k for k in ("eplb_interval", "routing_drift") if self.opts.moe.get(k))
        if live:
            raise ConfigError(
                f"{where}.moe sets {live}: the af block prices its expert side layer by "
                "layer without the moe block's iterations, so live EPLB and drifting "
                "routing are not modelled there; remove them (placement: eplb with "
                "redundant_experts places the experts once, from the routing's shares)."
            )
        try:
            opts = MoEOptions(**self.opts.moe)
        except ValidationError as e:
            msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ConfigError(f"{where}.moe: {msg}. See plugins/moe_ep/README.md.") from None
        side = cc.model_copy(update={"dp": self.n_f, "tp": 1, "gpu": gpu_f})
        fctx = BuildContext(config=ctx.config, model=ctx.model, rng=ctx.rng,
                            hardware=ctx.hardware, cluster=side, device=self.dev_f,
                            transfer=ctx.transfer)
        try:
            return MoEBlock(opts, fctx)
        except ConfigError as e:
            # Say it in the af block's terms: the expert side's EP degree is ffn_gpus.
            raise ConfigError(
                f"{where}.moe (the expert side: ep = ffn_gpus = {self.n_f}): {e}"
            ) from None

    def _link(self, ctx: BuildContext, cc: Any, dev: Any, where: str) -> Link:
        o = self.opts
        kind = o.link
        if kind == "auto":
            one_node = (self.dev_f.name == dev.name
                        and self.n_a * self.tp + self.n_f <= dev.nvlink_gpus)
            kind = "nvlink" if one_node else "scaleout"
        if kind == "nvlink":
            link = Link(min(dev.nvlink_bw, self.dev_f.nvlink_bw),
                        max(dev.nvlink_latency, self.dev_f.nvlink_latency))
        else:
            link = Link(min(dev.scaleout_bw, self.dev_f.scaleout_bw),
                        max(dev.scaleout_latency, self.dev_f.scaleout_latency))
        if o.bandwidth_gbs is not None or o.latency_us is not None:
            link = Link(o.bandwidth_gbs * 1e9 if o.bandwidth_gbs is not None else link.bandwidth,
                        o.latency_us * 1e-6 if o.latency_us is not None else link.latency)
        self.link_kind = kind
        return effective_link(ctx.transfer, link) if ctx.transfer is not None else link

    def _check_memory(self, where: str, gpu_f: str) -> None:
        """The FFN side must hold its weights (1 GiB kept for activations and buffers)."""
        m = self.model
        if self.moe is not None:
            b = m.ffn_bytes() - m.routed_expert_bytes() + self.moe.weight_bytes_per_gpu()
        else:
            b = m.ffn_bytes()
        room = self.dev_f.mem_bytes * self.memory_fraction - GiB
        if b > room:
            how = (f"spread the experts over more FFN GPUs (ffn_gpus > {self.n_f})"
                   if self.moe is not None else "a dense FFN is replicated on every FFN GPU; "
                   "choose a larger ffn_gpu")
            raise ConfigError(
                f"{where}: each of the {self.n_f} {gpu_f} FFN GPUs needs {b / GiB:.1f} GiB of "
                f"{m.name}'s feed-forward weights but has {room / GiB:.1f} GiB; {how}."
            )

    # ---- operator times ---------------------------------------------------------------
    def _gemm(self, name: str, t: int, n: int, k: int, answer) -> tuple[float, int]:
        key = (name, t)
        hit = self._memo.get(key)
        if hit is None:
            dtype = "bf16" if name == "gate" else self.dtype
            hit = self._memo[key] = answer(OpCall("gemm", name, dtype, t, n, k))
        return hit

    def _dense(self, t: int, credit: list[float], layers: int) -> float:
        """A dense FFN (gated MLP, whole on one FFN GPU) over ``t`` tokens, per layer;
        ``layers`` such layers are credited."""
        if t <= 0:
            return 0.0
        m = self.model
        up = (2 if m.gated_mlp else 1) * m.intermediate_size
        total = 0.0
        for name, n, k in (("ffn_up", up, self.h), ("ffn_down", self.h, m.intermediate_size)):
            x, i = self._gemm(name, t, n, k, self.answer_f)
            total += x
            credit[i] += x * layers
        return total

    # ---- one iteration ------------------------------------------------------------------
    def step(self, s: LayerStep) -> float:
        L = self.model.num_layers
        if not s.record or s.layers != L:
            # A pass outside the model's iterations (an MTP layer): the mean layer of
            # this iteration's timeline, times the layers asked for, kept out of the stats.
            saved = self.stats, self.moe.stats if self.moe is not None else None
            self.stats = QuietStats()  # type: ignore[assignment]
            if self.moe is not None:
                self.moe.stats = QuietStats()
            try:
                return self._step(s) * s.layers / L
            finally:
                self.stats = saved[0]
                if self.moe is not None:
                    self.moe.stats = saved[1]
        return self._step(s)

    def _step(self, s: LayerStep) -> float:
        m = self.model
        total = int(s.tokens.sum())
        if total == 0:
            return s.other_s * s.layers
        mb = max(1, min(self.m, total))
        n_dense = m.num_dense_ffn_layers
        L = m.num_layers
        a = np.zeros((L, mb))
        a2f = np.zeros((L, mb))
        f = np.zeros((L, mb))
        f2a = np.zeros((L, mb))
        lat, bw = self.link.latency, self.link.bandwidth
        for i in range(mb):
            tok = (s.tokens + (mb - 1 - i)) // mb  # tokens of each attention rank
            t = int(tok.sum())
            if t == 0:
                continue
            a[:, i] = s.other_s * t / total
            per_gpu = float(tok.max()) / self.tp  # the busiest attention GPU's tokens
            # Dense layers (all of a dense model, DeepSeek's first ones): each FFN GPU
            # takes an equal share of the tokens.
            share = math.ceil(t / self.n_f)
            if n_dense:
                f[:n_dense, i] = self._dense(share, s.credit, n_dense)
                a2f[:n_dense, i] = lat + max(per_gpu, share) * self.disp_b / bw
                f2a[:n_dense, i] = lat + max(per_gpu, share) * self.comb_b / bw
            if self.moe is not None:
                self._moe_layers(i, tok, t, per_gpu, s, a, a2f, f, f2a, n_dense)
        if self.moe is not None:
            self.moe.stats.end_step()
        tl = pingpong(a, a2f, f, f2a, keep=self.stats.tracing())
        self.stats.add(tl, mb, s.replica, s.now, (a, a2f, f, f2a))
        return tl.makespan

    def _moe_layers(self, i, tok, t, per_gpu, s, a, a2f, f, f2a, n_dense) -> None:
        moe, m = self.moe, self.model
        lat, bw = self.link.latency, self.link.bandwidth
        # Gate on the attention side, at the busiest rank's tokens.
        g, gi = self._gemm("gate", int(tok.max()), m.num_experts, self.h, s.answer)
        a[n_dense:, i] += g
        s.credit[gi] += g * m.num_moe_layers
        counts = moe.routing.draw(t)
        experts, _, rank_tok, loads = moe.expert_phase(counts, t, self.answer_f, s.credit)
        moe.stats.apply_loads(loads)
        shared = 0.0
        if self.shared:  # shared experts on the FFN side, tokens spread evenly
            load = math.ceil(t / self.n_f)  # every token visits each shared expert
            i_sh = m.moe_intermediate_size
            for name, n, k in (("shared_up", 2 * i_sh, self.h), ("shared_down", self.h, i_sh)):
                x, j = self._gemm(name, load, n, k, self.answer_f)
                shared += x * self.shared
                s.credit[j] += x * self.shared * m.num_moe_layers
        f[n_dense:, i] = experts + shared
        # Every copy crosses the link: each token to its k experts (and shared experts).
        sent = per_gpu * (self.k + self.shared)
        received = rank_tok.max(axis=1) + t * self.shared / self.n_f  # busiest FFN GPU
        a2f[n_dense:, i] = lat + np.maximum(sent, received) * self.disp_b / bw
        f2a[n_dense:, i] = lat + np.maximum(sent, received) * self.comb_b / bw

    # ---- the report -------------------------------------------------------------------
    def report(self, pid: int, name: str) -> WorkflowReport:
        from frontier_af_pingpong.report import block_report

        return block_report(self, pid, name)


class _Stats:
    def __init__(self, trace_iterations: int) -> None:
        self.steps = 0
        self.makespan = array("d")
        self.busy = array("d")  # 4 per step, RESOURCES order
        self.critical = array("d")  # 4 per step: seconds of each resource on the critical path
        self.micro = array("d")
        self.trace_left = trace_iterations
        self.trace: list[tuple[int, float, np.ndarray, np.ndarray]] = []  # replica, t0, starts, durations

    def tracing(self) -> bool:
        return self.trace_left > 0

    def add(self, tl, mb: int, replica: int, now: float, durations) -> None:
        self.steps += 1
        self.makespan.append(tl.makespan)
        self.busy.extend(tl.busy.tolist())
        self.critical.extend(tl.critical.tolist())
        self.micro.append(mb)
        if tl.starts is not None:
            self.trace_left -= 1
            self.trace.append((replica, now, tl.starts, np.stack(durations)))


__all__ = ["AFBlock", "AFOptions", "RESOURCES"]
