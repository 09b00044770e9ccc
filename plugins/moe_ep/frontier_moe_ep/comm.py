"""Dispatch and combine all-to-all of one MoE layer, per EP rank.

Rank ``s`` holds ``src[s]`` of the layer's ``T`` tokens and its experts receive
``load[s]`` of the ``T·k`` (token, expert) assignments. A token's destinations
are assumed independent of where it comes from, so rank s sends
``src[s]·(T·k − load[s]) / T`` token copies to other ranks and receives
``load[s]·(1 − src[s] / T)``. A copy is one hidden-size vector: dispatch in
fp8 or bf16, combine (the expert outputs coming back) in bf16. A rank's time
is that of its larger direction; the layer waits for the slowest rank, so an
overloaded rank is a network straggler as well as a compute one.

Peers on the same node are reached over NVLink and the others over the
scale-out network, in parallel; with ``ep`` ranks and ``g`` GPUs per node a
share (ep − g)/(ep − 1) of a rank's peers are off-node. Bandwidth and latency
come from the run's transfer model (``effective_link``).
"""

from __future__ import annotations

import numpy as np

from frontier_core import Link


def copies(src: np.ndarray, load: np.ndarray, tokens: float, k: float) -> np.ndarray:
    """Token copies each rank moves in one direction, ``max(sent, received)``; ``src``
    (ep,) and ``load`` (..., ep) broadcast."""
    if tokens <= 0:
        return np.zeros(np.broadcast_shapes(src.shape, load.shape))
    sent = src * (tokens * k - load) / tokens
    received = load * (1.0 - src / tokens)
    return np.maximum(sent, received)


class AllToAll:
    """Seconds per rank for a number of bytes each rank moves, NVLink inside a node and
    the scale-out network across nodes."""

    def __init__(self, ep: int, domain: int, intra: Link, inter: Link) -> None:
        self.ep = ep
        self.off_node = 0.0 if ep <= domain else (ep - domain) / (ep - 1)
        self.intra = intra
        self.inter = inter

    def seconds(self, nbytes: np.ndarray) -> np.ndarray:
        """Per-rank time (same shape as ``nbytes``); zero where nothing moves."""
        f = self.off_node
        t = np.zeros_like(nbytes, dtype=float)
        if f < 1.0:
            t = np.maximum(t, self.intra.latency + nbytes * (1.0 - f) / self.intra.bandwidth)
        if f > 0.0:
            t = np.maximum(t, self.inter.latency + nbytes * f / self.inter.bandwidth)
        return np.where(nbytes > 0, t, 0.0)


def deepseek_bound(tokens: int, experts_per_token: int, hidden: int, dispatch_bytes: float,
                   combine_bytes: float, bandwidth: float) -> float:
    """Seconds of one dispatch + combine when every copy leaves the GPU (one expert per
    device), zero latency: the bound of "Insights into DeepSeek-V3" (ISCA '25), §2.3.2."""
    n = tokens * experts_per_token * hidden
    return n * dispatch_bytes / bandwidth + n * combine_bytes / bandwidth
