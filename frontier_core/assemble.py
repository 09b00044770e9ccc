"""Config + registry -> a runnable Simulation. All validation of a run happens here.

Hooks are consulted once, by name; the engine receives built components and
calls their hot methods directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from pydantic import ValidationError

from frontier_core.components import BuildContext, ComponentSpec, MoELayers
from frontier_core.config import ClusterConfig, ComponentRef, RunConfig
from frontier_core.configfile import validate_options
from frontier_core.engine import ClusterWorker, GlobalController, PagedKVCache, ReplicaWorker
from frontier_core.engine.kv import replica_kv_blocks
from frontier_core.errors import ConfigError
from frontier_core.execution.engines import EngineModel, resolve_engine
from frontier_core.execution.predictor import ExecutionPredictor
from frontier_core.model.catalog import HardwareSpec, ModelSpec, model_from_hf_config
from frontier_core.model.dtypes import DTYPE_BYTES
from frontier_core.plugins import Registry
from frontier_core.workload import Workload, build_workload

GiB = 1024**3


class CountingEnvironment(simpy.Environment):
    """A simpy environment that knows how many events it processed (for events/s)."""

    def __init__(self) -> None:
        super().__init__()
        self.events = 0


def resolve_model(cfg: RunConfig, registry: Registry) -> ModelSpec:
    mc = cfg.model
    if mc.hf_config:
        model = model_from_hf_config(cfg.resolve(mc.hf_config), mc.name)
    elif mc.spec is not None:
        model = mc.spec
    else:
        model = registry.get("model", mc.name or "", where="model")
    upd = {k: v for k, v in (("weight_dtype", mc.weight_dtype), ("kv_dtype", mc.kv_dtype),
                             ("expert_dtype", mc.expert_dtype)) if v}
    if mc.weight_dtype and not mc.expert_dtype:
        upd["expert_dtype"] = ""  # one format for every weight
    if upd:
        try:
            model = ModelSpec.model_validate({**model.model_dump(), **upd})
        except ValidationError as e:
            why = "; ".join(x["msg"].removeprefix("Value error, ") for x in e.errors())
            raise ConfigError(f"Invalid model.weight_dtype / expert_dtype / kv_dtype: {why}.") from None
    return model


def hardware_table(cfg: RunConfig, registry: Registry) -> dict[str, HardwareSpec]:
    table = {p.name: p.item for p in registry.provided("hardware")}
    for hw in cfg.hardware:
        table[hw.name] = hw
    return table


def _build(registry: Registry, kind: str, ref: ComponentRef, where: str, ctx: BuildContext) -> Any:
    spec: ComponentSpec = registry.get(kind, ref.name, where=where)
    prov = registry.items[kind][ref.name]
    opts = validate_options(
        spec.options, ref.options, where, f"{kind} {ref.name!r} (from {prov.distribution})"
    )
    return spec.factory(opts, ctx)


def activation_reserve(model: ModelSpec, cluster: ClusterConfig) -> float:
    """Bytes per GPU kept for activations, workspace and CUDA graphs when not configured.

    One forward pass of the largest batch holds roughly the residual stream,
    QKV and MLP intermediates of its tokens plus fp32 logits of its sequences;
    1 GiB more covers the CUDA context, NCCL buffers and graph pools.
    """
    if cluster.activation_reserve_gb is not None:
        return cluster.activation_reserve_gb * GiB
    opts = cluster.scheduler.options
    tokens = opts.get("max_num_batched_tokens", opts.get("token_budget", 8192))
    seqs = opts.get("max_num_seqs", 256)
    tp = cluster.tp
    per_token = (
        2 * model.hidden_size
        + 2 * model.intermediate_size / tp
        + (model.num_heads + 2 * model.num_kv_heads) * model.hd / tp
    ) * 2
    logits = seqs * model.vocab_size / tp * 4
    return GiB + tokens * per_token + logits


@dataclass
class ClusterPlan:
    """What assembly decided for one cluster (reported in the summary)."""

    name: str
    gpu: str
    replicas: int
    tp: int
    pp: int
    kv_blocks: int
    block_size: int
    weight_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    dp: int = 1
    external_gpus: int = 0  # per replica, used by its block outside the cluster (AF's FFN side)
    engine: EngineModel | None = None  # the engine model the cluster runs, if it names one
    seq_blocks: int = 0  # blocks every sequence holds whatever its length (ModelSpec.seq_bytes)

    @property
    def gpus(self) -> int:
        return self.replicas * (self.dp * self.tp * self.pp + self.external_gpus)


@dataclass
class Simulation:
    config: RunConfig
    model: ModelSpec
    env: CountingEnvironment
    controller: GlobalController
    clusters: dict[str, ClusterWorker]
    executors: dict[str, ExecutionPredictor]
    plans: dict[str, ClusterPlan]
    workload: Workload
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # The object running each of ``deployment.expert_clusters``, by name.
    expert_clusters: dict[str, Any] = field(default_factory=dict)

    def run(self, progress=None, slices: int = 100) -> Simulation:
        """Run to completion. ``progress(sim_time, finished, total)`` is called once per
        slice of simulated time (never per event)."""
        env, ctl = self.env, self.controller
        t0 = time.perf_counter()
        ctl.start()
        wl = self.workload
        horizon = float(wl.arrival[-1]) if wl.arrival is not None and len(wl.arrival) else 60.0
        slice_s = max(horizon / slices, 0.5)
        report = slice_s
        # NOTE: perf — our own step loop (not env.run(until=...)) so that progress is
        # reported per slice of simulated time at the cost of one peek per event.
        peek, step = env.peek, env.step
        events = 0
        while True:
            nxt = peek()
            if nxt == math.inf:
                break
            if nxt >= report:
                if progress is not None:
                    progress(nxt, ctl.finished, ctl.total)
                report = nxt + slice_s
            step()
            events += 1
        env.events = events
        if progress is not None:
            progress(env.now, ctl.finished, ctl.total)
        self.wall_s = time.perf_counter() - t0
        stuck = ctl.total - ctl.finished
        if stuck > 0:
            import warnings

            from frontier_core.errors import FrontierWarning

            warnings.warn(
                f"{stuck} of {ctl.total} requests never finished: the simulation ran out of "
                f"events at {env.now:.3f} s with them still waiting or running (a scheduler, "
                "router or workflow stalled); their latencies are missing from the results. "
                "Please report this with the config.",
                FrontierWarning, stacklevel=2,
            )
        return self


def assemble(cfg: RunConfig, registry: Registry) -> Simulation:
    """Validate everything a run needs and build it; raises ConfigError/PluginError."""
    model = resolve_model(cfg, registry)
    hw = hardware_table(cfg, registry)
    seeds = np.random.SeedSequence(cfg.seed).spawn(3)
    rng_workload, rng_components = (np.random.default_rng(s) for s in seeds[:2])
    workload = build_workload(cfg.workload, rng_workload, cfg.resolve)
    env = CountingEnvironment()
    base = BuildContext(config=cfg, model=model, rng=rng_components, hardware=hw)
    base.transfer = _build(registry, "transfer", cfg.transfer, "transfer", base)
    workflow = _build(registry, "workflow", cfg.deployment.workflow, "deployment.workflow", base)
    for pi, pc in enumerate(cfg.deployment.expert_clusters):
        if pc.gpu not in hw:
            from frontier_core.plugins import unknown_message

            raise ConfigError(
                unknown_message("GPU kind", pc.gpu, sorted(hw),
                                f"deployment.expert_clusters[{pi}].gpu")
                + " Define your own under hardware: in the config."
            )

    clusters: dict[str, ClusterWorker] = {}
    executors: dict[str, ExecutionPredictor] = {}
    plans: dict[str, ClusterPlan] = {}
    holder: dict[str, GlobalController] = {}

    def on_reject(r, reason):
        holder["ctl"].reject(r, reason)

    for ci, cc in enumerate(cfg.deployment.clusters):
        where = f"deployment.clusters[{ci}]"
        if cc.gpu not in hw:
            from frontier_core.plugins import unknown_message

            raise ConfigError(
                unknown_message("GPU kind", cc.gpu, sorted(hw), f"{where}.gpu")
                + " Define your own under hardware: in the config."
            )
        device = hw[cc.gpu]
        engine = None
        if cc.engine is not None:
            profile = cfg.resolve(cc.engine.profile) if cc.engine.profile else None
            spec = registry.get("engine", cc.engine.name.lower(), f"{where}.engine")
            engine = resolve_engine(cc.engine, spec, device, cc.tp, where, profile)
            if "scheduler" not in cc.model_fields_set:
                # The engine's scheduler and limits, unless the config gives its own.
                cc = cc.model_copy(update={"scheduler": ComponentRef(**engine.scheduler)})
        ctx = BuildContext(config=cfg, model=model, rng=rng_components, hardware=hw,
                           cluster=cc, device=device, transfer=base.transfer,
                           shared=base.shared)
        ctx.answer_for = _chain_factory(registry, cfg, ctx, hw, where)
        if (model.is_moe and cc.ffn is None and cc.moe.name == "moe"
                and "moe" not in registry.names("ffn_block")):
            # Checked before the memory plan: no tp/pp makes this run possible without it.
            from frontier_core.plugins import install_hint

            raise ConfigError(
                f"{model.name} is a mixture-of-experts model ({model.num_experts} experts, "
                f"top-{model.top_k}); simulating its MoE layers needs the frontier-moe-ep "
                f"distribution: install it with {install_hint('frontier-moe-ep')}."
            )
        # Not model_fields_set: a config dumped and re-read (plan, sweep) sets the default.
        if not model.is_moe and (cc.moe.name != "moe" or cc.moe.options):
            raise ConfigError(
                f"{where}.moe configures a mixture-of-experts block, but {model.name} is a "
                "dense model with no experts, so it would be ignored; remove moe: from the "
                "cluster, or choose a MoE model (frontier models lists them)."
            )
        # What the engines accept: vLLM's CacheConfig.block_size is one of 1, 8, ..., 256
        # (BlockSize in vllm/config/cache.py); TensorRT-LLM's KvCacheConfig.tokens_per_block
        # a power of two (its KV cache docs); SGLang's --page-size any positive integer.
        if cc.block_size & (cc.block_size - 1) and (
                cc.engine is None or cc.engine.name.lower() != "sglang"):
            _warn(
                f"{where}.block_size is {cc.block_size} tokens, which no serving engine's "
                "paged KV cache uses: vLLM accepts 1, 8, 16, 32, 64, 128 or 256 (--block-size) "
                "and "
                "TensorRT-LLM a power of two (tokens_per_block); only SGLang's --page-size "
                "takes any size. Use a power of two such as 16 (vLLM's default) unless you "
                "model SGLang (engine: sglang).", 3,
            )
        if cc.dp > 1 and not model.is_moe and cc.ffn is None:
            raise ConfigError(
                f"{where}.dp is {cc.dp}, but DP attention only applies to mixture-of-experts "
                f"models and {model.name} is dense; serve more copies with replicas: "
                f"{cc.dp * cc.replicas} and dp: 1."
            )
        dense = _build(registry, "ffn_block", ComponentRef(name="dense"), "model", ctx)
        moe = None
        if cc.ffn is not None:
            moe = _build(registry, "ffn_block", cc.ffn, f"{where}.ffn", ctx)
            if not isinstance(moe, MoELayers):
                raise ConfigError(
                    f"{where}.ffn names the block {cc.ffn.name!r}, which has no per-iteration "
                    "step (MoELayers) and so cannot run every layer's feed-forward part; use "
                    "a block made for ffn (e.g. af from frontier-af-pingpong) or drop ffn."
                )
        elif model.is_moe:
            moe = _build(registry, "ffn_block", cc.moe, f"{where}.moe", ctx)
        draft = _draft_model(cfg, registry, model, cc, where)
        plan = _plan_memory(model, cc, device, where, moe, draft)
        plan.engine = engine
        plans[cc.name] = plan
        chain = _build_chain(registry, cfg, ctx)
        ex = ExecutionPredictor(model, device, cc.tp, cc.pp, chain, dense, moe, dp=cc.dp,
                                all_layers=cc.ffn is not None, engine=engine)
        if cc.speculative is not None:
            ex.spec = _speculator(cfg, cc, ci, model, draft, ex, dense, moe)
        executors[cc.name] = ex
        disk_blocks, disk_s = _disk_tier(cc, plan, device, where)
        host_blocks, load_s, recompute_s = _host_tier(cc, plan, device, where, ex)
        replicas = []
        for i in range(cc.replicas):
            sched = _build(registry, "scheduler", cc.scheduler, f"{where}.scheduler", ctx)
            kv = PagedKVCache(plan.kv_blocks, cc.block_size, cc.prefix_cache, host_blocks,
                              load_s, recompute_s, plan.seq_blocks, disk_blocks, disk_s,
                              cc.disk_latency_s, cc.disk_write_policy == "write_through")
            replicas.append(ReplicaWorker(env, cc.name, i, sched, ex, kv, on_reject,
                                          cc.dp_balance))
        router = _build(registry, "router", cc.router, f"{where}.router", ctx)
        clusters[cc.name] = ClusterWorker(env, cc.name, replicas, router, model.max_context,
                                          on_reject, engine)

    unknown = [c for c in workflow.clusters() if c not in clusters]
    if unknown:
        raise ConfigError(
            f"The workflow {cfg.deployment.workflow.name!r} uses clusters {unknown} that the "
            f"deployment does not define; defined: {', '.join(clusters)}."
        )
    pools = base.shared.get("expert_clusters", {})
    for pi, pc in enumerate(cfg.deployment.expert_clusters):
        if pc.name not in pools:
            raise ConfigError(
                f"deployment.expert_clusters[{pi}] ({pc.name!r}) holds no experts: no "
                "cluster's MoE block places experts on it. Name it in a cluster's "
                f"moe: {{name: cross_cluster, experts: {{{pc.name}: ...}}}} (frontier-moe-ep), "
                "or remove it."
            )
    cached = [cc.name for cc in cfg.deployment.clusters if cc.prefix_cache]
    for ci, cc in enumerate(cfg.deployment.clusters):
        if cc.prefix_cache and workload.prefix is not None and workload.prefix_block % cc.block_size:
            raise ConfigError(
                f"deployment.clusters[{ci}].block_size is {cc.block_size} tokens, which does not "
                f"divide the workload's hash block of {workload.prefix_block} tokens, so cached "
                "entries would waste part of a KV block each; set block_size to a divisor of "
                "it (e.g. 16), or workload.conversations.hash_block to a multiple of block_size."
            )
    if cached and workload.prefix is None:
        import warnings

        from frontier_core.errors import FrontierWarning

        warnings.warn(
            f"prefix_cache is on for cluster(s) {', '.join(cached)}, but the workload carries "
            "no prompt block hashes, so nothing can be found in the cache; replay a mooncake "
            "trace with hash_ids (and no prompt_len override), generate "
            "workload.conversations, or turn prefix_cache off.",
            FrontierWarning, stacklevel=2,
        )
    ctl = GlobalController(env, clusters, workflow, workload)
    holder["ctl"] = ctl
    return Simulation(cfg, model, env, ctl, clusters, executors, plans, workload,
                      expert_clusters=dict(pools))


def _warn(message: str, stacklevel: int = 2) -> None:
    import warnings

    from frontier_core.errors import FrontierWarning

    warnings.warn(message, FrontierWarning, stacklevel=stacklevel + 1)


def warn_unservable(sim: Simulation) -> None:
    """Warn, before a run, about requests that will be rejected whatever happens: those
    longer (prompt + output) than the model's context, and those that need more KV cache
    than one replica of a cluster holds. Each warning gives the count, so that a config
    whose requests cannot be served is not mistaken for a valid one."""
    wl = sim.workload
    n = len(wl)
    if not n:
        return
    total = wl.prompt_len + wl.output_len
    ctx = sim.model.max_context
    over = int((total > ctx).sum())
    if over:
        _warn(
            f"{over:,} of {n:,} requests ask for more tokens (prompt + output, up to "
            f"{int(total.max()):,}) than {sim.model.name}'s context of {ctx:,} and will be "
            "rejected; shorten them (workload.prompt_len / output_len, or the trace) or "
            "choose a model with a longer context.", 2,
        )
    for ci, (name, cluster) in enumerate(sim.clusters.items()):
        cap = cluster.max_tokens
        # The prompt and one token must fit wherever a request goes; the whole request
        # wherever it is decoded (every cluster of a co-located deployment).
        prompt_only = int((wl.prompt_len + 1 > cap).sum())
        whole = int((total > cap).sum())
        if not whole:
            continue
        where = f"deployment.clusters[{ci}]"
        what = (f"{prompt_only:,} of {n:,} requests have prompts longer than"
                if prompt_only else
                f"{whole:,} of {n:,} requests need more tokens (prompt + output) than")
        when = "" if prompt_only else " wherever this cluster decodes them"
        # With DP attention a request's KV lives on one rank, which holds 1/dp of it.
        one = "one DP rank of a replica" if cluster.replicas[0].dp > 1 else "one replica"
        _warn(
            f"{what} the KV cache of {one} of cluster {name!r} holds ({cap:,} tokens) "
            f"and will be rejected{when}; raise {where}.tp or gpu_memory_fraction, choose "
            "a GPU with more memory, or shorten the requests.", 2,
        )


def _draft_model(cfg: RunConfig, registry: Registry, model: ModelSpec, cc: ClusterConfig,
                 where: str) -> ModelSpec | None:
    """The drafter's architecture: a catalog model (``method: draft``), the target's MTP
    layer (``method: mtp``: one layer of the target, all of it MoE for a MoE model), or
    None without speculative decoding."""
    sc = cc.speculative
    if sc is None:
        return None
    if cc.pp > 1:
        raise ConfigError(
            f"{where}.speculative is set with pp={cc.pp}; speculative decoding is modelled "
            "for tensor (and DP/expert) parallelism only; use pp: 1 or drop speculative."
        )
    if sc.method == "mtp":
        return model.model_copy(update={"name": f"{model.name}-mtp", "num_layers": 1,
                                        "first_dense_layers": 0})
    draft = registry.get("model", sc.draft_model or "", where=f"{where}.speculative.draft_model")
    if draft.is_moe:
        raise ConfigError(
            f"{where}.speculative.draft_model is {draft.name}, a mixture-of-experts model; "
            "draft models are priced as dense models; choose a dense draft (e.g. "
            "llama-3.2-1b) or method: mtp."
        )
    dtp = sc.draft_tp or cc.tp
    if dtp > cc.tp * cc.dp:
        raise ConfigError(
            f"{where}.speculative.draft_tp is {dtp}, more than the {cc.tp * cc.dp} GPUs of a "
            "replica's pipeline stage; lower draft_tp."
        )
    if draft.num_heads % dtp:
        raise ConfigError(
            f"{where}.speculative.draft_tp is {dtp}, which does not divide {draft.name}'s "
            f"{draft.num_heads} attention heads; choose a degree that divides it."
        )
    if draft.vocab_size != model.vocab_size:
        import warnings

        from frontier_core.errors import FrontierWarning

        warnings.warn(
            f"{where}.speculative.draft_model {draft.name} has a vocabulary of "
            f"{draft.vocab_size} tokens and {model.name} of {model.vocab_size}; a draft model "
            "must share the target's tokenizer, so check that this pairing is real.",
            FrontierWarning, stacklevel=3,
        )
    return draft


def _speculator(cfg: RunConfig, cc: ClusterConfig, ci: int, model: ModelSpec,
                draft: ModelSpec | None, target: ExecutionPredictor, dense: Any,
                moe: Any) -> Any:
    """The cluster's Speculator: its drafter shares the target's predictor chain (and
    credits the same backends); its acceptance draws have their own seeded stream."""
    from frontier_core.execution.predictor import DenseFFN
    from frontier_core.execution.speculative import Speculator

    sc = cc.speculative
    assert sc is not None and draft is not None
    device, chain = target.device, target.chain
    if sc.method == "mtp":
        # The MTP layer runs on the replica's GPUs with the target's layout; its MoE
        # layer (if any) goes through the cluster's block.
        drafter = ExecutionPredictor(draft, device, cc.tp, 1, chain, dense, moe, dp=cc.dp,
                                     all_layers=cc.ffn is not None)
        name = f"{model.name} MTP layer"
    else:
        dtp = sc.draft_tp or cc.tp
        drafter = ExecutionPredictor(draft, device, dtp, 1, chain, DenseFFN(draft, dtp),
                                     dp=cc.dp)
        name = draft.name
    drafter.credit = target.credit  # the same backends, credited in one place
    drafter.host_overhead = False
    drafter.spec_of = target
    rng = np.random.default_rng([cfg.seed, 0x5BEC, ci])
    return Speculator(sc, drafter, rng, name)


def _host_tier(cc: ClusterConfig, plan: ClusterPlan, device: HardwareSpec, where: str,
               ex: ExecutionPredictor) -> tuple[int, float, Callable[[int, int], float] | None]:
    """Blocks the host tier of one replica holds, the PCIe seconds to copy one back
    (every GPU of the replica copies its share of the block at once), and the estimate
    of recompute seconds the cache weighs a copy against (None without a host tier)."""
    if cc.host_cache_gb <= 0:
        return 0, 0.0, None
    if not cc.prefix_cache:
        raise ConfigError(
            f"{where}.host_cache_gb is {cc.host_cache_gb:g}, but the host tier keeps blocks of "
            "the prefix cache, which is off; set prefix_cache: true or drop host_cache_gb."
        )
    block_bytes = plan.kv_bytes_per_token_per_gpu * cc.block_size
    blocks = cc.dp * int(cc.host_cache_gb * 1e9 // block_bytes)
    return blocks, block_bytes / device.pcie_bw, ex.recompute_s


def _disk_tier(cc: ClusterConfig, plan: ClusterPlan, device: HardwareSpec,
               where: str) -> tuple[int, float]:
    """Blocks the disk tier of one replica holds, and the seconds to read one back: every
    GPU reads its share of the block at once, at its share of its node's read bandwidth
    (``disk_read_gbs`` over ``gpus_per_node`` GPUs)."""
    if cc.disk_cache_gb <= 0:
        return 0, 0.0
    missing = ("prefix_cache, which is off; set prefix_cache: true" if not cc.prefix_cache
               else "host_cache_gb, which is 0; set host_cache_gb (a read from disk is "
               "staged in host memory, as SGLang HiCache stages L3 hits in L2)")
    if not (cc.prefix_cache and cc.host_cache_gb > 0):
        raise ConfigError(
            f"{where}.disk_cache_gb is {cc.disk_cache_gb:g}, but the disk tier keeps blocks "
            f"of the prefix cache below its host tier, and needs {missing}, or drop "
            "disk_cache_gb."
        )
    block_bytes = plan.kv_bytes_per_token_per_gpu * cc.block_size
    blocks = cc.dp * int(cc.disk_cache_gb * 1e9 // block_bytes)
    return blocks, block_bytes * device.gpus_per_node / (cc.disk_read_gbs * 1e9)


def _build_chain(registry: Registry, cfg: RunConfig, ctx: BuildContext) -> list[tuple[str, Any]]:
    """The run's predictor chain for ``ctx``'s GPU. A predictor that ends the chain and
    names a ``fallback`` (e.g. ``auto``: the roofline) gets it appended with its default
    options, so that every operator has an answer."""
    chain = [(ref.name, _build(registry, "predictor", ref, f"predictor[{i}]", ctx))
             for i, ref in enumerate(cfg.predictor)]
    fallback = getattr(chain[-1][1], "fallback", None) if chain else None
    if fallback and fallback in registry.names("predictor"):
        chain.append((fallback, _build(registry, "predictor", ComponentRef(name=fallback),
                                       f"predictor[{len(chain)}] (fallback of "
                                       f"{chain[-1][0]!r})", ctx)))
    return chain


def _chain_factory(registry: Registry, cfg: RunConfig, ctx: BuildContext,
                   hw: dict[str, HardwareSpec], where: str):
    """``answer_for(gpu)``: the run's predictor chain built for another GPU kind."""
    from frontier_core.execution.predictor import chain_answer

    cache: dict[str, Any] = {}

    def answer_for(gpu: str):
        if gpu not in cache:
            if gpu not in hw:
                from frontier_core.plugins import unknown_message

                raise ConfigError(unknown_message("GPU kind", gpu, sorted(hw), where)
                                  + " Define your own under hardware: in the config.")
            other = BuildContext(config=cfg, model=ctx.model, rng=ctx.rng, hardware=hw,
                                 cluster=ctx.cluster, device=hw[gpu], transfer=ctx.transfer)
            cache[gpu] = chain_answer(_build_chain(registry, cfg, other), gpu)
        return cache[gpu]

    return answer_for


