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


#: One benchmark row in silicon_sample.csv's columns (frontier validate serving).
SERVING_ROW = {
    "id": "r", "silicon_data_source": "db; silicon_concurrency=16; x", "backend": "vllm",
    "backend_version": "0.12.0", "model_path": "meta-llama/Llama-3.1-8B-Instruct",
    "system": "h200_sxm", "precision": "fp8", "mode": "agg", "isl": "1024", "osl": "128",
    "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "tp_size": "2", "pp_size": "1",
    "attention_dp_size": "1", "moe_tp_size": "2", "moe_ep_size": "1",
    "silicon_ttft_ms": "50.0", "silicon_tpot_ms": "8.0",
}


def small_yaml(predictor: str = "linear-test", num_requests: int = 40, rate: float = 4) -> str:
    """A small co-located run config as YAML: Llama-2-7B on one A100, Poisson arrivals,
    uniform lengths, no trace file written."""
    return (
        "model: llama-2-7b\n"
        "deployment:\n  clusters: [{name: main, gpu: a100-80g-sxm}]\n"
        f"predictor: [{predictor}]\n"
        f"workload:\n  arrival: {{process: poisson, rate: {rate:g}}}\n"
        "  prompt_len: {dist: uniform, low: 32, high: 512}\n"
        "  output_len: {dist: uniform, low: 4, high: 64}\n"
        f"  num_requests: {num_requests}\n"
        "seed: 0\noutput: {trace: false}\n"
    )
