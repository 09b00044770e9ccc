"""Stopping Frontier: Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
and SIGTERM at any moment end a command with one line on stderr, exit 130 or 143, no
traceback, no worker process left and no partial output; the local process pool
forwards a worker's error and survives a worker's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simhelpers import small_yaml

from frontier_core.app.runner import run_all

REPO = Path(__file__).resolve().parents[1]
ENTRY = [sys.executable, "-m", "_frontier_main"]  # the `frontier` console script
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
LINUX = sys.platform.startswith("linux")
# Runs long enough (tens of seconds) that none finishes before the interrupt.
LONG = small_yaml("roofline", num_requests=40000)


# ---- helpers: the processes of a session, read from /proc --------------------------


def _session(sid: int) -> list[int]:
    """The processes (zombies included) whose session is ``sid``."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
                pids.append(int(d))
    return pids


def _handles_sigterm(pid: int) -> bool:
    """The process has installed its SIGTERM handler (Frontier's first act)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _wait_for(cond, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*ENTRY, *args], cwd=cwd, env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[str, str]:
    """Send ``sig`` to the process group; wait (bounded) for the command to exit and
    assert that no process of its session is left."""
    os.killpg(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"did not exit within 30 s of {signal.Signals(sig).name}")
    _wait_for(lambda: not _session(proc.pid), "the workers to go", 5.0)
    return out, err


def _interrupted(proc: subprocess.Popen[str], out: str, err: str, code: int = 130) -> None:
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    word = "interrupted" if code == 130 else "terminated"
    assert last.startswith(f"{word}: frontier "), err
    assert last.endswith("nothing was written."), err


# ---- the command line ----------------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize("after", [0.0, 0.3, 1.0, 2.0])
def test_ctrl_c_stops_a_parallel_sweep_and_its_workers(tmp_path: Path, after: float) -> None:
    pytest.importorskip("frontier_predictors")
    (tmp_path / "c.yaml").write_text(LONG)
    proc = _start(["sweep", "c.yaml", "--grid", "workload.arrival.rate=2,3,4,5,6,7,8,9",
                   "-j", "2", "-o", "sw"], tmp_path)
    _wait_for(lambda: len(_session(proc.pid)) >= 3, "the two workers")  # main + 2
    time.sleep(after)
    out, err = _stop(proc)
    _interrupted(proc, out, err)
    assert "frontier sweep stopped by Ctrl-C" in err
    assert sorted(os.listdir(tmp_path)) == ["c.yaml"]  # no folder, no hidden leftovers


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_ctrl_c_stops_a_parallel_validation(tmp_path: Path) -> None:
    pytest.importorskip("frontier_predictors")
    lines = (REPO / "tests" / "data" / "serving_sample.csv").read_text().splitlines()
    (tmp_path / "b.csv").write_text("\n".join(lines[:4]) + "\n")  # three rows
    proc = _start(["validate", "serving", "b.csv", "-j", "2", "-o", "v"], tmp_path)
    _wait_for(lambda: len(_session(proc.pid)) >= 3 or proc.poll() is not None, "the workers")
    out, err = _stop(proc)
    if proc.returncode == 0:
        pytest.skip("the three rows finished before the interrupt")
    _interrupted(proc, out, err)
    assert "frontier validate serving stopped" in err
    assert sorted(os.listdir(tmp_path)) == ["b.csv"]


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_ctrl_c_while_importing_is_one_line(tmp_path: Path) -> None:
    proc = _start(["run", "-o", "out"], tmp_path)
    # The handler is in place; the package (about a second of imports) is not loaded yet.
    _wait_for(lambda: _handles_sigterm(proc.pid), "the signal handler", 10.0)
    out, err = _stop(proc)
    _interrupted(proc, out, err)
    assert err.count("\n") == 1 and out == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_sigterm_during_a_run_is_one_line_and_exit_143(tmp_path: Path) -> None:
    pytest.importorskip("frontier_predictors")
    (tmp_path / "c.yaml").write_text(LONG)
    proc = _start(["run", "c.yaml", "-o", "out"], tmp_path)
    _wait_for(lambda: _handles_sigterm(proc.pid), "the signal handler", 10.0)
    time.sleep(2.5)  # imported, assembled, simulating
    out, err = _stop(proc, signal.SIGTERM)
    _interrupted(proc, out, err, code=143)
    assert "frontier run stopped by SIGTERM" in err
    assert sorted(os.listdir(tmp_path)) == ["c.yaml"]


def test_the_console_script_is_the_entry_module() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["frontier"] == "_frontier_main:main"


# ---- the process pool ----------------------------------------------------------------


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def test_pool_results_and_a_worker_error_reach_the_caller() -> None:
    got: dict[int, int] = {}
    run_all(_square, [0, 1, 2, 4], got.__setitem__, jobs=2)
    assert got == {0: 0, 1: 1, 2: 4, 3: 16}
    with pytest.raises(ValueError, match="three is not allowed") as info:
        run_all(_square, [1, 2, 3, 4], lambda i, r: None, jobs=2)
    assert "_square" in str(info.value.__cause__)  # the worker's traceback


def _die(x: int) -> int:
    if x == 1:
        os._exit(3)
    return x


def test_pool_reports_a_dead_worker_instead_of_waiting() -> None:
    with pytest.raises(RuntimeError, match="worker process died while running item 1"):
        run_all(_die, [0, 1, 2], lambda i, r: None, jobs=2)


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_pool_leaves_no_worker_when_the_caller_is_interrupted() -> None:
    me = os.getpid()

    def children() -> list[int]:
        kids = Path(f"/proc/{me}/task/{me}/children").read_text().split()
        return [int(k) for k in kids]

    before = set(children())

    def stop(i: int, r: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_all(_square, [0, 1, 2, 4, 5, 6], stop, jobs=2)
    assert set(children()) <= before


# ---- what an interrupted sweep leaves --------------------------------------------------

SMALL = LONG.replace("roofline", "linear-test").replace("40000", "30")


def test_an_interrupted_sweep_keeps_finished_runs_and_says_so(tmp_path: Path, registry) -> None:
    from frontier_core.app.sweep import sweep

    (tmp_path / "c.yaml").write_text(SMALL)
    grid = ["workload.arrival.rate=2,3,4"]

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        sweep([tmp_path / "c.yaml"], grid, tmp_path / "sw", registry=registry,
              progress=stop_after_one)
    assert "1 run that finished is kept in" in info.value.__notes__[-1]
    runs = os.listdir(tmp_path / "sw" / "runs")
    assert len(runs) == 1 and (tmp_path / "sw" / "runs" / runs[0] / "summary.json").is_file()
    # Running it again resumes: the finished run is not repeated.
    res = sweep([tmp_path / "c.yaml"], grid, tmp_path / "sw", registry=registry)
    assert len(res.rows) == 3 and not res.failed()


def test_a_new_sweep_interrupted_before_any_run_finished_leaves_no_folder(
        tmp_path: Path, registry, monkeypatch) -> None:
    from frontier_core.app import sweep as sweep_mod

    (tmp_path / "c.yaml").write_text(SMALL)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        sweep_mod.sweep([tmp_path / "c.yaml"], ["seed=1,2"], tmp_path / "sw", registry=registry)
    assert not getattr(info.value, "__notes__", None)  # "nothing was written"
    assert sorted(os.listdir(tmp_path)) == ["c.yaml"]
