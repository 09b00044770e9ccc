"""Expert placement: which EP rank holds which expert (and copies of hot experts).

The layout is a table of expert *slots*, rank-major: rank r holds slots
``r*per_rank .. (r+1)*per_rank - 1``. ``contiguous`` puts experts e..e+per_rank-1
on one rank, ``round_robin`` spreads them e, e+ep, e+2ep...; ``eplb`` is
DeepSeek's expert-parallel load balancer (``frontier_moe_ep.eplb``) applied to
the expected loads: the hottest experts get extra slots, each copy takes an equal
share of its expert's tokens, and slots are packed onto ranks (within nodes
first, under the hierarchical policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frontier_moe_ep.eplb import rebalance

KINDS = ("contiguous", "round_robin", "eplb")


@dataclass
class Placement:
    """``slot_expert`` (layers × slots): the expert a slot holds; ``slot_share``: the
    fraction of that expert's tokens the slot receives (1 / number of copies)."""

    ep: int
    slot_expert: np.ndarray
    slot_share: np.ndarray
    #: (experts, flat indices of the slots in a layers × experts array), on first use
    _flat: tuple[int, np.ndarray] | None = field(default=None, init=False, repr=False,
                                                 compare=False)

    @property
    def per_rank(self) -> int:
        return self.slot_expert.shape[1] // self.ep

    @classmethod
    def from_slots(cls, ep: int, slot_expert: np.ndarray, experts: int) -> Placement:
        """The placement of a slot → expert table (layers × slots); copies share evenly."""
        copies = np.zeros((len(slot_expert), experts))
        rows = np.repeat(np.arange(len(slot_expert)), slot_expert.shape[1])
        np.add.at(copies, (rows, slot_expert.ravel()), 1.0)
        return cls(ep, slot_expert, 1.0 / np.take_along_axis(copies, slot_expert, axis=1))

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
        # NOTE: perf — one gather through flat indices, computed once per placement.
        layers, e = counts.shape
        if self._flat is None or self._flat[0] != e:
            self._flat = (e, (self.slot_expert + e * np.arange(layers)[:, None]).ravel())
        tok = counts.ravel().take(self._flat[1]).reshape(self.slot_expert.shape) * self.slot_share
        return tok.reshape(layers, self.ep, self.per_rank)


def build_placement(kind: str, p: np.ndarray, ep: int, redundant: int = 0, groups: int = 1,
                    nodes: int = 1, policy: str = "auto") -> Placement:
    """The layout of ``p.shape[1]`` experts (+ ``redundant`` copies) over ``ep`` ranks,
    per layer; ``p`` is the expected share of tokens each expert receives. ``eplb`` uses
    DeepSeek's ``policy`` with the model's expert ``groups`` and the ``nodes`` the EP
    ranks span."""
    layers, e = p.shape
    slots = e + redundant
    per_rank = slots // ep
    if kind == "contiguous" or (kind == "eplb" and ep == 1):
        se = np.tile(np.arange(e), (layers, 1))
        return Placement(ep, se, np.ones((layers, e)))
    if kind == "round_robin":
        order = (np.arange(per_rank)[None, :] * ep + np.arange(ep)[:, None]).ravel()
        return Placement(ep, np.tile(order, (layers, 1)), np.ones((layers, e)))
    return Placement.from_slots(ep, rebalance(p, slots, ep, groups, nodes, policy), e)
