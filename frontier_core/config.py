"""Kernel configuration models: model, hardware, deployment, workload, SLOs, run.

Plugins own the options of what they provide: a ``ComponentRef`` carries the
name plus whatever options the YAML gives, and assembly validates those options
against the plugin's own model. Everything here forbids unknown fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from frontier_core.model.catalog import HardwareSpec, ModelSpec

#: The largest token count a length may have (prompt, output, a distribution's bound):
#: ten times the longest context of any model served today (10M tokens), so that no
#: real workload meets it and arrays of lengths stay within int64 arithmetic.
MAX_TOKENS = 100_000_000

#: The most requests one run may have (given, or expected from rate × duration): a run
#: keeps a record per request, and ten million already take hours to simulate.
MAX_REQUESTS = 10_000_000

Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]


class _Strict(BaseModel):
    # allow_inf_nan=False: an infinite or NaN number (YAML's .inf, .nan) is never a
    # meaningful rate, length, time or size, and would run with nonsense results.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentRef(BaseModel):
    """A component chosen by name, with its options inline:
    ``{name: vllm, max_num_seqs: 128}`` or just ``vllm``."""

    model_config = ConfigDict(extra="allow")

    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# ---- model and hardware ------------------------------------------------------


class ModelConfig(_Strict):
    """A catalog model by ``name``, a local Hugging Face ``hf_config``, or an inline ``spec``;
    dtypes may be overridden (e.g. fp8 weights or KV cache)."""

    name: str | None = None
    hf_config: str | None = None
    spec: ModelSpec | None = None
    weight_dtype: str | None = None
    expert_dtype: str | None = None
    kv_dtype: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        given = [x for x in (self.hf_config, self.spec) if x is not None]
        if len(given) > 1 or (not given and not self.name):
            raise ValueError("give exactly one of: name (a catalog model), hf_config, spec")
        return self


# ---- deployment ---------------------------------------------------------------


class SpeculativeConfig(_Strict):
    """Speculative decoding on a cluster: every decode step drafts up to ``k`` tokens
    per sequence and the target model verifies them in one pass over k+1 query tokens.

    ``method: draft`` drafts with a small model (``draft_model``, a catalog name) run
    ``k`` times per step on the same GPUs; ``method: mtp`` drafts with the target's own
    multi-token-prediction module (DeepSeek-V3 style: one extra layer per draft token,
    sharing the embedding and LM head). ``acceptance`` is the probability that a draft
    token is accepted given that the ones before it were: one number for every position,
    or a list of ``k`` per-position rates (as engines report them). Instead,
    ``accepted_lengths`` gives the distribution of accepted drafts per step directly:
    k + 1 weights for 0..k accepted (normalised). A step emits the accepted drafts plus
    one token from the target, so its mean is (1 - p^(k+1)) / (1 - p) for a constant
    ``p``.
    """

    method: Literal["draft", "mtp"]
    k: int = Field(ge=1, le=16, description="draft tokens per decode step")
    acceptance: float | list[float] | None = Field(
        None, description="per-token acceptance probability, or one per draft position"
    )
    accepted_lengths: list[float] | None = Field(
        None, description="weights of accepting 0, 1, ..., k drafts in a step (k + 1 of them)"
    )
    draft_model: str | None = Field(None, description="catalog name of the draft model (draft)")
    draft_tp: int | None = Field(
        None, ge=1, description="tensor parallelism of the draft model; default: the cluster's tp"
    )

    @model_validator(mode="after")
    def _coherent(self) -> SpeculativeConfig:
        if (self.acceptance is None) == (self.accepted_lengths is None):
            raise ValueError("give exactly one of acceptance (per-token rates) and "
                             "accepted_lengths (a distribution of accepted drafts)")
        if self.accepted_lengths is not None:
            w = self.accepted_lengths
            if len(w) != self.k + 1 or any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError(
                    f"accepted_lengths needs k + 1 = {self.k + 1} non-negative weights (for "
                    f"0..{self.k} accepted drafts) with a positive sum; got {w}"
                )
            return self._check_draft()
        rates = self.acceptance if isinstance(self.acceptance, list) else [self.acceptance]
        if any(not 0.0 <= p <= 1.0 for p in rates):
            raise ValueError("acceptance rates must lie in [0, 1]")
        if isinstance(self.acceptance, list) and len(self.acceptance) != self.k:
            raise ValueError(
                f"acceptance lists {len(self.acceptance)} rates but k is {self.k}; give one "
                "rate per draft position, or a single number"
            )
        return self._check_draft()

    def _check_draft(self) -> SpeculativeConfig:
        if self.method == "draft" and not self.draft_model:
            raise ValueError("method: draft needs draft_model (e.g. llama-3.2-1b)")
        if self.method == "mtp" and (self.draft_model or self.draft_tp):
            raise ValueError("method: mtp drafts with the target's own MTP layer; drop "
                             "draft_model and draft_tp")
        return self

    def rates(self) -> list[float]:
        """The acceptance probability of each of the ``k`` draft positions, given that
        the earlier ones were accepted (from ``accepted_lengths``: P(a >= j) / P(a >= j-1),
        1 where nothing reaches position j-1)."""
        if self.accepted_lengths is not None:
            w = self.accepted_lengths
            total = sum(w)
            tail = [sum(w[j:]) / total for j in range(self.k + 1)]  # P(accepted >= j)
            return [tail[j] / tail[j - 1] if tail[j - 1] > 0 else 1.0
                    for j in range(1, self.k + 1)]
        a = self.acceptance
        assert a is not None
        return list(a) if isinstance(a, list) else [a] * self.k


class EngineConfig(_Strict):
    """The serving engine a cluster runs, as it ships (see frontier_core/execution/engines.py and
    docs/engines.md): ``engine: vllm`` or ``{name: sglang, version: 0.5.9}``. It sets
    the scheduler and its limits (unless the cluster gives ``scheduler:``), CUDA-graph
    capture sizes, the host time each iteration adds, and the serial ingress of
    requests; ``profile`` or the fields below override the engine's figures."""

    name: str = Field(description="vllm, sglang or trtllm")
    version: str | None = Field(
        None, description="where behaviour changed between releases (e.g. vLLM's async "
        "scheduling from 0.14); None or a nightly: the newest modelled",
    )
    cuda_graphs: bool = Field(True, description="False: every iteration runs eagerly")
    profile: str | None = Field(
        None, description="a calibration profile (JSON written by frontier calibrate) whose "
        "host constants replace the engine's defaults",
    )
    host_base_s: float | None = Field(None, ge=0, description="host seconds per iteration")
    host_per_seq_s: float | None = Field(None, ge=0, description="host seconds per sequence")
    host_per_token_s: float | None = Field(None, ge=0, description="host seconds per token")
    host_gap_s: float | None = Field(
        None, ge=0, description="seconds per step that no overlap hides (the hand-off of "
        "sampled tokens from the GPU to the scheduler)",
    )
    overlap: bool | None = Field(
        None, description="the engine runs a step's CPU work while the GPU computes the "
        "previous one (async / overlap scheduling); None: as the engine and version ship",
    )
    ingress_base_s: float | None = Field(
        None, ge=0, description="API-server seconds per request before it reaches the engine"
    )
    ingress_per_token_s: float | None = Field(
        None, ge=0, description="API-server seconds per prompt token (tokenisation)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("version", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v


class ClusterConfig(_Strict):
    """A pool of identical replicas serving one stage of the workflow."""

    name: str = "main"
    gpu: str = "h100-sxm"
    replicas: int = Field(1, ge=1)
    tp: int = Field(1, ge=1, description="tensor-parallel degree")
    pp: int = Field(1, ge=1, description="pipeline-parallel degree")
    dp: int = Field(
        1, ge=1,
        description="attention data-parallel ranks per replica (DP attention of a MoE model: "
        "each rank runs attention with TP=tp on its share of the batch; the MoE layers span "
        "all dp×tp GPUs of a pipeline stage)",
    )
    dp_balance: Literal["round_robin", "least_tokens", "least_requests"] = Field(
        "round_robin",
        description="how a replica with dp > 1 gives each arriving request to a DP attention "
        "rank: in turn (SGLang's default load_balance_method), the rank with the fewest "
        "tokens in its KV cache plus prompt tokens waiting there (SGLang's total_tokens), or "
        "the fewest requests waiting or running there (SGLang's total_requests)",
    )
    moe: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="moe"),
        description="the MoE block and its options (used only by mixture-of-experts models)",
    )
    ffn: ComponentRef | None = Field(
        None,
        description="a per-iteration block that runs the feed-forward part of every layer "
        "(dense and MoE) instead of the built-in dense MLP and the moe block, e.g. af "
        "(attention/FFN disaggregation: the FFN on separate GPUs)",
    )
    engine: EngineConfig | None = Field(
        None, description="the serving engine (vllm, sglang, trtllm) and its version; sets "
        "the scheduler defaults, CUDA graphs, host time and ingress as that engine ships",
    )
    scheduler: ComponentRef = ComponentRef(name="prefill_priority")
    router: ComponentRef = ComponentRef(name="round_robin")
    block_size: int = Field(16, ge=1, description="KV block size in tokens")
    gpu_memory_fraction: float = Field(0.9, gt=0, le=1)
    activation_reserve_gb: float | None = Field(
        None, ge=0, description="GPU memory kept for activations; None estimates it"
    )
    prefix_cache: bool = Field(
        False, description="keep computed prompt blocks by content hash and reuse them for "
        "later requests with the same prefix (needs a trace with block hashes)",
    )
    host_cache_gb: float = Field(
        0.0, ge=0, description="host memory (GB per GPU) that keeps cached blocks evicted "
        "from the GPU; a later hit copies them back over PCIe (needs prefix_cache)",
    )
    disk_cache_gb: float = Field(
        0.0, ge=0, description="SSD KV store (GB per GPU, as host_cache_gb) below the host "
        "tier, e.g. 3FS or Mooncake Store: keeps blocks the host tier drops (or every "
        "computed block, with disk_write_policy: write_through); a later hit is read back "
        "through host memory (needs prefix_cache and host_cache_gb)",
    )
    # 3FS's KVCache clients (one 400 Gbps NIC per node) read at up to 40 GiB/s
    # (deepseek-ai/3FS, README.md, Performance: KVCache).
    disk_read_gbs: float = Field(
        40 * 1.073741824, gt=0, allow_inf_nan=False,
        description="read bandwidth of the disk tier per node in GB/s, shared by the "
        "node's gpus_per_node GPUs (default: 3FS's published 40 GiB/s per client node)",
    )
    disk_latency_s: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="fixed seconds per read from the disk tier (a request's load), on top "
        "of the bandwidth; 0 unless your store's figure is known",
    )
    disk_write_policy: Literal["write_back", "write_through"] = Field(
        "write_back", description="write_back: a block enters the disk tier when the host "
        "tier drops it; write_through: every computed prompt block is written when "
        "published (SGLang's --hicache-write-policy)",
    )

    speculative: SpeculativeConfig | None = Field(
        None, description="speculative decoding (draft model or MTP) on this cluster's decodes"
    )

    @field_validator("moe", mode="before")
    @classmethod
    def _moe_name(cls, v: Any) -> Any:
        # `moe: {ep: 8}` names the default block implicitly.
        return {"name": "moe", **v} if isinstance(v, dict) and "name" not in v else v

    @property
    def gpus_per_replica(self) -> int:
        return self.dp * self.tp * self.pp


