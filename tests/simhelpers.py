"""Helpers for kernel tests: small, fast run configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def small_config(**over: Any):
    """A fast co-located run: Llama-2-7B on an A100, synthetic Poisson workload."""
    from frontier_core.config import RunConfig

    data: dict[str, Any] = {
        "model": "llama-2-7b",
        "deployment": {"clusters": [{"name": "main", "gpu": "a100-80g-sxm"}]},
        "predictor": ["linear-test"],
        "workload": {
            "arrival": {"process": "poisson", "rate": 5.0},
            "prompt_len": {"dist": "uniform", "low": 16, "high": 1024},
            "output_len": {"dist": "uniform", "low": 1, "high": 200},
            "num_requests": 60,
        },
        "seed": 1,
    }
    for k, v in over.items():
        data[k] = v
    return RunConfig.model_validate(data)


def run_sim(cfg, registry):
    from frontier_core.assemble import assemble

    return assemble(cfg, registry).run()
