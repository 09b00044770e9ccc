"""Simulator speed and memory at scale: whole `frontier run` processes on three cases, and
a paired ratio against an older commit.

    python benchmarks/scale.py CASE [--requests N] [--against REV --pairs K] [--no-growth]

Cases (configs under benchmarks/configs/):

    992        DeepSeek-V3, PD disaggregation and wide EP on 992 H800s (22 prefill
               replicas at DP32/EP32, 2 decode at DP144/EP144, 140 req/s); 10^4 requests
    codellama  dense CodeLlama-34B, one TP2 replica on A100-80G, Sarathi-Serve chunked
               prefill, default outputs (trace on); 10^4 requests
    llama16    16 replicas of Llama-3.1-8B on H100, one per GPU; 10^5 requests

Every run is one fresh process, ``python -m <the tree's CLI module> run CONFIG -q -o TMP
--set workload.num_requests=N`` (the module is read from that tree's pyproject.toml, so
commits before the CLI moved run too), timed from outside: the numbers are of the whole
process (start-up, assembly, simulation, writing the outputs), as a user waits for it.
As with an installed package, whose bytecode pip compiles, each tree is compiled first
(``compileall``) and the runs reuse its bytecode: where ``PYTHONDONTWRITEBYTECODE`` is set,
every process would otherwise compile the ~100 modules it imports (about 0.1 s, a
twentieth of the codellama case at 10^4 requests). Each prints one JSON line:

    wall_s               wall time of the process (s)
    cpu_s                its CPU time, user + system (s): on a machine shared with other
                         work, a steadier measure of the simulator's cost than wall time
    iterations           replica iterations, all clusters and replicas (summary.json)
    ms_per_iteration     wall_s / iterations, in ms
    events               simpy events the run processed (simulator.json, counted by the
                         simulator's own environment); events_per_s = events / simulation
                         wall time (simulator.json's wall_s, the simulation loop only)
    peak_rss_mib         the process's peak resident set (ru_maxrss from os.wait4, so it
                         is of that process alone and includes writing the outputs)
    rss_kib_per_request  growth of memory with the run: (peak RSS at N - peak RSS at
                         N/10) / (0.9 N), from one extra run at N/10 on the same tree
                         (--no-growth skips it). Two points, not a slope over samples: the
                         peak includes what is held until the outputs are written, which
                         is what limits the size of a run.

--against REV checks REV out in a temporary detached worktree (removed at the end), and
runs the case K times on each tree, alternating (REV first), with PYTHONPATH switched to
the tree: its root, and every plugins/*/ and examples/*/ folder with a pyproject.toml
(older commits have other plugin folders; the plugins are still found through the entry
points of the installed distributions, so their modules must not have moved). The config
is this tree's file in both, so a field an older commit does not know fails there with
its config error. It prints the median, over pairs, of wall(REV) / wall(this tree), and
the same of CPU time: above 1 means this tree is faster. Ratios of alternated runs are
robust to a slow drift of the machine's load; absolute times are not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CASES = {
    "992": ("deepseek-v3-pd-ep-992-h800.yaml", 10_000),
    "codellama": ("codellama-34b-tp2-a100-sarathi.yaml", 10_000),
    "llama16": ("llama-3.1-8b-16x-h100.yaml", 100_000),
}


def _pythonpath(tree: Path) -> str:
    """The import path of a checkout: its root and its plugin distributions' folders."""
    dirs = [tree] + sorted(p.parent for p in tree.glob("plugins/*/pyproject.toml"))
    dirs += sorted(p.parent for p in tree.glob("examples/*/pyproject.toml"))
    return os.pathsep.join(str(d) for d in dirs)


def _cli_module(tree: Path) -> str:
    """The module of the tree's ``frontier`` script (it runs with ``python -m``)."""
    scripts = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts["frontier"].split(":")[0]


