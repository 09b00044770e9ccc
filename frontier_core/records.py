"""Hot-path records shared by the engine, the schedulers and the predictors.

``Request`` is one user request and its progress; ``Batch`` is what a scheduler
returns for one iteration; ``OpCall`` is one operator call handed to the
predictor chain. All are ``slots`` dataclasses: the engine touches them every
iteration (see STYLE.md, "Granularity and speed").

Units: seconds for times, tokens for lengths, bytes for sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAN = math.nan


@dataclass(slots=True, eq=False)
class Request:
    """One request and its progress through the stages of a workflow.

    Token accounting follows vLLM: ``computed`` tokens have their KV in the
    cache; a (re)prefill computes ``prefill_target`` tokens and then emits one
    output token; each decode step computes the KV of the newest token and emits
    the next one. After a recompute preemption ``computed`` drops to 0 and the
    prompt plus the tokens generated so far are prefilled again.
    """

    id: int
    arrival: float
    prompt_len: int
    output_len: int
    computed: int = 0
    generated: int = 0
    prefill_target: int = 0
    blocks: int = 0
    first_token: float = NAN
    completion: float = NAN
    first_scheduled: float = NAN
    preemptions: int = 0
    # Why it was rejected: "kind; particulars" (summary.json counts by the kind, the text
    # before the first ";", so keep the request's own numbers after it).
    rejected: str | None = None
    cluster: str = ""
    replica: int = -1
    dp_rank: int = 0  # the DP attention rank of its replica that holds its KV
    warmup: bool = False  # a warm-up request: simulated, not measured
    # Set by a workflow that hands the request to another stage after prefill:
    # the replica emits the first token, keeps the KV blocks and signals `done`.
    stop_after_prefill: bool = False
    done: Any = None  # simpy event fired when the current stage is finished
    stage_times: dict[str, float] = field(default_factory=dict)
    # Prefix caching: content hashes of the prompt's blocks of ``prefix_block`` tokens
    # (equal hashes, equal prefixes); the cache entries this request holds on its
    # replica, the blocks they take, and the prompt tokens it found cached.
    prefix: tuple[int, ...] | None = None
    prefix_block: int = 0
    held: list[int] = field(default_factory=list)
    # A waiting request's recorded match, in prompt order after ``held``: cached blocks
    # (on the GPU, where they stay free and evictable, or pinned in host memory) that the
    # scheduler's first allocation for it takes, when the host ones are copied back and
    # all of them join ``held``.
    pending: list[int] = field(default_factory=list)
    shared_blocks: int = 0
    cached_tokens: int = 0
    load_s: float = 0.0  # host-to-GPU copy of cached blocks due before its next prefill
    matched_at: int = -1  # the cache's epoch at its last prefix match here (-1: none yet)
    # Tokens that ``prefix`` describes: 0 means the prompt (a trace's hash_ids); a
    # conversation turn's hashes also cover its visible output, which the next turn's
    # prompt repeats, so its computed output blocks are cached as well.
    prefix_tokens: int = 0
    # Multi-turn conversations: the conversation's id and this request's turn in it
    # (0-based); -1 for a request outside any conversation.
    conversation: int = -1
    turn: int = -1
    queued_at: float = 0.0  # when it reached its current replica's queue (s)

    @property
    def in_prefill(self) -> bool:
        """True while the request still has prompt (or recompute) tokens to process."""
        return self.computed < self.prefill_target

    @property
    def context_len(self) -> int:
        """Tokens the request's KV cache holds once its pending step is done."""
        return self.prompt_len + self.generated

    @property
    def finished(self) -> bool:
        return self.generated >= self.output_len


@dataclass(slots=True)
class Batch:
    """One iteration's work on one replica.

    ``prefill[i]`` processes ``chunks[i]`` new tokens (a whole prompt, or a
    chunk of it under chunked prefill); every request in ``decode`` computes one
    token. The scheduler has already grown the KV allocation of every member.

    With speculative decoding the replica fills ``spec`` and ``accepted`` (one entry
    per decode): ``decode[i]`` verifies ``spec[i]`` draft tokens, computing
    ``spec[i] + 1`` tokens, and emits ``accepted[i] + 1``. Empty lists mean no
    speculation: one token each.
    """

    prefill: list[Request] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    decode: list[Request] = field(default_factory=list)
    spec: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prefill) + len(self.decode)

    @property
    def num_tokens(self) -> int:
        return sum(self.chunks) + len(self.decode) + sum(self.spec)


