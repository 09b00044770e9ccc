"""Routing distributions: how many of an iteration's tokens each expert receives.

A spec is a short string, the same vocabulary as the profile tables' ``routing``
column: ``balanced``, ``uniform``, ``power_law:<alpha>``, ``zipf:<alpha>``,
``hot:<fraction>:<share>`` or ``replay:<file.csv>``. Draws are per layer and
per iteration from the run's seeded generator, vectorised over layers.

``power_law:<alpha>`` is NVIDIA AIConfigurator's generator (the one its
measured ``power_law_<alpha>`` MoE tables use, and where the published alphas
— 1.01 for DeepSeek-V3, 1.2 for Qwen3-235B — come from): every expert's load is
drawn from a continuous density proportional to x^-alpha on [1, 0.8·tokens]
(on [0.01, 2] when tokens·top_k ≤ experts) and the loads are scaled to the
tokens·top_k assignments, so the skew grows with the number of tokens. Here
the loads are drawn afresh per layer and iteration but handed out in a fixed
per-layer order of experts, so a layer's hot experts stay hot (what expert
load balancing relies on). ``zipf:<alpha>`` is a fixed skew instead: expert
shares proportional to rank^-alpha, and a multinomial draw of the assignments.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMS = ("balanced, uniform, power_law:<alpha>, zipf:<alpha>, hot:<fraction>:<share>, "
         "replay:<file.csv>")
# Tokens per layer at which power_law's expected shares (used by EPLB placement) are taken.
REFERENCE_TOKENS = 2048


@dataclass(frozen=True)
class RoutingSpec:
    kind: str
    alpha: float = 0.0
    hot_fraction: float = 0.0
    hot_share: float = 0.0
    path: str = ""

    def __str__(self) -> str:
        if self.kind in ("power_law", "zipf"):
            return f"{self.kind}:{self.alpha:g}"
        if self.kind == "hot":
            return f"hot:{self.hot_fraction:g}:{self.hot_share:g}"
        if self.kind == "replay":
            return f"replay:{self.path}"
        return self.kind


def parse_routing(text: str) -> RoutingSpec:
    """A ``RoutingSpec`` from its string form; ValueError saying what is wrong."""
    kind, _, rest = text.strip().partition(":")
    try:
        if kind in ("balanced", "uniform") and not rest:
            return RoutingSpec(kind)
        if kind in ("power_law", "zipf"):
            alpha = float(rest)
            if not alpha > 0 or (kind == "power_law" and alpha == 1.0):
                raise ValueError
            return RoutingSpec(kind, alpha=alpha)
        if kind == "hot":
            f, s = (float(x) for x in rest.split(":"))
            if not (0 < f < 1 and 0 < s < 1):
                raise ValueError
            return RoutingSpec(kind, hot_fraction=f, hot_share=s)
        if kind == "replay" and rest:
            return RoutingSpec(kind, path=rest)
    except ValueError:
        pass
    raise ValueError(
        f"routing {text!r} is not understood; write one of: {FORMS} (alpha > 0, and not 1 for "
        "power_law; fraction and share between 0 and 1, e.g. hot:0.1:0.5 sends half the "
        "tokens to 10% of the experts)"
    )


def read_loads(path: Path, num_experts: int) -> np.ndarray:
    """Per-layer expert loads from a CSV with columns ``layer``, ``expert`` and ``count``
    (tokens, or any non-negative weight) -> (layers, num_experts) array."""
    rows: dict[int, np.ndarray] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"layer", "expert", "count"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"missing column(s) {sorted(missing)}; it needs layer, expert, count")
            for line, row in enumerate(reader, start=2):
                try:
                    layer, expert, count = int(row["layer"]), int(row["expert"]), float(row["count"])
                except (TypeError, ValueError):
                    raise ValueError(f"line {line}: layer and expert must be integers and count "
                                     "a number") from None
                if not 0 <= expert < num_experts or layer < 0 or count < 0:
                    raise ValueError(f"line {line}: expert must lie in [0, {num_experts}), layer "
                                     "and count must be non-negative")
                rows.setdefault(layer, np.zeros(num_experts))[expert] += count
    except FileNotFoundError:
        raise ValueError("the file does not exist") from None
    if not rows:
        raise ValueError("it has no rows")
    layers = sorted(rows)
    if layers != list(range(len(layers))):
        raise ValueError(f"layers must be numbered 0..n-1 without gaps; found {layers[:8]}...")
    loads = np.stack([rows[i] for i in layers])
    if (loads.sum(axis=1) <= 0).any():
        raise ValueError("every layer needs a positive total count")
    return loads


def power_law_loads(u: np.ndarray, alpha: float, tokens: int, top_k: int) -> np.ndarray:
    """AIConfigurator's expert loads: ``u`` uniform(0, 1) draws mapped through the inverse
    CDF of the density ∝ x^-alpha on [1, 0.8·tokens] ([0.01, 2] when tokens·top_k is at
    most the number of experts, the last axis of ``u``)."""
    lo, hi = (1.0, 0.8 * tokens) if tokens * top_k > u.shape[-1] else (0.01, 2.0)
    hi = max(hi, lo)
    a = 1.0 - alpha
    return ((hi**a - lo**a) * u + lo**a) ** (1.0 / a)


def apportion(shares: np.ndarray, total: int, cap: int) -> np.ndarray:
    """Integer counts (one row per layer) summing to ``total`` in proportion to ``shares``,
    none above ``cap``: what exceeds the cap goes to the other experts in proportion to
    their shares, then largest remainders round (the larger remainder first, the lower
    expert id first among equal ones)."""
    want = shares / shares.sum(axis=1, keepdims=True) * total
    # NOTE: perf — no expert above the cap (the common case) needs no capping pass.
    if want.max(initial=0.0) > cap:
        for _ in range(64):
            over = np.clip(want - cap, 0.0, None).sum(axis=1)
            if not (over > 1e-9).any():
                break
            want = np.minimum(want, cap)
            room = np.where(want < cap, shares, 0.0)
            want += over[:, None] * room / room.sum(axis=1, keepdims=True)
        want = np.minimum(want, cap)
    base = want + 1e-9
    np.floor(base, out=base)
    rest = (total - base.sum(axis=1)).astype(np.int64)
    base += largest(want - base, rest)  # whole numbers: exact in float
    return base.astype(np.int64)


def largest(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A mask of each row's ``n`` (per row) largest entries of ``x``, the lower index first
    among equal ones (what ranking by a stable sort of ``-x`` picks)."""
    rows, width = x.shape
    r = np.minimum(np.maximum(n, 0), width)
    # NOTE: perf — a value sort and a threshold instead of a stable argsort: each row's
    # r-th largest value and everything at least as large; where more entries equal the
    # threshold than are needed, the first of them in index order.
    t = np.sort(x, axis=1)[np.arange(rows), width - np.maximum(r, 1)][:, None]
    pick = x >= t
    extra = np.flatnonzero(pick.sum(axis=1) > r)
    if len(extra):
        xs, ts = x[extra], t[extra]
        tied = xs == ts
        need = r[extra] - (xs > ts).sum(axis=1)
        pick[extra] = (xs > ts) | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
    return pick


