"""How much slower is a MoE layer under power-law routing than under balanced routing:
measured by NVIDIA AIConfigurator versus predicted by frontier-moe-ep + the roofline.

Data: AIConfigurator's measured operator database (``aiconfigurator-core``, Apache-2.0),
``systems/data/<system>/moe/<backend>/<version>/moe_perf.parquet`` (the version AIC serves
by default, as ``frontier predictors import aic`` picks it). Every shape (kernel, dtype,
hidden, inter, experts, top_k, moe_tp, moe_ep) is measured at the same ``num_tokens`` under
``balanced``, ``power_law_1.01`` and ``power_law_1.2``; the measured ratio is
``latency(power_law_<alpha>) / latency(balanced)`` of one kernel at one shape.

What AIC's num_tokens and latency mean (read from its collectors, collector/helper.py and
collector/<backend>/collect_moe.py, and from the SDK's ``MoE.query``):

* ``num_tokens`` is the TOTAL number of tokens entering the MoE layer of the EP group (AIC's
  SDK queries the table at per-rank tokens x attention_dp_size), routed over all
  ``num_experts``. One GPU holds EP rank 0's ``num_experts // moe_ep`` experts, each sharded
  to ``inter_size // moe_tp``, and runs the fused-MoE kernel of that rank only. Frontier's
  MoE block uses the same convention: ``routing.draw(T)`` with T the micro-batch's tokens
  over all DP ranks, and ``num_tokens = T`` in the ``moe_experts`` call of each EP rank.
* Power law: the generator (``power_law_logits_v3`` -> ``_generate_power_law_distribution``)
  draws ONE load per expert, i.i.d. from a truncated continuous power law, pdf ~ x^-alpha on
  [1, 0.8*num_tokens] (or on [0.01, 2] when num_tokens*top_k <= num_experts), scales the
  loads to num_tokens*top_k, rounds, clamps each expert at num_tokens (round-robin over EP
  ranks, giving the overflow to each rank's least-loaded expert), fixes the rounding
  remainder the same way, and then SWAPS the EP rank with the largest total load into
  rank 0 — the measured rank is always the hottest one. Latency is the mean over 5 (older
  collectors: 10) fresh draws. Balanced: token i takes experts (i + j*ceil(E/k)) mod E, an
  even spread over experts and EP ranks (rank 0 measured).
* Frontier (``ExpertRouting``): p_e ~ rank^-alpha (a Zipf law over the expert ranks, not a
  density), experts in a random order per layer (fixed for the run), per iteration a
  multinomial of tokens*top_k assignments, each expert capped at ``tokens`` (the excess is
  dropped, not re-routed). The same alpha therefore means a different skew: AIC's depends on
  num_tokens (the support grows with it) and Frontier's does not.

Frontier's ratio, per (shape, ep, alpha, num_tokens): ``ExpertRouting`` with ``layers``
layers (default 64) and ``np.random.default_rng(seed)``, ``build_placement("contiguous")``,
per layer the slot tokens of every EP rank, the roofline time of each rank's ``moe_experts``
call (built as ``MoEBlock._expert_time`` builds it: tokens_per_expert = ceil(slot tokens),
inter_size_local = inter // moe_tp, num_local_experts = experts // moe_ep), the max over
ranks, averaged over layers; the same for ``balanced``; the ratio of the two. The max is
exact: a rank's roofline time only grows with its assignments and busy experts, so only
ranks on that Pareto front are predicted.

Columns: ``meas`` measured ratio; ``front`` Frontier's ratio; ``fr_ab`` Frontier's
power-law time over the roofline of AIC's balanced assignment (max over ranks) — it
isolates Frontier's balanced baseline; ``aic_rl`` AIC's own generator (a numpy replica,
``--draws`` draws, rank 0 after the swap) through the same roofline, over AIC's balanced
rank 0 — it isolates the roofline from the routing model; ``imb_fr`` / ``imb_aic``
assignments on the hottest rank over the mean (tokens*top_k/ep), Frontier / AIC replica.
vLLM measures moe_ep > 1 only with moe_tp = 1; SGLang/TRT-LLM also combine both.
Caveat: the measured rank still processes all num_tokens rows (routing metadata, the
permute/un-permute and the outputs of non-local assignments), work the per-rank roofline
leaves out; at high EP and large num_tokens it dominates the measured latency, which
flattens the measured ratio towards 1.

    python benchmarks/validate_moe.py [--system h100_sxm] [--backend vllm] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from frontier_moe_ep.placement import build_placement
from frontier_moe_ep.routing import ExpertRouting, parse_routing
from frontier_predictors.importers import AIC_DEVICES, _AicSource, aic_data_root

from frontier_core import RooflineOptions, RooflinePredictor
from frontier_core.builtin.hardware import HARDWARE
from frontier_core.records import OpCall

# AIC moe_dtype -> the roofline's dtype (fp8_block: fp8 weights/activations, block scales).
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_block": "fp8"}
DEFAULT_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)


# ---- AIC's routing generators (numpy replicas of collector/helper.py) ------------------
def _fill(c: np.ndarray, units: int, cap: int) -> np.ndarray:
    """``units`` times +1 on the smallest entry below ``cap`` (AIC's argmin stepping); the
    multiset it leaves is exact (which of equal entries is raised does not matter here)."""
    free = c < cap
    v = c[free]
    if units == 1:
        v[np.argmin(v)] += 1
    else:
        lo, hi = int(v.min()), cap
        while lo < hi:  # the highest level L with need(L) <= units
            mid = (lo + hi + 1) // 2
            if int(np.clip(mid - v, 0, None).sum()) <= units:
                lo = mid
            else:
                hi = mid - 1
        v = np.maximum(v, lo)
        rest = units - int(np.clip(lo - c[free], 0, None).sum())
        if rest:
            v[np.flatnonzero(v == lo)[:rest]] += 1
    out = c.copy()
    out[free] = v
    return out


def _round_robin(c2d: np.ndarray, remaining: int, cap: int) -> np.ndarray:
    """AIC's ``_round_robin_adjust_per_rank``: one unit per rank per pass, ranks in order."""
    c2d = c2d.copy()
    while remaining > 0:
        room = np.clip(cap - c2d, 0, None).sum(axis=1)
        valid = np.flatnonzero(room > 0)
        if not len(valid):
            break
        full = min(remaining // len(valid), int(room[valid].min()))
        if full == 0:  # a last partial pass: +1 on the smallest free expert of each rank
            rows = valid[:remaining]
            sub = c2d[rows]
            col = np.argmin(np.where(sub < cap, sub, np.iinfo(np.int64).max), axis=1)
            c2d[rows, col] += 1
            break
        for r in valid:
            c2d[r] = _fill(c2d[r], full, cap)
        remaining -= full * len(valid)
    return c2d


def aic_power_law(t: int, e: int, k: int, ep: int, alpha: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Tokens per expert, (ep, e // ep), hottest rank first (``_generate_power_law_distribution``)."""
    xmin, xmax = (1.0, t * 0.8) if t * k > e else (0.01, 2.0)
    u = rng.random(e)
    a = 1.0 - alpha
    x = ((xmax ** a - xmin ** a) * u + xmin ** a) ** (1.0 / a)
    target = t * k
    c = np.round(x / x.sum() * target).astype(np.int64)
    overflow = int(np.clip(c - t, 0, None).sum())
    c2 = np.minimum(c, t).reshape(ep, e // ep)
    if overflow:
        c2 = _round_robin(c2, overflow, t)
    delta = target - int(c2.sum())
    if delta > 0:
        c2 = _round_robin(c2, delta, t)
    elif delta < 0:  # take from each rank's largest expert: the mirror image of _fill
        c2 = -_round_robin(-c2, -delta, 0)
    hot = int(np.argmax(c2.sum(axis=1)))
    c2[[0, hot]] = c2[[hot, 0]]
    return c2


def aic_balanced(t: int, e: int, k: int, ep: int) -> np.ndarray:
    """Tokens per expert, (ep, e // ep), of AIC's ``balanced_logits``."""
    stride = math.ceil(e / k)
    i = np.arange(t, dtype=np.float64)[:, None]
    j = np.arange(k, dtype=np.float64)[None, :]
    if t >= stride:
        sel = (i + j * stride) % e
    else:
        sel = np.floor((i * stride / t + j * stride) % e)
    return np.bincount(sel.astype(np.int64).ravel(), minlength=e).reshape(ep, e // ep)


# ---- the roofline over EP ranks ---------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    h: int
    inter: int
    e: int
    k: int
    tp: int
    ep: int
    dtype: str  # the roofline's

    @property
    def inter_local(self) -> int:
        return self.inter // self.tp


class Ranks:
    """Per-layer rank loads of one routing draw, reduced to what the max needs: the
    (assignments, busy experts) pairs on each layer's Pareto front, plus the two ranks the
    MoE block itself predicts (most tokens, most busy experts)."""

    def __init__(self, slot_tok: np.ndarray) -> None:  # (layers, ep, per_rank)
        a = slot_tok.sum(axis=2)
        busy = np.count_nonzero(slot_tok > 0, axis=2)
        act = np.count_nonzero(np.ceil(slot_tok), axis=2)
        # Pareto front per layer: sorted by assignments (then busy experts) descending, a
        # rank stays when it has more busy experts than every rank before it.
        order = np.lexsort((-act, -a))
        s_act = np.take_along_axis(act, order, axis=1)
        before = np.maximum.accumulate(s_act, axis=1)
        front = np.ones_like(s_act, dtype=bool)
        front[:, 1:] = s_act[:, 1:] > before[:, :-1]
        keep = np.zeros_like(front)
        np.put_along_axis(keep, order, front, axis=1)
        layers = np.arange(len(a))
        self.r1, self.r2 = np.argmax(a, axis=1), np.argmax(busy, axis=1)
        keep[layers, self.r1] = keep[layers, self.r2] = True
        keep[:, 0] = True  # AIC measures rank 0
        li, ri = np.nonzero(keep)
        pairs = np.stack([a[li, ri], act[li, ri]], axis=1)
        uniq, first, inv = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        self.pairs = uniq
        self.tpe = [np.ceil(slot_tok[li[f], ri[f]]).astype(np.int64) for f in first]
        self.pos = np.full(a.shape, -1)
        self.pos[li, ri] = inv.ravel()
        mean = a.sum(axis=1) / a.shape[1]
        self.imbalance = float((a.max(axis=1) / np.maximum(mean, 1e-12)).mean())


class Model:
    def __init__(self, device: str, layers: int, seed: int, draws: int) -> None:
        hw = {h.name: h for h in HARDWARE}[device]
        self.rl = RooflinePredictor(RooflineOptions(), hw)
        self.layers, self.seed, self.draws = layers, seed, draws
        self._ranks: dict[tuple, Ranks] = {}
        self._times: dict[tuple, np.ndarray] = {}
        self._aic: dict[tuple, Ranks] = {}
        self._memo: dict[tuple, float] = {}

    def frontier_ranks(self, spec: str, e: int, k: int, ep: int, t: int) -> Ranks:
        key = (spec, e, k, ep, t)
        hit = self._ranks.get(key)
        if hit is None:
            # As the block does: the placement is built from the routing's expected
            # shares, and balanced routing's leftovers go to one expert per rank in turn.
            routing = ExpertRouting(parse_routing(spec), e, k, self.layers,
                                    np.random.default_rng(self.seed))
            placement = build_placement("contiguous", routing.p, ep)
            routing.spread_over(placement.rank_interleaved())
            hit = self._ranks[key] = Ranks(placement.slot_tokens(routing.draw(t)))
        return hit

    def aic_ranks(self, alpha: float | None, e: int, k: int, ep: int, t: int) -> Ranks:
        """AIC's assignment as (draws or 1) pseudo-layers of ep ranks; rank 0 is measured."""
        key = (alpha, e, k, ep, t)
        hit = self._aic.get(key)
        if hit is None:
            if alpha is None:
                loads = aic_balanced(t, e, k, ep)[None]
            else:
                rng = np.random.default_rng(self.seed)
                loads = np.stack([aic_power_law(t, e, k, ep, alpha, rng)
                                  for _ in range(self.draws)])
            hit = self._aic[key] = Ranks(loads.astype(float))
        return hit

    def _time(self, s: Shape, t: int, spec: str, ranks: Ranks) -> np.ndarray:
        """Roofline seconds of each unique (assignments, busy) pair of ``ranks``."""
        done = self._times.get((s, id(ranks)))
        if done is not None:
            return done
        out = self._times[(s, id(ranks))] = np.empty(len(ranks.pairs))
        for u, (assigned, active) in enumerate(ranks.pairs):
            key = (s.h, s.inter_local, s.e // s.ep, s.dtype, assigned, active)
            hit = self._memo.get(key)
            if hit is None:
                if assigned <= 0:
                    hit = 0.0
                else:  # as MoEBlock._expert_time builds it
                    call = OpCall("moe_experts", "moe_experts", s.dtype, m=t, extra={
                        "num_tokens": t, "hidden_size": s.h, "inter_size": s.inter,
                        "num_experts": s.e, "top_k": s.k, "ep_size": s.ep, "tp_size": s.tp,
                        "routing": spec, "tokens_per_expert": ranks.tpe[u],
                        "inter_size_local": s.inter_local, "num_local_experts": s.e // s.ep,
                        "assignments": float(assigned),
                    })
                    hit = float(self.rl.predict(call))
                self._memo[key] = hit
            out[u] = hit
        return out

    def layer_max(self, s: Shape, t: int, spec: str, ranks: Ranks) -> tuple[float, float]:
        """(exact max over ranks, the block's two-rank shortcut), averaged over layers."""
        tu = self._time(s, t, spec, ranks)
        per = np.where(ranks.pos >= 0, tu[ranks.pos], 0.0)
        layers = np.arange(len(per))
        short = np.maximum(per[layers, ranks.r1], per[layers, ranks.r2])
        return float(per.max(axis=1).mean()), float(short.mean())

    def rank0(self, s: Shape, t: int, spec: str, ranks: Ranks) -> float:
        tu = self._time(s, t, spec, ranks)
        return float(tu[ranks.pos[:, 0]].mean())


# ---- data --------------------------------------------------------------------------------
def load(system: str, backend: str, version: str | None) -> tuple[pd.DataFrame, str]:
    src = _AicSource(aic_data_root(), system, backend, version)
    hit = src.find("moe", "moe_perf", version=version)
    if hit is None:
        sys.exit(f"no moe_perf table for {system}/{backend} {version or ''}")
    path, v = hit
    df = pd.read_parquet(path)
    return df, f"{path.relative_to(src.root)} (version {v})"


def pick_tokens(available: list[int], spec: str) -> list[int]:
    if spec == "all":
        return available
    want = [int(x) for x in spec.split(",")] if spec else list(DEFAULT_TOKENS)
    return [t for t in available if t in want]


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def rows_for(df: pd.DataFrame, model: Model, tokens_spec: str, eps: set[int] | None,
             kernel: str | None, shape: str | None) -> list[dict]:
    df = df[df["moe_dtype"].isin(DTYPES.keys())]
    if shape:
        h, i, e, k = (int(x) for x in shape.split(","))
        df = df[(df["hidden_size"] == h) & (df["inter_size"] == i) & (df["num_experts"] == e)
                & (df["topk"] == k)]
    if kernel:
        df = df[df["kernel_source"].str.contains(kernel)]
    if eps:
        df = df[df["moe_ep_size"].isin(eps)]
    group = ["kernel_source", "moe_dtype", "hidden_size", "inter_size", "num_experts", "topk",
             "moe_tp_size", "moe_ep_size"]
    lat = df.groupby(group + ["num_tokens", "distribution"])["latency"].median()
    tokens = pick_tokens(sorted(df["num_tokens"].unique().tolist()), tokens_spec)
    out = []
    for key, sub in lat.groupby(level=list(range(len(group)))):
        kern, dt, h, i, e, k, tp, ep = key
        if e % ep or i % tp:
            continue
        s = Shape(int(h), int(i), int(e), int(k), int(tp), int(ep), DTYPES[dt])
        m = sub.droplevel(list(range(len(group)))).unstack("distribution").to_dict()
        bal_lat = m.get("balanced", {})
        for alpha_name in sorted(c for c in m if c.startswith("power_law_")):
            alpha = float(alpha_name.removeprefix("power_law_"))
            spec = f"power_law:{alpha:g}"
            for t in tokens:
                lat_b, lat_p = bal_lat.get(t, math.nan), m[alpha_name].get(t, math.nan)
                if not (lat_b > 0 and lat_p > 0):
                    continue
                meas = float(lat_p / lat_b)
                r_pl = model.frontier_ranks(spec, s.e, s.k, s.ep, t)
                r_bal = model.frontier_ranks("balanced", s.e, s.k, s.ep, t)
                pl, pl_short = model.layer_max(s, t, spec, r_pl)
                bal, bal_short = model.layer_max(s, t, "balanced", r_bal)
                a_pl = model.aic_ranks(alpha, s.e, s.k, s.ep, t)
                a_bal = model.aic_ranks(None, s.e, s.k, s.ep, t)
                ab_max, _ = model.layer_max(s, t, "balanced", a_bal)
                out.append({
                    "kernel": kern, "dtype": dt, "hidden": s.h, "inter": s.inter,
                    "experts": s.e, "top_k": s.k, "tp": s.tp, "ep": s.ep, "alpha": alpha,
                    "num_tokens": t, "measured": meas, "frontier": pl / bal,
                    "frontier_vs_aic_balanced": pl / ab_max,
                    "aic_generator_roofline": model.rank0(s, t, spec, a_pl)
                    / model.rank0(s, t, "balanced", a_bal),
                    "imbalance_frontier": r_pl.imbalance, "imbalance_aic": a_pl.imbalance,
                    "shortcut_underestimate": max(1 - pl_short / pl, 1 - bal_short / bal),
                    "balanced_s": float(lat_b) * 1e-3,
                })
    return out


# ---- output ------------------------------------------------------------------------------
COLS = (("kernel", "kernel", 34), ("dtype", "dtype", 9), ("hidden", "h", 5), ("inter", "i", 5),
        ("experts", "E", 3), ("top_k", "k", 2), ("tp", "tp", 2), ("ep", "ep", 3),
        ("alpha", "alpha", 5), ("num_tokens", "T", 5), ("measured", "meas", 5),
        ("frontier", "front", 5), ("frontier_vs_aic_balanced", "fr_ab", 5),
        ("aic_generator_roofline", "aic_rl", 6), ("imbalance_frontier", "imb_fr", 6),
        ("imbalance_aic", "imb_aic", 7))


def fmt(v: object, w: int) -> str:
    if isinstance(v, float):
        return f"{v:>{w}.2f}" if w >= 5 else f"{v:>{w}g}"
    s = str(v)
    return f"{s[-w:]:>{w}}" if isinstance(v, str) else f"{s:>{w}}"


def table(rows: list[dict]) -> str:
    lines = [" ".join(f"{h:>{w}}" for _, h, w in COLS)]
    lines += [" ".join(fmt(r[c], w) for c, _, w in COLS) for r in rows]
    return "\n".join(lines)


def representative(rows: list[dict], max_rows: int) -> list[dict]:
    """One shape group (the one with the most EP degrees, then the most experts), EP at
    its smallest, 8 and largest, num_tokens at 1, 16, 256, 4096 and the largest."""
    if len(rows) <= max_rows:
        return rows
    groups = defaultdict(list)
    for r in rows:
        groups[(r["kernel"], r["dtype"], r["hidden"], r["inter"], r["experts"], r["top_k"],
                r["tp"])].append(r)
    best = max(groups.values(), key=lambda g: (len({r["ep"] for r in g}), g[0]["experts"],
                                                g[0]["dtype"] == "bfloat16", g[0]["hidden"]))
    eps = sorted({r["ep"] for r in best})
    want_ep = {eps[0], eps[-1]} | ({8} & set(eps))
    ts = sorted({r["num_tokens"] for r in best})
    want_t = {ts[0], ts[-1]} | ({16, 256, 4096} & set(ts))
    sel = [r for r in best if r["ep"] in want_ep and r["num_tokens"] in want_t]
    return sorted(sel, key=lambda r: (r["ep"], r["alpha"], r["num_tokens"]))[:max_rows]


def summary(rows: list[dict], by: str) -> str:
    groups = defaultdict(list)
    for r in rows:
        if by == "tokens":
            t = r["num_tokens"]
            b = "T<=16" if t <= 16 else ("T>=4096" if t >= 4096 else "16<T<4096")
            key = (f"alpha {r['alpha']:g}", b)
        else:
            key = (f"ep {r['ep']:>3}", "")
        groups[key].append(r)
    head = (f"{'group':>24} {'n':>5} {'meas':>5} {'front':>5} |d|med |d|p90 "
            f"{'fr_ab':>5} {'aic_rl':>6} |d_rl|med")
    lines = [head]
    for key in sorted(groups, key=lambda x: (x[0], ["T<=16", "16<T<4096", "T>=4096", ""]
                                             .index(x[1]))):
        g = groups[key]
        d = [abs(r["frontier"] - r["measured"]) for r in g]
        drl = [abs(r["aic_generator_roofline"] - r["measured"]) for r in g]
        med = statistics.median
        lines.append(
            f"{' '.join(key):>24} {len(g):>5} {med(r['measured'] for r in g):>5.2f} "
            f"{med(r['frontier'] for r in g):>5.2f} {med(d):>5.2f} {percentile(d, 90):>5.2f} "
            f"{med(r['frontier_vs_aic_balanced'] for r in g):>5.2f} "
            f"{med(r['aic_generator_roofline'] for r in g):>6.2f} {med(drl):>9.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", default="h100_sxm", help="AIC system (h100_sxm, h200_sxm...)")
    ap.add_argument("--backend", default="vllm", help="vllm, sglang or trtllm")
    ap.add_argument("--version", default=None, help="backend version (default: AIC's current)")
    ap.add_argument("--tokens", default="", help="comma list of num_tokens, or 'all' "
                    f"(default {','.join(map(str, DEFAULT_TOKENS))}, those measured)")
    ap.add_argument("--ep", default="", help="comma list of EP degrees (default: all)")
    ap.add_argument("--kernel", default=None, help="substring of kernel_source to keep")
    ap.add_argument("--shape", default=None, help="HIDDEN,INTER,EXPERTS,TOP_K to keep only it")
    ap.add_argument("--layers", type=int, default=64, help="Frontier routing layers (draws)")
    ap.add_argument("--draws", type=int, default=8, help="draws of the AIC generator replica")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rows", type=int, default=40,
                    help="detail rows printed (a representative shape); 0: all")
    ap.add_argument("--json", type=Path, default=None, help="write every row here")
    a = ap.parse_args()
    started = time.perf_counter()
    df, where = load(a.system, a.backend, a.version)
    device = AIC_DEVICES.get(a.system, a.system.replace("_", "-"))
    model = Model(device, a.layers, a.seed, a.draws)
    eps = {int(x) for x in a.ep.split(",")} if a.ep else None
    rows = rows_for(df, model, a.tokens, eps, a.kernel, a.shape)
    if not rows:
        sys.exit("no (balanced, power_law) pairs left after the filters")
    d = [abs(r["frontier"] - r["measured"]) for r in rows]
    d_ab = [abs(r["frontier_vs_aic_balanced"] - r["measured"]) for r in rows]
    d_rl = [abs(r["aic_generator_roofline"] - r["measured"]) for r in rows]
    short = max(r["shortcut_underestimate"] for r in rows)
    shown = rows if a.max_rows == 0 else representative(rows, a.max_rows)
    print(f"AIC {where}; roofline device {device}; {len(rows)} (shape, ep, alpha, num_tokens) "
          f"rows; {len({(r['kernel'], r['dtype']) for r in rows})} kernel/dtype pairs")
    print(f"\nRows ({len(shown)} of {len(rows)}):")
    print(table(shown))
    print("\nBy alpha and num_tokens (medians; |d| = |front - meas|, |d_rl| = "
          "|aic_rl - meas|):")
    print(summary(rows, "tokens"))
    print("\nBy EP degree:")
    print(summary(rows, "ep"))
    print(f"\n|frontier - measured|:            median {statistics.median(d):.3f}  "
          f"p90 {percentile(d, 90):.3f}")
    print(f"|frontier_vs_aic_balanced - meas|: median {statistics.median(d_ab):.3f}  "
          f"p90 {percentile(d_ab, 90):.3f}")
    print(f"|aic_generator_roofline - meas|:   median {statistics.median(d_rl):.3f}  "
          f"p90 {percentile(d_rl, 90):.3f}")
    print(f"MoEBlock's two-rank shortcut vs the exact max over ranks: at most "
          f"{100 * short:.2f}% lower")
    print(f"({time.perf_counter() - started:.1f} s)")
    if a.json:
        a.json.write_text(json.dumps({"source": where, "device": device, "rows": rows},
                                     indent=1))


if __name__ == "__main__":
    main()
