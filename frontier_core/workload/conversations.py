"""Multi-turn conversations: synthetic ones (``workload.conversations``) and the turns of
trace rows that carry a ``conversation_id``.

A conversation is a sequence of requests (turns) sent one after another. The
GlobalController runs one process per conversation: the first turn is sent at its
arrival time (or when a closed-loop user starts the conversation); each later turn is
sent at max(its arrival time, the previous turn's completion + its think time). For
synthetic conversations a later turn's arrival time is the conversation's start, so it
is sent ``think_s`` seconds (exponential, mean ``think_time_s``) after the previous turn
completes; a trace's later turn is sent at max(its trace time, the previous turn's
completion). A rejected turn ends its conversation: its later turns are never sent
(a user whose request failed does not continue that chat).

Synthetic turn t's prompt is the system prompt, the user tokens and visible answers of
turns 0..t-1, and its own new user tokens (``workload.prompt_len``); its output is the
visible answer (``workload.output_len``) plus, on a reasoning turn, the hidden reasoning
tokens, which later prompts leave out (the DeepSeek-R1 and Qwen3 chat templates drop
earlier turns' reasoning). A trace's prompts are its own lengths (they already hold the
history) and its hashes its own ``hash_ids``, if any.

Content hashes (prefix caching): a synthetic request gets one hash per ``hash_block``
tokens of its transcript, the last block possibly partial. A full block inside the
system prompt hashes the same in every conversation with that system prompt; every other
block is the conversation's own: its full blocks hash the same in every turn (the
transcript only grows), and a partial block gets a hash of its own, so it never matches
the full block that later holds more tokens at the same place. A turn without reasoning
has hashes for its prompt and its visible answer (``prefix_tokens``), so the answer's
blocks are cached when it completes and the next turn, whose prompt repeats them, finds
them. A reasoning turn's answer was computed after its hidden reasoning, so its KV does
not match the next prompt, and its hashes stop at the prompt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from frontier_core.config import WorkloadConfig
from frontier_core.errors import ConfigError, TraceError
from frontier_core.workload.sampling import Workload, lengths, synthetic_arrivals


def synthetic_conversations(
    cfg: WorkloadConfig, rng: np.random.Generator, resolve: Callable[[str], Path]
) -> Workload:
    """The requests of ``cfg.conversations``, conversation by conversation, turns in order;
    every random draw comes from ``rng``.

    ``num_requests`` counts requests (turns): conversations are drawn until their turns
    reach it and the last one is cut short to fit. ``arrival`` gives conversation start
    times, and ``duration_s`` drops conversations that would start after it (their
    started ones still run all their turns). A closed loop needs ``num_requests``.
    """
    cc = cfg.conversations
    assert cc is not None and cfg.prompt_len is not None and cfg.output_len is not None
    n = cfg.num_requests
    counts: np.ndarray | None = None
    if n is not None:
        # n conversations of at least one turn always hold n turns: draw them, keep enough.
        drawn = lengths(cc.turns, None, n, rng, resolve, "conversations.turns")
        ends = np.cumsum(drawn)
        k = int(np.searchsorted(ends, n)) + 1
        counts = drawn[:k].copy()
        counts[-1] -= int(ends[k - 1]) - n
    starts: np.ndarray | None = None
    if cfg.arrival is not None:
        starts = synthetic_arrivals(
            cfg.arrival, None if counts is None else len(counts), cfg.duration_s, rng
        )
        if counts is None:
            counts = lengths(cc.turns, None, len(starts), rng, resolve, "conversations.turns")
        counts = counts[: len(starts)]
    elif counts is None:
        raise ConfigError(
            "synthetic closed-loop conversations need workload.num_requests (the number of "
            "turns in all); duration_s alone gives no count without arrival times; set "
            "num_requests"
        )
    total, k = int(counts.sum()), len(counts)
    conversation = np.repeat(np.arange(k, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts  # index of each conversation's first turn
    turn = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    user = lengths(cfg.prompt_len, None, total, rng, resolve, "prompt_len")
    answer = np.maximum(lengths(cfg.output_len, None, total, rng, resolve, "output_len"), 1)
    if cc.think_time_s > 0:
        think = rng.exponential(cc.think_time_s, total)
        think[turn == 0] = 0.0
    else:
        think = np.zeros(total)
    hidden = np.zeros(total, dtype=np.int64)
    if cc.reasoning is not None:
        reasons = rng.random(total) < cc.reasoning.fraction
        tokens = lengths(cc.reasoning.tokens, None, total, rng, resolve,
                          "conversations.reasoning.tokens")
        hidden = np.where(reasons, tokens, 0).astype(np.int64)
    system = (rng.integers(0, cc.system_prompts, size=k) if cc.system_prompts > 1
              else np.zeros(k, dtype=np.int64))
    prompt, covered, prefix = transcripts(
        counts, system, user, answer, hidden, cc.system_prompt, cc.hash_block
    )
    return Workload(
        prompt_len=prompt,
        output_len=answer + hidden,
        arrival=np.repeat(starts, counts) if starts is not None else None,
        closed_loop=cfg.closed_loop,
        source=_describe(cfg, total, k, int(hidden.astype(bool).sum())),
        prefix=prefix,
        prefix_block=cc.hash_block,
        prefix_tokens=covered,
        conversation=conversation,
        turn=turn,
        think_s=think,
    )


def transcripts(
    counts: Sequence[int] | np.ndarray,
    system: Sequence[int] | np.ndarray,
    user: Sequence[int] | np.ndarray,
    answer: Sequence[int] | np.ndarray,
    hidden: Sequence[int] | np.ndarray,
    system_prompt: int,
    hash_block: int,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Prompt lengths (tokens), the tokens each request's hashes describe, and the hashes.

    Conversation c has ``counts[c]`` turns and system prompt ``system[c]`` of
    ``system_prompt`` tokens; per turn, in conversation order, ``user`` new user tokens,
    ``answer`` visible answer tokens and ``hidden`` reasoning tokens (0: no reasoning).
    Hashes are consecutive integers from 0, one per ``hash_block`` tokens (see the
    module docstring for what they identify).
    """
    size = hash_block
    sys_full = system_prompt // size  # blocks wholly inside the system prompt
    next_id = 0
    sys_ids: dict[int, list[int]] = {}
    u, a, r = (np.asarray(x).tolist() for x in (user, answer, hidden))
    total = len(u)
    prompt = np.empty(total, dtype=np.int64)
    covered = np.empty(total, dtype=np.int64)
    hashes: list[tuple[int, ...]] = []
    i = 0
    for c, m in enumerate(np.asarray(counts).tolist()):
        s = int(system[c])
        if s not in sys_ids:
            sys_ids[s] = list(range(next_id, next_id + sys_full))
            next_id += sys_full
        blocks = list(sys_ids[s])  # ids of this conversation's full transcript blocks
        history = system_prompt
        for _ in range(m):
            p = history + u[i]
            end = p if r[i] else p + a[i]
            full, part = divmod(end, size)
            while len(blocks) < full:
                blocks.append(next_id)
                next_id += 1
            h = tuple(blocks[:full])
            if part:
                h += (next_id,)  # a partial block: never equal to a later full one
                next_id += 1
            prompt[i], covered[i] = p, end
            hashes.append(h)
            history = p + a[i]
            i += 1
    return prompt, covered, hashes


