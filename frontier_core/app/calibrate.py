"""``frontier calibrate``: fit an engine's host constants to serving benchmarks.

An engine's host time per step (frontier_core/execution/engines.py) is CPU work, ``base + per_seq ×
sequences``, hidden behind the GPU's forward pass when the engine overlaps the two, plus
a gap per step that nothing hides. Calibration simulates every covered row of one engine
in a benchmark file (the columns of ``frontier validate serving``) with no host time,
then fits the constants to the measured TPOT by a robust (Huber) non-negative fit on
relative errors: a decode step emits one token per sequence, so what a step adds
shows in TPOT directly. A share of the rows is held out of
the fit; they are simulated again with the engine's current constants and with the
fitted ones, and their errors are reported. Nothing is fitted per model or per row.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frontier_core.errors import ConfigError
from frontier_core.execution.engines import HOST_KEYS

KEYS = HOST_KEYS


@dataclass
class Calibration:
    """A fitted profile (``profile()`` is what a config's ``engine.profile`` reads)."""

    engine: str
    source: str
    host: dict[str, float]
    rows_fit: int
    rows_held_out: int
    held_out: dict[str, dict[str, float | None]] = field(default_factory=dict)
    predictor: list[str] = field(default_factory=list)

    def profile(self) -> dict[str, Any]:
        return {"engine": self.engine, "host": self.host, "source": self.source,
                "predictor": self.predictor, "rows_fit": self.rows_fit,
                "rows_held_out": self.rows_held_out, "held_out": self.held_out}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.profile(), indent=2) + "\n")


def _with_host(config: dict[str, Any], host: dict[str, float] | None) -> dict[str, Any]:
    """A row's config whose clusters use ``host`` constants (None: the engine's own)."""
    if host is None:
        return config
    c = copy.deepcopy(config)
    for cl in c["deployment"]["clusters"]:
        cl["engine"].update({f"host_{k}": v for k, v in host.items()})
    return c


def fit_host(base_tpot: np.ndarray, seqs: np.ndarray, tokens: np.ndarray,
             measured: np.ndarray, overlap: np.ndarray | bool = True, delta: float = 0.1,
             rounds: int = 20) -> dict[str, float]:
    """Non-negative host constants (``HOST_KEYS``) minimising the Huber loss (``delta``
    in relative error) of the predicted step against ``measured``, all in seconds.

    A row's step is ``EngineModel.step_s``: with the engine's overlap (``overlap``, per
    row or for all) ``max(gpu, cpu) + gap``, without it ``gpu + cpu + gap``, where
    ``cpu = base + per_seq × seqs``. The CPU constants are searched on a log grid; for
    each pair the gap is the Huber-weighted least-squares solution (iteratively
    reweighted), clipped at zero. Per-token host work is not identifiable from
    decode-dominated rows and is left at zero."""
    g = np.asarray(base_tpot, float)
    s = np.asarray(seqs, float)
    m = np.asarray(measured, float)
    ov = np.broadcast_to(np.asarray(overlap, bool), g.shape)

    def search(bases: np.ndarray, per_seq: np.ndarray) -> tuple[float, float, float, float]:
        # Every (base, per_seq) pair at once: cpu has shape (pairs, rows).
        b, p = (a.ravel() for a in np.meshgrid(bases, per_seq, indexing="ij"))
        cpu = b[:, None] + p[:, None] * s[None, :]
        step = np.where(ov[None, :], np.maximum(g[None, :], cpu), g[None, :] + cpu)
        y = (m[None, :] - step) / m[None, :]  # the relative gap the per-step gap closes
        x = 1.0 / m
        w = np.ones_like(y)
        gap = np.zeros(len(b))
        for _ in range(rounds):
            gap = np.maximum(0.0, (w * y * x).sum(1) / (w * x * x).sum(1))
            r = np.abs(y - gap[:, None] * x[None, :])
            w = np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-12))
        r = np.abs(y - gap[:, None] * x[None, :])
        loss = np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(1)
        # The smallest constants among (nearly) equal fits: CPU work that hides behind
        # every row's GPU time leaves no trace in the data.
        k = int(np.flatnonzero(loss <= loss.min() * (1 + 1e-9) + 1e-15)[0])
        return float(loss[k]), float(b[k]), float(p[k]), float(gap[k])

    coarse = (np.concatenate([[0.0], np.geomspace(1e-5, 3e-2, 40)]),
              np.concatenate([[0.0], np.geomspace(1e-7, 3e-4, 40)]))
    _, b0, p0, _ = search(*coarse)
    # A finer grid around the coarse optimum (a factor of 1.25 either way).
    fine = [np.concatenate([[0.0], v * np.geomspace(0.8, 1.25, 25)]) if v else c
            for v, c in zip((b0, p0), coarse, strict=True)]
    _, b1, p1, gap = search(*fine)
    return {"base_s": b1, "per_seq_s": p1, "per_token_s": 0.0, "gap_s": gap}


