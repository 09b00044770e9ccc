"""Capacity planning: the cheapest deployment that meets latency SLOs at a given rate.

The search space is built from what is installed: co-located serving always, and
prefill/decode disaggregation when a ``pd`` workflow is registered. It covers GPU
kinds, TP degrees (dividing the attention heads, within a node), PP degrees (those
asked for; 1 by default), replica counts and, when asked for, the schedulers'
batch limit (``max_num_seqs``)
— and, for PD, separate shapes and counts for each stage — up to ``max_gpus``.

A candidate is feasible when the share of requests meeting every SLO is at least
``attainment``. Candidates are visited cheapest first (GPU count or $/hour), and
only until the cheapest feasible one is found, so no candidate costlier than the
answer is ever simulated. Before simulating, three cheap bounds discard candidates
that cannot be feasible:

- memory: the model's weights must fit a replica with room left for KV;
- compute: the prompt and output tokens offered per second, at 2 × active
  parameters FLOPs per token, must not exceed the pool's peak FLOP/s (for PD,
  each stage's own tokens) — a rate above peak compute cannot be sustained;
- latency: when ``attainment`` > 0.5, the median prompt prefilled alone must fit
  the TTFT SLO, and one decode step alone at the median context must fit the
  TPOT SLO (batching, queueing and longer contexts only add time, so otherwise
  at least half of the requests miss).

Each bound is a necessary condition (the compute bound for a sustained rate), so
pruning does not drop a feasible candidate: the search returns what exhaustive
simulation of every candidate up to the same cost would return. Runs that were simulated give the Pareto frontier
of output throughput per GPU against p90 TPOT.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frontier_core.config import RunConfig
from frontier_core.errors import ConfigError, FrontierError


@dataclass(frozen=True)
class Stage:
    """One pool: GPU kind, TP and PP degrees and replica count."""

    gpu: str
    tp: int
    replicas: int
    pp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.replicas

    def shape(self) -> str:
        return f"{self.gpu} tp{self.tp}" + (f" pp{self.pp}" if self.pp > 1 else "")


@dataclass(frozen=True)
class Candidate:
    """A deployment to try: one stage (co-located) or prefill + decode stages, and the
    schedulers' batch limit (``max_num_seqs``; None keeps the base config's)."""

    stages: tuple[Stage, ...]
    max_num_seqs: int | None = None

    @property
    def pd(self) -> bool:
        return len(self.stages) == 2

    @property
    def gpus(self) -> int:
        return sum(s.gpus for s in self.stages)

    def cost(self, prices: dict[str, float]) -> float:
        return sum(s.gpus * prices.get(s.gpu, 0.0) for s in self.stages)

    def label(self) -> str:
        if not self.pd:
            s = self.stages[0]
            text = f"co-located {s.replicas}x {s.shape()}"
        else:
            p, d = self.stages
            text = f"pd prefill {p.replicas}x {p.shape()} + decode {d.replicas}x {d.shape()}"
        return text if self.max_num_seqs is None else f"{text}, max {self.max_num_seqs} seqs"


@dataclass
class Outcome:
    candidate: Candidate
    attainment: float
    ttft_p90: float | None
    tpot_p90: float | None
    tokens_per_s_per_gpu: float
    feasible: bool


@dataclass
class PlanResult:
    best: Candidate | None
    best_config: RunConfig | None
    tried: list[Outcome] = field(default_factory=list)
    pruned: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[Candidate, str]] = field(default_factory=list)
    considered: list[Candidate] = field(default_factory=list)

    def verdicts(self, attainment: float) -> list[tuple[Candidate, Outcome | None, str]]:
        """Every candidate considered, in the order considered, with its outcome (None
        when pruned without a simulation) and why it was or was not chosen."""
        order = {id(o.candidate): i for i, o in enumerate(self.tried)}
        rows: list[tuple[Candidate, Outcome | None, str]] = []
        for o in self.tried:
            if self.best is not None and o.candidate == self.best:
                v = "chosen"
            elif o.feasible:
                v = "meets the SLOs; a cheaper or better one was chosen"
            else:
                v = f"misses the SLOs: attainment {o.attainment:.1%} < {attainment:.0%}"
            rows.append((o.candidate, o, v))
        rows += [(c, None, f"pruned: {why}") for c, why in self.skipped
                 if id(c) not in order]
        seq = {id(c): i for i, c in enumerate(self.considered)}
        return sorted(rows, key=lambda r: seq.get(id(r[0]), len(seq)))

    def pareto(self) -> list[Outcome]:
        """Simulated candidates not beaten on both throughput per GPU and p90 TPOT."""
        pts = [o for o in self.tried if o.tpot_p90 is not None]
        front = [o for o in pts if not any(
            q.tokens_per_s_per_gpu >= o.tokens_per_s_per_gpu and q.tpot_p90 <= o.tpot_p90
            and (q.tokens_per_s_per_gpu > o.tokens_per_s_per_gpu or q.tpot_p90 < o.tpot_p90)
            for q in pts)]
        return sorted(front, key=lambda o: o.tpot_p90)


def shapes(model, hw, gpu: str, max_gpus: int, pps: tuple[int, ...] = (1,)) -> list[Stage]:
    """One replica of each TP x PP layout of ``gpu``: TP within a node and dividing the
    attention heads, PP at most the layer count."""
    node = hw[gpu].nvlink_gpus
    return [Stage(gpu, t, 1, pp) for pp in pps for t in (1, 2, 4, 8, 16)
            if t <= node and t * pp <= max_gpus and pp <= model.num_layers
            and (model.attention != "gqa" or model.num_heads % t == 0)]


def candidates(model, hw, gpus: list[str], max_gpus: int, pd: bool,
               pps: tuple[int, ...] = (1,)) -> list[Candidate]:
    """Every co-located (and PD) layout within ``max_gpus``."""
    one = [s for g in gpus for s in shapes(model, hw, g, max_gpus, pps)]

    def n(s: Stage, r: int) -> Stage:
        return Stage(s.gpu, s.tp, r, s.pp)

    out = [Candidate((n(s, r),)) for s in one for r in range(1, max_gpus // s.gpus + 1)]
    if pd:
        for sp, sd in itertools.product(one, repeat=2):
            for rp in range(1, max_gpus // sp.gpus + 1):
                for rd in range(1, (max_gpus - rp * sp.gpus) // sd.gpus + 1):
                    out.append(Candidate((n(sp, rp), n(sd, rd))))
    return out


def with_limits(pool: list[Candidate], limits: tuple[int, ...]) -> list[Candidate]:
    """Each candidate once per batch limit (as is when none are given)."""
    if not limits:
        return pool
    return [Candidate(c.stages, n) for c in pool for n in limits]


def candidate_config(base: RunConfig, c: Candidate) -> RunConfig:
    """The base config with the candidate's deployment (scheduler and router options of
    the base's first cluster carried over)."""
    data = base.model_dump()
    proto = data["deployment"]["clusters"][0]
    names = ["main"] if not c.pd else ["prefill", "decode"]
    sched = dict(proto["scheduler"])
    if c.max_num_seqs is not None:
        sched["max_num_seqs"] = c.max_num_seqs
    clusters = [{**proto, "name": n, "gpu": s.gpu, "tp": s.tp, "pp": s.pp, "replicas": s.replicas,
                 "activation_reserve_gb": proto.get("activation_reserve_gb"), "scheduler": sched}
                for n, s in zip(names, c.stages, strict=True)]
    data["deployment"] = {"workflow": {"name": "pd"} if c.pd else {"name": "colocated"},
                          "clusters": clusters}
    return RunConfig.model_validate(data)


