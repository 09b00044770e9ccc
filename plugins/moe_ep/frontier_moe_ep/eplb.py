"""DeepSeek's expert-parallel load balancer (EPLB), and the live rebalancing around it.

The algorithm follows ``eplb.py`` of github.com/deepseek-ai/EPLB (numpy here, same
steps and the same results on its README's example):

- ``replicate``: each redundant slot goes to the expert with the highest load per copy.
- ``balanced_packing``: items (heaviest first) go to the least-loaded pack that still
  has room, every pack taking the same number of items.
- ``hierarchical``: pack the expert groups onto nodes, replicate the experts within
  each node, then pack each node's replicas onto its GPUs. It keeps a group's
  experts (and their copies) on one node, which group-limited routing exploits.
- ``global``: the hierarchical steps with one group and one node: replicate over all
  experts, pack onto all GPUs.
- ``auto`` (``rebalance_experts`` there, and SGLang's ``compute_algorithm`` in
  ``python/sglang/srt/eplb/eplb_algorithms/__init__.py``): hierarchical when the number
  of nodes divides the number of groups, else global.

``LiveEPLB`` keeps a sliding window of observed per-expert loads and recomputes the
placement every ``interval`` iterations, as SGLang's ``EPLBManager``
(``python/sglang/srt/eplb/eplb_manager.py``) does with ``--enable-eplb``; the weight
move it prices follows SGLang's ``expert_location_updater.py`` (below).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from frontier_core import Link

POLICIES = ("auto", "hierarchical", "global")


def balanced_packing(weight: np.ndarray, packs: int) -> np.ndarray:
    """The pack of each item, (rows × items) int64: each row's items, heaviest first
    (ties by index), go to the least-loaded pack (ties by lower pack) with room; every
    pack takes items ÷ packs of them. The returned index is the item's slot,
    ``pack × per_pack + rank in pack``."""
    rows, n = weight.shape
    per = n // packs
    if per == 1:
        return np.tile(np.arange(n), (rows, 1))
    out = np.empty((rows, n), np.int64)
    order = np.argsort(-weight, axis=1, kind="stable")
    for i in range(rows):
        load = np.zeros(packs)
        fill = np.zeros(packs, np.int64)
        w = weight[i]
        for item in order[i].tolist():
            free = np.flatnonzero(fill < per)
            pk = int(free[np.argmin(load[free])])
            out[i, item] = pk * per + fill[pk]
            load[pk] += w[item]
            fill[pk] += 1
    return out


def replicate(weight: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot → expert, copies per expert) for ``slots`` ≥ experts slots per row: the first
    slots hold each expert once, each further one a copy of the expert with the highest
    load per copy (ties by lower index)."""
    rows, n = weight.shape
    phy = np.tile(np.arange(slots), (rows, 1))
    cnt = np.ones((rows, n), np.int64)
    r = np.arange(rows)
    for s in range(n, slots):
        hot = np.argmax(weight / cnt, axis=1)
        phy[:, s] = hot
        cnt[r, hot] += 1
    return phy, cnt


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1]), perm.shape), axis=1)
    return inv


