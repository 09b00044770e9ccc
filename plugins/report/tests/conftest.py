"""Fixtures: a registry with an inline predictor (no predictor distribution needed), a
small real run and a small real sweep made by the kernel, shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frontier_core.testing import linear_test_plugin

CONFIG_YAML = """\
model: llama-2-7b
deployment:
  clusters:
    - {name: main, gpu: a100-80g-sxm}
predictor: [linear-test]
workload:
  arrival: {process: poisson, rate: 4}
  prompt_len: {dist: uniform, low: 64, high: 512}
  output_len: {dist: uniform, low: 1, high: 64}
  num_requests: 40
slo: {ttft_s: 0.5, tpot_s: 0.05}
seed: 0
"""


@pytest.fixture(scope="session")
def registry():
    from frontier_core import load_registry

    return load_registry(extra=[linear_test_plugin()])


@pytest.fixture(scope="session")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_text(CONFIG_YAML)
    return path


def _make_run(registry: Any, config: Path, out: Path, *overrides: str) -> Path:
    """Simulate ``config`` with ``--set``-style overrides and write its directory."""
    from frontier_core.app.metrics import write_outputs
    from frontier_core.assemble import assemble
    from frontier_core.configfile import load_config

    write_outputs(assemble(load_config(config, list(overrides)), registry).run(), out)
    return out


@pytest.fixture(scope="session")
def make_run(registry, config_file):
    """``make_run(out, *overrides)``: a run of the test config written to ``out``."""
    return lambda out, *overrides: _make_run(registry, config_file, out, *overrides)


@pytest.fixture(scope="session")
def run_dir(registry, config_file, tmp_path_factory) -> Path:
    """A finished co-located run with trace.json (two replicas)."""
    return _make_run(registry, config_file, tmp_path_factory.mktemp("run") / "out",
                    "deployment.clusters.0.replicas=2")


@pytest.fixture(scope="session")
def sweep_dir(registry, config_file, tmp_path_factory) -> Path:
    """A 2×2 sweep: arrival rate × replica count."""
    from frontier_core.app.sweep import sweep

    out = tmp_path_factory.mktemp("sweep") / "sw"
    result = sweep([config_file], ["workload.arrival.rate=2,4",
                                   "deployment.clusters.0.replicas=1,2"], out, registry=registry)
    assert not result.failed()
    return out