def at_rate(base: RunConfig, rate: float, ttft: float | None, tpot: float | None) -> RunConfig:
    """The base config with Poisson arrivals at ``rate`` req/s and the given SLOs (its
    lengths, from a trace or distributions, are kept)."""
    data = base.model_dump()
    data["workload"]["arrival"] = {"process": "poisson", "rate": rate}
    data["workload"]["closed_loop"] = None
    data["slo"] = {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": None}
    data["output"] = {**data["output"], "trace": False, "requests": False}
    return RunConfig.model_validate(data)


def plan(
    base: RunConfig,
    registry: Any,
    rate: float,
    ttft: float | None,
    tpot: float | None,
    gpus: list[str] | None = None,
    max_gpus: int = 8,
    attainment: float = 0.9,
    objective: str = "gpus",
    prices: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
    pps: tuple[int, ...] = (1,),
    batch_limits: tuple[int, ...] = (),
) -> PlanResult:
    """Search deployments for the cheapest meeting the SLOs; see the module docstring."""
    from frontier_core.assemble import assemble, hardware_table, resolve_model

    if ttft is None and tpot is None:
        raise ConfigError("frontier plan needs an SLO: give --slo-ttft and/or --slo-tpot (s).")
    base = at_rate(base, rate, ttft, tpot)
    model = resolve_model(base, registry)
    hw = hardware_table(base, registry)
    gpus = gpus or [base.deployment.clusters[0].gpu]
    unknown = [g for g in gpus if g not in hw]
    if unknown:
        raise ConfigError(f"--gpus names unknown GPU kinds {unknown}; known: {', '.join(sorted(hw))}.")
    price = {g: (prices or {}).get(g, hw[g].cost_per_hour) for g in gpus}
    if objective == "cost" and not all(price.values()):
        raise ConfigError(
            "--objective cost needs a price for every GPU kind searched; the catalog has none "
            f"for {[g for g, p in price.items() if not p]}: give --price KIND=USD_PER_HOUR.")
    has_pd = "pd" in registry.names("workflow")
    pool = with_limits(candidates(model, hw, gpus, max_gpus, has_pd, pps), batch_limits)

    def key(c: Candidate):
        return (c.cost(price) if objective == "cost" else c.gpus, c.gpus, c.pd, c.label())

    pool.sort(key=key)
    probe = _Probe(base, registry, model, hw)
    result = PlanResult(None, None)
    configs: dict[Candidate, RunConfig] = {}
    bound = None  # the cost of the cheapest feasible candidate, once found

    def skip(c: Candidate, why: str) -> None:
        result.pruned[why] = result.pruned.get(why, 0) + 1
        result.skipped.append((c, why))

    for c in pool:
        if bound is not None and key(c)[0] > bound:
            break  # everything left costs more than a feasible deployment
        result.considered.append(c)
        why = probe.prune(c, rate, ttft, tpot, attainment)
        if why:
            skip(c, why)
            continue
        cfg = candidate_config(base, c)
        try:
            sim = assemble(cfg, registry).run()
        except FrontierError:
            skip(c, "does not assemble")
            continue
        o = _outcome(c, sim, attainment)
        result.tried.append(o)
        configs[c] = cfg
        if progress is not None:
            progress(f"{c.label()}: attainment {o.attainment:.1%}")
        if o.feasible and bound is None:
            bound = key(c)[0]
    best = choose(result.tried, lambda c: key(c)[0])
    if best is not None:
        result.best, result.best_config = best.candidate, configs[best.candidate]
    return result


def choose(outcomes: list[Outcome], cost: Callable[[Candidate], float]) -> Outcome | None:
    """The cheapest feasible outcome; among equal costs the highest attainment, then
    the higher throughput per GPU."""
    ok = [o for o in outcomes if o.feasible]
    if not ok:
        return None
    return min(ok, key=lambda o: (cost(o.candidate), -o.attainment, -o.tokens_per_s_per_gpu,
                                  o.candidate.label()))


def _outcome(c: Candidate, sim: Any, target: float) -> Outcome:
    from frontier_core.app.metrics import summarize

    s = summarize(sim)
    att = s["slo"]["attainment"]
    return Outcome(c, att, s["latency_s"]["ttft_s"]["p90"], s["latency_s"]["tpot_s"]["p90"],
                   s["throughput"]["output_tokens_per_s_per_gpu"], att >= target)


class _Probe:
    """The cheap bounds, with per-shape caches (an ExecutionPredictor per GPU and TP)."""

    def __init__(self, base: RunConfig, registry: Any, model, hw) -> None:
        from frontier_core.workload import build_workload

        self.base, self.registry, self.model, self.hw = base, registry, model, hw
        wl = build_workload(base.workload, np.random.default_rng(0), base.resolve)
        self.prompt_mean = float(wl.prompt_len.mean())
        self.output_mean = float(wl.output_len.mean())
        self.prompt_median = int(np.median(wl.prompt_len))
        self.flops_per_token = 2.0 * model.active_param_count()
        self._fit: dict[tuple[str, int, int], bool] = {}
        self._times: dict[tuple[str, int, int], tuple[float, float]] = {}

    def prune(self, c: Candidate, rate: float, ttft, tpot, attainment: float) -> str | None:
        for s in c.stages:
            if not self._fits(s):
                return "memory"
        need = rate * self.flops_per_token
        if c.pd:
            p, d = c.stages
            if (need * self.prompt_mean > self._peak(p)
                    or need * self.output_mean > self._peak(d)):
                return "compute bound"
        elif need * (self.prompt_mean + self.output_mean) > self._peak(c.stages[0]):
            return "compute bound"
        if attainment > 0.5:
            pre, dec = self._alone(c.stages[0])
            if c.pd:
                dec = self._alone(c.stages[1])[1]
            if (ttft is not None and pre > ttft) or (tpot is not None and dec > tpot):
                return "latency bound"
        return None

    def _peak(self, s: Stage) -> float:
        h = self.hw[s.gpu]
        return s.gpus * h.peak_flops(self.model.weight_dtype)

    def _cluster_cfg(self, s: Stage) -> RunConfig:
        return candidate_config(self.base, Candidate((Stage(s.gpu, s.tp, 1, s.pp),)))

    def _fits(self, s: Stage) -> bool:
        key = (s.gpu, s.tp, s.pp)
        if key not in self._fit:
            from frontier_core.assemble import _plan_memory

            cc = self._cluster_cfg(s).deployment.clusters[0]
            try:
                _plan_memory(self.model, cc, self.hw[s.gpu], "plan")
                self._fit[key] = True
            except ConfigError:
                self._fit[key] = False
        return self._fit[key]

    def _alone(self, s: Stage) -> tuple[float, float]:
        """Seconds to prefill the median prompt alone, and one decode step of one request."""
        key = (s.gpu, s.tp, s.pp)
        if key not in self._times:
            from frontier_core.assemble import assemble
            from frontier_core.records import Batch, Request

            ex = next(iter(assemble(self._cluster_cfg(s), self.registry).executors.values()))
            r = Request(0, 0.0, self.prompt_median, 2)
            r.prefill_target = self.prompt_median
            pre = ex.iteration(Batch([r], [self.prompt_median], [])).latency
            r.computed = self.prompt_median
            dec = ex.iteration(Batch([], [], [r])).latency
            self._times[key] = (pre, dec)
        return self._times[key]


def exhaustive(base: RunConfig, registry: Any, rate: float, ttft, tpot, gpus: list[str],
               max_gpus: int, attainment: float = 0.9, pps: tuple[int, ...] = (1,),
               batch_limits: tuple[int, ...] = ()) -> Iterator[Outcome]:
    """Simulate every candidate (no bounds, no early stop): the reference for tests."""
    from frontier_core.assemble import assemble, hardware_table, resolve_model

    base = at_rate(base, rate, ttft, tpot)
    model = resolve_model(base, registry)
    hw = hardware_table(base, registry)
    pd = "pd" in registry.names("workflow")
    for c in with_limits(candidates(model, hw, gpus, max_gpus, pd, pps), batch_limits):
        try:
            sim = assemble(candidate_config(base, c), registry).run()
        except FrontierError:
            continue
        yield _outcome(c, sim, attainment)

