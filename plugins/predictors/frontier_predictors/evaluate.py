"""Accuracy of trained models on profile tables, and honest train/test splits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_predictors.features import row_to_call
from frontier_predictors.profiles import ProfileError

if TYPE_CHECKING:
    import pandas as pd

# What "the same shape" means per op for a whole-shape hold-out.
SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "gemm": ("n", "k"),
    "attention_prefill": ("num_heads", "num_kv_heads", "head_dim"),
    "attention_decode": ("num_heads", "num_kv_heads", "head_dim"),
    "moe_experts": ("hidden_size", "inter_size", "num_experts", "top_k"),
    "all_reduce": ("num_gpus",),
    "all_to_all": ("num_gpus",),
    "send_recv": ("num_gpus",),
}


def roofline_frame(df: pd.DataFrame) -> np.ndarray:
    """The datasheet roofline's seconds for every row (the untrained baseline)."""
    from frontier_core import RooflineOptions, RooflinePredictor
    from frontier_predictors.models import device_spec

    out = np.full(len(df), np.nan)
    for device, idx in df.groupby("device").indices.items():
        rp = RooflinePredictor(RooflineOptions(), device_spec(device))
        for i, r in zip(idx, df.iloc[idx].to_dict("records"), strict=True):
            out[i] = rp.predict(row_to_call(r))
    return out


def metrics(df: pd.DataFrame, pred: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per op: n, covered, median and p90 relative error, fractions within 5/10/20%."""
    y = df["latency_s"].to_numpy(dtype=float)
    out: dict[str, dict[str, Any]] = {}
    for op, idx in sorted(df.groupby("op").indices.items()):
        p = pred[idx]
        ok = ~np.isnan(p)
        e = np.abs(p[ok] - y[idx][ok]) / y[idx][ok]
        n = int(ok.sum())
        out[op] = {
            "n": n,
            "not_covered": int(len(idx) - n),
            "median_rel_err": float(np.median(e)) if n else None,
            "p90_rel_err": float(np.percentile(e, 90)) if n else None,
            "within_5pct": float(np.mean(e <= 0.05)) if n else None,
            "within_10pct": float(np.mean(e <= 0.10)) if n else None,
            "within_20pct": float(np.mean(e <= 0.20)) if n else None,
        }
    return out


def split(df: pd.DataFrame, by: str, test_frac: float, seed: int) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    """Random rows, or whole shapes (``SHAPE_KEYS``) per (device, op), held out for testing."""
    if not 0 < test_frac < 1:
        raise ProfileError(f"--test-frac {test_frac} must be between 0 and 1 (e.g. 0.2).")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), dtype=bool)
    if by == "rows":
        test[rng.permutation(len(df))[: max(1, round(test_frac * len(df)))]] = True
    elif by == "shape":
        for (_, op), idx in sorted(df.groupby(["device", "op"]).indices.items()):
            keys = df.iloc[idx][list(SHAPE_KEYS[op])].astype(str).agg("/".join, axis=1)
            shapes = sorted(keys.unique())
            if len(shapes) < 2:
                continue  # a lone shape cannot be held out and still trained on
            order = rng.permutation(len(shapes))
            chosen: set[str] = set()
            held = 0
            for j in order:
                if held >= test_frac * len(idx) or len(chosen) == len(shapes) - 1:
                    break
                chosen.add(shapes[j])
                held += int((keys == shapes[j]).sum())
            test[idx[keys.isin(chosen).to_numpy()]] = True
    else:
        raise ProfileError(f"--by {by!r} is not a split: use rows or shape.")
    return df[~test].reset_index(drop=True), df[test].reset_index(drop=True)
