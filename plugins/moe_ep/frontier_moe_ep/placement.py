"""Expert placement: which EP rank holds which expert (and copies of hot experts).

The layout is a table of expert *slots*, rank-major: rank r holds slots
``r*per_rank .. (r+1)*per_rank - 1``. ``contiguous`` puts experts e..e+per_rank-1
on one rank, ``round_robin`` spreads them e, e+ep, e+2ep...; ``eplb`` is
DeepSeek's expert-parallel load balancer: the hottest experts (by expected
load) get extra slots, each copy takes an equal share of its expert's tokens,
and slots are packed onto ranks heaviest first, each to the least-loaded rank
with room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("contiguous", "round_robin", "eplb")


@dataclass
class Placement:
    """``slot_expert`` (layers × slots): the expert a slot holds; ``slot_share``: the
    fraction of that expert's tokens the slot receives (1 / number of copies)."""

    ep: int
    slot_expert: np.ndarray
    slot_share: np.ndarray

    @property
    def per_rank(self) -> int:
        return self.slot_expert.shape[1] // self.ep

    def rank_interleaved(self) -> np.ndarray:
        """Each layer's experts ordered by slot index within a rank, then by rank (the
        first slot of every rank, then the second...), each expert at its first slot."""
        layers = self.slot_expert.shape[0]
        inter = self.slot_expert.reshape(layers, self.ep, self.per_rank).transpose(0, 2, 1)
        inter = inter.reshape(layers, -1)
        out = []
        for row in inter:
            _, first = np.unique(row, return_index=True)
            out.append(row[np.sort(first)])
        return np.stack(out)

    def slot_tokens(self, counts: np.ndarray) -> np.ndarray:
        """Tokens per slot, (layers × ep × per_rank), from tokens per expert (layers × experts)."""
        tok = np.take_along_axis(counts, self.slot_expert, axis=1) * self.slot_share
        return tok.reshape(len(counts), self.ep, self.per_rank)


def build_placement(kind: str, p: np.ndarray, ep: int, redundant: int = 0) -> Placement:
    """The layout of ``p.shape[1]`` experts (+ ``redundant`` copies) over ``ep`` ranks,
    per layer; ``p`` is the expected share of tokens each expert receives."""
    layers, e = p.shape
    slots = e + redundant
    per_rank = slots // ep
    if kind == "contiguous" or (kind == "eplb" and ep == 1):
        se = np.tile(np.arange(e), (layers, 1))
        return Placement(ep, se, np.ones((layers, e)))
    if kind == "round_robin":
        order = (np.arange(per_rank)[None, :] * ep + np.arange(ep)[:, None]).ravel()
        return Placement(ep, np.tile(order, (layers, 1)), np.ones((layers, e)))
    se = np.empty((layers, slots), np.int64)
    share = np.empty((layers, slots))
    for li in range(layers):
        copies = np.ones(e, np.int64)
        for _ in range(redundant):
            copies[np.argmax(p[li] / copies)] += 1
        expert = np.repeat(np.arange(e), copies)
        load = p[li][expert] / copies[expert]
        rank_load = np.zeros(ep)
        room = np.full(ep, per_rank)
        fill = [[] for _ in range(ep)]
        # Heaviest first (ties by expert id, so the layout is deterministic).
        for s in np.lexsort((expert, -load)):
            free = np.flatnonzero(room)
            r = free[np.argmin(rank_load[free])]
            fill[r].append(s)
            rank_load[r] += load[s]
            room[r] -= 1
        order = np.concatenate([np.array(f, np.int64) for f in fill])
        se[li] = expert[order]
        share[li] = 1.0 / copies[se[li]]
    return Placement(ep, se, share)