def trace_conversations(
    wl: Workload, rows: list[tuple[int, str | None, object]], path: Path
) -> None:
    """Give ``wl`` (a trace's requests, one per row of ``rows``) its conversations.

    ``rows`` holds per request its 1-based line, conversation id (None: a conversation
    of its own) and ``turn`` value (None when the trace has none). Turns follow row
    order; a ``turn`` value that does not increase within its conversation is a
    ``TraceError``. A trace's later turn is sent at max(its arrival time, the previous
    turn's completion): think time 0.
    """
    ids: dict[str, int] = {}
    last: dict[int, tuple[float, int]] = {}  # conversation -> (turn value, line)
    conversation = np.empty(len(rows), dtype=np.int64)
    turn = np.empty(len(rows), dtype=np.int64)
    seen: list[int] = []  # turns so far, per conversation
    for i, (line, key, value) in enumerate(rows):
        c = ids.setdefault(key, len(seen)) if key is not None else len(seen)
        if c == len(seen):
            seen.append(0)
        conversation[i], turn[i] = c, seen[c]
        seen[c] += 1
        if value is None:
            continue
        v = _turn_value(value, path, line)
        before = last.get(c)
        if before is not None and v <= before[0]:
            raise TraceError(
                f"{path}:{line}: turn {value!r} of conversation {key!r} does not follow turn "
                f"{before[0]:g} (line {before[1]}); a conversation's turns are replayed in row "
                "order: sort its rows by turn (and the trace by time)"
            )
        last[c] = (v, line)
    wl.conversation, wl.turn = conversation, turn
    wl.think_s = np.zeros(len(rows))
    wl.source += f", {len(seen)} conversations of {len(rows) / len(seen):.1f} turns on average"


def _turn_value(value: object, path: Path, line: int) -> float:
    """A ``turn`` value: a whole number >= 0."""
    try:
        f = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        f = math.nan
    if not (math.isfinite(f) and f.is_integer() and f >= 0):
        raise TraceError(
            f"{path}:{line}: turn={value!r} is not a turn number; give a whole number >= 0, "
            "or drop the turn column (turns then follow row order)"
        )
    return f


def _describe(cfg: WorkloadConfig, total: int, k: int, reasoning: int) -> str:
    """One line: how many requests in how many conversations, and how they start."""
    cc = cfg.conversations
    assert cc is not None
    parts = [f"synthetic conversations ({total} requests in {k} conversations, "
             f"{total / k:.1f} turns on average)"]
    if cfg.arrival is not None:
        parts.append(f"{cfg.arrival.process} conversation starts at {cfg.arrival.rate:g}/s")
    if cfg.closed_loop is not None:
        parts.append(f"closed loop, {cfg.closed_loop.concurrency} conversations at a time")
    if cc.system_prompt:
        parts.append(f"{cc.system_prompts} system prompt(s) of {cc.system_prompt} tokens")
    if cc.reasoning is not None:
        parts.append(f"{reasoning} reasoning turns")
    for name, dist in (("user turn", cfg.prompt_len), ("answer", cfg.output_len)):
        if dist is not None:
            parts.append(f"{name} {dist.dist}")
    return ", ".join(parts)
