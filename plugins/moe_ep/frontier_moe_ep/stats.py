"""What the MoE block records during a run, and the pieces of one micro-batch's pricing
that it replays when a batch shape comes again (``MoEBlock.layer_ops``)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from frontier_moe_ep.block import MoEBlock

#: the straggler histogram's bins (a rank's tokens over the mean rank's)
BINS = np.array([0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, np.inf])
_EDGES = BINS[1:-1].tolist()


@dataclass
class Loads:
    """One micro-batch's contribution to the load statistics (``_Stats.apply_loads``)."""

    expert_tokens: np.ndarray
    rank_tokens: np.ndarray
    ratio: float | None  # mean over layers of max/mean rank tokens; None: no tokens
    hist: np.ndarray | None  # counts per bin of every rank's max/mean
    busy_slots: float
    slot_layers: int

    @classmethod
    def of(cls, counts: np.ndarray, slot_tok: np.ndarray, rank_tok: np.ndarray,
           busy: np.ndarray | None = None) -> Loads:
        """The loads of drawn ``counts`` (layers × experts), tokens per slot and per rank;
        ``busy``: slots with tokens per rank, when known."""
        mean = rank_tok.sum(axis=1) / rank_tok.shape[1]  # what .mean(axis=1) computes
        ok = mean > 0
        if ok.all():
            rel = rank_tok / mean[:, None]
        elif ok.any():
            rel = rank_tok[ok] / mean[ok, None]
        else:
            rel = None
        ratio = hist = None
        if rel is not None:
            ratio = float(rel.max(axis=1).mean())
            # NOTE: perf — the histogram from the items at or above each inner bin edge
            # (a few comparisons instead of a binary search per item)
            at_least = [rel.size] + [np.count_nonzero(rel >= b) for b in _EDGES] + [0]
            hist = -np.diff(at_least)
        return cls(counts.sum(axis=0), rank_tok.sum(axis=0), ratio, hist,
                   float(np.count_nonzero(slot_tok > 0) if busy is None else busy.sum()),
                   slot_tok.shape[0] * slot_tok.shape[1] * slot_tok.shape[2])


@dataclass
class TokenPart:
    """What ``layer_ops`` prices from the tokens per rank alone: every operation's
    per-layer seconds but the attention's, the loads, the all-to-all kernel family
    (None: no transfer) and, once memoised, the credits it made in order."""

    ops: dict[str, np.ndarray]
    loads: Loads
    kernel: str | None
    credits: list[tuple[int, float]] = field(default_factory=list)


class CreditTape:
    """Stands in for the predictor's credit list (``credit[i] += x``) and logs each
    addition in order, so that a replay adds the same numbers in the same order."""

    def __init__(self, credit: list[float]) -> None:
        self.credit = credit
        self.log: list[tuple[int, float]] = []

    def __getitem__(self, i: int) -> float:
        return 0.0  # ``credit[i] += x`` then stores exactly x

    def __setitem__(self, i: int, x: float) -> None:
        self.log.append((i, x))
        self.credit[i] += x


class QuietStats:
    """Statistics that record nothing (for passes outside the model's iterations)."""

    def __init__(self) -> None:
        self.kernels = {"normal": 0, "low_latency": 0, "simple": 0, "gather": 0}
    recording = False

    def tracing(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return lambda *a, **k: None


class _Stats:
    """What the block accumulates during a run (plain arrays; analysed afterwards)."""

    BINS = BINS
    recording = True

    def __init__(self, ep: int, experts: int, trace_iterations: int) -> None:
        self.steps = 0
        self.step_s = array("d")
        self.ratio = array("d")  # per step: mean over layers of max/mean rank tokens
        self.phase_s = np.zeros(5)  # other, gate+shared (beyond other), experts, dispatch, combine
        self.rank_tokens = np.zeros(ep)
        self.expert_tokens = np.zeros(experts)
        self.hist = np.zeros(len(self.BINS) - 1, np.int64)
        self.busy_slots = 0.0
        self.slot_layers = 0
        self.trace_left = trace_iterations
        #: layer stacks priced with each all-to-all kernel family
        self.kernels = {"normal": 0, "low_latency": 0, "simple": 0, "gather": 0}
        self.last_kernel = "none"
        self.stall_s = 0.0  # live EPLB: seconds iterations waited for weight moves
        self.last_ratio: float | None = None  # the last iteration's straggler ratio
        self.trace: list[tuple[int, float, float, np.ndarray, np.ndarray, str]] = []
        self._ratios: list[float] = []
        self._rank_busy: list[np.ndarray] = []

    def tracing(self) -> bool:
        return self.trace_left > 0

    def apply_loads(self, d: Loads) -> None:
        """Add one micro-batch's loads."""
        self.expert_tokens += d.expert_tokens
        self.rank_tokens += d.rank_tokens
        if d.ratio is not None:
            self._ratios.append(d.ratio)
            self.hist += d.hist
        self.busy_slots += d.busy_slots
        self.slot_layers += d.slot_layers

    def add_loads(self, counts: np.ndarray, slot_tok: np.ndarray, rank_tok: np.ndarray,
                  busy: np.ndarray | None = None) -> None:
        """One micro-batch's loads; ``busy``: slots with tokens per rank, when known."""
        self.apply_loads(Loads.of(counts, slot_tok, rank_tok, busy))

    def trace_ranks(self, block: MoEBlock, slot_tok: np.ndarray, tokens: int, answer) -> None:
        """Every rank's own expert seconds (summed over layers) for the trace."""
        layers, ep, per_rank = slot_tok.shape
        t, _ = block._expert_times(slot_tok.reshape(layers * ep, per_rank), tokens, answer)
        self._rank_busy.append(t.reshape(layers, ep).sum(axis=0))

    def end_step(self) -> None:
        """Close an iteration's load statistics (called once per iteration)."""
        self.last_ratio = None
        if self._ratios:
            self.last_ratio = sum(self._ratios) / len(self._ratios)
            self.ratio.append(self.last_ratio)
            self._ratios.clear()

    def add_step(self, t: float, a, d, e, c, other: float, replica: int, now: float,
                 trace: bool) -> None:
        self.steps += 1
        self.step_s.append(t)
        self.end_step()
        self.phase_s += (other, float(a.sum()) - other, float(e.sum()), float(d.sum()),
                         float(c.sum()))
        if trace:
            self.trace_left -= 1
            busy = np.sum(self._rank_busy, axis=0)
            self.trace.append((replica, now, t, busy, np.array([d.sum(), c.sum()]),
                               self.last_kernel))
        self._rank_busy.clear()
