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

from dataclasses import dataclass

import numpy as np

from frontier_core import Link
from frontier_moe_ep.arrays import last_sum


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


# ---- DeepEP's kernels ---------------------------------------------------------------
#
# DeepEP (github.com/deepseek-ai/DeepEP, docs/legacy.md and csrc/kernels/legacy) has two
# families of dispatch/combine kernels, and SGLang picks between them per batch
# (``--deepep-mode auto``: normal for batches with prompt tokens, low-latency for
# decode-only ones).
#
# Normal (high-throughput) kernels send each token once per destination *node* over
# RDMA, to the GPU of the same local index there, which forwards it over NVLink once per
# destination *GPU* of that node (a token with two experts on one GPU crosses once).
# Both stages run at once; the slower decides. Combine runs the same path backwards,
# reducing inside the node before the RDMA hop. They run on a fixed share of the SMs.
#
# Low-latency kernels send one message per (token, expert): over RDMA, or, since DeepEP
# PR #173 (2025-06, ``allow_nvlink_for_low_latency_mode``), over NVLink to GPUs of the
# same node. A dispatch message carries the fp8 token, its per-128-element scales and a
# 16-byte header (internode_ll.cu ``num_bytes_per_msg``); combine sends bf16. They wait
# in a receive hook that occupies no SMs.

FP8_SCALE = 4 / 128  # DeepEP's fp8 tokens carry one fp32 scale per 128 elements
LL_HEADER = 16  # bytes of source info before each low-latency dispatch message

# What DeepEP's kernels achieve on H800 (docs/legacy.md: "~160 GB/s NVLink maximum
# bandwidth" of the 200 GB/s line rate; a ConnectX-7 at 400 Gb/s, "~50 GB/s"):
#: NVLink, both families: 160 of 200 GB/s
NVLINK_EFF = 0.80
#: RDMA of the normal kernels (large chunked writes): their EP32 and EP64 rows, 58 and
#: 51 GB/s counted with the sender's own node, are 43.5 and 44.6 GB/s on the wire
NORMAL_RDMA_EFF = 0.88
#: RDMA of the low-latency kernels (one 7-14 KB write per token and expert): the
#: pure-RDMA table of DeepEP's first README (commit ebfe47e) moves 40-41 GB/s per GPU
LL_RDMA_EFF = 0.81
#: low-latency kernels over NVLink: a warp copies each message itself, which costs
#: ~36 ns per message on top of the bytes (the EP8 rows, 77 µs dispatch and 114 µs
#: combine of 896 messages each, give 37 and 35 ns)
LL_NVLINK_MESSAGE_S = 36e-9


def token_bytes(hidden: int, dtype: str, header: int = 0) -> float:
    """Bytes of one token copy as DeepEP moves it: fp8 with its scales, or bf16."""
    return hidden * (1.0 + FP8_SCALE if dtype == "fp8" else 2.0) + header


