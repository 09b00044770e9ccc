"""Shared pieces of the pd plugin's tests: a transparent predictor and config builders."""

from __future__ import annotations

from typing import Any

from frontier_core.config import RunConfig


def flat_plugin() -> Any:
    """The kernel tests' transparent ``linear-test`` predictor (time linear in work), so
    these tests reason about the workflow, not about operator models."""
    from frontier_core.testing import linear_test_plugin

    return linear_test_plugin()


def pd_config(prefill: dict[str, Any], decode: dict[str, Any], workload: dict[str, Any],
              model: str = "llama-2-7b", workflow: dict[str, Any] | None = None,
              **extra: Any) -> RunConfig:
    data: dict[str, Any] = {
        "model": model,
        "deployment": {
            "workflow": {"name": "pd", **(workflow or {})},
            "clusters": [{"name": "prefill", **prefill}, {"name": "decode", **decode}],
        },
        "predictor": ["linear-test"],
        "workload": workload,
        "seed": 0,
        **extra,
    }
    return RunConfig.model_validate(data)