class ExpertClusterConfig(_Strict):
    """A pool of GPUs that serves no requests but holds experts of other clusters' MoE
    layers: tokens routed to its experts cross the network, are computed here and come
    back. A cluster's MoE block places experts on it by name (e.g. cross_cluster from
    frontier-moe-ep); several clusters may share one."""

    name: str
    gpu: str = "h100-sxm"
    gpus: int = Field(1, ge=1, description="GPUs of the pool; its experts are spread over them")
    gpu_memory_fraction: float = Field(
        0.9, gt=0, le=1, description="share of each GPU's memory its expert weights may use "
        "(1 GiB more is kept for activations and buffers)")


class DeploymentConfig(_Strict):
    workflow: ComponentRef = ComponentRef(name="colocated")
    clusters: list[ClusterConfig] = Field(default_factory=lambda: [ClusterConfig()], min_length=1)
    expert_clusters: list[ExpertClusterConfig] = Field(
        default_factory=list,
        description="GPU pools that hold experts for the clusters' MoE layers and serve no "
        "requests (cross-cluster expert routing)",
    )

    @field_validator("clusters")
    @classmethod
    def _unique(cls, v: list[ClusterConfig]) -> list[ClusterConfig]:
        names = [c.name for c in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"cluster names must be unique; repeated: {sorted(dup)}")
        return v

    @model_validator(mode="after")
    def _unique_pools(self) -> DeploymentConfig:
        names = [c.name for c in self.clusters] + [c.name for c in self.expert_clusters]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"names of clusters and expert_clusters must be unique together; repeated: "
                f"{sorted(dup)}")
        return self


