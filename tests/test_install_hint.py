"""Install commands in user errors: the project's distributions are not on a package
index, so a missing plugin is installed from its folder of a checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from frontier_core import install_hint, load_registry
from frontier_core import plugins as plugins_mod
from frontier_core.errors import ConfigError, PluginError

ROOT = Path(__file__).resolve().parents[1]


def test_every_project_distribution_has_its_folder_and_each_folder_its_name():
    named = set(plugins_mod.KNOWN_PROVIDERS.values())
    assert named <= set(plugins_mod.DIST_FOLDERS)
    for dist, folder in plugins_mod.DIST_FOLDERS.items():
        meta = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
        assert meta["project"]["name"] == dist
    assert sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml")) == sorted(
        Path(f).name for f in plugins_mod.DIST_FOLDERS.values() if f != ".")


def test_from_a_checkout_the_hint_is_the_folders_absolute_path(monkeypatch):
    # as when the kernel runs from this checkout (tox installs it into site-packages)
    monkeypatch.setattr(plugins_mod, "__file__", str(ROOT / "frontier_core" / "plugins.py"))
    assert install_hint("frontier-pd-disagg") == f"`pip install {ROOT / 'plugins/pd_disagg'}`"
    assert install_hint("frontier-predictors", "aic") == (
        f"`pip install '{ROOT / 'plugins/predictors'}[aic]'`")
    assert install_hint("ray") == "`pip install ray`"
    assert install_hint("frontier-core", "ray") == f"`pip install '{ROOT}[ray]'`"


def test_an_installed_kernel_points_to_the_root_of_a_checkout(monkeypatch, tmp_path):
    # a kernel installed into site-packages has no plugins/ beside it
    monkeypatch.setattr(plugins_mod, "__file__", str(tmp_path / "frontier_core" / "plugins.py"))
    assert install_hint("frontier-moe-ep") == (
        "`pip install ./plugins/moe_ep` from the root of a Frontier checkout")
    assert install_hint("frontier-predictors", "profile") == (
        "`pip install './plugins/predictors[profile]'` from the root of a Frontier checkout")
    assert install_hint("frontier-core", "ray") == (
        "`pip install '.[ray]'` from the root of a Frontier checkout")
    with pytest.raises(PluginError, match=r"install it with `pip install ./plugins/pd_disagg` "
                                          "from the root of a Frontier checkout"):
        load_registry(entry_points=False).get("workflow", "pd")


def test_a_moe_model_without_the_moe_plugin_names_its_folder(tmp_path):
    from simhelpers import small_config

    from frontier_core.assemble import assemble

    cfg = small_config(model="mixtral-8x7b", predictor=["roofline"],
                       deployment={"clusters": [{"name": "main", "gpu": "h100-sxm", "tp": 2}]})
    with pytest.raises(ConfigError, match=r"frontier-moe-ep distribution: install it with "
                                          r"`pip install \S*plugins/moe_ep`"):
        assemble(cfg, load_registry(entry_points=False))


def test_the_cli_prints_the_command_in_one_paragraph(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: llama-3.1-8b\ndeployment:\n  workflow: {name: pd}\n"
                   "  clusters: [{name: main, gpu: h100-sxm}]\n"
                   "workload: {arrival: {process: poisson, rate: 1}, num_requests: 10,\n"
                   "  prompt_len: {dist: fixed, value: 10}, output_len: {dist: fixed, value: 10}}\n")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    # the kernel alone: no installed plugin is loaded
    code = ("import sys, pluggy; from frontier_core.app import cli; "
            "pluggy.PluginManager.load_setuptools_entrypoints = lambda self, group: 0; "
            "sys.argv = ['frontier', 'run', sys.argv[1], '-o', sys.argv[2]]; cli.main()")
    r = subprocess.run([sys.executable, "-c", code, str(cfg), str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # the checkout's folder (a kernel installed elsewhere names it from a checkout's root)
    assert re.search(r"frontier-pd-disagg, which is not installed: install it with "
                     r"`pip install \S*plugins/pd_disagg`", " ".join(r.stderr.split()))
    assert not (tmp_path / "out").exists()