# Operator names: every op the execution model emits. The first seven are the
# profile-table vocabulary (docs/profiles.md); the others exist for the roofline's
# completeness (reduce_scatter and all_gather: a TP group wider than a node,
# execution.py).
OPS = (
    "gemm",
    "attention_prefill",
    "attention_decode",
    "moe_experts",
    "all_reduce",
    "all_to_all",
    "send_recv",
    "elementwise",
    "cpu_overhead",
    "linear_attention",
    "attention_index",
    "reduce_scatter",
    "all_gather",
)


@dataclass(slots=True)
class OpCall:
    """One operator call on one GPU (shapes already divided by TP/EP).

    - ``gemm``: y[m, n] = x[m, k] · W[n, k]^T.
    - ``attention_prefill`` / ``attention_decode``: ``num_heads``,
      ``num_kv_heads``, ``head_dim`` per GPU; ``q_lens`` (new tokens of each
      sequence) and ``kv_lens`` (context including them) as int64 arrays — the
      whole batch composition, not one proxy length. ``extra`` may give the cache's
      layout: ``kv_planes`` (2: keys and values apart; 1: one cached latent serves as
      both, absorbed MLA) and ``kv_bytes`` per element (1 for an fp8 KV cache).
    - ``all_reduce``, ``all_to_all``, ``send_recv``: ``bytes`` per GPU,
      ``num_gpus`` in the group, ``scope`` "intra" (NVLink) or "inter" (scale-out).
    - ``elementwise``: memory-bound kernels (norms, activations, residuals,
      embedding gather, sampling) moving ``bytes`` and doing ``flops``.
    - ``cpu_overhead``: host-side scheduling and input preparation for one
      iteration of ``num_seqs`` sequences and ``m`` tokens.
    - ``linear_attention``: the recurrence of a linear-attention layer (Gated
      DeltaNet) for the sequences of ``q_lens`` (tokens each this step; one for a
      decode): ``num_heads`` value heads and ``num_kv_heads`` query/key heads per GPU,
      ``head_dim`` the key width; ``extra`` gives ``v_head_dim`` and ``state_bytes``
      (bytes per element of the recurrent state).
    - ``attention_index``: the lightning indexer of DeepSeek sparse attention, which
      scores all ``kv_lens`` context tokens for each of the ``q_lens`` query tokens of
      each sequence: ``num_heads`` indexer heads of ``head_dim``; ``extra["kv_bytes"]``
      is its cache's bytes per token.
    ``name`` says which part of the model it is (``qkv_proj``, ``mlp_down``...)
    for breakdowns; predictors must not depend on it for correctness.
    """

    op: str
    name: str = ""
    dtype: str = "bf16"
    m: int = 0
    n: int = 0
    k: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    q_lens: np.ndarray | None = None
    kv_lens: np.ndarray | None = None
    bytes: float = 0.0
    flops: float = 0.0
    num_gpus: int = 1
    scope: str = "intra"
    num_seqs: int = 0
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A point-to-point path as seen by one GPU: bandwidth per direction (bytes/s)
    and one-way latency (s). ``switched``: every peer is one hop away (the GPUs of
    an NVSwitch node), so a collective pays the latency once per phase instead of
    once per ring step. ``mesh_links``: the GPUs form a full mesh of that many
    point-to-point links per GPU (AMD Infinity Fabric: 7), ``bandwidth`` being their
    sum; a group of n GPUs uses n - 1 of them."""

    bandwidth: float
    latency: float
    switched: bool = False
    mesh_links: int = 0


@dataclass(slots=True)
class IterationTime:
    """``stage``: how long the first pipeline stage is busy (when the next batch may
    start); ``latency``: from start to tokens out (equal when pp == 1)."""

    stage: float
    latency: float
