"""Benchmark rows → run configs: the adapter behind ``frontier validate serving`` and
``frontier calibrate``.

A row is one closed-loop serving benchmark in AIConfigurator's ``silicon_sample.csv``
columns (docs/validation.md): model, GPU, engine and version, co-located or
prefill/decode layout, parallelism, quantisation, lengths and concurrency, and the
measured mean TTFT and TPOT. :func:`row_config` turns it into a validated run config that
simulates the benchmark as its tool ran it (``BenchmarkClient``), or says why it cannot.
A companion ``<name>_annotations.csv`` beside the file (or given explicitly) adds, by
``id``, what the rows leave out: how the tool drew lengths, whether MTP ran.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frontier_core.errors import ConfigError
from frontier_core.execution.engines import ENGINE_NAMES
from frontier_core.model.catalog import gpu_names

#: Columns a row must have (the rest are read when present).
REQUIRED = ("backend", "model_path", "system", "mode", "isl", "osl",
            "silicon_ttft_ms", "silicon_tpot_ms")

#: The layout columns of one worker, without the ``prefill_``/``decode_`` prefix.
LAYOUT = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")


#: Quantisation columns → the weight dtype. Block-scaled fp8 (``fp8_block``) computes on
#: the fp8 tensor cores as per-tensor fp8 does (the roofline prices them alike), but
#: other kernels run it, and measured tables keep the two apart.
QUANT = {"fp8": "fp8", "fp8_block": "fp8_block", "bf16": "bf16", "fp16": "fp16",
         "nvfp4": "nvfp4", "int4_wo": "int4", "w4afp8": "w4afp8", "": None}
FP8 = {"fp8", "fp8_block"}
#: 4-bit formats a row may label loosely (gpt-oss's mxfp4 checkpoint appears as nvfp4)
FP4 = {"nvfp4", "mxfp4"}

#: The most closed-loop clients a row may ask for. Published serving benchmarks reach a
#: few thousand; each client is a request in flight that the simulation keeps.
MAX_CONCURRENCY = 100_000

#: Closed-loop benchmark length when the row does not say which tool measured it: every
#: client sends this many requests, and the first wave (one request per client, all sent
#: at once) is warm-up, left out of the means, as load generators with a warm-up phase
#: (genai-perf's and aiperf's ``--warmup-request-count``) do.
ROUNDS = 3


@dataclass
class Row:
    """One benchmark measurement, as read."""

    index: int  # 0-based data row of the file
    fields: dict[str, str]

    def get(self, key: str) -> str:
        return (self.fields.get(key) or "").strip()

    @property
    def id(self) -> str:
        return self.get("id") or f"row{self.index + 2}"


@dataclass
class Mapped:
    """A row turned into a run config (``config``), or the reason it cannot be."""

    row: Row
    config: dict[str, Any] | None = None
    reason: str | None = None
    model: str = ""
    gpu: str = ""
    concurrency: int | None = None
    duplicate_of: str | None = None
    client: str = ""  # the benchmark tool whose client the run reproduces
    layout_from: str = ""  # where a disaggregated row's layout came from, when not its own

    @property
    def group(self) -> tuple[str, str, str, str]:
        r = self.row
        return (r.get("system"), r.get("backend"), r.get("mode"), self.model or r.get("model_path"))


def read_rows(path: str | Path, annotations: str | Path | None = None) -> list[Row]:
    """The data rows of a benchmark CSV; a ConfigError when it cannot be read or lacks a
    required column. ``annotations`` (default: ``<stem>_annotations.csv`` beside the file,
    when there is one) fills, by ``id``, the columns a row leaves empty or lacks."""
    p = Path(path)
    rows, cols = _read_csv(p, "benchmark file")
    if not cols:
        raise ConfigError(f"{p}: the file is empty; give a CSV in silicon_sample.csv's columns "
                          "(docs/validation.md lists them) with one row per measurement.")
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ConfigError(
            f"{p}: missing column(s) {', '.join(missing)}; a benchmark row needs "
            f"{', '.join(REQUIRED)} and a concurrency (a 'concurrency' column, or "
            "'silicon_concurrency=N' in silicon_data_source); docs/validation.md lists them."
        )
    if not rows:
        raise ConfigError(f"{p}: has a header but no data rows; add one row per benchmark "
                          "measurement.")
    if annotations is None:
        guess = p.with_name(f"{p.stem}_annotations.csv")
        annotations = guess if guess.is_file() else None
    if annotations is not None:
        extra, acols = _read_csv(Path(annotations), "annotations file")
        if "id" not in acols:
            raise ConfigError(f"{annotations}: an annotations file needs an 'id' column naming "
                              "the benchmark rows it annotates.")
        by_id = {r.get("id"): r.fields for r in extra if r.get("id")}
        for r in rows:
            add = by_id.get(r.get("id"))
            if add:
                for k, v in add.items():
                    if not r.get(k):
                        r.fields[k] = v
    return rows


def _read_csv(p: Path, what: str) -> tuple[list[Row], list[str]]:
    try:
        # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the
        # first column's name.
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = list(reader.fieldnames or [])
            return [Row(i, dict(r)) for i, r in enumerate(reader)], cols
    except OSError as e:
        raise ConfigError(f"Cannot read the {what} {str(p)!r}: {e.strerror or e}; give "
                          "the path of a CSV in silicon_sample.csv's columns.") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not a readable CSV ({e}); give a CSV in silicon_sample.csv's "
                          "columns (docs/validation.md lists them).") from None


@dataclass(frozen=True)
class BenchmarkClient:
    """How a row's benchmark tool loaded the engine: ``num_requests`` requests from
    ``concurrency`` clients, each sending its next request when the last completes; the
    first ``warmup`` left out of the means; lengths drawn uniformly between
    ``int(nominal × range_ratio)`` and the nominal length (1.0: fixed lengths)."""

    tool: str
    num_requests: int
    warmup: int
    range_ratio: float = 1.0


#: InferenceX (SemiAnalysis's nightly benchmark, the source of the rows whose
#: annotations carry its ``run_url``) runs its copy of vLLM's ``benchmark_serving.py``
#: with ``--num-prompts $((CONC * 10)) --max-concurrency $CONC --request-rate inf
#: --random-range-ratio 0.8 --ignore-eos``: ten requests per client, every one measured
#: (the tool's single test prompt runs alone before the measured run), lengths drawn by
#: ``np.random.randint(int(L * ratio), L + 1)`` (``sample_random_requests``).
INFERENCEX_PROMPTS_PER_CLIENT = 10
INFERENCEX_RANGE_RATIO = 0.8

_RANGE = re.compile(r"\[\s*([0-9.]+)\s*,\s*1(?:\.0*)?\s*\]")


#: The clients ``--client`` may assume for rows that do not say which tool ran them:
#: ``auto`` takes InferenceX's for a row whose source export (the first field of
#: ``silicon_data_source``) holds rows that say InferenceX ran them, else ``default``.
CLIENTS = ("auto", "default", "inferencex")


def _says_inferencex(row: Row) -> bool:
    return "inferencex" in (row.get("run_url") + row.get("benchmark_tool")).lower()


def _source(row: Row) -> str:
    return row.get("silicon_data_source").split(";")[0].strip()


def benchmark_client(row: Row, n: int, warmup: bool = True,
                     assume: str = "default") -> BenchmarkClient | str:
    """The tool's request count, warm-up and length draw for a row at concurrency ``n``,
    or the reason a column holds something unusable. Columns a team can set:
    ``num_requests``, ``warmup_requests``, ``random_range_ratio``; otherwise what the
    annotations say of the tool; otherwise ``assume``: ``default`` is ``ROUNDS``
    requests per client with the first wave as warm-up, at fixed lengths; ``inferencex``
    InferenceX's client. ``warmup=False`` measures every request."""
    text = row.get("random_range_ratio")
    ratio = 1.0
    if text:
        try:
            ratio = float(text)
        except ValueError:
            ratio = math.nan
        if not 0 < ratio <= 1:
            return f"random_range_ratio {text!r} is not in (0, 1]"
    elif (hit := _RANGE.search(row.get("length_distribution"))) is not None:
        ratio = float(hit.group(1))
    said = row.get("run_url") + row.get("benchmark_tool")
    if _says_inferencex(row) or (not said and assume == "inferencex"):
        if not text and not row.get("length_distribution"):
            ratio = INFERENCEX_RANGE_RATIO
        client = BenchmarkClient("InferenceX benchmark_serving",
                                 INFERENCEX_PROMPTS_PER_CLIENT * n, 0, ratio)
    else:
        client = BenchmarkClient("unknown (default)", ROUNDS * n, n, ratio)
    total, first = _int(row, "num_requests", None), _int(row, "warmup_requests", None)
    if row.get("num_requests") and not total:
        return f"num_requests {row.get('num_requests')!r} is not a positive whole number"
    if row.get("warmup_requests") and first is None:
        return f"warmup_requests {row.get('warmup_requests')!r} is not a whole number"
    total = total or client.num_requests
    first = client.warmup if first is None else first
    if not warmup:
        first = 0
    if first >= total:
        return f"warmup_requests {first} leaves none of the {total} requests measured"
    return BenchmarkClient(client.tool, total, first, ratio)


