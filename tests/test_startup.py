"""Start-up: the package's public names load on first use, and a built-in command's help
comes without the simulator's modules (numpy, simpy, the config models, the engine) or
the plugins. Checked on what a fresh process imported, never on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}

# Modules a run needs and `--help` does not (pydantic is not listed: the command-line
# library imports it itself to convert option values).
HEAVY = ("numpy", "simpy", "yaml", "pluggy", "frontier_core.config", "frontier_core.engine",
         "frontier_core.plugins", "frontier_core.app.api", "frontier_core.execution",
         "frontier_moe_ep", "frontier_pd_disagg", "frontier_predictors", "frontier_report")

PROBE = """
import contextlib, io, json, sys
{setup}
buf = io.StringIO()
code = 0
with contextlib.redirect_stdout(buf):
    try:
        {call}
    except SystemExit as e:
        code = e.code or 0
heavy = {heavy!r}
print(json.dumps({{"code": code, "out": buf.getvalue(),
                  "loaded": sorted(h for h in heavy if h in sys.modules)}}))
"""


def _probe(setup: str, call: str) -> dict:
    code = PROBE.format(setup=setup, call=call, heavy=HEAVY)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [["run", "--help"], ["sweep", "--help"],
                                  ["config", "validate", "--help"]])
def test_a_builtin_commands_help_imports_no_simulator_module_and_no_plugin(argv) -> None:
    got = _probe(f"sys.argv = ['frontier', *{argv!r}]\nimport _frontier_main",
                 "_frontier_main.main()")
    assert got["code"] == 0
    assert "Usage: frontier" in got["out"]
    assert got["loaded"] == [], f"`frontier {' '.join(argv)}` imported {got['loaded']}"


def test_importing_the_package_loads_its_public_names_on_first_use() -> None:
    got = _probe("import frontier_core", "pass")
    assert got["loaded"] == []
    import frontier_core as fc
    from frontier_core.app import api, outdir
    from frontier_core.engine import replica

    assert fc.simulate is api.simulate and fc.outdir is outdir
    assert fc.ITER_FIELDS is replica.ITER_FIELDS
    assert all(hasattr(fc, n) for n in fc.__all__)
    assert set(fc.__all__) <= set(dir(fc))
    assert fc.config.RunConfig is fc.RunConfig  # a submodule, as an attribute
    with pytest.raises(AttributeError, match="no_such_name"):
        fc.no_such_name  # noqa: B018


def test_the_top_level_help_still_lists_the_plugins_commands() -> None:
    pytest.importorskip("frontier_report")
    got = _probe("sys.argv = ['frontier', '--help']\nimport _frontier_main",
                 "_frontier_main.main()")
    assert got["code"] == 0
    assert " report " in got["out"] and " run " in got["out"]


def test_a_plugin_command_named_like_a_builtin_one_is_ignored(monkeypatch, capsys) -> None:
    from frontier_core import CommandSpec, hookimpl
    from frontier_core.app import cli
    from frontier_core.plugins import load_registry

    class Shadow:
        @hookimpl
        def frontier_commands(self) -> list[CommandSpec]:
            return [CommandSpec(name="run", command=lambda: None, summary="not the real run")]

    registry = load_registry(entry_points=False, extra=[Shadow()])
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    before = list(cli.app.registered_commands)
    monkeypatch.setattr(cli.app, "registered_commands", list(before))
    cli._add_plugin_commands()
    assert cli.app.registered_commands == before
    assert "provides a command 'run', which is a built-in command" in " ".join(
        capsys.readouterr().err.split())
