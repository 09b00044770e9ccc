"""Seeded draws of a workload: arrival times (Poisson, gamma, fixed gaps) and token lengths
(fixed, uniform, lognormal, Zipf, empirical), and the ``Workload`` record they fill."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontier_core.config import (
    ArrivalConfig,
    ClosedLoopConfig,
    EmpiricalLength,
    FixedLength,
    LengthDist,
    LognormalLength,
    UniformLength,
    ZipfLength,
)
from frontier_core.errors import ConfigError
from frontier_core.workload.traces import empirical_column


@dataclass
class Workload:
    """The requests of one run, in arrival order.

    ``prompt_len`` and ``output_len`` are int64 token counts, each >= 1. ``arrival`` is
    float64 seconds, non-decreasing; the first request arrives at 0 (traces are rebased to
    their first replayed row), or ``arrival`` is None for a closed loop, whose clients
    are described by ``closed_loop``. ``source`` is a one-line description for reports.
    """

    prompt_len: np.ndarray
    output_len: np.ndarray
    arrival: np.ndarray | None
    closed_loop: ClosedLoopConfig | None
    source: str
    warmup: int = 0  # the first ``warmup`` requests are not measured
    # Per request: content hashes of its prompt's blocks of ``prefix_block`` tokens.
    prefix: list[tuple[int, ...]] | None = None
    prefix_block: int = 0
    # Per request, tokens its hashes describe (int64; None: each request's prompt).
    prefix_tokens: np.ndarray | None = None
    # Multi-turn conversations (None: independent requests), per request: conversation
    # id (int64, numbered by first request), turn (int64, 0-based, in request order) and
    # seconds to wait after the previous turn completes (float64). A turn after the
    # first is sent at max(arrival, previous turn's completion + think_s); see
    # frontier_core/workload/conversations.py.
    conversation: np.ndarray | None = None
    turn: np.ndarray | None = None
    think_s: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompt_len)


def _gaps(acfg: ArrivalConfig, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` inter-arrival gaps in seconds."""
    if acfg.process == "poisson":
        return rng.exponential(1.0 / acfg.rate, size)
    if acfg.process == "gamma":
        cv2 = acfg.cv * acfg.cv
        return rng.gamma(1.0 / cv2, cv2 / acfg.rate, size)
    return np.full(size, 1.0 / acfg.rate)


def synthetic_arrivals(
    acfg: ArrivalConfig, n: int | None, duration_s: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times in seconds, the first at 0: exactly ``n`` of them when ``n`` is given,
    else as many as fall within ``duration_s``; either way none after ``duration_s``."""
    if acfg.process == "fixed":
        # Exact multiples of the interval rather than a cumulative sum of rounded gaps.
        count = n if n is not None else math.floor((duration_s or 0.0) * acfg.rate) + 1
        arrival = np.arange(count, dtype=np.float64) / acfg.rate
    elif n is not None:
        arrival = np.concatenate(([0.0], np.cumsum(_gaps(acfg, n - 1, rng))))
    else:
        # NOTE: perf — draw gaps in vectorised chunks of ~1.1x the expected count.
        assert duration_s is not None
        chunk = max(256, int(acfg.rate * duration_s * 1.1) + 16)
        parts = [np.zeros(1)]
        while parts[-1][-1] <= duration_s:
            parts.append(parts[-1][-1] + np.cumsum(_gaps(acfg, chunk, rng)))
        arrival = np.concatenate(parts)
    if duration_s is not None:
        arrival = arrival[arrival <= duration_s]
    return arrival


def lengths(
    dist: LengthDist | None,
    column: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
    resolve: Callable[[str], Path],
    field: str,
) -> np.ndarray:
    """``n`` lengths in tokens (int64): drawn from ``dist`` when given, else the trace column."""
    if dist is None:
        assert column is not None  # the config validator requires a trace or both dists
        return column[:n]
    if isinstance(dist, FixedLength):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, UniformLength):
        return rng.integers(dist.low, dist.high, size=n, endpoint=True, dtype=np.int64)
    if isinstance(dist, LognormalLength | ZipfLength) and dist.min > dist.max:
        raise ConfigError(
            f"workload.{field}: min={dist.min} exceeds max={dist.max}; make min <= max"
        )
    if isinstance(dist, LognormalLength):
        x = rng.lognormal(math.log(dist.median), dist.sigma, n)
        return np.clip(np.rint(x), dist.min, dist.max).astype(np.int64)
    if isinstance(dist, ZipfLength):
        # Cap before scaling: zipf draws are unbounded and could overflow int64 when scaled.
        z = np.minimum(rng.zipf(dist.alpha, n), dist.max // dist.scale + 1) * dist.scale
        return np.clip(z, dist.min, dist.max).astype(np.int64)
    assert isinstance(dist, EmpiricalLength)
    values = empirical_column(dist, resolve, field)
    return values[rng.integers(0, len(values), size=n)]

