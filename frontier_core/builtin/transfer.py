"""The kernel's transfer model: collectives and point-to-point sends over one link type.

Ring algorithms, as NCCL uses for large messages: an all-reduce among n GPUs
moves 2(n-1)/n of the buffer through each GPU's link in 2(n-1) steps;
all-gather and reduce-scatter half of that; an all-to-all sends (n-1)/n of the
buffer to n-1 peers; a send/recv moves the buffer once. ``nbytes`` is the
per-GPU buffer; ``link`` the per-direction bandwidth and one-way latency.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from frontier_core.components import Link

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")


def collective_time(kind: str, nbytes: float, num_gpus: int, link: Link) -> float:
    """Seconds for a ``kind`` of collective among ``num_gpus`` GPUs over ``link``.

    ``nbytes`` is the buffer size per GPU (NCCL's convention: the all-reduce
    buffer, the all-gather output, the reduce-scatter input, all the data one
    GPU sends in an all-to-all). Ring algorithms, bandwidth per direction:

    - all_reduce: each GPU moves 2(n-1)/n x nbytes in 2(n-1) steps:
      2(n-1)/n x nbytes / bw + 2(n-1) x latency.
    - all_gather, reduce_scatter: half of that, (n-1)/n x nbytes / bw + (n-1) x latency.
    - all_to_all: each GPU sends (n-1)/n x nbytes to its n-1 peers:
      (n-1)/n x nbytes / bw + (n-1) x latency.
    - send_recv: nbytes / bw + latency.

    On a ``switched`` link (an NVSwitch node) every peer is one hop away and the
    steps of a phase run at once: the same bytes, but the latency is paid once per
    phase: 2 x latency for an all-reduce (reduce-scatter, then all-gather, as vLLM's
    custom all-reduce and NCCL's NVLS do), 1 x latency for the others. Measured on
    H100 SXM (AIConfigurator's vLLM all-reduce table), a 1 KiB all-reduce takes
    4.2/4.5/4.6 us on 2/4/8 GPUs: flat in the GPU count, as this form says, where
    the ring's 2(n-1) steps would take 6/18/42 us.

    In a full mesh (``link.mesh_links`` links per GPU, AMD Infinity Fabric) every peer
    is one hop away too, over a link of its own: a group of n GPUs moves its data over
    its n - 1 links at once (RCCL's and vLLM's one-shot algorithms on MI300X), so it
    reaches (n - 1) / mesh_links of the GPU's total bandwidth; two GPUs share one link.

    One GPU (``num_gpus <= 1``) moves nothing: 0.0.
    """
    n = num_gpus
    if n <= 1:
        return 0.0
    bw, lat = link.bandwidth, link.latency
    if link.mesh_links:
        bw *= min(n - 1, link.mesh_links) / link.mesh_links
    steps = 1 if link.switched or link.mesh_links else n - 1
    if kind == "all_reduce":
        return 2.0 * (n - 1) / n * nbytes / bw + 2 * steps * lat
    if kind in ("all_to_all", "all_gather", "reduce_scatter"):
        return (n - 1) / n * nbytes / bw + steps * lat
    if kind == "send_recv":
        return nbytes / bw + lat
    raise ValueError(f"unknown collective {kind!r}; choose one of {', '.join(KINDS)}")


class LinkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bandwidth_eff: float = Field(
        0.8, gt=0, le=1,
        description="achievable fraction of link bandwidth (NCCL bus bandwidth is ~80% of "
        "the NVLink/IB line rate for large messages)",
    )


class LinkTransfer:
    """Bandwidth-and-latency model of each link (no contention between transfers)."""

    def __init__(self, opts: LinkOptions) -> None:
        self.eff = opts.bandwidth_eff

    def transfer(self, kind: str, nbytes: float, num_gpus: int, link: Link) -> float:
        return collective_time(kind, nbytes, num_gpus,
                               replace(link, bandwidth=link.bandwidth * self.eff))