def _env(tree: Path) -> dict[str, str]:
    """The environment of a run on ``tree``: its import path, and bytecode written and
    reused (``PYTHONDONTWRITEBYTECODE`` dropped), as an installed package has it."""
    env = dict(os.environ, PYTHONPATH=_pythonpath(tree))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_tree(tree: Path) -> None:
    """Compile ``tree``'s modules to bytecode before its first timed run (pip does so
    when it installs a package); tests, tox envs and git folders aside. A file that does
    not compile (an old commit's stray script) is left to fail where it is imported."""
    dirs = _pythonpath(tree).split(os.pathsep)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-x",
                    r"[/\\](tests|\.tox|\.git|build)([/\\]|$)", *dirs],
                   cwd=tree, env=_env(tree), check=False, capture_output=True)


def run_once(tree: Path, config: Path, n: int) -> dict:
    """One ``frontier run`` of ``config`` with ``n`` requests, on the code of ``tree``."""
    env = _env(tree)
    with tempfile.TemporaryDirectory(prefix="frontier-scale-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", _cli_module(tree), "run", str(config), "-q", "-o", str(out),
               "--set", f"workload.num_requests={n}"]
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        # Read the output while waiting (a full pipe would block the child), then reap it
        # with wait4 for its own resource usage.
        log = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.stderr.write(log.decode(errors="replace"))
            raise SystemExit(f"run failed (exit {p.returncode}): {' '.join(cmd)}")
        summary = json.loads((out / "summary.json").read_text())
        stats = json.loads((out / "simulator.json").read_text())
    its = sum(c.get("iterations", 0) for c in summary["clusters"].values())
    return {
        "tree": str(tree), "requests": n, "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "iterations": its,
        "ms_per_iteration": round(wall / max(its, 1) * 1e3, 4), "events": stats["events"],
        "events_per_s": round(stats["events"] / max(stats["wall_s"], 1e-9)),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss: KiB on Linux
    }


def measure(tree: Path, config: Path, n: int, growth: bool) -> dict:
    """A run at ``n``, with the memory growth per request from a run at ``n // 10``."""
    r = run_once(tree, config, n)
    if growth:
        small = run_once(tree, config, max(n // 10, 1))
        d = (r["peak_rss_mib"] - small["peak_rss_mib"]) * 1024
        r["rss_kib_per_request"] = round(d / max(n - small["requests"], 1), 3)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--requests", type=int, default=None, help="requests (default: the case's)")
    ap.add_argument("--against", metavar="REV", help="an older commit to compare with, paired")
    ap.add_argument("--pairs", type=int, default=3, help="pairs of alternated runs (--against)")
    ap.add_argument("--no-growth", action="store_true", help="skip the run at N/10 (RSS growth)")
    a = ap.parse_args()
    name, default_n = CASES[a.case]
    config, n = HERE / "configs" / name, a.requests or default_n
    compile_tree(ROOT)
    if not a.against:
        print(json.dumps({"case": a.case, **measure(ROOT, config, n, not a.no_growth)}), flush=True)
        return
    base = Path(tempfile.mkdtemp(prefix="frontier-scale-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(base),
                    a.against], check=True, capture_output=True)
    try:
        compile_tree(base)
        ratios = []
        for i in range(a.pairs):
            growth = i == 0 and not a.no_growth  # memory growth is measured on the first pair
            old = measure(base, config, n, growth)
            print(json.dumps({"case": a.case, "rev": a.against, **old}), flush=True)
            new = measure(ROOT, config, n, growth)
            print(json.dumps({"case": a.case, "rev": "tree", **new}), flush=True)
            ratios.append((old["wall_s"] / new["wall_s"], old["cpu_s"] / new["cpu_s"]))
        wall, cpu = ([r[i] for r in ratios] for i in (0, 1))
        print(json.dumps({"case": a.case, "requests": n, "against": a.against,
                          "wall_ratios": [round(x, 3) for x in wall],
                          "median_ratio": round(statistics.median(wall), 3),
                          "cpu_ratios": [round(x, 3) for x in cpu],
                          "median_cpu_ratio": round(statistics.median(cpu), 3)}), flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       capture_output=True)
        shutil.rmtree(base.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
