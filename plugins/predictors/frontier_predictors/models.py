"""Trained operator-time models: ``table`` (interpolation), ``forest`` and ``proxy``.

A model is trained from profile tables, per (device, op), and saved as a folder
(``model.json`` plus one joblib file holding, for the learned backends, the
flattened trees rather than scikit-learn's objects). ``predict_call`` answers one OpCall or
returns None when the call is outside what the model covers: an op or device
it was not trained on, a dtype class it never saw, sizes far outside its
training range, or a collective on a GPU count outside the measured ones or a
scope never measured. It never extrapolates silently.

- ``table``: nested piecewise-linear interpolation in log-log space over the
  measured points, exact at them. The axes per op are in ``TABLE_AXES``; the
  rest of a row's shape must match a measured configuration exactly.
- ``forest``: scikit-learn tree ensembles on the distributional features of
  ``features.Featurizer``, predicting log(measured / roofline).
- ``proxy``: the same ensemble on proxy features (one mean length per batch).

Security: model folders are pickles (joblib); load only folders you trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frontier_core import HardwareSpec, OpCall
from frontier_predictors.features import COMM_OPS, DTYPE_CLASS, Featurizer, row_to_call
from frontier_predictors.profiles import ProfileError

if TYPE_CHECKING:
    import pandas as pd

BACKENDS = ("table", "forest", "proxy")
# 2: GEMM, attention and MoE feature vectors grew (features.py) and FlatTrees keeps leaf
# flags. 3: MoE features count the expert's weight matrices (gated or not). Folders of
# older formats need retraining. 4: attention ranges kept per head dimension (_family).
FORMAT_VERSION = 4
# Estimators of the learned backends; chosen by measurement (docs/accuracy.md). ``auto``
# picks one per op (``estimator_for``).
ESTIMATORS = ("auto", "hgb", "rf", "extra")
DEFAULT_ESTIMATOR = "auto"


def device_spec(name: str) -> HardwareSpec:
    """The catalog entry of a device name, or the nominal stand-in (e.g. for ``cpu``)."""
    from frontier_core import load_registry
    from frontier_predictors.features import NOMINAL_DEVICE

    reg = load_registry()
    if name in reg.names("hardware"):
        return reg.get("hardware", name)
    return NOMINAL_DEVICE.model_copy(update={"name": name})


def _code_version() -> str:
    from frontier_predictors import __version__

    return __version__


# ---- table --------------------------------------------------------------------


def _median_y(rows: list[tuple[tuple[float, ...], float]]) -> float:
    return float(np.median([y for _, y in rows]))


@dataclass
class _Node:
    """One level of the nested grid: sorted log-axis values and their children."""

    xs: list[float]
    children: list[Any]  # _Node, or log-latency at the last level


def _build(points: list[tuple[tuple[float, ...], float]], depth: int) -> Any:
    if depth == len(points[0][0]):
        return float(np.median([y for _, y in points]))
    groups: dict[float, list[tuple[tuple[float, ...], float]]] = {}
    for p in points:
        groups.setdefault(p[0][depth], []).append(p)
    xs = sorted(groups)
    return _Node(xs, [_build(groups[x], depth + 1) for x in xs])


def _interp(node: Any, x: tuple[float, ...], depth: int = 0) -> float | None:
    if not isinstance(node, _Node):
        return node
    xs = node.xs
    v = x[depth]
    i = bisect_left(xs, v)
    if i < len(xs) and abs(xs[i] - v) < 1e-9:
        return _interp(node.children[i], x, depth + 1)
    if i == 0 or i == len(xs):
        return None  # outside the measured range: not covered
    lo = _interp(node.children[i - 1], x, depth + 1)
    hi = _interp(node.children[i], x, depth + 1)
    if lo is None or hi is None:
        return None
    w = (v - xs[i - 1]) / (xs[i] - xs[i - 1])
    return lo + w * (hi - lo)


def _lg(v: float) -> float:
    return math.log2(v) if v > 0 else -30.0


def table_key(call: OpCall) -> tuple[tuple[Any, ...], tuple[float, ...]] | None:
    """(exact key, log axes) of a call for the ``table`` backend."""
    op = call.op
    dc = DTYPE_CLASS.get(call.dtype, 16)
    if op == "gemm":
        return (op, dc), (_lg(call.n), _lg(call.k), _lg(call.m))
    if op.startswith("attention_"):
        q, kv = call.q_lens, call.kv_lens
        if q is None or kv is None or len(q) == 0:
            return None
        key = (op, dc, call.num_heads, call.num_kv_heads, call.head_dim)
        if op == "attention_decode":
            return key, (_lg(len(q)), _lg(float(kv.mean())))
        # the cached prefix (kv - q) rather than kv: fresh prompts (prefix 0) then
        # interpolate over batch size and prompt length alone
        return key, (_lg(len(q)), _lg(float(q.mean())), math.log2(1.0 + float((kv - q).mean())))
    if op == "moe_experts":
        ex = call.extra or {}
        key = (op, dc, ex["hidden_size"], ex["inter_size"], ex["num_experts"], ex["top_k"],
               ex["ep_size"], ex["tp_size"], str(ex["routing"]))
        return key, (_lg(ex["num_tokens"]),)
    return (op, call.num_gpus, call.scope), (_lg(call.bytes),)


class TableModel:
    """Interpolation over measured points for one (device, op)."""

    def __init__(self) -> None:
        self.grids: dict[tuple[Any, ...], Any] = {}

    def fit(self, calls: list[OpCall], y: np.ndarray) -> TableModel:
        pts: dict[tuple[Any, ...], list[tuple[tuple[float, ...], float]]] = {}
        for c, t in zip(calls, y, strict=True):
            kx = table_key(c)
            if kx is not None:
                pts.setdefault(kx[0], []).append((kx[1], math.log(t)))
        self.grids = {k: _build(v, 0) for k, v in pts.items()}
        return self

    def predict_one(self, call: OpCall) -> float | None:
        kx = table_key(call)
        if kx is None:
            return None
        grid = self.grids.get(kx[0])
        if grid is None:
            return None
        v = _interp(grid, kx[1])
        return None if v is None else math.exp(v)


# ---- learned ------------------------------------------------------------------


def estimator_for(name: str, op: str) -> str:
    """The estimator ``name`` means for ``op``: ``auto`` is extremely randomised trees for
    collectives and gradient boosting for the rest.

    The collective tables are tiny (AIC's H100: 56 all-reduce, 46 all-to-all training
    rows); in 5-fold cross-validation on them, repeated 3 times, extra trees had a median
    error of 1.9% / 4.5% against 2.9% / 8.5% for boosting.
    """
    if name != "auto":
        return name
    return "extra" if op in COMM_OPS else "hgb"


def make_estimator(name: str, seed: int) -> Any:
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )

    if name == "hgb":
        # 600 rounds at rate 0.1, chosen on validation splits carved out of the training
        # tables of AIConfigurator's H100 data (docs/accuracy.md): against 250 at 0.2 it
        # gained 1-4 points of within-5% on GEMM, decode and MoE, by rows and by shape;
        # 1000 at 0.06 gained nothing more.
        return HistGradientBoostingRegressor(max_iter=600, learning_rate=0.1, max_leaf_nodes=63,
                                             min_samples_leaf=5, l2_regularization=1e-3,
                                             early_stopping=False, random_state=seed)
    if name == "rf":
        return RandomForestRegressor(n_estimators=120, min_samples_leaf=1, max_features=0.6,
                                     n_jobs=1, random_state=seed)
    if name == "extra":
        return ExtraTreesRegressor(n_estimators=120, min_samples_leaf=1, max_features=0.8,
                                   n_jobs=1, random_state=seed)
    raise ProfileError(f"Unknown estimator {name!r}: choose one of {', '.join(ESTIMATORS)}.")


class FlatTrees:
    """A fitted tree ensemble as flat arrays, traversed for all trees at once with numpy.

    scikit-learn's ``predict`` costs milliseconds per call for one row (thread-pool
    start-up); the simulator asks for one row at a time. This walks every tree in
    lock-step: ``depth`` rounds of gathers over (rows × trees). Leaves point to
    themselves, so finished trees simply stay put. Gives the estimator's own
    predictions (tested against ``predict``).
    """

    def __init__(self, est: Any) -> None:
        feats, thrs, lefts, rights, vals, roots = [], [], [], [], [], []
        off = 0
        depth = 0
        if hasattr(est, "_predictors"):  # HistGradientBoostingRegressor
            trees = [p[0].nodes for p in est._predictors]
            for nodes in trees:
                leaf = nodes["is_leaf"].astype(bool)
                ids = np.arange(len(nodes))
                feats.append(np.where(leaf, 0, nodes["feature_idx"]))
                thrs.append(np.where(leaf, np.inf, nodes["num_threshold"]))
                lefts.append(np.where(leaf, ids, nodes["left"]) + off)
                rights.append(np.where(leaf, ids, nodes["right"]) + off)
                vals.append(nodes["value"])
                roots.append(off)
                off += len(nodes)
                depth = max(depth, int(nodes["depth"].max()))
            self.base = float(np.ravel(est._baseline_prediction)[0])
            self.scale = 1.0
        else:  # RandomForest / ExtraTrees
            for t in (e.tree_ for e in est.estimators_):
                leaf = t.children_left < 0
                ids = np.arange(t.node_count)
                feats.append(np.where(leaf, 0, t.feature))
                thrs.append(np.where(leaf, np.inf, t.threshold))
                lefts.append(np.where(leaf, ids, t.children_left) + off)
                rights.append(np.where(leaf, ids, t.children_right) + off)
                vals.append(t.value[:, 0, 0])
                roots.append(off)
                off += t.node_count
                depth = max(depth, int(t.max_depth))
            self.base = 0.0
            self.scale = 1.0 / len(roots)
        self.feat = np.concatenate(feats).astype(np.intp)
        self.thr = np.concatenate(thrs)
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.val = np.concatenate(vals)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.is_leaf = self.left == np.arange(len(self.left))

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if np.isnan(X).any():  # the walks below send NaN left; this one sends it right
            return self._predict_lockstep(X)
        if len(X) == 1:
            return np.array([self._predict_one(X[0])])
        return self._predict_rows(X)

    def _predict_lockstep(self, X: np.ndarray) -> np.ndarray:
        idx = np.repeat(self.roots[None, :], len(X), axis=0)
        rows = np.arange(len(X))[:, None]
        feat, thr, left, right = self.feat, self.thr, self.left, self.right
        for d in range(self.depth):
            go = X[rows, feat[idx]] <= thr[idx]
            nxt = np.where(go, left[idx], right[idx])
            # NOTE: perf — most trees are far shallower than the deepest one
            if d % 2 == 1 and np.array_equal(nxt, idx):
                break
            idx = nxt
        return self.base + self.val[idx].sum(axis=1) * self.scale

    def _layout(self) -> tuple[np.ndarray, ...]:
        """The nodes renumbered for the walks: level by level from the roots, each
        internal node's right child next to its left (``child = left + (x > thr)``),
        trees in decreasing depth; leaves point to themselves. Built once, lazily (model
        folders pickle the arrays above)."""
        lay = getattr(self, "_lay", None)
        if lay is not None:
            return lay
        leaf, left, right = self.is_leaf, self.left, self.right
        n_trees = len(self.roots)
        tree_depth = np.zeros(n_trees, dtype=np.intp)
        front, tid, d = self.roots, np.arange(n_trees), 0
        while len(front):
            tree_depth[tid] = d
            inner = ~leaf[front]
            fi = front[inner]
            front = np.stack([left[fi], right[fi]], axis=1).ravel()
            tid = np.repeat(tid[inner], 2)
            d += 1
        front = self.roots[np.argsort(-tree_depth, kind="stable")]
        new = np.empty(len(leaf), dtype=np.intp)
        olds = []
        nxt = 0
        while len(front):
            new[front] = np.arange(nxt, nxt + len(front))
            nxt += len(front)
            olds.append(front)
            fi = front[~leaf[front]]
            front = np.stack([left[fi], right[fi]], axis=1).ravel()
        old = np.concatenate(olds)
        lf = leaf[old]
        ids = np.arange(len(old))
        self._lay = lay = (
            np.arange(n_trees, dtype=np.intp),          # roots
            np.where(lf, 0, self.feat[old]).astype(np.intp),
            np.where(lf, np.inf, self.thr[old]),
            np.where(lf, ids, new[left[old]]).astype(np.intp),
            self.val[old].astype(float), lf,
        )
        return lay

    def _predict_one(self, x: np.ndarray) -> float:
        # NOTE: perf — the simulator asks one row at a time; trees that reached a leaf
        # leave the working set every other level, so the deep levels touch only the
        # few deep trees, and each level is four gathers (right child = left + 1).
        roots, feat, thr, left, val, leaf = self._layout()
        idx = roots
        done = 0.0
        for d in range(self.depth):
            idx = left[idx] + (x[feat[idx]] > thr[idx])
            if d >= 3 and d % 2 == 1:
                at = leaf[idx]
                done += float(val[idx[at]].sum())
                idx = idx[~at]
                if not len(idx):
                    break
        return self.base + (done + float(val[idx].sum())) * self.scale

    def _predict_rows(self, X: np.ndarray) -> np.ndarray:
        """Several rows in one walk over (row, tree) pairs, pruned like ``_predict_one``."""
        roots, feat, thr, left, val, leaf = self._layout()
        n, nf, nt = X.shape[0], X.shape[1], len(roots)
        xf = X.ravel()
        idx = np.tile(roots, n)
        base = np.repeat(np.arange(n) * nf, nt)
        pos = np.arange(n * nt)
        out = np.empty(n * nt)
        for d in range(self.depth):
            idx = left[idx] + (xf[base + feat[idx]] > thr[idx])
            if d >= 3 and d % 2 == 1:
                at = leaf[idx]
                out[pos[at]] = val[idx[at]]
                keep = ~at
                idx, base, pos = idx[keep], base[keep], pos[keep]
                if not len(idx):
                    break
        out[pos] = val[idx]
        return self.base + out.reshape(n, nt).sum(axis=1) * self.scale


def _family(call: OpCall) -> tuple:
    """The kernel family a call belongs to: its format and, for experts, gated or not;
    for attention, its head dimension (FlashAttention and the engines' attention kernels
    are compiled per head dimension, and absorbed MLA's 576 is a kernel of its own)."""
    if call.op == "moe_experts":
        sub = (call.extra or {}).get("gated", True)
    elif call.op.startswith("attention_"):
        sub = call.head_dim
    else:
        sub = None
    return (DTYPE_CLASS.get(call.dtype, 16), sub)


class LearnedModel:
    """A tree ensemble on featurized calls of one (device, op), predicting log(meas/roofline)."""

    def __init__(self, featurizer: Featurizer, estimator: str, seed: int, margin: float) -> None:
        self.feat = featurizer
        self.estimator_name = estimator
        self.est = make_estimator(estimator, seed)
        self.margin = margin
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self.dtypes: set[int] = set()
        # per kernel family (format, and gated or not for experts): its measured range
        self.ranges: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        # collectives: the scopes (NVLink, scale-out) seen in training
        self.scopes: set[str] | None = None

    def fit(self, calls: list[OpCall], y: np.ndarray) -> LearnedModel:
        from threadpoolctl import threadpool_limits

        X, rl = self._matrix(calls)
        # NOTE: perf — one OpenMP thread: the histogram booster's threads spin-wait,
        # and next to any other busy process (a parallel test run, a sweep) training
        # then ran 50x slower than on one thread in a measurement here.
        with threadpool_limits(limits=1):
            self.est.fit(X, np.log(y / rl))
        self.flat = FlatTrees(self.est)
        sc = np.vstack([Featurizer.scale(c) for c in calls])
        self.lo, self.hi = sc.min(axis=0), sc.max(axis=0)
        self.dtypes = {DTYPE_CLASS.get(c.dtype, 16) for c in calls}
        fams = [_family(c) for c in calls]
        for key in set(fams):
            rows = sc[[f == key for f in fams]]
            self.ranges[key] = (rows.min(axis=0), rows.max(axis=0))
        if calls[0].op in COMM_OPS:
            self.scopes = {c.scope for c in calls}
        return self

    # A saved model keeps the flattened trees, which answer every prediction, and not
    # the scikit-learn estimator: loading it then needs no scikit-learn import (1.5 s of
    # every run's start-up on the 2-core test machine).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["est"] = None
        state.pop("_bounds", None)
        return state

    def _matrix(self, calls: list[OpCall]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self.feat.features(c) for c in calls]
        return np.vstack([r[0] for r in rows]), np.array([r[1] for r in rows])

    def covers(self, call: OpCall) -> bool:
        if DTYPE_CLASS.get(call.dtype, 16) not in self.dtypes:
            return False
        # NOTE: perf — Python floats: numpy's reductions cost more than the check on 3-7 sizes
        ranges = self.__dict__.get("ranges")
        if ranges:
            # A call is answered only from the measurements of its own kernel family: a
            # format, or experts with or without a gate, measured nowhere near its sizes
            # is another kernel, and the next predictor answers.
            key = _family(call)
            if key not in ranges:
                return False
        else:
            key = None  # a model saved before families were kept: one range
        cache = self.__dict__.get("_bounds")
        if cache is None:
            cache = self._bounds = {}
        bounds = cache.get(key)
        if bounds is None:
            lo, hi = ranges[key] if key is not None else (self.lo, self.hi)
            margin = np.full(len(lo), self.margin)
            scopes = self.__dict__.get("scopes")
            if scopes is not None:
                # A collective's time changes its algorithm and links with the GPU count
                # (AIC's H100 all-reduce: 8 GPUs faster than 4 above 64 MiB), so a count
                # beyond the measured ones is not answered, nor a scope never measured.
                margin[Featurizer.SCALE_GPUS] = 0.0
            bounds = cache[key] = list(zip((lo - margin).tolist(), (hi + margin).tolist(),
                                           strict=True))
        scopes = self.__dict__.get("scopes")
        if scopes is not None and call.scope not in scopes:
            return False
        return all(lo <= v <= hi for v, (lo, hi) in
                   zip(Featurizer.scale(call).tolist(), bounds, strict=True))

    def predict_many(self, calls: list[OpCall]) -> np.ndarray:
        """Seconds per call (NaN where not covered), in one vectorised estimator call."""
        out = np.full(len(calls), np.nan)
        ok = [i for i, c in enumerate(calls) if self.covers(c)]
        if ok:
            X, rl = self._matrix([calls[i] for i in ok])
            out[ok] = rl * np.exp(self.flat.predict(X))
        return out

    def predict_vector(self, f: np.ndarray, rl: float) -> float:
        return rl * math.exp(float(self.flat.predict(f)[0]))


# ---- the trained bundle ----------------------------------------------------------


@dataclass
class TrainedModels:
    """Models of one backend for several (device, op) pairs, with provenance."""

    backend: str
    models: dict[tuple[str, str], Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def devices(self) -> list[str]:
        return sorted({d for d, _ in self.models})

    def ops(self, device: str) -> list[str]:
        return sorted(op for d, op in self.models if d == device)

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """Seconds for every row of a profile table (NaN where not covered)."""
        out = np.full(len(df), np.nan)
        for (device, op), idx in df.groupby(["device", "op"]).indices.items():
            m = self.models.get((device, op))
            if m is None:
                continue
            calls = [row_to_call(r) for r in df.iloc[idx].to_dict("records")]
            if isinstance(m, TableModel):
                out[idx] = [np.nan if (v := m.predict_one(c)) is None else v for c in calls]
            else:
                out[idx] = m.predict_many(calls)
        return out

    def save(self, path: str | Path) -> Path:
        import joblib

        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        joblib.dump({"backend": self.backend, "models": self.models}, p / "models.joblib",
                    compress=3)
        meta = dict(self.meta)
        meta.update(backend=self.backend, format=FORMAT_VERSION,
                    trained={d: self.ops(d) for d in self.devices()})
        (p / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> TrainedModels:
        import joblib

        p = Path(path)
        meta_file = p / "model.json"
        if not meta_file.is_file():
            raise ProfileError(
                f"{p} is not a trained predictor folder (no model.json). Train one with "
                "`frontier predictors train DATA... --backend forest -o DIR`."
            )
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _damaged(p, "model.json", f"cannot be read ({e})", None) from None
        if not isinstance(meta, dict):
            raise _damaged(p, "model.json", "does not hold a JSON object", None)
        if meta.get("format") != FORMAT_VERSION:
            raise ProfileError(
                f"Predictor folder {p} has format {meta.get('format')}, this frontier-predictors "
                f"reads format {FORMAT_VERSION}. Retrain it with `frontier predictors train`."
            )
        blob_file = p / "models.joblib"
        if not blob_file.is_file():
            raise _damaged(p, "models.joblib", "is missing", meta)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn version warnings: meta says the version
                blob = joblib.load(blob_file)
        except Exception as e:  # a damaged pickle fails in any of a dozen ways
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise _damaged(p, "models.joblib", f"cannot be read ({why})", meta) from None
        if not _holds_models(blob) or blob["backend"] != meta.get("backend", blob["backend"]):
            raise _damaged(p, "models.joblib", "does not hold the models model.json describes",
                           meta)
        return cls(blob["backend"], blob["models"], meta)


def _holds_models(blob: Any) -> bool:
    """Whether an unpickled ``models.joblib`` has the shape ``TrainedModels.save`` writes."""
    if not isinstance(blob, dict) or blob.get("backend") not in BACKENDS:
        return False
    models = blob.get("models")
    return isinstance(models, dict) and bool(models) and all(
        isinstance(k, tuple) and len(k) == 2 and all(isinstance(x, str) for x in k)
        and isinstance(v, TableModel | LearnedModel) for k, v in models.items())


def _damaged(folder: Path, name: str, what: str, meta: dict[str, Any] | None) -> ProfileError:
    """The error for a trained predictor folder whose file ``name`` is damaged."""
    backend = meta.get("backend") if meta else None
    backend = backend if backend in BACKENDS else "forest"
    return ProfileError(
        f"The trained predictor folder {folder} is damaged: {name} {what}. A folder written "
        "by `frontier predictors train` holds model.json and models.joblib, written together; "
        f"retrain it with `frontier predictors train DATA... --backend {backend} -o {folder}` "
        "(or copy the whole folder again)."
    )


def train(df: pd.DataFrame, backend: str, *, seed: int = 0, estimator: str = DEFAULT_ESTIMATOR,
          margin: float = 1.0, ops: Sequence[str] | None = None) -> TrainedModels:
    """Fit ``backend`` on a validated profile table, one model per (device, op)."""
    import sklearn

    if backend not in BACKENDS:
        raise ProfileError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    out = TrainedModels(backend)
    counts: dict[str, dict[str, int]] = {}
    for (device, op), idx in sorted(df.groupby(["device", "op"]).indices.items()):
        if ops and op not in ops:
            continue
        sub = df.iloc[idx]
        calls = [row_to_call(r) for r in sub.to_dict("records")]
        y = sub["latency_s"].to_numpy(dtype=float)
        if backend == "table":
            model: Any = TableModel().fit(calls, y)
        else:
            feat = Featurizer(device_spec(device), "dist" if backend == "forest" else "proxy")
            model = LearnedModel(feat, estimator_for(estimator, op), seed, margin).fit(calls, y)
        out.models[(device, op)] = model
        counts.setdefault(device, {})[op] = len(sub)
    if not out.models:
        raise ProfileError(
            "No rows to train on" + (f" for ops {', '.join(ops)}" if ops else "")
            + f". The data holds ops {', '.join(sorted(df['op'].unique()))}."
        )
    out.meta = {
        "seed": seed, "estimator": estimator if backend != "table" else None, "margin": margin,
        "rows": counts, "sources": sorted(df["source"].unique().tolist()) if "source" in df else [],
        "data_digest": frame_digest(df), "frontier_predictors": _code_version(),
        "scikit_learn": sklearn.__version__,
    }
    return out


def frame_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for col in ("op", "device", "dtype", "latency_s"):
        h.update(df[col].astype(str).str.cat(sep="|").encode())
    return h.hexdigest()[:16]


