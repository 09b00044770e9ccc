"""Routing distributions: how many of an iteration's tokens each expert receives.

A spec is a short string, the same vocabulary as the profile tables' ``routing``
column: ``balanced``, ``uniform``, ``power_law:<alpha>``,
``hot:<fraction>:<share>`` or ``replay:<file.csv>``. Draws are per layer and
per iteration from the run's seeded generator, vectorised over layers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMS = "balanced, uniform, power_law:<alpha>, hot:<fraction>:<share>, replay:<file.csv>"


@dataclass(frozen=True)
class RoutingSpec:
    kind: str
    alpha: float = 0.0
    hot_fraction: float = 0.0
    hot_share: float = 0.0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "power_law":
            return f"power_law:{self.alpha:g}"
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
        if kind == "power_law":
            alpha = float(rest)
            if not alpha > 0:
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
        f"routing {text!r} is not understood; write one of: {FORMS} (alpha > 0; fraction "
        "and share between 0 and 1, e.g. hot:0.1:0.5 sends half the tokens to 10% of the experts)"
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


class ExpertRouting:
    """Expected shares ``p`` (layers × experts) and per-iteration draws of token counts.

    Skewed distributions give each layer its own random order of hot experts
    (drawn once per run): real models' hot experts differ from layer to layer.
    A replayed file with fewer layers than the model repeats them in order.
    """

    def __init__(self, spec: RoutingSpec, num_experts: int, top_k: int, layers: int,
                 rng: np.random.Generator, resolve: Callable[[str], Path] | None = None) -> None:
        self.spec = spec
        self.top_k = top_k
        self.rng = rng
        e = num_experts
        if spec.kind == "power_law":
            base = np.arange(1, e + 1, dtype=float) ** -spec.alpha
        elif spec.kind == "hot":
            n_hot = max(1, round(spec.hot_fraction * e))
            base = np.full(e, (1 - spec.hot_share) / max(1, e - n_hot))
            base[:n_hot] = spec.hot_share / n_hot
        else:
            base = np.ones(e)
        if spec.kind == "replay":
            loads = read_loads((resolve or Path)(spec.path), e)
            p = loads[np.arange(layers) % len(loads)]
        elif spec.kind in ("power_law", "hot"):
            p = np.stack([base[rng.permutation(e)] for _ in range(layers)])
        else:
            p = np.tile(base, (layers, 1))
        self.p = p / p.sum(axis=1, keepdims=True)
        self._balanced: dict[int, np.ndarray] = {}
        # Each expert's position in the order that receives balanced routing's leftover
        # assignments (layers × experts); see ``spread_over``.
        self._leftover_pos = np.tile(np.arange(e), (layers, 1))

    def spread_over(self, order: np.ndarray) -> None:
        """Give balanced routing's leftover assignments to experts in ``order`` (layers ×
        experts, e.g. one expert of each rank in turn), so they land on different ranks."""
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(order.shape[1])[None, :], axis=1)
        self._leftover_pos = pos
        self._balanced.clear()

    def draw(self, tokens: int) -> np.ndarray:
        """Tokens per expert, (layers × experts) int64, for ``tokens`` tokens entering each
        layer: ``top_k`` assignments per token; an expert receives each token at most once."""
        if tokens <= 0:
            return np.zeros(self.p.shape, np.int64)
        if self.spec.kind == "balanced":
            hit = self._balanced.get(tokens)
            if hit is None:
                q, r = divmod(tokens * self.top_k, self.p.shape[1])
                hit = self._balanced[tokens] = q + (self._leftover_pos < r).astype(np.int64)
            return hit
        # NOTE: perf — one multinomial over the top_k·tokens assignments per layer
        # (vectorised over layers) instead of per-token top-k draws; capping at
        # ``tokens`` keeps an expert from receiving a token twice.
        counts = self.rng.multinomial(tokens * self.top_k, self.p)
        return np.minimum(counts, tokens)
