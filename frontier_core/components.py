"""The extension points: one Protocol per hot method, and the spec records hooks return.

Hooks *provide* components (``frontier_schedulers()`` returns ``ComponentSpec``
records); assembly looks them up by name once per run, validates their options
model and calls the factory; the engine then calls the protocol method directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from frontier_core.records import Batch, Link, OpCall, Request

if TYPE_CHECKING:
    from frontier_core.config import ClusterConfig, RunConfig
    from frontier_core.model.catalog import HardwareSpec, ModelSpec


class NoOptions(BaseModel):
    """Options model of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ComponentSpec:
    """A named, constructible component: what every provider hook returns.

    ``factory(options, ctx)`` receives the validated ``options`` model instance
    and a ``BuildContext`` and returns the component (a Scheduler, Router,
    TransferModel, Predictor, Workflow or FFN block model).
    """

    name: str
    factory: Callable[[Any, BuildContext], Any]
    options: type[BaseModel] = NoOptions
    summary: str = ""


@dataclass(frozen=True)
class EngineSpec:
    """A serving engine, as ``frontier_engines`` provides it.

    ``preset(version, device, tp)`` returns, for the parsed version (a tuple, or None
    for the newest), the cluster's ``HardwareSpec`` and TP degree, the fields of
    ``frontier_core.execution.engines.EngineModel`` that the engine sets: ``scheduler`` (a
    scheduler name and its options, as a config's ``scheduler:``), ``graph_sizes``,
    ``graph_by_tokens``, ``graph_mixed``, ``graph_full_decode``, ``graph_pad``,
    ``overlap``. ``host`` holds its default host constants (``base_s``, ``per_seq_s``,
    ``per_token_s``, ``gap_s``; seconds).
    """

    name: str
    preset: Callable[..., dict[str, Any]]
    host: Mapping[str, float] = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True)
class CommandSpec:
    """A CLI subcommand contributed by a plugin: a typer app or a plain function."""

    name: str
    command: Any
    summary: str = ""


@dataclass
class BuildContext:
    """What a factory may use to build its component. Built once per run (per cluster
    for cluster-scoped components); ``rng`` is the run's seeded generator."""

    config: RunConfig
    model: ModelSpec
    rng: np.random.Generator
    hardware: dict[str, HardwareSpec] = field(default_factory=dict)
    cluster: ClusterConfig | None = None
    device: HardwareSpec | None = None
    transfer: TransferModel | None = None
    # ``answer_for(gpu)``: the run's predictor chain for another GPU kind (by catalog
    # name), as ``answer(call) -> (seconds, backend index)``; for blocks that run part
    # of a layer on other GPUs. Set by assembly for cluster-scoped components.
    answer_for: Callable[[str], Callable[[OpCall], tuple[float, int]]] | None = None
    # One dict per run, the same in every context: state that components of several
    # clusters share (e.g. an expert cluster serving them all). Under ``"expert_clusters"``
    # a component registers the object that runs each of ``deployment.expert_clusters``
    # by name; the kernel reports it (``summary(run_span) -> dict``,
    # ``trace_events(pids) -> list``, both optional) and refuses a pool nobody runs.
    shared: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SchedulerView(Protocol):
    """What a scheduler sees of a replica (implemented by the engine's ReplicaWorker)."""

    waiting: deque[Request]
    running: list[Request]
    kv: KVAllocator
    now: float
    # Tokens one decode computes: 1, or k + 1 under speculative decoding. A scheduler
    # grows a decoding request's KV by this much; if it grows less, the replica drafts
    # only what the blocks hold.
    decode_width: int

    def preempt(self, request: Request) -> None:
        """Free the request's KV and put it back at the head of ``waiting`` (recompute)."""
        ...


class KVAllocator(Protocol):
    """Paged KV memory of one replica, counted in blocks of ``block_size`` tokens."""

    block_size: int
    num_blocks: int
    free_blocks: int

    def blocks_for(self, tokens: int) -> int: ...

    def grow(self, request: Request, tokens: int) -> bool:
        """Make the request hold enough blocks for ``tokens``; False (no change) if short."""
        ...

    def release(self, request: Request) -> None: ...


class ReplicaView(Protocol):
    """What a router sees of each replica of a cluster (the engine's ReplicaWorker)."""

    index: int
    waiting: deque[Request]
    running: list[Request]
    kv: KVAllocator  # also ``used_blocks``, and ``cached_prefix(request)``: the tokens of
    # the request's prompt this replica's prefix cache holds now (0 without a cache)
    outstanding: int  # requests routed here and not finished
    outstanding_tokens: int  # their prompt + output tokens


class Scheduler(Protocol):
    """Forms the next batch of a replica, allocating KV (and preempting) as it goes."""

    def schedule(self, view: SchedulerView) -> Batch: ...


class Router(Protocol):
    """Chooses a replica (an index into ``replicas``, each a ``ReplicaView``) for a
    request."""

    def route(self, request: Request, replicas: Sequence[ReplicaView]) -> int: ...


