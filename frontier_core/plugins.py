"""Plugin discovery and the registry: the only module that touches pluggy.

Plugins register under the entry-point group ``frontier``; the kernel's
built-ins register through the same manager. Every provider hook is called
once per implementation so that each component is known with the distribution
that provides it; names are unique per kind.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from frontier_core import hookspecs
from frontier_core.errors import PluginError
from frontier_core.markers import PROJECT

# Component hooks, by the kind name used in messages and `frontier plugins`.
COMPONENT_HOOKS = {
    "scheduler": "frontier_schedulers",
    "router": "frontier_routers",
    "transfer": "frontier_transfers",
    "predictor": "frontier_predictors",
    "workflow": "frontier_workflows",
    "ffn_block": "frontier_ffn_blocks",
    "model": "frontier_models",
    "hardware": "frontier_hardware",
    "engine": "frontier_engines",
    "command": "frontier_commands",
}

# Names provided by the project's own plugin distributions: when one is asked
# for but not installed, the error says what to `pip install` (``install_hint``).
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("predictor", "table"): "frontier-predictors",
    ("predictor", "forest"): "frontier-predictors",
    ("predictor", "proxy"): "frontier-predictors",
    ("predictor", "auto"): "frontier-predictors",
    ("workflow", "pd"): "frontier-pd-disagg",
    ("ffn_block", "af"): "frontier-af-pingpong",
    ("ffn_block", "moe"): "frontier-moe-ep",
    ("command", "profile"): "frontier-predictors",
    ("command", "predictors"): "frontier-predictors",
    ("command", "report"): "frontier-report",
}

BUILTIN_DIST = "frontier-core"

#: The folder of each of the project's plugin distributions in a checkout. They are
#: not on a package index, so an install command names the folder.
DIST_FOLDERS: dict[str, str] = {
    "frontier-core": ".",
    "frontier-predictors": "plugins/predictors",
    "frontier-pd-disagg": "plugins/pd_disagg",
    "frontier-moe-ep": "plugins/moe_ep",
    "frontier-af-pingpong": "plugins/af_pingpong",
    "frontier-report": "plugins/report",
}


def install_hint(dist: str, extra: str | None = None) -> str:
    """How to install ``dist`` (with its optional ``extra``), for a user error: a
    backquoted pip command. A project distribution is installed from its folder:
    the absolute path when this kernel runs from a checkout that has it, else the
    path from the root of a checkout. Other names are installed by name."""
    folder = DIST_FOLDERS.get(dist)
    suffix = f"[{extra}]" if extra else ""
    if folder is None:
        return f"`pip install {shlex.quote(dist + suffix)}`"
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / folder / "pyproject.toml").is_file():
        return f"`pip install {shlex.quote(str(checkout / folder) + suffix)}`"
    local = "." if folder == "." else "./" + folder
    return (f"`pip install {shlex.quote(local + suffix)}` from the root of a "
            "Frontier checkout")


@dataclass(frozen=True)
class Provided:
    """One registered item with its provenance."""

    kind: str
    name: str
    item: Any
    plugin: str
    distribution: str
    version: str
    builtin: bool


@dataclass
class Registry:
    """Everything the installed plugins provide, by kind and name."""

    pm: pluggy.PluginManager
    items: dict[str, dict[str, Provided]] = field(default_factory=dict)
    plugins: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def get(self, kind: str, name: str, where: str = "") -> Any:
        """The item of ``kind`` called ``name``, or a PluginError that lists the choices."""
        found = self.items.get(kind, {}).get(name)
        if found is not None:
            return found.item
        raise PluginError(unknown_message(kind, name, sorted(self.items.get(kind, {})), where))

    def names(self, kind: str) -> list[str]:
        return sorted(self.items.get(kind, {}))

    def provided(self, kind: str) -> list[Provided]:
        return [self.items[kind][n] for n in self.names(kind)] if kind in self.items else []


def unknown_message(kind: str, name: str, installed: list[str], where: str = "") -> str:
    at = f" (at {where})" if where else ""
    msg = f"Unknown {kind} {name!r}{at}."
    dist = KNOWN_PROVIDERS.get((kind, name))
    if dist:
        msg += (f" It is provided by the distribution {dist}, which is not installed: "
                f"install it with {install_hint(dist)}.")
    close = difflib.get_close_matches(name, installed, n=1)
    if close:
        msg += f" Did you mean {close[0]!r}?"
    msg += f" Installed {kind}s: {', '.join(installed) if installed else 'none'}."
    return msg


def make_plugin_manager(*, entry_points: bool = True, extra: list[Any] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins, installed entry points and ``extra`` plugins.

    No global manager exists: every run and every test makes its own.
    """
    from frontier_core.builtin import plugin as builtin_plugin

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_plugin, name=BUILTIN_DIST)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(PROJECT)
        except Exception as e:  # an installed plugin that fails to import
            raise PluginError(
                f"An installed Frontier plugin failed to load: {type(e).__name__}: {e}. "
                "Reinstall or uninstall that distribution (`frontier plugins` lists them)."
            ) from None
    for p in extra:
        pm.register(p)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(
            f"A plugin implements a hook that does not exist: {e}. Hook names are listed in "
            "docs/hooks.md; check the spelling of the plugin's hookimpl functions."
        ) from None
    return pm


def _dist_of(pm: pluggy.PluginManager) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        out[id(plugin)] = (dist.project_name, dist.version)
    return out


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every provider hook once per implementation and index the results by name.

    A name provided twice for one kind is a PluginError naming both distributions.
    """
    from frontier_core._version import __version__

    dists = _dist_of(pm)
    reg = Registry(pm)
    for plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        builtin = plugin_name == BUILTIN_DIST
        dist, ver = (BUILTIN_DIST, __version__) if builtin else dists.get(id(plugin), (plugin_name, ""))
        reg.plugins.append((plugin_name, dist, ver, builtin))
    for kind, hook_name in COMPONENT_HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        table: dict[str, Provided] = {}
        for impl in hook.get_hookimpls():
            builtin = impl.plugin_name == BUILTIN_DIST
            dist, ver = (
                (BUILTIN_DIST, __version__) if builtin else dists.get(id(impl.plugin), (impl.plugin_name, ""))
            )
            for item in impl.function() or []:
                prev = table.get(item.name)
                if prev is not None:
                    raise PluginError(
                        f"The {kind} name {item.name!r} is provided twice: by {prev.distribution} "
                        f"(plugin {prev.plugin}) and by {dist} (plugin {impl.plugin_name}). "
                        "Uninstall one of them, or rename the component in your own plugin."
                    )
                table[item.name] = Provided(kind, item.name, item, impl.plugin_name, dist, ver, builtin)
        reg.items[kind] = table
    return reg


def load_registry(*, entry_points: bool = True, extra: list[Any] = ()) -> Registry:
    """Convenience: a fresh manager and its registry."""
    return build_registry(make_plugin_manager(entry_points=entry_points, extra=list(extra)))
