"""Shared pieces of the moe_ep tests: registries, predictors and run builders."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from frontier_core import ComponentSpec, hookimpl, load_registry
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.records import Batch, Request
from frontier_core.testing import linear_test_plugin


class ZeroPredictor:
    """Every operator takes no time: what is left is communication."""

    def predict(self, call: Any) -> float:
        return 0.0


def zero_plugin() -> Any:
    @hookimpl
    def frontier_predictors():
        return [ComponentSpec("zero", lambda o, ctx: ZeroPredictor(), summary="tests")]

    return SimpleNamespace(frontier_predictors=frontier_predictors)


def registry(*more: Any) -> Any:
    """Built-ins, the moe block, ``linear-test`` and ``zero`` predictors (and ``more``)."""
    import frontier_moe_ep.plugin as moe

    return load_registry(entry_points=False,
                         extra=[moe, linear_test_plugin(), zero_plugin(), *more])


def config(model: Any = "mixtral-8x7b", cluster: dict[str, Any] | None = None,
           predictor: Any = "linear-test", **extra: Any) -> RunConfig:
    data: dict[str, Any] = {
        "model": model,
        "deployment": {"clusters": [{"name": "main", "gpu": "h100-sxm", "tp": 8,
                                     **(cluster or {})}]},
        "predictor": predictor,
        "workload": {
            "arrival": {"process": "poisson", "rate": 20.0},
            "prompt_len": {"dist": "uniform", "low": 64, "high": 512},
            "output_len": {"dist": "uniform", "low": 8, "high": 64},
            "num_requests": 60,
        },
        "seed": 0,
        **extra,
    }
    return RunConfig.model_validate(data)


def build(cfg: RunConfig, reg: Any = None):
    return assemble(cfg, reg if reg is not None else registry())


def decode_batch(n: int, context: int = 256, start_id: int = 0) -> Batch:
    # dp_rank = id: the ranks taken in turn (the iteration takes it modulo dp).
    reqs = [Request(start_id + i, 0.0, context, 100, computed=context, generated=1,
                    prefill_target=context, dp_rank=start_id + i) for i in range(n)]
    return Batch(decode=reqs)


def prefill_batch(n: int, tokens: int) -> Batch:
    reqs = [Request(i, 0.0, tokens, 10, prefill_target=tokens, dp_rank=i) for i in range(n)]
    return Batch(prefill=reqs, chunks=[tokens] * n)


def block(sim, cluster: str = "main"):
    return sim.executors[cluster].moe_ffn


def expert_phase(sim, tokens: int, cluster: str = "main") -> np.ndarray:
    """Per-layer expert time (slowest rank) of one micro-batch of ``tokens`` tokens, and
    the brute-force maximum over every rank, as two arrays."""
    b = block(sim, cluster)
    ex = sim.executors[cluster]
    credit = [0.0] * len(ex.chain)
    tok = np.full(b.dp, tokens // b.dp, np.int64)
    _, _, experts, _ = b.phases(tok, 0.0, ex.answer, credit, False)
    return experts
