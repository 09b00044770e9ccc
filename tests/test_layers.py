"""The kernel's layers (docs/architecture.md): every import of one kernel module by another
runs downward or within a layer, and no import circle exists at run time. Imports under
``if TYPE_CHECKING:`` are for annotations only and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[1] / "frontier_core"

# Lowest first. A module may import its own layer and those listed before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("_version", "markers", "errors", "records")),
    ("model", ("model",)),
    ("contract", ("config", "configfile", "components", "hookspecs")),
    ("execution and workload", ("execution", "workload")),
    ("engine", ("engine",)),
    ("policies and plugins", ("sdk", "builtin", "plugins")),
    ("assembly", ("assemble", "testing")),
    ("application", ("app",)),
]


def _module(path: Path) -> str:
    rel = path.relative_to(KERNEL.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _rank(module: str) -> int | None:
    """The layer of ``frontier_core.x.y`` (None: the package's facade, ``__init__``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for i, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py")


def _is_module(name: str) -> bool:
    path = KERNEL.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """Line numbers of statements under ``if TYPE_CHECKING:``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, kernel module) of every import a module can run, at any depth."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_blocks(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] == "frontier_core"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "frontier_core":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub) else node.module))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(KERNEL.rglob("*.py")):
        mod = _module(path)
        graph[mod] = {m for _, m in runtime_imports(path) if m != mod}
    return graph


def test_every_kernel_module_is_in_a_layer_and_imports_run_downward():
    bad = []
    for path in sorted(KERNEL.rglob("*.py")):
        mod = _module(path)
        own = _rank(mod)
        if own is None:
            continue  # the facade re-exports from every layer
        for line, target in runtime_imports(path):
            rank = _rank(target)
            if rank is None or rank > own:
                where = "the package facade" if rank is None else f"layer {LAYERS[rank][0]!r}"
                bad.append(f"{path.relative_to(KERNEL.parent)}:{line} ({LAYERS[own][0]}) "
                           f"imports {target} ({where})")
    assert not bad, "imports that run upward:\n" + "\n".join(bad)


def test_no_import_circle_at_run_time():
    graph = _graph()
    # A package's __init__ and its own modules are one node's business; count module edges.
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package importing its submodule, or a submodule its package
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt in graph and not state.get(nxt):
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node) and node != "frontier_core":
            visit(node, [node])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_layer_scan_sees_what_it_must(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\n"
                   "from frontier_core.model import catalog\n"
                   "from frontier_core.errors import ConfigError\n"
                   "if TYPE_CHECKING:\n    from frontier_core.app.cli import app\n"
                   "def f():\n    from frontier_core.engine.kv import PagedKVCache\n")
    assert runtime_imports(src) == [(2, "frontier_core.model.catalog"),
                                    (3, "frontier_core.errors"), (7, "frontier_core.engine.kv")]
    assert _rank("frontier_core.app.cli") > _rank("frontier_core.engine.kv") > _rank(
        "frontier_core.model.catalog") > _rank("frontier_core.records")
