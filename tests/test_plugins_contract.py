"""The plugin contract, checked from the outside.

Meta-tests (every hook documented, the kernel imports no plugin), the errors a
plugin author meets (duplicate names, misspelt hooks, unknown names), and the
example plugin in examples/sjf_scheduler at the three levels of docs/plugins.md:
the algorithm alone, the hookimpl on a fresh manager, discovery through the
installed entry point.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from collections import deque
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from frontier_core import (
    Batch,
    ComponentSpec,
    OpCall,
    PluginError,
    Request,
    SchedulerView,
    hookimpl,
)
from frontier_core import hookspecs as hookspecs_module
from frontier_core.assemble import assemble
from frontier_core.config import RunConfig
from frontier_core.engine.kv import PagedKVCache
from frontier_core.markers import PROJECT
from frontier_core.plugins import load_registry, make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
HOOKS_MD = ROOT / "docs" / "hooks.md"
KERNEL = ROOT / "frontier_core"
SJF_DIR = ROOT / "examples" / "sjf_scheduler"
PLUGIN_PACKAGES = {
    "frontier_predictors",
    "frontier_pd_disagg",
    "frontier_moe_ep",
    "frontier_af_pingpong",
    "frontier_sjf",
}


def _plugin(name: str, **hooks) -> ModuleType:
    """A module-like plugin object: pluggy names it after ``__name__``."""
    mod = ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, fn)
    return mod


# ---- meta-tests -------------------------------------------------------------------


def hookspec_names() -> set[str]:
    marker = f"{PROJECT}_spec"  # the attribute pluggy's HookspecMarker sets
    return {
        name
        for name, obj in vars(hookspecs_module).items()
        if callable(obj) and getattr(obj, marker, None) is not None
    }


def documented_hooks(text: str) -> list[str]:
    """Hook names of the ``## `name` `` headings, outside fenced code blocks."""
    names, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.fullmatch(r"##\s+`([A-Za-z_][A-Za-z0-9_]*)`\s*", line)
        if m and not fenced:
            names.append(m.group(1))
    return names


def test_hookspecs_found():
    # Guards the meta-test below against finding nothing (e.g. a renamed marker).
    assert {"frontier_schedulers", "frontier_predictors", "frontier_commands"} <= hookspec_names()


def test_every_hook_is_documented():
    documented = documented_hooks(HOOKS_MD.read_text())
    specs = hookspec_names()
    missing = sorted(specs - set(documented))
    assert not missing, f"hooks without a '## `name`' section in docs/hooks.md: {missing}"
    unknown = sorted(set(documented) - specs)
    assert not unknown, f"docs/hooks.md documents hooks that do not exist: {unknown}"
    repeated = sorted({n for n in documented if documented.count(n) > 1})
    assert not repeated, f"docs/hooks.md documents these hooks twice: {repeated}"


def _plugin_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            modules = [node.args[0].value]
        found += [(node.lineno, m) for m in modules if m.split(".")[0] in PLUGIN_PACKAGES]
    return found


def test_import_scan_sees_plugin_imports():
    src = "import frontier_moe_ep.x\nfrom frontier_sjf import plugin\nimportlib.import_module('frontier_pd_disagg')\n"
    assert [m for _, m in _plugin_imports(ast.parse(src))] == [
        "frontier_moe_ep.x", "frontier_sjf", "frontier_pd_disagg"
    ]


def test_kernel_imports_no_plugin():
    files = sorted(KERNEL.rglob("*.py"))
    assert files
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _plugin_imports(ast.parse(path.read_text(), str(path)))
    ]
    assert not bad, "the kernel must not import plugins: " + "; ".join(bad)


def _kernel_imports(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, module, name) of every name imported from frontier_core (name '' for a
    plain ``import frontier_core...``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, "") for a in node.names
                      if a.name.split(".")[0] == "frontier_core"]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "frontier_core":
            found += [(node.lineno, node.module, a.name) for a in node.names]
    return found


def test_example_plugin_and_builtin_policies_use_only_the_public_sdk():
    import frontier_core
    import frontier_core.sdk as sdk

    public = {"frontier_core": set(frontier_core.__all__), "frontier_core.sdk": set(sdk.__all__)}
    files = sorted(SJF_DIR.rglob("*.py"))
    assert files
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name or module} from {module}"
           for path in files
           for line, module, name in _kernel_imports(ast.parse(path.read_text()))
           if module not in public or name not in public[module]]
    assert not bad, "the example plugin must import only public names: " + "; ".join(bad)
    # The built-in schedulers and routers are written with the same blocks.
    for name in ("schedulers.py", "routers.py"):
        path = KERNEL / "builtin" / name
        used = {m for _, m, _ in _kernel_imports(ast.parse(path.read_text()))}
        assert used == {"frontier_core.sdk"}, f"{name} imports {used}"
    # Every name the sdk lists exists.
    assert all(hasattr(sdk, n) for n in sdk.__all__)


# ---- errors a plugin author meets ----------------------------------------------------


