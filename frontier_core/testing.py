"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point).

``frontier_registry_factory(*plugins, entry_points=False)`` gives a fresh
registry with the built-ins and the given plugin objects; ``frontier_config``
builds a small, fast run config to modify; ``linear_test_plugin()`` registers
``linear-test``, a transparent predictor, so tests run without a predictor
distribution.
"""

from __future__ import annotations

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