class DeepEP:
    """Per-rank copies and seconds of DeepEP's kernels for ``ep`` ranks that fill nodes of
    ``gpus_per_node`` GPUs, over NVLink inside a node and RDMA (the scale-out network)
    between nodes; ``nvlink`` and ``rdma`` are the line rates and latencies, and the
    kernels run at the shares of them that DeepEP measured (the constants above).

    Inputs per call, for a layer stack of ``L`` layers: ``src`` (ep,) tokens each rank
    sends, ``rank_tok`` (L, ep) (token, expert) assignments each rank receives, and for
    the normal kernels the dedup factors of ``Traffic``. A token's destinations are
    assumed independent of its source rank.
    """

    def __init__(self, ep: int, gpus_per_node: int, nvlink: Link, rdma: Link,
                 ll_nvlink: bool = True) -> None:
        self.ep = ep
        self.g = max(1, min(gpus_per_node, ep))
        self.node_of = np.arange(ep) // self.g
        self.local = np.arange(ep) % self.g
        self.nodes = int(self.node_of[-1]) + 1
        self.nvlink, self.rdma = nvlink, rdma
        self.ll_nvlink = ll_nvlink
        self._ll_memo: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _node_sum(self, x: np.ndarray) -> np.ndarray:
        """(L, ep) -> (L, nodes): sums over each node's ranks."""
        if self.ep % self.g == 0:
            return last_sum(x.reshape(x.shape[0], self.nodes, self.g))
        out = np.zeros((x.shape[0], self.nodes))
        np.add.at(out.T, self.node_of, x.T)
        return out

    # -- token copies, per rank and direction (each (L, ep)) --------------------------
    def normal_copies(self, src: np.ndarray, rank_tok: np.ndarray, phi_gpu: np.ndarray,
                      phi_node: np.ndarray) -> dict[str, np.ndarray]:
        """Token copies each rank sends and receives over RDMA and over NVLink."""
        f = src / src.sum()
        gpu_pairs = phi_gpu * rank_tok  # distinct (token, GPU) pairs
        zero = np.zeros_like(rank_tok, dtype=float)
        if self.nodes == 1:
            return {"rdma_send": zero, "rdma_recv": zero,
                    "nvl_send": f * gpu_pairs.sum(axis=1, keepdims=True), "nvl_recv": gpu_pairs}
        node_pairs = phi_node * self._node_sum(rank_tok)  # distinct (token, node) pairs
        own = node_pairs[:, self.node_of]
        f_idx = np.bincount(self.local, weights=f, minlength=self.g)[self.local]
        gpu_node = self._node_sum(gpu_pairs)[:, self.node_of]
        return {
            "rdma_send": f * (node_pairs.sum(axis=1, keepdims=True) - own),
            "rdma_recv": own * (f_idx - f),
            # the forwarder of a node's traffic from sources of its local index sends
            # each token to every GPU of its node that holds one of its experts
            "nvl_send": gpu_node * f_idx,
            "nvl_recv": gpu_pairs,
        }

    def ll_copies(self, src: np.ndarray, rank_tok: np.ndarray) -> dict[str, np.ndarray]:
        """Messages (one per token and expert) each rank sends and receives over RDMA and
        over NVLink; a rank's own experts take none."""
        f = src / src.sum()
        total = rank_tok.sum(axis=1, keepdims=True)
        if self.ll_nvlink:
            node_tok = self._node_sum(rank_tok)[:, self.node_of]
            f_node = np.bincount(self.node_of, weights=f)[self.node_of]
        else:  # pure RDMA, also between GPUs of one node (DeepEP before PR #173)
            node_tok, f_node = rank_tok, f
        return {
            "rdma_send": f * (total - node_tok), "rdma_recv": rank_tok * (1.0 - f_node),
            "nvl_send": f * (node_tok - rank_tok), "nvl_recv": rank_tok * (f_node - f),
        }

    def ll_busiest(self, src: np.ndarray, rank_tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``busiest(self.ll_copies(src, rank_tok))``, the same floats: the source shares
        of a token vector are kept (decode batches repeat theirs over many iterations)."""
        # NOTE: perf — per distinct ``src`` (a small bounded memo), its shares and their
        # node complements; per call only the (L, ep) products and maxima.
        key = src.tobytes()
        hit = self._ll_memo.get(key)
        if hit is None:
            if len(self._ll_memo) >= 256:
                self._ll_memo.clear()
            f = src / src.sum()
            f_node = np.bincount(self.node_of, weights=f)[self.node_of] if self.ll_nvlink else f
            hit = self._ll_memo[key] = (f, 1.0 - f_node, f_node - f)
        f, out_node, in_node = hit
        total = rank_tok.sum(axis=1, keepdims=True)
        node_tok = self._node_sum(rank_tok)[:, self.node_of] if self.ll_nvlink else rank_tok
        rdma = np.maximum(f * (total - node_tok), rank_tok * out_node).max(axis=1)
        nvl = np.maximum(f * (node_tok - rank_tok), rank_tok * in_node).max(axis=1)
        return rdma, nvl

    # -- seconds ---------------------------------------------------------------------
    def seconds(self, copies: dict[str, np.ndarray] | tuple[np.ndarray, np.ndarray],
                nbytes: float, low_latency: bool) -> np.ndarray:
        """Per-layer seconds of the slowest rank: each rank's RDMA and NVLink stages run
        at once, each at its larger direction, plus the latency of the links it uses.
        ``copies`` may also be ``busiest(copies)``, to price several sizes at once."""
        rdma_n, nvl_n = busiest(copies) if isinstance(copies, dict) else copies
        rdma_bw = self.rdma.bandwidth * (LL_RDMA_EFF if low_latency else NORMAL_RDMA_EFF)
        per_copy = nbytes / (self.nvlink.bandwidth * NVLINK_EFF)
        if low_latency:
            per_copy += LL_NVLINK_MESSAGE_S
        # a rank's time is the larger of two increasing functions of its copies, so the
        # slowest rank's is that of the largest copies on each link kind
        return np.maximum(
            np.where(rdma_n > 0, self.rdma.latency + rdma_n * nbytes / rdma_bw, 0.0),
            np.where(nvl_n > 0, self.nvlink.latency + nvl_n * per_copy, 0.0))


def busiest(copies: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the most copies any rank moves in one direction over RDMA and over
    NVLink."""
    return (np.maximum(copies["rdma_send"], copies["rdma_recv"]).max(axis=1),
            np.maximum(copies["nvl_send"], copies["nvl_recv"]).max(axis=1))


@dataclass
class Traffic:
    """Dedup factors of the normal kernels, per layer: distinct (token, GPU) pairs per
    (token, expert) assignment a GPU receives, (L, ep), and distinct (token, node) pairs
    per assignment a node receives, (L, nodes)."""

    gpu: np.ndarray
    node: np.ndarray


def traffic(p: np.ndarray, slot_expert: np.ndarray, per_rank: int, gpus_per_node: int,
            top_k: int, n_group: int, topk_group: int, rng: np.random.Generator,
            sample: int = 512) -> Traffic:
    """``Traffic`` from ``sample`` tokens per layer drawn with group-limited gating from the
    expected shares ``p`` (L, experts) and sent to a copy of each expert (the placement's
    ``slot_expert``, (L, slots), ``per_rank`` slots per rank; copies equally likely).

    Each layer's factors are pooled over its GPUs and over its nodes (all pairs ÷ all
    assignments): per-rank differences in load come from the drawn counts, and a small
    sample then adds no noise of its own to the slowest rank. Layers with the same
    shares and placement share one draw."""
    from frontier_moe_ep.routing import token_experts

    layers, slots = slot_expert.shape
    ep = slots // per_rank
    g = max(1, min(gpus_per_node, ep))
    nodes = (ep - 1) // g + 1
    gpu = np.ones((layers, ep))
    node = np.ones((layers, nodes))
    seen: dict[bytes, int] = {}
    for li in range(layers):
        key = p[li].tobytes() + slot_expert[li].tobytes()
        if key in seen:
            gpu[li], node[li] = gpu[seen[key]], node[seen[key]]
            continue
        seen[key] = li
        experts = token_experts(p[li], top_k, n_group, topk_group, sample, rng)
        order = np.argsort(slot_expert[li], kind="stable")
        ncopies = np.bincount(slot_expert[li], minlength=p.shape[1])
        first = np.concatenate([[0], np.cumsum(ncopies)[:-1]])
        pick = first[experts] + (rng.random(experts.shape) * ncopies[experts]).astype(np.int64)
        rank = order[pick] // per_rank
        gpu[li] = _distinct(rank).sum() / rank.size
        node[li] = _distinct(rank // g).sum() / rank.size
    return Traffic(gpu, node)


def _distinct(ids: np.ndarray) -> np.ndarray:
    """Sorted ``ids`` (tokens × top_k) and a mask of each token's first of each value."""
    ids.sort(axis=1)
    return np.concatenate([np.ones((len(ids), 1), bool), ids[:, 1:] != ids[:, :-1]], axis=1)


def pair_factors(rank: np.ndarray, ep: int, gpus_per_node: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (token, GPU) pairs per assignment of each GPU, and distinct (token, node)
    pairs per assignment of each node, for tokens whose experts lie on ``rank`` (tokens ×
    top_k rank ids); 1 where nothing arrives."""
    g = max(1, min(gpus_per_node, ep))
    out = []
    for ids, width in ((rank.copy(), ep), (rank // g, (ep - 1) // g + 1)):
        first = _distinct(ids)
        pairs = np.bincount(ids[first], minlength=width)
        assigned = np.bincount(ids.ravel(), minlength=width)
        out.append(np.where(assigned > 0, pairs / np.maximum(assigned, 1), 1.0))
    return out[0], out[1]
