"""Engine models: how vLLM, SGLang and TensorRT-LLM run a cluster as they ship.

A cluster that names ``engine:`` gets, from the engine and its version:

- the scheduler and its limits (explicit ``scheduler:`` settings in the config win);
- the CUDA-graph capture sizes: a batch that fits a captured graph is padded to the next
  captured size and replays without per-kernel launch gaps; larger batches run eagerly;
- the host time of each iteration: the engine's CPU work per step (scheduling, input
  preparation, sampling book-keeping, output processing), base + per sequence + per
  token, which runs while the GPU computes the previous step when the engine overlaps
  the two (vLLM's async scheduling, SGLang's and TensorRT-LLM's overlap schedulers) and
  before it otherwise; plus a gap per step that nothing hides (the hand-off of sampled
  tokens from the GPU to the scheduler);
- the serial request ingress of its API server (tokenisation of each prompt, one
  request after another), which is why the requests of a benchmark's first wave reach
  the engine staggered and not all in one batch.

The engines themselves are ``EngineSpec`` records (frontier_core/builtin/engines.py for the
built-ins, a plugin's ``frontier_engines`` for others); this module turns one into the
``EngineModel`` a cluster runs.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frontier_core.errors import ConfigError
from frontier_core.model.catalog import HardwareSpec

if TYPE_CHECKING:
    from frontier_core.components import EngineSpec

GiB = 1024**3

#: The engines built in (frontier_core/builtin/engines.py); plugins may add more.
ENGINE_NAMES = ("vllm", "sglang", "trtllm")

#: Graph modes of one iteration (``EngineModel.graph``).
EAGER, PIECEWISE, FULL = 0, 1, 2

#: The host constants a profile and a config may set.
HOST_KEYS = ("base_s", "per_seq_s", "per_token_s", "gap_s")

# Per-token cost of an API server's serial ingress: tokenising a prompt with a Rust BPE
# tokenizer (Hugging Face tokenizers, tiktoken) on one core runs at a few MB of text per
# second, about 1 µs per token at ~4 bytes per token. Its size hardly matters to the
# results; what matters is that requests sent together reach the engine one after
# another.
INGRESS_PER_TOKEN_S = 1e-6


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.15.1"`` → (0, 15, 1); ``"1.2.0rc6.post2"`` → (1, 2, 0); a nightly, a tag
    or nothing → None (the newest behaviour modelled)."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    if m is None:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def at_least(v: tuple[int, ...] | None, *floor: int) -> bool:
    return v is None or v >= floor


@dataclass(frozen=True)
class EngineModel:
    """One engine at one version on one GPU kind, resolved."""

    name: str
    version: str | None
    scheduler: dict[str, Any]
    #: Captured CUDA-graph sizes, ascending (empty: no graphs).
    graph_sizes: tuple[int, ...] = ()
    #: Graphs are keyed by tokens in the batch (vLLM) rather than by sequences.
    graph_by_tokens: bool = False
    #: Batches with prefills replay piecewise graphs (attention runs eagerly between
    #: them; vLLM's torch.compile path) instead of running wholly eager.
    graph_mixed: bool = False
    #: Decode-only batches replay one full graph, attention included.
    graph_full_decode: bool = True
    #: A batch between two captured sizes is padded to the larger one (False: only a
    #: batch of exactly a captured size replays a graph).
    graph_pad: bool = True
    #: The engine runs its CPU work for a step while the GPU computes the previous one.
    overlap: bool = True
    host_base_s: float = 0.0
    host_per_seq_s: float = 0.0
    host_per_token_s: float = 0.0
    host_gap_s: float = 0.0
    ingress_base_s: float = 0.0
    ingress_per_token_s: float = INGRESS_PER_TOKEN_S
    notes: list[str] = field(default_factory=list)

    def graph(self, tokens: int, seqs: int, decode_only: bool) -> tuple[int, int]:
        """(mode, padded size) of an iteration of ``tokens`` tokens over ``seqs``
        sequences: the mode is EAGER, PIECEWISE or FULL, the size the tokens (vLLM) or
        sequences the graph was captured for (the batch itself when eager)."""
        n = tokens if self.graph_by_tokens else seqs
        sizes = self.graph_sizes
        if not sizes or n > sizes[-1] or not (decode_only or self.graph_mixed):
            return EAGER, n
        i = bisect.bisect_left(sizes, n)
        size = sizes[i]
        if size != n and not self.graph_pad:
            return EAGER, n
        return (FULL if decode_only and self.graph_full_decode else PIECEWISE), size

    def host_s(self, tokens: int, seqs: int) -> float:
        """CPU seconds the engine spends on one step of ``seqs`` sequences, ``tokens``
        tokens."""
        return self.host_base_s + self.host_per_seq_s * seqs + self.host_per_token_s * tokens

    def step_s(self, gpu_s: float, tokens: int, seqs: int) -> float:
        """Seconds one step takes when its GPU work takes ``gpu_s``: with overlap the CPU
        work of the next step runs meanwhile and shows only where it is longer; without,
        it runs between steps. The gap is paid either way."""
        host = self.host_s(tokens, seqs)
        if self.overlap:
            return max(gpu_s, host) + self.host_gap_s
        return gpu_s + host + self.host_gap_s

    def ingress_s(self, prompt_tokens: int) -> float:
        return self.ingress_base_s + self.ingress_per_token_s * prompt_tokens

    def summary(self) -> dict[str, Any]:
        """What the run used, for summary.json."""
        return {
            "name": self.name, "version": self.version, "scheduler": self.scheduler,
            "cuda_graphs": {
                "sizes": [self.graph_sizes[0], self.graph_sizes[-1]] if self.graph_sizes else [],
                "count": len(self.graph_sizes), "by": "tokens" if self.graph_by_tokens
                else "sequences", "mixed_batches": self.graph_mixed, "padded": self.graph_pad,
            },
            "host": {"overlap": self.overlap, **{k: getattr(self, f"host_{k}")
                                                  for k in HOST_KEYS}},
            "ingress": {"base_s": self.ingress_base_s,
                        "per_token_s": self.ingress_per_token_s},
        }




def load_profile(path: Path, engine: str, where: str) -> dict[str, float]:
    """The host constants of a calibration profile written by ``frontier calibrate``."""
    try:
        data = json.loads(Path(path).read_text())
        fitted = data["host"]
        values = {f"host_{k}": float(fitted.get(k, 0.0)) for k in HOST_KEYS}
        name = str(data["engine"])
    except FileNotFoundError:
        raise ConfigError(f"{where}.engine.profile: no such file {str(path)!r}; give the path "
                          "of a file written by frontier calibrate.") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{where}.engine.profile: {str(path)!r} is not a calibration profile ({e}); "
            "write one with frontier calibrate FILE.csv --engine E -o PROFILE.json.") from None
    if name != engine:
        raise ConfigError(f"{where}.engine.profile: {str(path)!r} was fitted for {name!r}, but "
                          f"the cluster runs {engine!r}; calibrate {engine} or change engine.")
    if any(v < 0 for v in values.values()):
        raise ConfigError(f"{where}.engine.profile: {str(path)!r} has a negative host time.")
    return values


def resolve_engine(engine: Any, spec: EngineSpec, device: HardwareSpec, tp: int, where: str,
                   profile: Path | None = None) -> EngineModel:
    """The ``EngineModel`` of a cluster's ``engine:`` setting (``config.EngineConfig``),
    from its registered ``spec``, on ``device`` at tensor parallelism ``tp``;
    ``profile`` is its calibration profile's resolved path, if it names one."""
    name = spec.name
    v = parse_version(engine.version)
    fields = dict(spec.preset(v, device, tp))
    if not engine.cuda_graphs:
        fields["graph_sizes"] = ()
    fields.update({f"host_{k}": float(spec.host.get(k, 0.0)) for k in HOST_KEYS})
    if profile is not None:
        fields.update(load_profile(profile, name, where))
    if engine.overlap is not None:
        fields["overlap"] = engine.overlap
    for key in (*(f"host_{k}" for k in HOST_KEYS), "ingress_base_s", "ingress_per_token_s"):
        value = getattr(engine, key)
        if value is not None:
            fields[key] = value
    try:
        return EngineModel(name=name, version=engine.version, **fields)
    except TypeError as e:
        raise ConfigError(f"{where}.engine: the preset of engine {name!r} returned a field "
                          f"EngineModel does not have ({e}); fix the plugin that provides it."
                          ) from None
