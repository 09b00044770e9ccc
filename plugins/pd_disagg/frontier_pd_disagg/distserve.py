"""The ``distserve`` predictor: DistServe's fitted A100-80GB iteration-latency models.

DistServe (Zhong et al., OSDI '24) plans its deployments with a simulator whose
whole cost model is two fitted formulas per model and TP degree
(``simdistserve/estimators/time_estimator.py``; coefficients in ``data/``, see
``data/SOURCE.md``). In milliseconds, for one iteration:

- prefill: ``a + b·Σ l + c·Σ l²`` over the batch's prompt lengths ``l``
  (``get_prefill_time``);
- decode: ``a + b·Σ (context + 1) + c·n`` over the ``n`` sequences of the batch,
  with the ``decoding_smallbs`` triple when ``n < decoding_large_small_bs_threshold``
  (95) and ``decoding_largebs`` otherwise (``get_decode_time``).

Reproducing them lets Frontier's prefill/decode disaggregation be checked against
DistServe's own numbers (e.g. its documented OPT-13B result) with the same cost
model on both sides.

How the formulas enter Frontier's ExecutionPredictor: each formula is the time of
a *whole* iteration, so this predictor answers every operator other than attention
(GEMMs, elementwise kernels, all-reduces, PP sends, host overhead, ...) with 0.0
seconds and puts the whole iteration into the two attention calls, which the
ExecutionPredictor asks once per iteration and multiplies by ``num_layers / pp``:

- ``attention_prefill`` answers ``prefill_formula / num_layers``;
- ``attention_decode`` answers ``decode_formula / num_layers``.

With ``pp == 1`` that is the formula divided by ``num_layers / pp``, and the
iteration takes exactly the formula. With ``pp > 1`` each pipeline stage is busy
for ``formula / pp`` and the iteration's latency is the formula, which is what
DistServe's simulator does (``delay * 1/pp`` per stage worker; the profiles hold TP
degrees only). The predictor must therefore come first in the ``predictor`` list
(checked at build); any predictor after it is never asked, and all predicted time
is credited to it.

Which lengths the formulas see:

- Prefill uses the tokens computed this iteration (``q_lens``), for ``Σ l`` and for
  ``Σ l²`` alike. For whole prompts ``q_lens == kv_lens``. Under chunked prefill
  DistServe's simulator passes the chunk sizes (``Worker._enter_prefill`` sets
  ``current_prefill_lens`` to the chunk and ``do_prefill`` hands those to
  ``get_prefill_time``), so the quadratic term ignores attention to the KV of
  earlier chunks. This predictor does the same, to reproduce DistServe; the fit was
  made on whole prompts only, so chunked prefill is outside its calibration.
- Decode uses ``kv_lens`` (each sequence's KV including the token computed this
  step), which equals DistServe's ``current_context_len + 1`` (prompt + tokens
  decoded so far + 1) in ``Worker.do_decode``.
- DistServe never batches prefills with decodes. A mixed Frontier batch costs the
  prefill formula plus the decode formula, each with its own intercept.

``simulator_overheads: true`` adds the two constants that DistServe's simulator
adds on top of the fitted formulas (stored upstream copies of ``time_estimator.py``
and ``base/worker.py``): ``1 ms · pp`` per prefill stage (``pp_const``) and
``2 ms + 1e-4 ms per context token`` per iteration (``Worker.add_ray_overhead``;
context = prompt length for a prefill, prompt + generated for a decode). They go
into the attention answers too, so with ``pp > 1`` the second one is counted in
every stage's latency rather than once.

Units: the profiles are in milliseconds; ``predict`` returns seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from frontier_core import ConfigError, OpCall

if TYPE_CHECKING:
    from frontier_core import BuildContext

PROFILES = {
    "distserve": "profiler-a100-80g.distserve.json",
    "vllm": "profiler-a100-80g.vllm.json",
}
# The GPU kind DistServe profiled on (A100-SXM4-80GB, simdistserve/README.md).
PROFILED_GPU = "a100-80g-sxm"
# simdistserve's extra constants (ms): prefill pp_const per stage, ray overhead per iteration.
_PP_CONST_MS = 1.0
_RAY_BASE_MS = 2.0
_RAY_PER_TOKEN_MS = 1e-4


class DistServeOptions(BaseModel):
    """Options of the ``distserve`` predictor."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["distserve", "vllm"] = Field(
        "distserve",
        description="which bundled fit: DistServe's engine or the vLLM baseline DistServe measured",
    )
    profile: str | None = Field(
        None, description="a JSON file in the same format to use instead of the bundled one"
    )
    gpus: list[str] = Field(
        default_factory=lambda: [PROFILED_GPU],
        description="GPU kinds the profile may be used for (the bundled ones: A100-80GB SXM)",
    )
    simulator_overheads: bool = Field(
        False,
        description="add simdistserve's pp and per-iteration constants to the fitted formulas",
    )


