"""DeepEP's own kernel benchmarks, reproduced through the block's all-to-all model.

DeepEP's test scripts (tests/legacy/test_intranode.py, test_internode.py,
test_low_latency.py) time one dispatch and one combine of random, balanced routing and
report a "bandwidth": bytes counted their way, divided by the time.

- Normal kernels: ``tokens_per_rank`` tokens on every rank; each token picks
  ``min(nodes, 4)`` nodes (the nodes are the groups: a node's score is its best expert's),
  then its top-k experts among them. Across nodes the bytes are the distinct (token, node)
  pairs, the sender's own node included; inside one node the tokens each rank receives,
  its own included.
- Low-latency kernels: top-k of all experts, one message per (token, expert); the bytes
  are the messages, a rank's own experts included.

fp8 tokens count ``hidden × (1 + 4/128)`` bytes, bf16 ones ``2 × hidden``; the
low-latency dispatch message adds a 16-byte header.
"""

from __future__ import annotations

import numpy as np

from frontier_core import Link
from frontier_moe_ep.comm import LL_HEADER, DeepEP, token_bytes, traffic


def reproduce(kernels: str, ep: int, tokens_per_rank: int, nvlink: Link, rdma: Link, *,
              hidden: int = 7168, top_k: int = 8, experts: int = 256,
              gpus_per_node: int = 8, ll_nvlink: bool = True, seed: int = 0,
              sample: int = 8192) -> dict[str, float]:
    """Seconds and DeepEP-counted bandwidth (bytes/s) of one dispatch (fp8) and one
    combine (bf16) as the benchmark runs them, for ``kernels`` normal or low_latency."""
    per_rank = experts // ep
    src = np.full(ep, float(tokens_per_rank))
    rank_tok = np.full((1, ep), float(tokens_per_rank * top_k))  # balanced: T·k / ep each
    model = DeepEP(ep, gpus_per_node, nvlink, rdma, ll_nvlink)
    out: dict[str, float] = {}
    if kernels == "low_latency":
        copies = model.ll_copies(src, rank_tok)
        for phase, nbytes in (("dispatch", token_bytes(hidden, "fp8", LL_HEADER)),
                              ("combine", token_bytes(hidden, "bf16"))):
            t = float(model.seconds(copies, nbytes, True)[0])
            out[f"{phase}_s"] = t
            out[f"{phase}_bandwidth"] = tokens_per_rank * top_k * nbytes / t
        return out
    nodes = model.nodes
    tr = traffic(np.full((1, experts), 1.0 / experts), np.arange(experts)[None, :], per_rank,
                 gpus_per_node, top_k, nodes, min(nodes, 4), np.random.default_rng(seed),
                 sample)
    copies = model.normal_copies(src, rank_tok, tr.gpu, tr.node)
    if nodes > 1:
        node_tok = tokens_per_rank * ep * top_k / nodes  # assignments into one node
        counted = float(tr.node[0].mean()) * node_tok * nodes / ep  # pairs a rank sends
    else:
        counted = float(copies["nvl_recv"][0].mean())  # tokens a rank receives
    for phase, nbytes in (("dispatch", token_bytes(hidden, "fp8")),
                          ("combine", token_bytes(hidden, "bf16"))):
        t = float(model.seconds(copies, nbytes, False)[0])
        out[f"{phase}_s"] = t
        out[f"{phase}_bandwidth"] = counted * nbytes / t
    return out