def _errors(results: list[dict[str, Any]], rows: list[Any]) -> dict[str, float | None]:
    tt, tp = [], []
    for out, m in zip(results, rows, strict=True):
        if "error" in out:
            continue
        tt.append(out["pred_ttft_ms"] / float(m.row.get("silicon_ttft_ms")) - 1)
        tp.append(out["pred_tpot_ms"] / float(m.row.get("silicon_tpot_ms")) - 1)

    def med(v: list[float]) -> float | None:
        return float(np.median(v)) if v else None

    return {"rows": len(tp), "tpot_median_abs_err": med([abs(e) for e in tp]),
            "tpot_median_signed_err": med(tp), "ttft_median_abs_err": med([abs(e) for e in tt]),
            "ttft_median_signed_err": med(tt)}


def calibrate(
    path: str | Path,
    engine: str,
    *,
    holdout: float = 0.25,
    sample: int | None = None,
    jobs: int = 1,
    predictor: Sequence[str] = ("roofline",),
    registry: Any = None,
    progress: Callable[[int, int], None] | None = None,
    annotations: str | Path | None = None,
    client: str = "auto",
) -> Calibration:
    """Fit ``engine``'s host constants on the covered rows of ``path`` (or a spread
    ``sample`` of them), holding out every row whose turn falls in the ``holdout`` share."""
    from frontier_core.app.validate import _run, map_rows, read_rows, spread

    engine = engine.lower()
    if not 0 <= holdout < 1:
        raise ConfigError(f"--holdout {holdout} must lie in [0, 1): the share of rows kept "
                          "out of the fit to measure it.")
    if registry is None:
        from frontier_core.plugins import load_registry

        registry = load_registry()
    if engine not in registry.names("engine"):
        raise ConfigError(f"--engine {engine!r} is not an installed engine; use one of "
                          f"{', '.join(registry.names('engine'))}.")
    for name in predictor:
        registry.get("predictor", name, where="--predictor")
    mapped = map_rows(read_rows(path, annotations), registry, predictor, client=client)
    rows = [m for m in mapped if m.duplicate_of is None and m.config is not None
            and m.row.get("backend").lower() == engine]
    if sample is not None:
        rows = spread(rows, sample)
    every = math.inf if holdout == 0 else max(2, round(1 / holdout))
    held = [m for i, m in enumerate(rows) if i % every == every - 1] if holdout else []
    held_ids = {id(m) for m in held}
    fit = [m for m in rows if id(m) not in held_ids]
    if len(fit) < 3:
        raise ConfigError(
            f"{path}: {len(fit)} row(s) of engine {engine!r} that Frontier can simulate are "
            "left to fit on (3 needed); frontier validate serving lists what the others lack.")
    zero = dict.fromkeys(KEYS, 0.0)
    todo = [_cfg(m, zero) for m in fit] + [_cfg(m, None) for m in held] + [
        _cfg(m, zero) for m in held]
    n_fit, n_held = len(fit), len(held)
    total = len(todo) + n_held
    done = [0]

    def step(d: int, _t: int) -> None:
        if progress is not None:
            progress(done[0] + d, total)

    out = _run(todo, jobs, None, registry, step)
    res = [out[id(m)] for m in todo]
    base, held_default = res[:n_fit], res[n_fit:n_fit + n_held]
    ok = [i for i, r in enumerate(base) if "error" not in r and r["pred_tpot_ms"] > 0]
    if len(ok) < 3:
        raise ConfigError(f"{path}: only {len(ok)} row(s) of engine {engine!r} simulated; "
                          "nothing to fit.")
    host = fit_host(np.array([base[i]["pred_tpot_ms"] for i in ok]) / 1e3,
                    np.array([base[i]["iter_seqs"] for i in ok]),
                    np.array([base[i]["iter_tokens"] for i in ok]),
                    np.array([float(fit[i].row.get("silicon_tpot_ms")) for i in ok]) / 1e3,
                    np.array([base[i].get("overlap", True) for i in ok]))
    held_out: dict[str, dict[str, float | None]] = {}
    if held:
        done[0] = len(todo)
        again = [_cfg(m, host) for m in held]
        out = _run(again, jobs, None, registry, step)
        held_out = {"default": _errors(held_default, held),
                    "no_host": _errors(res[n_fit + n_held:], held),
                    "calibrated": _errors([out[id(m)] for m in again], held)}
    return Calibration(engine, str(path), host, len(ok), n_held, held_out, list(predictor))


class _Todo:
    """A row with a modified config, in the shape ``validate._run`` takes."""

    def __init__(self, m: Any, config: dict[str, Any]) -> None:
        self.row = m.row
        self.config = config


def _cfg(m: Any, host: dict[str, float] | None) -> _Todo:
    return _Todo(m, _with_host(m.config, host))
