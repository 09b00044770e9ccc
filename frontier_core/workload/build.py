"""``build_workload``: a ``WorkloadConfig`` into a ``Workload``, from a trace or seeded
distributions, with conversations where the config asks for them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from frontier_core.config import (
    MAX_REQUESTS,
    WorkloadConfig,
)
from frontier_core.errors import ConfigError
from frontier_core.workload.conversations import synthetic_conversations, trace_conversations
from frontier_core.workload.sampling import Workload, lengths, synthetic_arrivals
from frontier_core.workload.traces import read_trace


def build_workload(
    cfg: WorkloadConfig, rng: np.random.Generator, resolve: Callable[[str], Path]
) -> Workload:
    """Build the run's requests from ``cfg``; every random draw comes from ``rng``.

    ``resolve`` maps a config path string to a file (pass ``RunConfig.resolve``).
    Trace times are rebased to the first replayed row (after ``start``) and multiplied by
    ``time_scale``; a given ``arrival`` process replaces trace times, and ``prompt_len`` /
    ``output_len`` distributions given next to a trace replace that trace column.
    ``num_requests`` keeps the first N requests and ``duration_s`` drops arrivals after
    that many seconds (a trace shorter than N is used as is, never looped; a closed loop
    has no arrivals for ``duration_s`` to cut). An output length of 0 in a file is raised
    to 1, since a request always yields at least one token; a prompt length of 0 is a
    ``TraceError``. A workload left with no requests is a ``ConfigError``.

    Conversations (synthetic, or a trace's ``conversation_id``) are described in
    ``frontier_core.workload.conversations``.
    """
    if cfg.conversations is not None:
        return synthetic_conversations(cfg, rng, resolve)
    n = cfg.num_requests
    arrival: np.ndarray | None = None
    trace_prompt: np.ndarray | None = None
    trace_output: np.ndarray | None = None
    prefix: list[tuple[int, ...]] | None = None
    convs: list[tuple[int, str | None, object]] | None = None
    if cfg.trace is not None:
        timed = cfg.arrival is None and cfg.closed_loop is None
        trace_prompt, trace_output, arrival, prefix, convs = read_trace(
            cfg.trace, resolve, timed, n, cfg.duration_s
        )
        n = len(trace_prompt)
    elif n is None and cfg.closed_loop is not None:
        raise ConfigError(
            "a synthetic closed-loop workload needs workload.num_requests (duration_s alone "
            "gives no request count without arrival times); set num_requests"
        )
    if cfg.arrival is not None:
        if n is None and cfg.duration_s is not None:
            expected = cfg.arrival.rate * cfg.duration_s
            if expected > MAX_REQUESTS:
                raise ConfigError(
                    f"workload.arrival.rate × workload.duration_s = {cfg.arrival.rate:g} × "
                    f"{cfg.duration_s:g} s ≈ {expected:.3g} requests, more than the "
                    f"{MAX_REQUESTS:,} one run may have; lower the rate or the duration, or "
                    "set workload.num_requests."
                )
        # The first arrival is at 0 <= duration_s, so this is never empty.
        arrival = synthetic_arrivals(cfg.arrival, n, cfg.duration_s, rng)
    if arrival is not None:
        n = len(arrival)
    assert n is not None
    prompt = lengths(cfg.prompt_len, trace_prompt, n, rng, resolve, "prompt_len")
    output = lengths(cfg.output_len, trace_output, n, rng, resolve, "output_len")
    if prefix is not None and (cfg.prompt_len is not None or len(prefix) != n):
        prefix = None  # hashes describe the trace's prompts, not replaced or cut ones
    wl = Workload(
        prompt_len=prompt,
        output_len=np.maximum(output, 1),
        arrival=arrival,
        closed_loop=cfg.closed_loop,
        source=_describe(cfg, n, resolve),
        prefix=prefix,
        prefix_block=cfg.trace.hash_block if prefix is not None and cfg.trace else 0,
        warmup=cfg.warmup_requests,
    )
    if cfg.warmup_requests >= n:
        raise ConfigError(
            f"workload.warmup_requests is {cfg.warmup_requests} but the workload has {n} "
            "requests, so none would be measured; lower warmup_requests or raise "
            "num_requests."
        )
    if convs is not None and cfg.trace is not None:
        trace_conversations(wl, convs[:n], resolve(cfg.trace.path))
    return wl


def _describe(cfg: WorkloadConfig, n: int, resolve: Callable[[str], Path]) -> str:
    """One line saying where the requests came from."""
    parts = []
    if cfg.trace is not None:
        parts.append(f"{cfg.trace.format} trace {resolve(cfg.trace.path).name} ({n} rows)")
    else:
        parts.append(f"synthetic ({n} requests)")
    if cfg.arrival is not None:
        parts.append(f"{cfg.arrival.process} arrivals at {cfg.arrival.rate:g} req/s")
    if cfg.closed_loop is not None:
        parts.append(f"closed loop, concurrency {cfg.closed_loop.concurrency}")
    for name, dist in (("prompt", cfg.prompt_len), ("output", cfg.output_len)):
        if dist is not None:
            parts.append(f"{name} {dist.dist}")
    return ", ".join(parts)


# ---- trace files -----------------------------------------------------------------------
