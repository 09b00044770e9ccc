"""Results folders (frontier_core.app.outdir): what may be written where, replacing only what
Frontier wrote, keeping what a user added, and never leaving temporary folders behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from simhelpers import run_sim, small_config

from frontier_core.app import outdir
from frontier_core.app.metrics import write_outputs
from frontier_core.errors import ConfigError


def _files(**files: str):
    """A writer that writes ``files`` (name -> text) into the folder it is given."""
    def writer(folder: Path) -> None:
        for name, text in files.items():
            (folder / name).write_text(text)
    return writer


def _tree(p: Path) -> dict[str, str]:
    return {str(f.relative_to(p)): f.read_text() for f in sorted(p.rglob("*")) if f.is_file()}


def _hidden_leftovers(*folders: Path) -> list[str]:
    return [f.name for d in folders for f in d.iterdir()
            if f.name.startswith(".") and f.name != outdir.MARKER]


# ---- check -------------------------------------------------------------------------


def test_check_accepts_a_new_path_an_empty_folder_and_results_of_its_kind(tmp_path):
    assert outdir.check(tmp_path / "a" / "b", "run") == tmp_path / "a" / "b"
    assert outdir.check(tmp_path, "run") == tmp_path  # empty
    outdir.write(tmp_path / "r", "run", _files(x="1"))
    outdir.check(tmp_path / "r", "run")


def test_check_refuses_a_folder_frontier_did_not_write_even_with_overwrite(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("seed: 0\n")
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError) as e:
            outdir.check(tmp_path, "run", overwrite, option="-o/--output (or output.dir)")
        msg = str(e.value)
        assert "holds 2 entries Frontier did not write: notes.txt, sub/" in msg
        assert "will not replace" in msg and "-o/--output (or output.dir)" in msg
        assert "\n" not in msg
    assert _tree(tmp_path) == {"notes.txt": "mine", "sub/base.yaml": "seed: 0\n"}


def test_check_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        outdir.check(tmp_path / "f", "run")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        outdir.check(tmp_path / "f" / "below", "run")


def test_results_of_another_kind_need_overwrite(tmp_path):
    outdir.write(tmp_path / "s", "sweep", _files(**{"results.csv": "a\n"}))
    with pytest.raises(ConfigError, match=r"results of `frontier sweep`, not of `frontier run`.*"
                                          r"results\.csv.*--overwrite"):
        outdir.check(tmp_path / "s", "run")
    outdir.write(tmp_path / "s", "run", _files(**{"summary.json": "{}"}), overwrite=True)
    assert _tree(tmp_path / "s") == {outdir.MARKER: (tmp_path / "s" / outdir.MARKER).read_text(),
                                     "summary.json": "{}"}
    assert outdir.read_marker(tmp_path / "s").kind == "run"


def test_an_unreadable_marker_is_refused(tmp_path):
    (tmp_path / outdir.MARKER).write_text("{not json")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a readable Frontier results marker"):
        outdir.check(tmp_path, "run", overwrite=True)


# ---- write -------------------------------------------------------------------------


def test_write_new_folder_renames_and_marks_it(tmp_path):
    out = outdir.write(tmp_path / "a" / "out", "run", _files(x="1", y="2"))
    doc = json.loads((out / outdir.MARKER).read_text())
    assert doc["kind"] == "run" and doc["entries"] == ["x", "y"] and doc["frontier_version"]
    assert _hidden_leftovers(tmp_path / "a", out) == []


def test_rewrite_replaces_frontier_entries_and_keeps_user_files(tmp_path):
    out = tmp_path / "out"
    outdir.write(out, "run", _files(a="old", b="old"))
    (out / "notes.txt").write_text("mine")
    outdir.write(out, "run", _files(a="new", c="new"))
    tree = _tree(out)
    assert tree.pop(outdir.MARKER)
    assert tree == {"a": "new", "c": "new", "notes.txt": "mine"}  # b was Frontier's: gone
    assert outdir.read_marker(out).entries == ("a", "c")
    assert _hidden_leftovers(tmp_path, out) == []


def test_failed_writer_leaves_nothing_and_keeps_the_old_results(tmp_path):
    def boom(folder: Path) -> None:
        (folder / "a").write_text("half")
        raise RuntimeError("simulated failure")

    with pytest.raises(RuntimeError):
        outdir.write(tmp_path / "new", "run", boom)
    assert list(tmp_path.iterdir()) == []
    outdir.write(tmp_path / "out", "run", _files(a="old"))
    before = _tree(tmp_path / "out")
    with pytest.raises(RuntimeError):
        outdir.write(tmp_path / "out", "run", boom)
    assert _tree(tmp_path / "out") == before
    assert _hidden_leftovers(tmp_path, tmp_path / "out") == []


def test_a_swap_that_fails_midway_puts_the_old_results_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    outdir.write(out, "run", _files(a="old", b="old"))
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    real = outdir.os.replace
    failed: list[object] = []

    def failing(src, dst):
        if Path(dst) == out / "b" and not failed:  # moving the new "b" in: disk full
            failed.append(dst)
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(outdir.os, "replace", failing)
    with pytest.raises(OSError):
        outdir.write(out, "run", _files(a="new", b="new"))
    monkeypatch.undo()
    assert _tree(out) == before and _hidden_leftovers(out) == []


def test_a_new_entry_clashing_with_a_user_file_is_refused(tmp_path):
    out = tmp_path / "out"
    outdir.write(out, "run", _files(a="old"))
    (out / "trace.json").write_text("mine")
    with pytest.raises(ConfigError, match="trace.json, which Frontier did not write"):
        outdir.write(out, "run", _files(a="new", **{"trace.json": "new"}))
    assert (out / "trace.json").read_text() == "mine" and (out / "a").read_text() == "old"
    assert _hidden_leftovers(out) == []


def test_marker_entries_cannot_reach_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious").write_text("keep")
    (out / outdir.MARKER).write_text(json.dumps(
        {"kind": "run", "entries": ["../precious", "/etc", ".", ".."]}))
    outdir.write(out, "run", _files(a="1"))
    assert (tmp_path / "precious").read_text() == "keep"


def test_dot_as_output_in_an_empty_folder_and_in_results(tmp_path, monkeypatch, registry):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    sim = run_sim(small_config(workload={
        "arrival": {"process": "poisson", "rate": 5.0},
        "prompt_len": {"dist": "fixed", "value": 64},
        "output_len": {"dist": "fixed", "value": 4}, "num_requests": 10}), registry)
    write_outputs(sim, ".")
    (here / "notes.txt").write_text("mine")
    write_outputs(sim, ".")  # a results folder, and the current directory
    assert {"summary.json", "requests.csv", "trace.json", "notes.txt"} <= {
        p.name for p in here.iterdir()}
    assert _hidden_leftovers(here) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["here"]
    # an ancestor of the current directory that is a results folder
    (here / "deeper").mkdir()
    monkeypatch.chdir(here / "deeper")
    write_outputs(sim, "..")
    assert (here / "deeper").is_dir() and _hidden_leftovers(here, tmp_path) == []


def test_clear_partial_removes_only_frontier_temporary_folders(tmp_path):
    ours = tmp_path / ".abc.frontier-tmp.x1"
    ours.mkdir()
    (ours / outdir.PARTIAL).touch()
    theirs = tmp_path / ".abc.frontier-tmp.x2"  # same name pattern, no PARTIAL file
    theirs.mkdir()
    (tmp_path / ".abc.old").mkdir()
    outdir.clear_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".abc.frontier-tmp.x2", ".abc.old"]


def _partial(folder: Path, pid: int) -> None:
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    (folder / outdir.PARTIAL).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_a_hard_killed_write_is_cleared_by_the_next_one_not_a_live_one(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _partial(tmp_path / ".out.frontier-tmp.killed", dead.pid)  # beside a new folder
        _partial(tmp_path / ".other.frontier-tmp.killed", dead.pid)
        _partial(tmp_path / ".out.frontier-tmp.busy", alive.pid)  # another run, still writing
        outdir.write(tmp_path / "out", "run", _files(**{"a.txt": "A"}))
        assert sorted(p.name for p in tmp_path.iterdir()) == [".out.frontier-tmp.busy", "out"]
        _partial(tmp_path / "out" / ".frontier-tmp.killed", dead.pid)  # inside a results folder
        _partial(tmp_path / "out" / ".frontier-old.killed", dead.pid)
        outdir.write(tmp_path / "out", "run", _files(**{"a.txt": "B"}))
        assert _hidden_leftovers(tmp_path / "out") == []
    finally:
        alive.kill()
        alive.wait()


def test_temporary_folders_name_their_writer(tmp_path):
    seen = []

    def writer(tmp: Path) -> None:
        seen.append(json.loads((tmp / outdir.PARTIAL).read_text()))
        (tmp / "a.txt").write_text("A")

    outdir.write(tmp_path / "out", "run", writer)
    assert seen == [{"pid": os.getpid(), "host": socket.gethostname()}]


def test_claim_marks_a_folder_written_in_place(tmp_path):
    out = outdir.claim(tmp_path / "s", "sweep", ["runs", "results.csv"])
    assert outdir.read_marker(out).entries == ("results.csv", "runs")
    (out / "notes.txt").write_text("mine")
    outdir.claim(out, "sweep", ["runs", "sweep.json"])  # resuming keeps what it listed
    assert outdir.read_marker(out).entries == ("results.csv", "runs", "sweep.json")
    with pytest.raises(ConfigError, match="--overwrite"):
        outdir.claim(out, "run", ["summary.json"])


# ---- single files ------------------------------------------------------------------


def test_check_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        outdir.check_file(tmp_path, "plan")
    with pytest.raises(ConfigError, match="does not exist"):
        outdir.check_file(tmp_path / "no" / "p.yaml", "plan")
    mine = tmp_path / "mine.yaml"
    mine.write_text("model: x\n")
    with pytest.raises(ConfigError, match="did not write.*--overwrite"):
        outdir.check_file(mine, "plan")
    outdir.write_file(tmp_path / "p.yaml", "plan", "model: y\n")
    assert (tmp_path / "p.yaml").read_text() == "# written by frontier plan\nmodel: y\n"
    outdir.write_file(tmp_path / "p.yaml", "plan", "model: z\n")  # its own file: replaced
    outdir.write_file(mine, "plan", "model: z\n", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml", "p.yaml"]
