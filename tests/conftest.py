"""Shared fixtures: a fresh registry per test, with an inline test predictor so that
kernel tests run without any plugin distribution installed."""

from __future__ import annotations

from typing import Any

import pytest

from frontier_core.testing import linear_test_plugin


def _test_plugin() -> Any:
    return linear_test_plugin()


@pytest.fixture
def registry():
    """Built-ins, installed entry points, and the inline ``linear-test`` predictor."""
    from frontier_core.plugins import load_registry

    return load_registry(extra=[_test_plugin()])