def _length(nominal: int, ratio: float) -> dict[str, Any]:
    if ratio >= 1:
        return {"dist": "fixed", "value": nominal}
    return {"dist": "uniform", "low": max(1, int(nominal * ratio)), "high": nominal}


def speculative(row: Row) -> dict[str, Any] | str | None:
    """The speculative decoding a row ran with (``speculative``: mtp with ``spec_k``
    draft tokens accepted at ``spec_acceptance`` per position), None for none, or why it
    cannot be simulated."""
    method = row.get("speculative").lower()
    if method in ("", "none"):
        return None
    if method != "mtp":
        return f"speculative method not modelled: {method}"
    k = _int(row, "spec_k", None)
    try:
        p = float(row.get("spec_acceptance"))
    except ValueError:
        p = math.nan
    if not k or not 0 < p <= 1:
        return ("measured with MTP speculative decoding, its draft length and acceptance "
                "not recorded (add spec_k and spec_acceptance columns)")
    return {"method": "mtp", "k": k, "acceptance": p}


def concurrency(row: Row) -> int | None:
    """The benchmark's closed-loop concurrency: a ``concurrency`` column, else
    ``silicon_concurrency=N`` inside ``silicon_data_source``."""
    text = row.get("concurrency")
    if not text:
        m = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source"))
        text = m.group(1) if m else ""
    try:
        n = int(float(text))
    except (ValueError, OverflowError):  # not a number, or inf
        return None
    return n if n >= 1 else None