# ---- workload -----------------------------------------------------------------


class FixedLength(_Strict):
    dist: Literal["fixed"]
    value: Tokens


class UniformLength(_Strict):
    dist: Literal["uniform"]
    low: Tokens
    high: Tokens

    @model_validator(mode="after")
    def _order(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class LognormalLength(_Strict):
    """Lognormal with the given ``median`` and log-space ``sigma``, clipped to [min, max]."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0, le=MAX_TOKENS)
    sigma: float = Field(gt=0, le=10, description="log-space spread (1 already spans ~50x)")
    min: Tokens = 1
    max: Tokens = 32768

    @model_validator(mode="after")
    def _median_within(self) -> LognormalLength:
        # min > max is reported where the lengths are drawn (workload/sampling.py).
        if self.min <= self.max and not self.min <= self.median <= self.max:
            raise ValueError(
                f"median {self.median:g} lies outside [min, max] = [{self.min}, {self.max}], "
                "so most draws would be clipped to one bound; move the median inside or "
                "widen min/max"
            )
        return self


class ZipfLength(_Strict):
    """Zipf with exponent ``alpha`` (> 1), scaled by ``scale`` and clipped to [min, max]."""

    dist: Literal["zipf"]
    alpha: float = Field(gt=1)
    scale: Tokens = 1
    min: Tokens = 1
    max: Tokens = 32768


class EmpiricalLength(_Strict):
    """Samples with replacement from one column of a CSV file."""

    dist: Literal["empirical"]
    path: str
    column: str


LengthDist = Annotated[
    FixedLength | UniformLength | LognormalLength | ZipfLength | EmpiricalLength,
    Field(discriminator="dist"),
]


class ArrivalConfig(_Strict):
    """Open-loop arrivals: Poisson, Gamma (burstiness ``cv`` = coefficient of
    variation of inter-arrival times; cv=1 is Poisson) or a fixed interval."""

    process: Literal["poisson", "gamma", "fixed"] = "poisson"
    rate: float = Field(gt=0, description="requests per second")
    cv: float = Field(1.0, gt=0, le=100, description="coefficient of variation of the gaps "
                      "(gamma); beyond 100 nearly every request arrives in one burst")


class TraceConfig(_Strict):
    """Trace replay. ``azure``: the Azure LLM 2023 CSVs (TIMESTAMP, ContextTokens,
    GeneratedTokens); ``mooncake``: JSONL with timestamp (ms), input_length,
    output_length; ``lengths``: a CSV of prompt/output lengths (Vidur/Sarathi
    column names, or ``arrived_at`` seconds when present)."""

    format: Literal["azure", "mooncake", "lengths"]
    path: str
    time_scale: float = Field(1.0, gt=0, description="multiplies inter-arrival times")
    start: int = Field(0, ge=0, description="rows to skip")
    hash_block: int = Field(
        512, ge=1, description="tokens per entry of a mooncake trace's hash_ids (prefix caching)"
    )


class ClosedLoopConfig(_Strict):
    """N clients, each sending its next request when the previous one completes
    (``benchmark_serving --max-concurrency`` style). All start at 0 unless
    ``ramp_up_s`` spreads their first requests."""

    concurrency: int = Field(ge=1)
    think_time_s: float = Field(0.0, ge=0)
    ramp_up_s: float = Field(
        0.0, ge=0, description="client k sends its first request at k × ramp_up_s / "
        "concurrency (0: all at once, as the load generators start their clients)",
    )


class ReasoningConfig(_Strict):
    """Turns with a hidden reasoning phase (DeepSeek-R1, Qwen3 thinking mode): the model
    generates ``tokens`` reasoning tokens before the visible answer, and the chat template
    leaves them out of the next turn's prompt."""

    fraction: float = Field(1.0, ge=0, le=1, description="share of turns that reason")
    tokens: LengthDist = Field(description="hidden reasoning tokens of a reasoning turn")


class ConversationConfig(_Strict):
    """Synthetic multi-turn conversations. ``workload.arrival`` starts conversations (or
    ``closed_loop`` runs ``concurrency`` users, one conversation after another, pausing
    its ``think_time_s`` between conversations); each turn is one request whose prompt is
    the system prompt, every earlier turn's user tokens and visible answer, and
    ``workload.prompt_len`` new user tokens; ``workload.output_len`` is the visible
    answer. A turn is sent ``think_time_s`` after the previous one completes; a rejected
    turn ends its conversation. ``num_requests`` counts turns (the last conversation is
    cut short to fit) and ``duration_s`` drops conversations that would start after it."""

    turns: LengthDist = Field(description="turns (requests) per conversation")
    think_time_s: float = Field(
        0.0, ge=0, description="mean seconds between a response and the next turn "
        "(exponential; 0 sends the next turn at once)",
    )
    system_prompt: int = Field(0, ge=0, le=MAX_TOKENS, description="tokens of the system prompt")
    system_prompts: int = Field(
        1, ge=1, description="distinct system prompts; each conversation picks one uniformly",
    )
    reasoning: ReasoningConfig | None = None
    hash_block: int = Field(
        16, ge=1, description="tokens per content hash for prefix caching (16: vLLM's block "
        "size; keep it a multiple of the clusters' block_size)",
    )


class WorkloadConfig(_Strict):
    trace: TraceConfig | None = None
    arrival: ArrivalConfig | None = None
    prompt_len: LengthDist | None = None
    output_len: LengthDist | None = None
    closed_loop: ClosedLoopConfig | None = None
    num_requests: int | None = Field(None, ge=1, le=MAX_REQUESTS)
    duration_s: float | None = Field(
        None, gt=0, le=1e9, description="drop arrivals after this time (seconds)"
    )
    warmup_requests: int = Field(
        0, ge=0, description="the first N requests (in sending order) are warm-up: they "
        "run, requests.csv marks them (warmup = 1), and the summary's latency, throughput "
        "and SLO figures leave them out; e.g. the first wave of a closed loop",
    )
    conversations: ConversationConfig | None = Field(
        None, description="synthetic multi-turn conversations (a trace gives its own "
        "through a conversation_id column or key)",
    )

    @model_validator(mode="after")
    def _coherent(self) -> WorkloadConfig:
        if self.trace is None and (self.prompt_len is None or self.output_len is None):
            raise ValueError("give a trace, or both prompt_len and output_len")
        if self.conversations is not None and self.trace is not None:
            raise ValueError(
                "conversations and trace exclude each other: conversations are synthetic; "
                "a trace is replayed as conversations when it has a conversation_id column "
                "(lengths CSV) or key (mooncake JSONL)"
            )
        if self.closed_loop is not None and self.arrival is not None:
            raise ValueError("closed_loop and arrival exclude each other")
        # A `lengths` trace may carry arrived_at; the loader says so when it does not.
        if self.closed_loop is None and self.arrival is None and self.trace is None:
            raise ValueError(
                "no arrival times: give arrival (poisson/gamma/fixed), closed_loop, "
                "or a trace with timestamps"
            )
        if self.trace is None and self.num_requests is None and self.duration_s is None:
            raise ValueError("a synthetic workload needs num_requests or duration_s")
        return self


class SLOConfig(_Strict):
    """Latency targets for goodput: a request counts when it meets every target given."""

    ttft_s: float | None = Field(None, gt=0)
    tpot_s: float | None = Field(None, gt=0)
    e2e_s: float | None = Field(None, gt=0)


class OutputConfig(_Strict):
    dir: str = "frontier-results"
    trace: bool = Field(True, description="write the Perfetto trace")
    requests: bool = Field(True, description="write requests.csv")


class RunConfig(_Strict):
    """One simulation run."""

    model: ModelConfig = ModelConfig(name="llama-3.1-8b")
    hardware: list[HardwareSpec] = Field(
        default_factory=list, description="extra GPU kinds (or overrides of catalog ones)"
    )
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    predictor: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="roofline")], min_length=1
    )
    transfer: ComponentRef = ComponentRef(name="links")
    workload: WorkloadConfig
    slo: SLOConfig = Field(default_factory=SLOConfig)
    seed: int = Field(0, ge=0, description="seeds every random draw of the run (numpy "
                      "SeedSequence: a non-negative integer)")
    output: OutputConfig = Field(default_factory=OutputConfig)
    base_dir: str = Field(".", description="relative paths resolve against this (set by loader)")

    @field_validator("predictor", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | dict) else v

    def resolve(self, path: str) -> Path:
        """A config-relative path; ``frontier:NAME`` names a file shipped in frontier_core/data."""
        if path.startswith("frontier:"):
            return Path(__file__).parent / "data" / path.removeprefix("frontier:")
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p