class TransferModel(Protocol):
    """Seconds to move ``nbytes`` (per GPU) in a ``kind`` of transfer among
    ``num_gpus`` GPUs over ``link``: all_reduce, all_gather, reduce_scatter,
    all_to_all, send_recv."""

    def transfer(self, kind: str, nbytes: float, num_gpus: int, link: Link) -> float: ...


class Predictor(Protocol):
    """Seconds for one operator call on the device it was built for, or None when
    the call is outside what this predictor covers (the next one in the chain answers)."""

    def predict(self, call: OpCall) -> float | None: ...


class FFNBlock(Protocol):
    """Emits the operator calls of a layer's feed-forward block for ``num_tokens`` tokens.

    The kernel ships the dense block; a MoE block comes from a plugin.
    """

    def ops(self, num_tokens: int) -> list[OpCall]: ...


@dataclass(slots=True)
class LayerStep:
    """What a per-iteration FFN block (``MoELayers``) is told about one iteration.

    - ``tokens``: tokens each attention data-parallel rank holds (length ``dp``).
    - ``layers``: how many of the block's layers the model has (all stages; the
      kernel divides the result by ``pp``).
    - ``other_s``: seconds of everything else in one such layer (attention,
      projections, norms, TP collectives) on the slowest DP rank.
    - ``answer(call) -> (seconds, backend index)``: the run's predictor chain;
      add the seconds to ``credit[backend index]`` for what you use.
    - ``replica``, ``now``: which replica runs the iteration and when it starts.
    - ``record``: False for a pass that is not one of the model's own iterations (a
      speculative drafter's MTP layer): price it, but leave it out of the block's
      statistics and trace. Such a pass may also ask for fewer ``layers`` than the
      block has (one MTP layer); the block then returns the time of that many of its
      layers (e.g. its per-layer mean times ``layers``).
    - ``prefill``: the batch holds prompt tokens (an engine may pick its MoE
      all-to-all kernels by it: DeepEP's normal kernels for prefill, its low-latency
      ones for decode-only batches).
    - ``rest_at(share) -> (common_s, attention_s)``: ``other_s`` for a micro-batch with
      ``share`` of the slowest rank's tokens, split into the projections, norms and
      collectives (priced again at the micro-batch's size, so that weights are read
      once per micro-batch) and attention; None: ``(other_s × share, 0)``.
    """

    tokens: np.ndarray
    layers: int
    other_s: float
    answer: Callable[[OpCall], tuple[float, int]]
    credit: list[float]
    replica: int = 0
    now: float = 0.0
    record: bool = True
    prefill: bool = False
    rest_at: Callable[[float], tuple[float, float]] | None = None


@runtime_checkable
class MoELayers(Protocol):
    """An FFN block whose time depends on each iteration (e.g. MoE routing drawn per
    iteration). The kernel calls ``step`` once per iteration instead of memoising
    ``ops``; it returns the seconds of all ``step.layers`` layers, ``other_s``
    included, so that a block may overlap its own work with the rest of the layer.

    Optional: ``weight_bytes_per_gpu() -> float`` (the routed experts' bytes one GPU
    holds, all layers, before pipeline splitting; the kernel's memory plan uses it
    instead of sharding them over TP); ``offloads_ffn = True`` (the cluster's GPUs
    hold no feed-forward weights at all: they run elsewhere) with ``external_gpus``
    (GPUs per replica the block uses outside the cluster, counted in the run's GPUs);
    ``report(pid, name) -> WorkflowReport`` (summary, trace events and CLI lines
    of the cluster's block); and ``step_series(s) -> step(other_s) | None``: for an
    iteration leap, a pricer of iterations like ``s`` that differ only in ``other_s``
    (the same seconds, credits and statistics as ``step``, in the same order; None
    where it cannot)."""

    def step(self, s: LayerStep) -> float: ...


@dataclass
class WorkflowReport:
    """What a workflow adds to a run's outputs, computed once after the run.

    - ``summary``: goes under ``"workflow"`` in summary.json.
    - ``columns``: extra per-request columns for requests.csv, each aligned with the
      run's requests sorted by id.
    - ``files``: extra files (name -> text) in the output directory.
    - ``trace_events``: Chrome/Perfetto trace events appended to trace.json; the
      kernel's tracks are pid = ``pids[cluster]``, tid = replica index + 1. A list, or
      any iterable that yields them anew on each iteration (so that events that grow with
      the run are built only when the trace is written, a chunk at a time).
    - ``lines``: short highlights ``frontier run`` prints after its own summary.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Sequence[Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    trace_events: Iterable[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class Workflow(Protocol):
    """How a request flows through the stages (clusters) of a deployment.

    ``run`` is a simpy process generator for one request: it submits the
    request to cluster workers (``controller.cluster(name).serve(request)``
    returns an event that fires when that stage is finished) and may wait on
    transfers in between. Co-located serving is the one-stage workflow.

    A workflow may also define ``report(sim, pids) -> WorkflowReport`` to add its
    own metrics, columns, files and trace events (``pids``: cluster name -> the
    trace's process id of that cluster); the kernel calls it once, after the run.
    """

    def clusters(self) -> Sequence[str]:
        """Names of the clusters this workflow uses (validated at assembly)."""
        ...

    def run(self, request: Request, controller: Any) -> Generator[Any, Any, None]: ...