def token_experts(p: np.ndarray, top_k: int, n_group: int, topk_group: int, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The experts of ``n`` tokens, (n, top_k) ids, drawn from expected shares ``p`` (one
    layer, length experts) with group-limited gating.

    Each expert's score is its log share plus Gumbel noise, so that the top-k scores pick
    experts in proportion to ``p`` (without replacement). With ``n_group > 1`` the
    experts form ``n_group`` groups of consecutive ids, a group's score is its best
    expert's score, and a token's ``top_k`` experts come from its ``topk_group`` best groups
    only: DeepSeek-V3's gating (its config.json ``n_group``, ``topk_group``), and what
    DeepEP's benchmarks draw with one group per node (tests/legacy/test_internode.py:
    group scores are the maximum over a node's experts)."""
    e = len(p)
    score = np.log(np.maximum(p, 1e-300))[None, :] + rng.gumbel(size=(n, e))
    if 1 < n_group and topk_group < n_group:
        grouped = score.reshape(n, n_group, e // n_group)
        best = np.argpartition(-grouped.max(axis=2), topk_group - 1, axis=1)[:, :topk_group]
        keep = np.zeros((n, n_group), bool)
        np.put_along_axis(keep, best, True, axis=1)
        score = np.where(keep[:, :, None], grouped, -np.inf).reshape(n, e)
    return np.argpartition(-score, top_k - 1, axis=1)[:, :top_k]


class ExpertRouting:
    """Expected shares ``p`` (layers × experts) and per-iteration draws of token counts.

    Skewed distributions give each layer its own random order of hot experts
    (drawn once per run): real models' hot experts differ from layer to layer.
    A replayed file with fewer layers than the model repeats them in order.
    ``power_law``'s expected shares are those at ``REFERENCE_TOKENS`` tokens.
    """

    def __init__(self, spec: RoutingSpec, num_experts: int, top_k: int, layers: int,
                 rng: np.random.Generator, resolve: Callable[[str], Path] | None = None) -> None:
        self.spec = spec
        self.top_k = top_k
        self.rng = rng
        e = num_experts
        # Each layer's experts from hottest to coldest (skewed forms).
        self.order = np.stack([rng.permutation(e) for _ in range(layers)]) if spec.kind in (
            "power_law", "zipf", "hot") else np.tile(np.arange(e), (layers, 1))
        if spec.kind == "replay":
            loads = read_loads((resolve or Path)(spec.path), e)
            p = loads[np.arange(layers) % len(loads)]
        else:
            if spec.kind == "power_law":
                u = np.random.default_rng(0).random((256, e))
                x = -np.sort(-power_law_loads(u, spec.alpha, REFERENCE_TOKENS, top_k), axis=1)
                ranked = (x / x.sum(axis=1, keepdims=True)).mean(axis=0)
            elif spec.kind == "zipf":
                ranked = np.arange(1, e + 1, dtype=float) ** -spec.alpha
            elif spec.kind == "hot":
                n_hot = max(1, round(spec.hot_fraction * e))
                ranked = np.full(e, (1 - spec.hot_share) / max(1, e - n_hot))
                ranked[:n_hot] = spec.hot_share / n_hot
            else:
                ranked = np.ones(e)
            p = np.empty((layers, e))
            np.put_along_axis(p, self.order, np.tile(ranked, (layers, 1)), axis=1)
        self.p = p / p.sum(axis=1, keepdims=True)
        # The shares by position in ``order`` (hottest first): what drift keeps while the
        # experts holding each position change.
        self._ranked = np.take_along_axis(self.p, self.order, axis=1)
        self._balanced: dict[int, np.ndarray] = {}
        # Each expert's position in the order that receives balanced routing's leftover
        # assignments (layers × experts); see ``spread_over``.
        self._leftover_pos = np.tile(np.arange(e), (layers, 1))
        self._flat: np.ndarray | None = None

    def drift(self, share: float) -> None:
        """Move part of every layer's order of hot experts: ``max(2, round(share ×
        experts))`` positions, chosen at random, swap their experts among themselves (a
        random permutation), so the hot set changes gradually from step to step. Drawn
        from the routing's generator (deterministic per seed)."""
        layers, e = self.order.shape
        n = min(e, max(2, round(share * e)))
        # NOTE: perf — one vectorised draw over all layers per drift step.
        pos = np.argsort(self.rng.random((layers, e)), axis=1)[:, :n]
        shuffled = np.take_along_axis(pos, np.argsort(self.rng.random((layers, n)), axis=1),
                                      axis=1)
        moved = np.take_along_axis(self.order, shuffled, axis=1)
        np.put_along_axis(self.order, pos, moved, axis=1)
        self._flat = None
        np.put_along_axis(self.p, self.order, self._ranked, axis=1)

    def _ranked_at(self) -> np.ndarray:
        """Flat (layers × experts) indices, for each expert, of its place in an ascending
        sort of its layer's loads: the hottest expert takes the last (kept until ``order``
        changes)."""
        if self._flat is None:
            layers, e = self.order.shape
            rows = e * np.arange(layers)[:, None]
            flat = np.empty(layers * e, np.intp)
            flat[(self.order + rows).ravel()] = (e - 1 - np.arange(e) + rows).ravel()
            self._flat = flat
        return self._flat

    def spread_over(self, order: np.ndarray) -> None:
        """Give balanced routing's leftover assignments to experts in ``order`` (layers ×
        experts, e.g. one expert of each rank in turn), so they land on different ranks."""
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(order.shape[1])[None, :], axis=1)
        self._leftover_pos = pos
        self._balanced.clear()

    def draw(self, tokens: int) -> np.ndarray:
        """Tokens per expert, (layers × experts) int64, for ``tokens`` tokens entering each
        layer: ``top_k`` assignments per token; an expert receives each token at most once
        (what a capped expert would get goes to the others)."""
        layers, e = self.p.shape
        if tokens <= 0:
            return np.zeros((layers, e), np.int64)
        total = tokens * self.top_k
        if self.spec.kind == "balanced":
            hit = self._balanced.get(tokens)
            if hit is None:
                q, r = divmod(total, e)
                hit = self._balanced[tokens] = q + (self._leftover_pos < r).astype(np.int64)
            return hit
        if self.spec.kind == "power_law":
            x = np.sort(power_law_loads(self.rng.random((layers, e)), self.spec.alpha,
                                        tokens, self.top_k), axis=1)
            # the largest load to each layer's hottest expert, and so on down the order
            shares = x.ravel().take(self._ranked_at()).reshape(layers, e)
            return apportion(shares, total, tokens)
        # NOTE: perf — one multinomial over the top_k·tokens assignments per layer
        # (vectorised over layers) instead of per-token top-k draws.
        counts = self.rng.multinomial(total, self.p)
        for _ in range(16):
            over = np.clip(counts - tokens, 0, None)
            excess = over.sum(axis=1)
            if not excess.any():
                break
            counts -= over
            room = np.where(counts < tokens, self.p, 0.0)
            counts += self.rng.multinomial(excess, room / room.sum(axis=1, keepdims=True))
        return np.minimum(counts, tokens)
