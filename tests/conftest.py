"""Shared fixtures: a fresh registry per test, with an inline test predictor so that
kernel tests run without any plugin distribution installed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from frontier_core.components import ComponentSpec
from frontier_core.markers import hookimpl
from frontier_core.records import OpCall


class LinearPredictor:
    """A transparent stand-in for real predictors: 1 µs per op plus time linear in work."""

    def predict(self, call: OpCall) -> float:
        if call.op == "gemm":
            return 1e-6 + 2 * call.m * call.n * call.k / 200e12 + call.n * call.k * 2 / 1.5e12
        if call.op.startswith("attention"):
            return 1e-6 + float(call.kv_lens.sum()) * call.num_kv_heads * call.head_dim * 4 / 1.5e12
        if call.op == "cpu_overhead":
            return 1e-4
        return 1e-6 + call.bytes / 1e12


def _test_plugin() -> Any:
    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("linear-test", lambda o, ctx: LinearPredictor(), summary="tests")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


@pytest.fixture
def registry():
    """Built-ins, installed entry points, and the inline ``linear-test`` predictor."""
    from frontier_core.plugins import load_registry

    return load_registry(extra=[_test_plugin()])
