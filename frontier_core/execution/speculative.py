"""Speculative decoding: draft tokens, verify them in one target pass, keep the accepted.

Each decode step of a cluster with ``speculative`` configured:

1. **Drafts** up to ``k`` tokens per sequence: ``k`` forward passes of a drafter over
   the decoding sequences (one token each). The drafter is a small model on the same
   GPUs (``method: draft``) or the target's multi-token-prediction layer (``method:
   mtp``: one transformer layer sharing the embedding and LM head). The first pass
   also runs the iteration's prefill chunks, since the drafter needs their KV too.
   Every pass is priced through the run's predictor chain, like the target.
2. **Verifies** them: the target computes ``s + 1`` tokens per sequence (``s`` drafts,
   fewer when the sequence is about to finish or its KV blocks are short), attention
   and GEMMs included (see ``ExecutionPredictor``).
3. **Accepts** a prefix of the drafts, drawn from the run's seeded generator: draft
   position j is accepted with probability ``rates[j]`` if every earlier one was. The
   step emits the accepted drafts plus the target's own next token, and the KV keeps
   only those tokens (the replica advances each request by ``accepted + 1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core.records import Batch

if TYPE_CHECKING:
    from frontier_core.config import SpeculativeConfig
    from frontier_core.execution.predictor import ExecutionPredictor


class Speculator:
    """The drafter and the acceptance model of one cluster (shared by its replicas)."""

    def __init__(self, cfg: SpeculativeConfig, drafter: ExecutionPredictor,
                 rng: np.random.Generator, drafter_name: str) -> None:
        self.method = cfg.method
        self.k = cfg.k
        self.rates = np.asarray(cfg.rates(), np.float64)
        self.drafter = drafter
        self.drafter_name = drafter_name
        self.rng = rng
        self._positions = np.arange(self.k)
        # Counters: verification steps (one per decoding sequence per iteration), draft
        # tokens verified, accepted; accepted-length histogram; seconds spent drafting.
        self.steps = 0
        self.drafted = 0
        self.accepted = 0
        self.hist = np.zeros(self.k + 1, np.int64)
        self.full_steps = 0  # steps that verified all k drafts
        self.full_accepted = 0  # drafts accepted in those
        self.draft_s = 0.0

    def plan(self, batch: Batch, block_size: int) -> None:
        """Choose each decode's draft count and draw how many of them are accepted.

        A sequence drafts ``k`` tokens unless its output ends sooner or its KV blocks
        cannot hold k + 1 more tokens (a scheduler unaware of speculation grows them by
        one), in which case it drafts what fits, possibly none.
        """
        dec = batch.decode
        n = len(dec)
        k = self.k
        # NOTE: perf — once per iteration over the decodes: attribute reads in one pass,
        # the rest vectorised.
        room = np.fromiter(((r.blocks + r.shared_blocks) * block_size - r.computed - 1
                            for r in dec), np.int64, n)
        left = np.fromiter((r.output_len - r.generated - 1 for r in dec), np.int64, n)
        s_arr = np.clip(np.minimum(room, left), 0, k)
        ok = self.rng.random((n, k)) < self.rates
        ok &= self._positions < s_arr[:, None]
        # Accepted = the leading run of accepted positions (first rejection stops it).
        acc = np.where(ok.all(axis=1), k, np.argmin(ok, axis=1))
        batch.spec = s_arr.tolist()
        batch.accepted = acc.tolist()
        self.steps += n
        self.drafted += int(s_arr.sum())
        self.accepted += int(acc.sum())
        self.hist += np.bincount(acc, minlength=k + 1)
        full = s_arr == k
        self.full_steps += int(full.sum())
        self.full_accepted += int(acc[full].sum())

    def draft_time(self, q: np.ndarray | None, kvp: np.ndarray | None,
                   emits: np.ndarray | None, computed: np.ndarray | None,
                   spec: np.ndarray | None, ids_p: np.ndarray | None,
                   ids_d: np.ndarray | None, replica: int, now: float) -> float:
        """Seconds of the drafter's passes for one iteration: the first over the prefill
        chunks and every sequence that drafts, pass j over those drafting j or more
        tokens (``computed``: each decode's context before this step)."""
        d = self.drafter
        total = 0.0
        for j in range(1, self.k + 1):
            sel = None if spec is None else spec >= j
            has_dec = sel is not None and bool(sel.any())
            if j > 1 and not has_dec:
                break
            if j == 1 and not has_dec and q is None:
                return 0.0
            kvd = computed[sel] + j if has_dec else None
            ids = ids_d[sel] if has_dec and ids_d is not None else None
            if j == 1:
                it = d.run(q, kvp, emits, kvd, None, ids_p, ids, replica, now)
            else:
                it = d.run(None, None, None, kvd, None, None, ids, replica, now)
            total += it.latency
        self.draft_s += total
        return total

    def summary(self, busy_s: float) -> dict[str, Any]:
        """What summary.json reports under ``clusters.<name>.speculative``."""
        steps = max(self.steps, 1)
        rates = self.rates
        expected = float(np.cumprod(rates).sum() + 1.0)
        return {
            "method": self.method,
            "drafter": self.drafter_name,
            "k": self.k,
            "acceptance_rates": [float(x) for x in rates],
            "verification_steps": self.steps,
            "draft_tokens": self.drafted,
            "accepted_tokens": self.accepted,
            "acceptance_rate": self.accepted / self.drafted if self.drafted else 0.0,
            "tokens_per_step": (self.accepted + self.steps) / steps,
            # Over the steps that verified all k drafts: what the acceptance model predicts.
            "tokens_per_full_step": ((self.full_accepted + self.full_steps) / self.full_steps
                                     if self.full_steps else 0.0),
            "expected_tokens_per_full_step": expected,
            "full_steps_fraction": self.full_steps / steps,
            "accepted_histogram": [int(x) for x in self.hist],
            "draft_time_fraction": self.draft_s / busy_s if busy_s > 0 else 0.0,
        }
