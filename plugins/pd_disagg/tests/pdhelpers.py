"""Shared pieces of the pd plugin's tests: a transparent predictor and config builders."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from frontier_core import ComponentSpec, OpCall, hookimpl
from frontier_core.config import RunConfig


class FlatPredictor:
    """Deterministic stand-in for real predictors: time linear in work, so tests reason
    about the workflow, not about operator models."""

    def predict(self, call: OpCall) -> float:
        if call.op == "gemm":
            return 2e-6 + 2 * call.m * call.n * call.k / 300e12 + call.n * call.k * 2 / 2e12
        if call.op.startswith("attention"):
            return 1e-6 + float(call.kv_lens.sum()) * call.num_kv_heads * call.head_dim * 4 / 2e12
        if call.op == "cpu_overhead":
            return 5e-5
        return 1e-6 + call.bytes / 1.5e12


def flat_plugin() -> Any:
    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("flat-test", lambda o, ctx: FlatPredictor(), summary="tests")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


def pd_config(prefill: dict[str, Any], decode: dict[str, Any], workload: dict[str, Any],
              model: str = "llama-2-7b", workflow: dict[str, Any] | None = None,
              **extra: Any) -> RunConfig:
    data: dict[str, Any] = {
        "model": model,
        "deployment": {
            "workflow": {"name": "pd", **(workflow or {})},
            "clusters": [{"name": "prefill", **prefill}, {"name": "decode", **decode}],
        },
        "predictor": ["flat-test"],
        "workload": workload,
        "seed": 0,
        **extra,
    }
    return RunConfig.model_validate(data)