def test_duplicate_name_names_both_plugins():
    @hookimpl
    def frontier_schedulers():
        return [ComponentSpec("vllm", lambda o, ctx: None, summary="a clash")]

    clash = _plugin("my_vllm_clone", frontier_schedulers=frontier_schedulers)
    with pytest.raises(PluginError) as info:
        load_registry(entry_points=False, extra=[clash])
    msg = str(info.value)
    assert "'vllm'" in msg and "scheduler" in msg
    assert "frontier-core" in msg and "my_vllm_clone" in msg


def test_duplicate_name_between_two_user_plugins():
    @hookimpl
    def frontier_routers():
        return [ComponentSpec("fastest", lambda o, ctx: None)]

    a = _plugin("plugin_a", frontier_routers=frontier_routers)
    b = _plugin("plugin_b", frontier_routers=frontier_routers)
    with pytest.raises(PluginError, match=r"'fastest'.*plugin_a.*plugin_b"):
        load_registry(entry_points=False, extra=[a, b])


def test_misspelt_hook_is_an_error():
    @hookimpl
    def frontier_schedulerz():
        return []

    typo = _plugin("typo_plugin", frontier_schedulerz=frontier_schedulerz)
    with pytest.raises(PluginError, match="frontier_schedulerz"):
        make_plugin_manager(entry_points=False, extra=[typo])


def test_unknown_name_suggests_a_close_match():
    reg = load_registry(entry_points=False)
    with pytest.raises(PluginError) as info:
        reg.get("scheduler", "vlm", where="deployment.clusters[0].scheduler")
    msg = str(info.value)
    assert "Did you mean 'vllm'?" in msg
    assert "deployment.clusters[0].scheduler" in msg
    assert ("chunked_prefill, inflight_batching, orca, prefill_first, prefill_priority, "
            "sarathi, sglang, vllm") in msg  # the installed choices


def test_unknown_name_of_a_project_plugin_says_what_to_install():
    reg = load_registry(entry_points=False)
    with pytest.raises(PluginError, match=r"frontier-pd-disagg, which is not installed: "
                       r"install it with `pip install \S*plugins/pd_disagg`"):
        reg.get("workflow", "pd")


# ---- the example plugin: examples/sjf_scheduler ---------------------------------------


@pytest.fixture(scope="module")
def sjf_plugin() -> ModuleType:
    """``frontier_sjf.plugin``: the installed package, else loaded from examples/ by path."""
    try:
        return importlib.import_module("frontier_sjf.plugin")
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("frontier_sjf"):
            raise
    pkg_dir = SJF_DIR / "frontier_sjf"
    spec = importlib.util.spec_from_file_location(
        "frontier_sjf", pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
    )
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["frontier_sjf"] = pkg  # so that `from frontier_sjf.scheduler import ...` resolves
    spec.loader.exec_module(pkg)
    return importlib.import_module("frontier_sjf.plugin")


class FakeView:
    """A replica as a scheduler sees it (``SchedulerView``), without the engine."""

    def __init__(self, kv: PagedKVCache, prompts: list[int]) -> None:
        self.kv = kv
        self.now = 0.0
        self.decode_width = 1  # no speculative decoding
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque(
            Request(i, 0.0, p, 8, prefill_target=p) for i, p in enumerate(prompts)
        )

    def preempt(self, request: Request) -> None:
        self.kv.release(request)
        request.computed = 0
        request.prefill_target = request.prompt_len + request.generated
        self.running.remove(request)
        self.waiting.appendleft(request)


def _apply(batch: Batch) -> None:
    """What the engine does after an iteration: prompts done, one token out each."""
    for r, c in zip(batch.prefill, batch.chunks, strict=True):
        r.computed += c
        r.generated += 1
    for r in batch.decode:
        r.computed += 1
        r.generated += 1


def test_sjf_algorithm_admits_shortest_prompts_first(sjf_plugin):
    sched = sjf_plugin.SJFScheduler(sjf_plugin.SJFOptions(max_num_batched_tokens=1000))
    view = FakeView(PagedKVCache(num_blocks=1000, block_size=16), [3000, 50, 700, 50])
    assert isinstance(view, SchedulerView)
    batch = sched.schedule(view)
    # 50 + 50 + 700 fit the 1000-token budget; equal prompts keep arrival order.
    assert [r.id for r in batch.prefill] == [1, 3, 2]
    assert batch.chunks == [50, 50, 700]
    assert not batch.decode
    assert [r.id for r in view.running] == [1, 3, 2]
    assert [r.id for r in view.waiting] == [0]
    assert all(r.blocks == view.kv.blocks_for(r.prompt_len) for r in view.running)