def _int(row: Row, key: str, default: int | None = 1) -> int | None:
    text = row.get(key)
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        return None
    if not math.isfinite(v):
        return None
    return int(v) if v == int(v) and v >= 0 else None


def model_index(registry: Any) -> dict[str, Any]:
    """Lower-cased Hugging Face ids (and aliases) and catalog names → catalog models."""
    index: dict[str, Any] = {}
    for p in registry.provided("model"):
        m = p.item
        for key in (m.name, m.hf_id, *m.aliases):
            if key:
                index.setdefault(key.lower(), m)
    return index


def _batch_column(row: Row, stage: str, n: int, ranks: int) -> str | None:
    """A disagg row's batch columns describe the load, as AIConfigurator's InferenceX
    adapter writes them (src/aiconfigurator/sdk/config_adapter/inferencex.py):
    ``prefill_batch_size`` is 1, ``decode_batch_size`` the concurrency over the decode
    workers' attention ranks. They set no engine limit; a row whose decode batch says
    otherwise is a different measurement than its concurrency, and is refused."""
    b = _int(row, f"{stage}_batch_size", None)
    if stage != "decode" or b is None or b in (n // ranks, -(-n // ranks)):
        return None
    return (f"decode_batch_size {b} disagrees with concurrency {n} over {ranks} decode "
            "attention ranks")


def _stated_layout(row: Row, stage: str) -> dict[str, str] | str | None:
    """A stage's layout as InferenceX states it in the annotations (``prefill_layout`` /
    ``decode_layout``: ``tp=T/ep=E/dpattn=B/workers=W/gpus=G``), turned into the row's
    layout columns; None when the row has none, a reason when it cannot be read. ``tp`` is
    the GPUs of one worker; with DP attention they are attention-DP ranks of one GPU."""
    text = row.get(f"{stage}_layout")
    if not text:
        return None
    try:
        kv = dict(part.split("=", 1) for part in text.split("/"))
        tp, ep, workers = int(kv["tp"]), int(kv["ep"]), int(kv["workers"])
        dpattn = kv["dpattn"].strip().lower() == "true"
        gpus = int(kv.get("gpus", tp * workers))
    except (KeyError, ValueError):
        return f"{stage}_layout not readable: {text!r}"
    if min(tp, ep, workers) < 1 or gpus != tp * workers or tp % ep:
        return f"{stage}_layout inconsistent: {text!r}"
    dp, attn_tp = (tp, 1) if dpattn else (1, tp)
    return {f"{stage}_num_workers": str(workers), f"{stage}_tp_size": str(attn_tp),
            f"{stage}_pp_size": "1", f"{stage}_attention_dp_size": str(dp),
            f"{stage}_moe_ep_size": str(ep), f"{stage}_moe_tp_size": str(tp // ep)}


#: InferenceX's disaggregated config entries with the dates each was in force
#: (tools/inferencex_disagg.py; origin and licence in frontier_core/data/SOURCE.md).
INFERENCEX_DISAGG = Path(__file__).parents[1] / "data" / "inferencex_disagg.csv"


@functools.cache
def _inferencex_entries() -> tuple[dict[str, str], ...]:
    with open(INFERENCEX_DISAGG, newline="") as f:
        return tuple(csv.DictReader(f))


def _when(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _config_layout(e: dict[str, str], stage: str) -> str:
    tp, w = int(e[f"{stage}_tp"]), int(e[f"{stage}_workers"])
    return (f"tp={tp}/ep={e[f'{stage}_ep']}/dpattn={e[f'{stage}_dpattn'].lower()}"
            f"/workers={w}/gpus={tp * w}")


def inferencex_deployment(row: Row, n: int) -> dict[str, str] | str | None:
    """The deployment InferenceX's config names for a disaggregated row of its nightly
    runs that leaves it out: the entry in force when the row was measured
    (``measured=`` in ``silicon_data_source``) for the same container image, GPU,
    weight format, model, lengths and concurrency, and whose prefill agrees with the
    row's prefill TP and EP. Returns the annotation fields it states (``prefill_layout``,
    ``decode_layout``, ``speculative``), a reason when the configs name several
    deployments, or None when the row is not from such a run."""
    src = row.get("silicon_data_source")
    image = re.search(r"(?:^|;)\s*image=([^;]+)", src)
    when = re.search(r"(?:^|;)\s*measured=([^;]+)", src)
    at = _when(when.group(1).strip()) if when else None
    model = row.get("model_path").lower().rsplit("/", 1)[-1]
    if image is None or at is None or not model:
        return None
    image_name = image.group(1).strip().replace("nvcr.io#", "nvcr.io/")
    gpu = row.get("system").lower().removesuffix("_sxm")
    ptp = (_int(row, "prefill_tp_size") or 0) * (_int(row, "prefill_attention_dp_size") or 0)
    pep = _int(row, "prefill_moe_ep_size")
    found = {}
    for e in _inferencex_entries():
        if (e["image"] != image_name or e["runner"].split("-")[0] != gpu
                or e["precision"] != row.get("precision").lower()
                or not e["model"].lower().rsplit("/", 1)[-1].startswith(model)
                or (e["isl"], e["osl"], e["conc"]) != (row.get("isl"), row.get("osl"), str(n))
                or int(e["prefill_tp"]) != ptp or int(e["prefill_ep"]) != pep):
            continue
        start, end = _when(e["valid_from"]), _when(e["valid_until"])
        if start is None or at < start or (end is not None and at >= end):
            continue
        d = {"prefill_layout": _config_layout(e, "prefill"),
             "decode_layout": _config_layout(e, "decode"), "speculative": e["spec"]}
        found[tuple(d.values())] = d
    if len(found) > 1:
        if len({(d["prefill_layout"], d["decode_layout"]) for d in found.values()}) == 1:
            return ("InferenceX ran this point both with and without MTP; which one this "
                    "row is, is not recorded (add a speculative column)")
        return (f"InferenceX's config names {len(found)} deployments for this row "
                "(add prefill_layout, decode_layout and speculative to its annotations)")
    return next(iter(found.values()), None)


def _worker(row: Row, prefix: str, model: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """One cluster's parallel layout from a row's layout columns: (cluster fields, reason)."""
    v = {k: _int(row, prefix + k) for k in LAYOUT}
    bad = [prefix + k for k, x in v.items() if x is None or x == 0]
    if bad:
        return None, f"bad layout value in {', '.join(bad)}"
    tp, pp, dp, mtp, mep = (v[k] for k in LAYOUT)
    out: dict[str, Any] = {"tp": tp, "pp": pp}
    if model.attention == "gqa" and model.num_heads % tp:
        return None, f"tp {tp} does not divide the model's {model.num_heads} attention heads"
    if not model.is_moe:
        if mep > 1:
            return None, "expert parallelism on a dense model"
        if dp > 1:
            out["replicas"] = dp  # data parallelism of a dense model: independent replicas
        return out, None
    if mtp * mep != tp * dp:
        return None, f"MoE layout moe_tp × moe_ep ≠ tp × attention_dp ({where})"
    out["dp"] = dp  # moe_tp follows: dp × tp / moe_ep
    out["moe"] = {"ep": mep}
    return out, None


def row_config(row: Row, models: dict[str, Any], gpus: Mapping[str, str] | set[str],
               workflows: set[str],
               blocks: set[str], predictor: Sequence[str] = ("roofline",),
               warmup: bool = True, client: str = "default",
               engines: Iterable[str] = ENGINE_NAMES) -> Mapped:
    """Turn one benchmark row into a run config, or say why it cannot be. ``warmup``:
    leave the tool's warm-up requests out of the means; ``client``: the tool assumed
    where the row does not say (``benchmark_client``)."""
    m = Mapped(row)
    model = models.get(row.get("model_path").lower())
    if model is None:
        m.reason = f"model not in the catalog: {row.get('model_path') or '(empty)'}"
        return m
    m.model = model.name
    system = row.get("system")
    # ``gpus``: every GPU name and alias (AIConfigurator's system names, as benchmark files
    # use them) -> the catalog name (``catalog.gpu_names``); a plain set takes names only
    gpu = gpus.get(system.lower()) if isinstance(gpus, Mapping) else (
        system if system in gpus else None)
    if gpu is None:
        m.reason = f"GPU not in the catalog: {system or '(empty)'}"
        return m
    m.gpu = gpu
    backend = row.get("backend").lower()
    if backend not in engines:
        m.reason = f"engine not modelled: {backend or '(empty)'}"
        return m
    quants = {row.get("gemm_quant_mode"), row.get("moe_quant_mode") if model.is_moe else ""}
    known = [QUANT.get(q, "?") for q in quants]
    if "?" in known:
        m.reason = "quantisation not priced: " + "/".join(sorted(q for q in quants if q not in QUANT))
        return m
    dtypes = {d for d in known if d}
    if dtypes and dtypes <= FP8:
        # The fp8 labels are the collector's, and they disagree for one checkpoint (the
        # calibration file has DeepSeek-R1 rows as fp8/fp8 and as fp8/fp8_block): a
        # model whose catalog entry names its checkpoint's fp8 format keeps it; else
        # a row that says block-scaled anywhere is block-scaled.
        if model.weight_dtype in FP8:
            dtypes = {model.weight_dtype}
        else:
            dtypes = {"fp8_block" if "fp8_block" in dtypes else "fp8"}
    if dtypes and dtypes <= FP4 and model.weight_dtype in FP4:
        dtypes = {model.weight_dtype}  # the checkpoint's own 4-bit format
    if len(dtypes) > 1:
        m.reason = "different GEMM and MoE weight formats"
        return m
    weight = dtypes.pop() if dtypes else (QUANT.get(row.get("precision")) or "bf16")
    formats: dict[str, str] = {"weight_dtype": weight}
    if model.expert_dtype and (weight == model.expert_dtype
                               or {weight, model.expert_dtype} <= FP4):
        # A checkpoint with formats of its own per part (gpt-oss's mxfp4 experts and bf16
        # attention, Kimi-K2.5's int4 experts): a row in its experts' format ran it.
        formats = {}
    isl, osl = _int(row, "isl", None), _int(row, "osl", None)
    if not isl or not osl:
        m.reason = "no isl/osl"
        return m
    if isl + osl > model.max_context:
        m.reason = "isl + osl beyond the model's context"
        return m
    n = concurrency(row)
    if n is None:
        # Without a concurrency, the batch columns are the engine's batch limit, not the
        # load (the data's SOURCE.md); the load the row ran is unknown.
        m.reason = ("no concurrency (batch_size is then an engine limit, not the load)"
                    if row.get("batch_size") else "no concurrency")
        return m
    m.concurrency = n
    if n > MAX_CONCURRENCY:
        m.reason = f"concurrency beyond the {MAX_CONCURRENCY:,} clients Frontier simulates"
        return m
    try:
        ttft, tpot = float(row.get("silicon_ttft_ms")), float(row.get("silicon_tpot_ms"))
    except ValueError:
        ttft = tpot = math.nan
    if not (ttft > 0 and tpot > 0):
        m.reason = "no measured TTFT/TPOT"
        return m
    if not (math.isfinite(ttft) and math.isfinite(tpot)):
        m.reason = "measured TTFT/TPOT not a finite number"
        return m
    if model.is_moe and "moe" not in blocks:
        m.reason = "needs frontier-moe-ep (MoE model)"
        return m
    tool = benchmark_client(row, n, warmup, client)
    if isinstance(tool, str):
        m.reason = tool
        return m
    m.client = tool.tool
    if (row.get("mode").lower() == "disagg" and not row.get("prefill_layout")
            and not row.get("decode_layout") and not _int(row, "prefill_num_workers", None)):
        ix = inferencex_deployment(row, n)
        if isinstance(ix, str):
            m.reason = ix
            return m
        if ix is not None:
            m.layout_from = "InferenceX config"
            row = Row(row.index, {**row.fields, **{k: v for k, v in ix.items()
                                                   if not row.get(k)}})
    spec = speculative(row)
    if isinstance(spec, str):
        m.reason = spec
        return m
    # The engine as the row ran it: its scheduler defaults, CUDA graphs, host time and
    # ingress (frontier_core/execution/engines.py).
    engine = {"name": backend, "version": row.get("backend_version") or None}
    mode = row.get("mode").lower()
    if mode == "agg":
        layout, why = _worker(row, "", model, "agg")
        if why:
            m.reason = why
            return m
        clusters = [{"name": "main", "gpu": gpu, **layout, "engine": engine}]
        workflow: Any = "colocated"
    elif mode == "disagg":
        if "pd" not in workflows:
            m.reason = "needs frontier-pd-disagg (disaggregated row)"
            return m
        clusters = []
        for stage in ("prefill", "decode"):
            stated = _stated_layout(row, stage)
            if isinstance(stated, str):
                m.reason = stated
                return m
            if stated is not None:
                # The data's documentation (SOURCE.md): where the row's layout or worker
                # counts disagree or are empty, the annotation's is the deployment that ran.
                row = Row(row.index, {**row.fields, **stated})
                m.layout_from = m.layout_from or "annotations"
            workers = _int(row, f"{stage}_num_workers", None)
            if not workers:
                m.reason = "disagg row without worker counts"
                return m
            layout, why = _worker(row, f"{stage}_", model, stage)
            if why:
                m.reason = why
                return m
            layout["replicas"] = layout.get("replicas", 1) * workers
            clusters.append({"name": stage, "gpu": gpu, **layout, "engine": engine})
            why = _batch_column(row, stage, n, workers * layout.get("dp", 1))
            if why:
                m.reason = why
                return m
        workflow = {"name": "pd", "prefill": ["prefill"], "decode": ["decode"]}
    else:
        m.reason = f"mode not known: {mode or '(empty)'}"
        return m
    if spec is not None:
        clusters[-1]["speculative"] = spec  # the co-located cluster, or the decode one
    m.config = {
        "model": {"name": model.name, **formats},
        "deployment": {"workflow": workflow, "clusters": clusters},
        "predictor": list(predictor),
        "workload": {
            "closed_loop": {"concurrency": n},
            "prompt_len": _length(isl, tool.range_ratio),
            "output_len": _length(osl, tool.range_ratio),
            "num_requests": tool.num_requests,
            **({"warmup_requests": tool.warmup} if tool.warmup else {}),
        },
        "seed": 0,
        "output": {"trace": False},
    }
    # Validated here, as the rows are read: a value the run config refuses (e.g. a
    # spec_acceptance list of the wrong length) is the row's reason, not a failure in a
    # worker minutes later.
    from pydantic import ValidationError

    from frontier_core.config import RunConfig

    try:
        RunConfig.model_validate(m.config)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        m.config = None
        m.reason = f"the row makes an invalid run config ({where}: {err['msg']})"
    return m


def _dedup_key(m: Mapped) -> tuple:
    r = m.row
    return (r.get("system"), r.get("backend"), r.get("backend_version"), m.model or r.get("model_path"),
            r.get("mode"), r.get("isl"), r.get("osl"), m.concurrency,
            r.get("silicon_ttft_ms"), r.get("silicon_tpot_ms"))


def _gpus(m: Mapped) -> int:
    cl = (m.config or {}).get("deployment", {}).get("clusters", [])
    return sum(c.get("replicas", 1) * c.get("tp", 1) * c.get("pp", 1) * c.get("dp", 1) for c in cl)


def map_rows(rows: Iterable[Row], registry: Any, predictor: Sequence[str] = ("roofline",),
             warmup: bool = True, client: str = "auto") -> list[Mapped]:
    """Every row mapped; a repeated measurement (same system, engine, model, lengths,
    concurrency and results) is kept once — the expressible copy on the fewest GPUs —
    and the others point to it."""
    models = model_index(registry)
    gpus = gpu_names(registry.get("hardware", n) for n in registry.names("hardware"))
    workflows = set(registry.names("workflow"))
    blocks = set(registry.names("ffn_block"))
    if client not in CLIENTS:
        raise ConfigError(f"--client {client!r} is not a benchmark client Frontier knows; use "
                          f"one of {', '.join(CLIENTS)} (docs/validation.md).")
    engines = set(registry.names("engine"))
    rows = list(rows)
    if client == "auto":
        # The rows of an export that InferenceX's results are known to be in (some of its
        # rows carry InferenceX's run_url) were measured by the same nightly pipeline.
        ix = {_source(r) for r in rows if _says_inferencex(r) and _source(r)}
        assumed = ["inferencex" if _source(r) in ix else "default" for r in rows]
    else:
        assumed = [client] * len(rows)
    mapped = [row_config(r, models, gpus, workflows, blocks, predictor, warmup, a, engines)
              for r, a in zip(rows, assumed, strict=True)]
    best: dict[tuple, Mapped] = {}
    for m in mapped:
        k = _dedup_key(m)
        cur = best.get(k)
        if cur is None or (cur.config is None and m.config is not None) or (
                m.config is not None and cur.config is not None and _gpus(m) < _gpus(cur)):
            best[k] = m
    for m in mapped:
        keep = best[_dedup_key(m)]
        if keep is not m:
            m.duplicate_of = keep.row.id
    return mapped


def spread(items: Sequence[Mapped], n: int) -> list[Mapped]:
    """A deterministic sample of ``n`` items spread over groups: groups in sorted order
    take turns, each giving its rows in file order, evenly strided."""
    groups: dict[tuple, list[Mapped]] = {}
    for m in items:
        groups.setdefault(m.group, []).append(m)
    order = sorted(groups)
    share = {g: 0 for g in order}
    left = min(n, len(items))
    while left:
        for g in order:
            if left and share[g] < len(groups[g]):
                share[g] += 1
                left -= 1
    picked: list[Mapped] = []
    for g in order:
        rows, k = groups[g], share[g]
        picked.extend(rows[int(i * len(rows) / k)] for i in range(k)) if k else None
    return sorted(picked, key=lambda m: m.row.index)