def hierarchical(weight: np.ndarray, slots: int, groups: int, nodes: int, gpus: int
                 ) -> np.ndarray:
    """Slot → expert (layers × slots, rank-major over ``gpus``) by DeepSeek's hierarchical
    policy; ``groups=nodes=1`` is its global policy."""
    layers, n = weight.shape
    size = n // groups
    per_node_log, per_node_phy = n // nodes, slots // nodes
    per_gpu = slots // gpus
    # 1. expert groups onto nodes: group g's position among the node-major groups
    group_slot = balanced_packing(weight.reshape(layers, groups, size).sum(axis=2), nodes)
    log2mlog = (group_slot[:, :, None] * size + np.arange(size)).reshape(layers, n)
    mlog2log = _inverse(log2mlog)
    # 2. replicate the experts within each node
    w_mlog = np.take_along_axis(weight, mlog2log, axis=1).reshape(layers * nodes, per_node_log)
    phy2mlog, cnt = replicate(w_mlog, per_node_phy)
    # 3. the node's replicas onto its GPUs
    w_phy = np.take_along_axis(w_mlog / cnt, phy2mlog, axis=1)
    pphy2phy = _inverse(balanced_packing(w_phy, gpus // nodes))
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1).reshape(layers, nodes, -1)
    pphy2mlog = (pphy2mlog + (np.arange(nodes) * per_node_log)[None, :, None]).reshape(layers, -1)
    assert pphy2mlog.shape[1] == gpus * per_gpu
    return np.take_along_axis(mlog2log, pphy2mlog, axis=1)


def choose_policy(policy: str, groups: int, nodes: int, ep: int) -> str:
    """``auto`` → hierarchical when the nodes divide the groups (DeepSeek's and SGLang's
    rule) and the EP ranks fill the nodes evenly, else global."""
    if policy != "auto":
        return policy
    return "hierarchical" if groups % nodes == 0 and ep % nodes == 0 else "global"


def rebalance(weight: np.ndarray, slots: int, ep: int, groups: int, nodes: int,
              policy: str) -> np.ndarray:
    """Slot → expert (layers × slots, rank r holding slots r·slots/ep …) for per-expert
    loads ``weight`` (layers × experts)."""
    w = np.asarray(weight, float)
    if choose_policy(policy, groups, nodes, ep) == "hierarchical":
        return hierarchical(w, slots, groups, nodes, ep)
    return hierarchical(w, slots, 1, 1, ep)


def imbalance(slot_expert: np.ndarray, ep: int, loads: np.ndarray) -> float:
    """Max ÷ mean tokens over the EP ranks, averaged over layers, of per-expert ``loads``
    (layers × experts) under a placement (copies split their expert's tokens evenly)."""
    cnt = np.zeros(loads.shape)
    rows = np.repeat(np.arange(len(loads)), slot_expert.shape[1])
    np.add.at(cnt, (rows, slot_expert.ravel()), 1.0)
    tok = np.take_along_axis(loads / np.maximum(cnt, 1), slot_expert, axis=1)
    rank = tok.reshape(len(loads), ep, -1).sum(axis=2)
    mean = rank.mean(axis=1)
    ok = mean > 0
    return float((rank[ok].max(axis=1) / mean[ok]).mean()) if ok.any() else 1.0


def move_seconds(old: np.ndarray, new: np.ndarray, ep: int, ranks_per_node: int,
                 expert_bytes: float, intra: Link, inter: Link) -> tuple[int, float, float]:
    """(expert copies received, bytes received, seconds) of moving from placement ``old``
    to ``new`` (layers × slots), as SGLang's ``expert_location_updater.py`` does it: a
    rank receives each expert it did not hold before once (a second new slot of it, or
    one it already held, is a local copy), from a rank on its own node that held it if
    any (NVLink), else from another node (scale-out network). The layers move one after
    the other, each waiting for all its transfers (``batch_isend_irecv`` then ``wait``),
    and a layer lasts as long as its slowest receiving rank, whose NVLink and network
    transfers run in parallel. ``expert_bytes``: one expert's weights on one GPU."""
    layers, slots = old.shape
    experts = int(max(old.max(), new.max())) + 1
    per_rank = slots // ep
    rank_of_slot = np.repeat(np.arange(ep), per_rank)

    def held(se: np.ndarray) -> np.ndarray:  # (layers, ep, experts) bool
        h = np.zeros((layers, ep, experts), bool)
        h[np.arange(layers)[:, None], rank_of_slot[None, :], se] = True
        return h

    h_old, h_new = held(old), held(new)
    recv = h_new & ~h_old
    nodes = -(-ep // ranks_per_node)
    pad = nodes * ranks_per_node - ep
    node_old = np.pad(h_old, ((0, 0), (0, pad), (0, 0))).reshape(
        layers, nodes, ranks_per_node, experts).any(axis=2)
    near = node_old[:, np.arange(ep) // ranks_per_node]  # (layers, ep, experts)
    n_intra = (recv & near).sum(axis=2)
    n_inter = (recv & ~near).sum(axis=2)
    b_intra, b_inter = n_intra * expert_bytes, n_inter * expert_bytes
    t = np.maximum(np.where(n_intra > 0, intra.latency + b_intra / intra.bandwidth, 0.0),
                   np.where(n_inter > 0, inter.latency + b_inter / inter.bandwidth, 0.0))
    moved = int(n_intra.sum() + n_inter.sum())
    return moved, moved * expert_bytes, float(t.max(axis=1).sum())


@dataclass
class Rebalance:
    """One rebalance: when, what it moved, and the window's imbalance before and after."""

    iteration: int
    time_s: float
    experts_moved: int
    bytes_moved: float
    stall_s: float
    window_before: float
    window_after: float
    drawn_since_last: float | None


@dataclass
class LiveEPLB:
    """Observed loads in a sliding window and the rebalances they trigger.

    The window is kept as sums over buckets of ``gcd(interval, window)`` iterations, so
    at every rebalance it covers exactly the last ``window`` iterations."""

    interval: int
    window: int
    ep: int
    groups: int
    nodes: int
    ranks_per_node: int
    policy: str
    expert_bytes: float
    intra: Link
    inter: Link
    iterations: int = 0
    history: list[Rebalance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bucket = int(np.gcd(self.interval, self.window))
        self._buckets: deque[np.ndarray] = deque(maxlen=self.window // self.bucket)
        self._current: np.ndarray | None = None
        self._in_bucket = 0
        self._ratios: list[float] = []

    def observe(self, counts: np.ndarray) -> None:
        """Add one micro-batch's drawn tokens per expert (layers × experts)."""
        if self._current is None:
            self._current = np.zeros(counts.shape, np.int64)
        self._current += counts

    def end_iteration(self, drawn_ratio: float | None) -> None:
        self.iterations += 1
        if drawn_ratio is not None:
            self._ratios.append(drawn_ratio)
        self._in_bucket += 1
        if self._in_bucket == self.bucket and self._current is not None:
            self._buckets.append(self._current)
            self._current = None
            self._in_bucket = 0

    def due(self) -> bool:
        return self.iterations > 0 and self.iterations % self.interval == 0 and bool(
            self._buckets)

    def rebalance(self, slot_expert: np.ndarray, now: float) -> np.ndarray:
        """The new placement from the window's loads; records the move and its stall."""
        loads = np.sum(self._buckets, axis=0).astype(float)
        slots = slot_expert.shape[1]
        new = rebalance(loads, slots, self.ep, self.groups, self.nodes, self.policy)
        moved, nbytes, stall = move_seconds(slot_expert, new, self.ep, self.ranks_per_node,
                                            self.expert_bytes, self.intra, self.inter)
        drawn = float(np.mean(self._ratios)) if self._ratios else None
        self._ratios.clear()
        self.history.append(Rebalance(
            self.iterations, now, moved, nbytes, stall,
            imbalance(slot_expert, self.ep, loads), imbalance(new, self.ep, loads), drawn))
        return new