def test_sjf_algorithm_preempts_newest_when_kv_runs_out(sjf_plugin):
    sched = sjf_plugin.SJFScheduler(sjf_plugin.SJFOptions())
    view = FakeView(PagedKVCache(num_blocks=3, block_size=16), [16, 16])
    _apply(sched.schedule(view))  # both prompts fill one block each; one block is left
    batch = sched.schedule(view)  # each decode needs a second block: only the first gets it
    assert [r.id for r in batch.decode] == [0]
    assert [r.id for r in view.running] == [0]
    assert [r.id for r in view.waiting] == [1]
    assert view.waiting[0].blocks == 0 and view.waiting[0].prefill_target == 17
    assert view.kv.free_blocks == 1


def test_sjf_options_are_validated(sjf_plugin):
    with pytest.raises(ValueError):
        sjf_plugin.SJFOptions(max_num_seqs=0)
    with pytest.raises(ValueError):
        sjf_plugin.SJFOptions.model_validate({"chunk_size": 512})


class LinearPredictor:
    """Test stand-in for real predictors: GEMMs linear in tokens plus weight streaming,
    attention linear in context, everything else about free."""

    def predict(self, call: OpCall) -> float:
        if call.op == "gemm":
            return 2 * call.m * call.n * call.k / 200e12 + 2 * call.n * call.k / 1.5e12
        if call.op.startswith("attention"):
            return float(call.kv_lens.sum()) * call.num_kv_heads * call.head_dim * 4 / 1.5e12
        return 1e-6


@hookimpl
def _linear_predictors():
    return [ComponentSpec("linear-contract", lambda o, ctx: LinearPredictor())]


LINEAR = _plugin("linear_contract", frontier_predictors=_linear_predictors)


def varied_prompts_config(scheduler: str, **options) -> RunConfig:
    """A queueing workload with prompts from 50 to 4000 tokens (a few tens of ms to simulate)."""
    options = {"max_num_seqs": 64, "max_num_batched_tokens": 4096, **options}
    return RunConfig.model_validate({
        "model": "llama-2-7b",
        "deployment": {"clusters": [{
            "name": "main", "gpu": "a100-80g-sxm", "scheduler": {"name": scheduler, **options},
        }]},
        "predictor": ["linear-contract"],
        "workload": {
            "arrival": {"process": "poisson", "rate": 10.0},
            "prompt_len": {"dist": "uniform", "low": 50, "high": 4000},
            "output_len": {"dist": "uniform", "low": 4, "high": 32},
            "num_requests": 200,
        },
        "seed": 3,
    })


def _ttfts(registry, scheduler: str) -> tuple[np.ndarray, np.ndarray]:
    sim = assemble(varied_prompts_config(scheduler), registry).run()
    reqs = sorted(sim.controller.requests, key=lambda r: r.id)
    assert len(reqs) == 200 and not any(r.rejected for r in reqs)
    assert all(r.generated == r.output_len for r in reqs)
    ttft = np.array([r.first_token - r.arrival for r in reqs])
    prompt = np.array([r.prompt_len for r in reqs])
    return ttft, prompt


def test_sjf_hookimpl_on_a_fresh_manager(frontier_registry_factory, sjf_plugin):
    reg = frontier_registry_factory(sjf_plugin, LINEAR)
    assert "sjf" in reg.names("scheduler")
    spec = reg.get("scheduler", "sjf")
    assert spec.options is sjf_plugin.SJFOptions
    (found,) = [p for p in reg.provided("scheduler") if p.name == "sjf"]
    assert not found.builtin

    sjf_ttft, prompt = _ttfts(reg, "sjf")
    vllm_ttft, prompt_v = _ttfts(reg, "vllm")
    assert (prompt == prompt_v).all()  # the same workload, only the scheduler differs
    # Short prompts jump the queue: mean and median TTFT fall, the long prompts pay.
    assert sjf_ttft.mean() < 0.8 * vllm_ttft.mean()
    assert np.median(sjf_ttft) < 0.5 * np.median(vllm_ttft)
    short, long_ = prompt < 1000, prompt > 3000
    assert sjf_ttft[short].mean() < vllm_ttft[short].mean()
    assert sjf_ttft[long_].mean() > vllm_ttft[long_].mean()


def test_sjf_unknown_option_names_the_plugin(frontier_registry_factory, sjf_plugin):
    from frontier_core.errors import ConfigError

    reg = frontier_registry_factory(sjf_plugin, LINEAR)
    cfg = varied_prompts_config("sjf", token_budget=512)
    with pytest.raises(ConfigError, match=r"scheduler 'sjf'.*token_budget.*max_num_seqs"):
        assemble(cfg, reg)


def _sjf_entry_point_installed() -> bool:
    return "sjf" in importlib.metadata.entry_points(group="frontier").names


@pytest.mark.skipif(not _sjf_entry_point_installed(), reason="frontier-sjf not installed")
def test_sjf_discovered_through_its_entry_point():
    reg = load_registry()
    provided = {p.name: p for p in reg.provided("scheduler")}
    assert "sjf" in provided
    assert provided["sjf"].distribution == "frontier-sjf"
    assert provided["sjf"].item.options.__module__ == "frontier_sjf.scheduler"
    assert any(dist == "frontier-sjf" for _, dist, _, _ in reg.plugins)