@dataclass(frozen=True, slots=True)
class Fit:
    """DistServe's coefficients for one model at one TP degree (milliseconds)."""

    prefill: tuple[float, float, float]
    decode_small: tuple[float, float, float]
    decode_large: tuple[float, float, float]
    threshold: int

    def prefill_ms(self, lens: np.ndarray) -> float:
        """One prefill iteration over prompts (or chunks) of ``lens`` tokens."""
        a, b, c = self.prefill
        return a + b * float(lens.sum()) + c * float(np.dot(lens, lens))

    def decode_ms(self, context_tokens: float, batch: int) -> float:
        """One decode iteration of ``batch`` sequences holding ``context_tokens`` KV in all,
        the new tokens included."""
        a, b, c = self.decode_small if batch < self.threshold else self.decode_large
        return a + b * context_tokens + c * batch


def _triple(v: Any) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in v)
    return a, b, c


def load_profile(text: str, source: str) -> dict[str, dict[int, Fit]]:
    """Parse a DistServe profile JSON: ``{hf_id: {tp: {prefill, decoding_smallbs, ...}}}``."""
    try:
        data = json.loads(text)
        return {
            model: {
                int(tp): Fit(
                    prefill=_triple(e["prefill"]),
                    decode_small=_triple(e["decoding_smallbs"]),
                    decode_large=_triple(e["decoding_largebs"]),
                    threshold=int(e["decoding_large_small_bs_threshold"]),
                )
                for tp, e in by_tp.items()
            }
            for model, by_tp in data.items()
        }
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(
            f"The DistServe profile {source} cannot be read ({type(e).__name__}: {e}). It must be "
            "a JSON object {hf_id: {tp: {prefill: [a, b, c], decoding_smallbs: [a, b, c], "
            "decoding_largebs: [a, b, c], decoding_large_small_bs_threshold: n}}} in milliseconds, "
            "like simdistserve/estimators/profile_data/profiler-a100-80g.distserve.json."
        ) from None


def _read(opts: DistServeOptions) -> tuple[str, str]:
    """The profile's text and a name for it in messages."""
    if opts.profile is None:
        name = PROFILES[opts.backend]
        return (resources.files("frontier_pd_disagg") / "data" / name).read_text(), name
    p = Path(opts.profile).expanduser()
    try:
        return p.read_text(), str(p)
    except OSError as e:
        raise ConfigError(
            f"The DistServe profile {str(p)!r} (predictor distserve, option profile) cannot be "
            f"read: {e.strerror or e}. Point profile at a JSON file in DistServe's format, or "
            "leave it unset to use the bundled A100-80GB fits."
        ) from None


class DistServePredictor:
    """Answers attention calls with DistServe's whole-iteration formulas spread over the
    layers, and every other operator with 0.0 (see the module docstring)."""

    def __init__(self, fit: Fit, num_layers: int, pp: int = 1, overheads: bool = False) -> None:
        self.fit = fit
        self.per_layer = 1e-3 / num_layers  # ms for the whole iteration -> s per layer
        self.pp = pp
        self.overheads = overheads

    def predict(self, call: OpCall) -> float | None:
        op = call.op
        if op == "attention_prefill":
            q = call.q_lens
            assert q is not None
            ms = self.fit.prefill_ms(q)
            if self.overheads:
                kv = call.kv_lens
                assert kv is not None
                ms += _PP_CONST_MS * self.pp * self.pp  # pp_const on each of the pp stages
                ms += self.pp * (_RAY_BASE_MS + _RAY_PER_TOKEN_MS * float(kv.sum()))
            return ms * self.per_layer
        if op == "attention_decode":
            kv = call.kv_lens
            assert kv is not None
            n = len(kv)
            total = float(kv.sum())
            ms = self.fit.decode_ms(total, n)
            if self.overheads:
                # add_ray_overhead counts context without the new token
                ms += self.pp * (_RAY_BASE_MS + _RAY_PER_TOKEN_MS * (total - n))
            return ms * self.per_layer
        return 0.0


