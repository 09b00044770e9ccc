"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point).

``frontier_registry_factory(*plugins, entry_points=False)`` gives a fresh
registry with the built-ins and the given plugin objects; ``frontier_config``
builds a small, fast run config to modify; ``linear_test_plugin()`` registers
``linear-test``, a transparent predictor, so tests run without a predictor
distribution; ``FakeReplica`` is a replica as a scheduler sees it, with the engine's own
KV cache, for testing a scheduler without a simulation.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest


class LinearPredictor:
    """A transparent stand-in for real predictors: 1 µs per op plus time linear in work
    (seconds)."""

    def predict(self, call: Any) -> float:
        if call.op == "gemm":
            return 1e-6 + 2 * call.m * call.n * call.k / 200e12 + call.n * call.k * 2 / 1.5e12
        if call.op.startswith("attention"):
            return 1e-6 + float(call.kv_lens.sum()) * call.num_kv_heads * call.head_dim * 4 / 1.5e12
        if call.op == "cpu_overhead":
            return 1e-4
        if call.op == "moe_experts" and call.extra:
            # Grouped GEMMs: FLOPs of the (token, expert) assignments plus the weights
            # of every expert that received a token.
            ex = call.extra
            h, i = ex["hidden_size"], ex.get("inter_size_local", ex["inter_size"])
            tpe = ex.get("tokens_per_expert")
            assigned = float(ex.get("assignments", tpe.sum() if tpe is not None
                                    else ex.get("num_tokens", call.m)))
            active = int((tpe > 0).sum()) if tpe is not None else ex.get("num_local_experts", 1)
            return 1e-6 + 6 * assigned * h * i / 200e12 + active * 3 * h * i * 2 / 1.5e12
        return 1e-6 + call.bytes / 1e12


class FakeReplica:
    """A replica as a scheduler sees it (a ``frontier_core.sdk.SchedulerView``) with the
    engine's paged KV cache of ``num_blocks`` blocks of ``block_size`` tokens, and one
    waiting request per entry of ``prompts`` (ids 0, 1, ...): a prompt length (with
    ``output_len`` output tokens) or a (prompt, output) pair.
    ``finish_iteration(batch)`` does what the engine does after an iteration."""

    def __init__(self, prompts: list[int] | list[tuple[int, int]], num_blocks: int = 1000,
                 block_size: int = 16, output_len: int = 8, decode_width: int = 1) -> None:
        from frontier_core.engine.kv import PagedKVCache
        from frontier_core.records import Request

        self.kv = PagedKVCache(num_blocks=num_blocks, block_size=block_size)
        self.now = 0.0
        self.decode_width = decode_width
        self.running: list[Any] = []
        pairs = [p if isinstance(p, tuple) else (p, output_len) for p in prompts]
        self.waiting: deque[Any] = deque(
            Request(i, 0.0, p, o, prefill_target=p) for i, (p, o) in enumerate(pairs))
        self.preemptions = 0

    def preempt(self, request: Any) -> None:
        """Recompute preemption, as the engine does it."""
        self.kv.release(request)
        request.computed = 0
        request.prefill_target = request.prompt_len + request.generated
        self.running.remove(request)
        self.waiting.appendleft(request)
        self.preemptions += 1

    def finish_iteration(self, batch: Any) -> None:
        """Prefill chunks computed (a finished prompt yields its first token), one token
        per decode; finished requests leave ``running`` and give their KV back."""
        for r, c in zip(batch.prefill, batch.chunks, strict=True):
            r.computed += c
            if r.computed >= r.prefill_target:
                r.generated += 1
        for r in batch.decode:
            r.computed += 1
            r.generated += 1
        for r in [r for r in self.running if r.generated >= r.output_len]:
            self.running.remove(r)
            self.kv.release(r)


def linear_test_plugin() -> Any:
    """A plugin object providing the ``linear-test`` predictor (``LinearPredictor``)."""
    from types import SimpleNamespace

    from frontier_core.components import ComponentSpec
    from frontier_core.markers import hookimpl

    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("linear-test", lambda o, ctx: LinearPredictor(), summary="tests")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


@pytest.fixture
def frontier_registry_factory():
    from frontier_core.plugins import load_registry

    def make(*plugins: Any, entry_points: bool = False):
        return load_registry(entry_points=entry_points, extra=list(plugins))

    return make


@pytest.fixture
def frontier_config():
    """A small co-located run (Llama-2-7B on one A100, 50 Poisson requests)."""
    from frontier_core.config import RunConfig

    def make(**overrides: Any) -> RunConfig:
        data: dict[str, Any] = {
            "model": "llama-2-7b",
            "deployment": {"clusters": [{"name": "main", "gpu": "a100-80g-sxm"}]},
            "workload": {
                "arrival": {"process": "poisson", "rate": 4.0},
                "prompt_len": {"dist": "uniform", "low": 64, "high": 512},
                "output_len": {"dist": "uniform", "low": 8, "high": 128},
                "num_requests": 50,
            },
            "seed": 0,
        }
        data.update(overrides)
        return RunConfig.model_validate(data)

    return make