def _plan_memory(model: ModelSpec, cc: ClusterConfig, device: HardwareSpec, where: str,
                 moe: Any = None, draft: ModelSpec | None = None) -> ClusterPlan:
    if model.num_layers < cc.pp:
        raise ConfigError(
            f"{where}.pp is {cc.pp} but {model.name} has only {model.num_layers} layers; lower pp."
        )
    if model.attention == "gqa" and model.num_heads % cc.tp:
        raise ConfigError(
            f"{where}.tp is {cc.tp}, which does not divide {model.name}'s {model.num_heads} "
            "attention heads; choose a TP degree that divides it."
        )
    weights = model.weight_bytes() / (cc.tp * cc.pp)
    experts = getattr(moe, "weight_bytes_per_gpu", None)
    if getattr(moe, "offloads_ffn", False):
        # The feed-forward weights live on the block's own GPUs.
        weights = (model.weight_bytes() - model.ffn_bytes()) / (cc.tp * cc.pp)
    elif experts is not None:
        # The block places the routed experts (e.g. split over EP ranks, not TP).
        weights += (experts() - model.routed_expert_bytes() / cc.tp) / cc.pp
    kv_tok = model.kv_bytes_per_token(cc.tp) / cc.pp
    if draft is not None and cc.speculative is not None:
        if cc.speculative.method == "mtp":
            # One more layer (plus its input projection), sharded as the target's layers.
            layer = (model.attention_params() + model.ffn_params(model.num_layers - 1)
                     + 2 * model.hidden_size * model.hidden_size)
            weights *= 1 + layer * DTYPE_BYTES[model.weight_dtype] / model.weight_bytes()
            kv_tok *= (model.num_layers + 1) / model.num_layers
        else:
            dtp = cc.speculative.draft_tp or cc.tp
            weights += draft.weight_bytes() / dtp
            kv_tok += draft.kv_bytes_per_token(dtp)
    act = activation_reserve(model, cc)
    # Each DP attention rank holds the KV of its own requests: dp times one rank's blocks.
    blocks = cc.dp * replica_kv_blocks(device.mem_bytes, cc.gpu_memory_fraction, weights, act,
                                       kv_tok, cc.block_size)
    usable = device.mem_bytes * cc.gpu_memory_fraction
    if blocks < 1:
        drafter = ""
        if draft is not None and cc.speculative is not None:
            drafter = (f", its speculative drafter ({draft.name}) included"
                       if cc.speculative.method == "draft" else ", its MTP layer included")
        raise ConfigError(
            f"{model.name}{drafter} does not fit on {cc.gpu} with tp={cc.tp}, pp={cc.pp} "
            f"({where}): each "
            f"GPU needs {weights / GiB:.1f} GiB of weights + {act / GiB:.1f} GiB of activations "
            f"but has {usable / GiB:.1f} GiB ({cc.gpu_memory_fraction:.0%} of "
            f"{device.mem_bytes / GiB:.1f} GiB) and no room is left for the KV cache. Raise tp or "
            "pp, use a larger GPU, or raise gpu_memory_fraction."
        )
    # A sequence's fixed-size cache (linear-attention state, sliding-window KV) takes
    # whole blocks of the same pool.
    seq = model.seq_bytes(cc.tp) / cc.pp
    seq_blocks = math.ceil(seq / (kv_tok * cc.block_size)) if seq else 0
    if blocks <= seq_blocks:
        raise ConfigError(
            f"{model.name} leaves no room for one sequence on {cc.gpu} with tp={cc.tp}, "
            f"pp={cc.pp} ({where}): its per-sequence state takes {seq / GiB:.2f} GiB per GPU "
            f"and the KV pool holds {blocks * kv_tok * cc.block_size / GiB:.2f} GiB. Raise tp "
            "or pp, use a larger GPU, or raise gpu_memory_fraction.")
    return ClusterPlan(cc.name, cc.gpu, cc.replicas, cc.tp, cc.pp, blocks, cc.block_size, weights,
                       kv_tok, cc.dp, int(getattr(moe, "external_gpus", 0)),
                       seq_blocks=seq_blocks)