def _position(ctx: BuildContext) -> int | None:
    """Where ``distserve`` stands in the config's predictor list (None if not found)."""
    refs = getattr(getattr(ctx, "config", None), "predictor", None) or []
    return next((i for i, r in enumerate(refs) if getattr(r, "name", None) == "distserve"), None)


def _where(ctx: BuildContext) -> str:
    """The config path of this predictor, for messages."""
    idx = _position(ctx)
    at = f"predictor[{idx}]" if idx is not None else "predictor"
    at += " distserve (frontier-pd-disagg)"
    if ctx.cluster is not None:
        at += f" for cluster {ctx.cluster.name!r}"
    return at


def build_distserve(opts: DistServeOptions, ctx: BuildContext) -> DistServePredictor:
    """Factory of the ``distserve`` predictor: checks that the run's model, TP degree and
    GPU kind are ones the profile was fitted for."""
    where = _where(ctx)
    if _position(ctx):
        raise ConfigError(
            f"distserve must be the first predictor ({where}): its fitted formulas cover whole "
            "iterations, so a predictor before it would add its own operator times on top, or "
            "answer attention in its place. Put distserve first; later predictors are never asked."
        )
    text, source = _read(opts)
    profile = load_profile(text, source)
    model = ctx.model
    have = "; ".join(
        f"{m} at TP {', '.join(str(t) for t in sorted(tps))}" for m, tps in profile.items()
    )
    key = next((k for k in (model.hf_id, model.name) if k in profile), None)
    if key is None:
        raise ConfigError(
            f"The DistServe profile {source} has no fit for the model {model.name!r} "
            f"(hf_id {model.hf_id or 'unset'!r}) at {where}. It covers {have}. Serve one of "
            "those models (catalog names opt-13b, opt-66b), or choose another predictor."
        )
    if ctx.cluster is None or ctx.device is None:
        raise ConfigError(
            f"The distserve predictor needs a cluster's GPU kind and TP degree ({where}); it is "
            "built per cluster by assembly."
        )
    tp, pp = ctx.cluster.tp, ctx.cluster.pp
    if tp not in profile[key]:
        raise ConfigError(
            f"The DistServe profile {source} has no fit for {key} at TP {tp} ({where}, "
            f"whose tp is {tp}). It covers {have}. Set the cluster's tp to one of those "
            "degrees."
        )
    if ctx.device.name not in opts.gpus:
        raise ConfigError(
            f"The DistServe profile {source} applies to GPU kinds {', '.join(opts.gpus)}, but "
            f"the cluster runs on {ctx.device.name!r} ({where}). The bundled fits were measured "
            f"on A100-80GB SXM: use gpu: {PROFILED_GPU}, or add {ctx.device.name!r} to the "
            "predictor's gpus option to accept them there."
        )
    if model.num_layers % pp:
        raise ConfigError(
            f"pp={pp} does not divide {model.name}'s {model.num_layers} layers ({where}); "
            "DistServe's model splits the fitted time evenly over the stages. Choose a pp that "
            f"divides {model.num_layers}."
        )
    fit = profile[key][tp]
    coeffs = (*fit.prefill, *fit.decode_small, *fit.decode_large)
    if not all(math.isfinite(x) for x in coeffs):
        raise ConfigError(
            f"The DistServe profile {source} holds non-finite coefficients for {key} at TP {tp} "
            f"({where}); fix the file."
        )
    return DistServePredictor(fit, model.num_layers, pp, opts.simulator_overheads)
