"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point).

``frontier_registry_factory(*plugins, entry_points=False)`` gives a fresh
registry with the built-ins and the given plugin objects; ``frontier_config``
builds a small, fast run config to modify.
"""

from __future__ import annotations

from typing import Any

import pytest


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
