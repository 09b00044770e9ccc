"""The ``table``, ``forest``, ``proxy`` and ``auto`` predictor components.

Each wraps trained models (``models.TrainedModels``) for the run's GPU kind and
answers the calls they cover; the next predictor of the chain (the roofline,
last) answers the rest. Predictions are memoised on quantised features, so the
ensemble runs once per distinct batch shape, not once per iteration.

Where models come from:
- ``model: DIR``: a folder written by ``frontier predictors train``;
- ``data: [TABLE_OR_DIR, ...]``: profile tables, trained at the start of the
  run and cached in the user cache directory, keyed by the data's bytes, the
  backend options and the code version;
- ``auto``: measured data found for the run's GPU kind (AIConfigurator's
  database when ``frontier-predictors[aic]`` is installed), trained and cached
  the same way; the roofline with a warning naming what is missing otherwise.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from frontier_core import ConfigError, FrontierWarning, OpCall, install_hint
from frontier_predictors.features import Featurizer, gemm_memo_m
from frontier_predictors.models import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    LearnedModel,
    TableModel,
    TrainedModels,
    train,
)
from frontier_predictors.profiles import PROFILED_OPS, fingerprint, load_tables

if TYPE_CHECKING:
    from frontier_core import BuildContext

_MISS = object()
_ATTENTION = ("attention_prefill", "attention_decode")
#: Bytes per KV-cache element -> the format a measured attention row is filed under.
_KV_FORMAT = {1: "fp8", 2: "bf16"}


def attention_table_view(call: OpCall) -> OpCall | None:
    """``call`` as the measured attention tables file it (None: no table can hold it).

    A measured row's dtype is its KV cache's format (AIConfigurator's
    ``kv_cache_dtype``, ``frontier profile``'s cache dtype) with the math in bf16; the
    execution model's calls say bf16 and give the cache's bytes per element in
    ``extra["kv_bytes"]``. Absorbed MLA (one cached latent read as keys and values) is
    told apart by its head dimension, which the learned models keep as a kernel family
    of its own (``models._family``).
    """
    ex = call.extra
    if not ex:
        return call
    if ex.get("window"):
        return None  # sliding-window attention: no table holds it (the import skips it)
    kv = ex.get("kv_bytes")
    fmt = call.dtype if kv is None else _KV_FORMAT.get(kv)
    if fmt is None:
        return None
    return OpCall(call.op, call.name, fmt, call.m, call.n, call.k, call.num_heads,
                  call.num_kv_heads, call.head_dim, call.q_lens, call.kv_lens)


def cache_dir() -> Path:
    """``$FRONTIER_CACHE_DIR``, else ``$XDG_CACHE_HOME/frontier``, else ``~/.cache/frontier``."""
    env = os.environ.get("FRONTIER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "frontier"


class ModelOptions(BaseModel):
    """Options of the ``table``, ``forest`` and ``proxy`` predictors."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="folder written by `frontier predictors train`")
    data: list[str] | None = Field(
        None, description="profile tables or folders to train on at start-up (cached)"
    )
    device: str | None = Field(
        None, description="use models trained for this device name instead of the cluster's GPU"
    )
    estimator: str = Field(DEFAULT_ESTIMATOR, description=f"one of {', '.join(ESTIMATORS)}")
    margin: float = Field(
        1.0, ge=0, description="how far (log2 units) beyond the training range a model answers"
    )
    seed: int = 0


class AutoOptions(BaseModel):
    """Options of the ``auto`` predictor."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("forest", description="table, forest or proxy")
    estimator: str = DEFAULT_ESTIMATOR
    margin: float = Field(1.0, ge=0)
    seed: int = 0


class ModelPredictor:
    """Answers OpCalls of one device from trained models; None outside their coverage."""

    def __init__(self, trained: TrainedModels, device: str) -> None:
        self.device = device
        self.models = {op: m for (d, op), m in trained.models.items() if d == device}
        self._memo: dict[Any, float | None] = {}
        # (dtype, n, k) of the GEMMs seen, for prefetching (``_gemm_miss``)
        self._gemm_shapes: dict[tuple[str, int, int], None] = {}
        #: A predictor the chain appends when this one ends it (assemble._build_chain).
        self.fallback: str | None = None
        for m in self.models.values():
            if isinstance(m, LearnedModel):
                m.flat._layout()  # at assembly, not during the run

    def covered_ops(self) -> list[str]:
        return sorted(self.models)

    def predict(self, call: OpCall) -> float | None:
        m = self.models.get(call.op)
        if m is None:
            return None
        if call.extra is not None and call.op in _ATTENTION:
            call = attention_table_view(call)
            if call is None:
                return None
        if isinstance(m, TableModel):
            return m.predict_one(call)
        # NOTE: perf — the ensemble runs once per coarse key (Featurizer.memo_key);
        # the exact roofline time scales the memoised ratio, so predictions stay smooth.
        key = m.feat.memo_key(call)
        ratio = self._memo.get(key, _MISS)
        if ratio is _MISS:
            if call.op == "gemm":
                ratio = self._gemm_miss(m, call, key)
            elif m.covers(call):
                f, rl = m.feat.features(call)
                ratio = math.exp(float(m.flat.predict(f)[0]))
            else:
                ratio = None
            self._memo[key] = ratio
        if ratio is None:
            return None
        return m.feat.roofline_time(call) * ratio

    def _gemm_miss(self, m: LearnedModel, call: OpCall, key: Any) -> float | None:
        """The ratio of a GEMM not seen at this m, predicted together with every other
        GEMM shape seen so far at the same m, whose ratios are memoised.

        NOTE: perf — a forward pass asks for all its GEMMs (QKV, O, up, down, LM head)
        at each new token count; one walk of the trees for five rows costs about 2.5
        single ones (measured here), and the predictions are the same.
        """
        self._gemm_shapes[(call.dtype, call.n, call.k)] = None
        memo = self._memo
        rep = gemm_memo_m(call.m)  # the m the memo key stands for
        batch = [(OpCall("gemm", "gemm", call.dtype, m=rep, n=call.n, k=call.k), key)]
        for dt, n, k in self._gemm_shapes:
            c = OpCall("gemm", "gemm", dt, m=rep, n=n, k=k)
            ck = m.feat.memo_key(c)
            if ck != key and ck not in memo:
                batch.append((c, ck))
        rows = []
        for c, ck in batch:
            if m.covers(c):
                rows.append((ck, m.feat.features(c)[0]))
            else:
                memo[ck] = None
        if not rows:
            return None
        pred = m.flat.predict(np.vstack([f for _, f in rows]))
        for (ck, _), v in zip(rows, pred.tolist(), strict=True):
            memo[ck] = math.exp(v)
        return memo[key]


#: Written last into a cache folder: the folder is whole.
_COMPLETE = ".complete"


def _published(folder: Path) -> bool:
    return (folder / _COMPLETE).is_file()


def _publish(folder: Path, build: Callable[[Path], object]) -> None:
    """Create the cache folder ``folder`` whole: ``build`` fills a private temporary
    folder next to it, which is then renamed into place. Parallel runs (``validate
    serving -j``, ``sweep -j``) that miss the same entry each build it; the first to
    finish publishes, the others' copies are dropped, and no run reads a half-written
    folder. A folder left without the completion mark (an interrupted older run) is
    replaced."""
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        build(tmp)
        (tmp / _COMPLETE).touch()
        if folder.exists() and not _published(folder):
            trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".stale-"))
            try:
                folder.rename(trash / folder.name)
            except OSError:
                pass  # another run moved it first
            shutil.rmtree(trash, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:
            if not _published(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when renamed


def _train_cached(paths: list[Path], backend: str, estimator: str, margin: float,
                  seed: int) -> TrainedModels:
    """Models trained on ``paths``, from the cache when the same data and code trained them."""
    from frontier_predictors import __version__

    h = hashlib.sha256(json.dumps(
        [fingerprint(paths), backend, estimator, margin, seed, __version__], sort_keys=True
    ).encode()).hexdigest()[:20]
    folder = cache_dir() / "models" / f"{backend}-{h}"
    if _published(folder):
        try:
            return TrainedModels.load(folder)
        except Exception:  # a cache written by other library versions: retrain
            pass
    trained = train(load_tables(paths), backend, seed=seed, estimator=estimator, margin=margin)
    try:
        _publish(folder, trained.save)
    except OSError as e:
        warnings.warn(f"could not cache the trained predictor in {folder}: {e}", FrontierWarning,
                      stacklevel=2)
    return trained


def _make(backend: str):
    def factory(options: ModelOptions, ctx: BuildContext) -> ModelPredictor:
        if ctx.device is None:
            raise ConfigError(f"the {backend} predictor is built per cluster and needs its GPU kind.")
        if (options.model is None) == (options.data is None):
            raise ConfigError(
                f"predictor {backend!r} (frontier-predictors) needs exactly one of 'model' (a "
                "folder from `frontier predictors train`) or 'data' (profile tables to train "
                "on), e.g. predictor: [{name: " + backend + ", model: models/h100}, roofline]."
            )
        if options.estimator not in ESTIMATORS:
            raise ConfigError(f"predictor {backend!r}: estimator {options.estimator!r} is not one "
                              f"of {', '.join(ESTIMATORS)}.")
        if options.model is not None:
            trained = TrainedModels.load(ctx.config.resolve(options.model))
            if trained.backend != backend:
                raise ConfigError(
                    f"predictor {backend!r}: {options.model} holds a {trained.backend!r} model; "
                    f"use name: {trained.backend} for it, or train a {backend} model."
                )
        else:
            paths = [ctx.config.resolve(p) for p in options.data or []]
            trained = _train_cached(paths, backend, options.estimator, options.margin,
                                    options.seed)
        device = options.device or ctx.device.name
        if device not in trained.devices():
            warnings.warn(
                f"predictor {backend!r} has no models for {device} (it has "
                f"{', '.join(trained.devices()) or 'none'}); the next predictor of the chain "
                f"answers every operator on {ctx.device.name}. Set options.device to borrow "
                "another GPU's models, or profile this one with `frontier profile`.",
                FrontierWarning, stacklevel=2,
            )
        return ModelPredictor(trained, device)

    return factory


build_table = _make("table")
build_forest = _make("forest")
build_proxy = _make("proxy")


# ---- auto -----------------------------------------------------------------------



def _aic_version() -> str | None:
    """The installed aiconfigurator-core's version, None without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import aiconfigurator_core  # noqa: F401

        return version("aiconfigurator-core")
    except (ImportError, PackageNotFoundError):
        return None


#: The engines AIConfigurator measures kernels under (its ``backend``).
AIC_BACKENDS = ("vllm", "sglang", "trtllm")


def aic_system(device: str, aliases: tuple[str, ...] = ()) -> str | None:
    """The AIConfigurator system holding measurements of the GPU called ``device`` (or
    one of its ``aliases``), None without aiconfigurator-core or such a system."""
    if _aic_version() is None:
        return None
    from frontier_predictors.importers import aic_data_root
    from frontier_predictors.profiles import ProfileError

    try:
        root = aic_data_root()
    except ProfileError:
        return None
    for name in (*aliases, device, device.replace("-", "_")):
        if name and (root / name).is_dir():
            return name
    return None


def measured_data_for(device: str, engine: str | None = None,
                      aliases: tuple[str, ...] = ()) -> tuple[list[Path], str]:
    """Profile tables available for ``device`` without user input, and where they came
    from: AIConfigurator's measurements under the cluster's ``engine`` (its kernels),
    with vLLM's for the operators and formats that engine was not measured with (all of
    them when the cluster names no engine); else nothing (no tables ship with this
    package). The AIConfigurator system is the one ``device`` or its ``aliases`` name."""
    system = aic_system(device, aliases)
    aic = _aic_version() if system is not None else None
    if aic is not None:
        from frontier_predictors import importers
        from frontier_predictors.profiles import ProfileError

        tag = f"{aic}-i{importers.IMPORT_VERSION}"  # a new importer or database: afresh

        def imported(backend: str) -> Path | None:
            out = cache_dir() / "profiles" / f"aic-{system}-{backend}-{tag}"
            if not _published(out):
                try:
                    _publish(out, lambda d: importers.import_aic(system, backend, out_dir=d))
                except ProfileError:
                    return None  # nothing measured under this engine on this GPU
            return out

        wanted = (engine or "vllm").lower()
        own = imported(wanted) if wanted in AIC_BACKENDS and wanted != "vllm" else None
        base = imported("vllm")
        if own is not None and base is not None:
            merged = cache_dir() / "profiles" / f"aic-{system}-{wanted}+vllm-{tag}"
            if not _published(merged):
                _publish(merged, lambda d: _fill_in(own, base, d))
            return (sorted(merged.glob("*.parquet")),
                    f"AIConfigurator {system}/{wanted} (vLLM's where {wanted} has none)")
        if own is not None or base is not None:
            pick, name = (own, wanted) if own is not None else (base, "vllm")
            return sorted(pick.glob("*.parquet")), f"AIConfigurator {system}/{name}"
    return [], ""


def _fill_in(own: Path, base: Path, out: Path) -> None:
    """Write into ``out``, per operator, ``own``'s rows plus ``base``'s rows of the
    formats (dtypes) ``own`` has none of."""
    import pandas as pd

    from frontier_predictors.profiles import read_table, write_table

    for stem in sorted({p.stem for p in (*own.glob("*.parquet"), *base.glob("*.parquet"))}):
        parts = []
        mine = own / f"{stem}.parquet"
        have: set[str] = set()
        if mine.is_file():
            parts.append(read_table(mine))
            have = set(parts[0]["dtype"])
        theirs = base / f"{stem}.parquet"
        if theirs.is_file():
            other = read_table(theirs)
            parts.append(other[~other["dtype"].isin(have)])
        write_table(pd.concat(parts, ignore_index=True), out / f"{stem}.parquet")


def build_auto(options: AutoOptions, ctx: BuildContext) -> Any:
    if ctx.device is None:
        raise ConfigError("the auto predictor is built per cluster and needs its GPU kind.")
    if options.backend not in ("table", "forest", "proxy"):
        raise ConfigError(f"predictor 'auto': backend {options.backend!r} is not one of table, "
                          "forest, proxy.")
    device = ctx.device.name
    engine = ctx.cluster.engine if ctx.cluster is not None else None
    paths, origin = measured_data_for(device, engine.name if engine is not None else None,
                                      ctx.device.aliases)
    if not paths:
        warnings.warn(
            f"predictor 'auto': no measured operator data for {device}, so the roofline "
            "prices every operator (auto falls back to it when it ends the chain). Install "
            f"frontier-predictors[aic] ({install_hint('frontier-predictors', 'aic')}) for "
            "AIConfigurator's measurements (H100, H200, B200, A100), or profile this GPU with `frontier profile` and use predictor: "
            "[{name: forest, data: [DIR]}, roofline].",
            FrontierWarning, stacklevel=2,
        )
        return _Nothing()
    trained = _train_cached(paths, options.backend, options.estimator, options.margin,
                            options.seed)
    pred = ModelPredictor(trained, device)
    pred.fallback = "roofline"
    missing = [op for op in PROFILED_OPS if op not in pred.covered_ops()]
    if missing:
        warnings.warn(
            f"predictor 'auto' uses {origin} for {device}; it has no measurements of "
            f"{', '.join(missing)}, which the next predictor (the roofline) answers.",
            FrontierWarning, stacklevel=2,
        )
    return pred


class _Nothing:
    """Covers nothing: every call goes to the next predictor."""

    fallback = "roofline"  # appended when auto ends the chain (assemble._build_chain)

    def predict(self, call: OpCall) -> None:
        return None


__all__ = [
    "AutoOptions", "Featurizer", "LearnedModel", "ModelOptions", "ModelPredictor",
    "build_auto", "build_forest", "build_proxy", "build_table", "cache_dir",
]
