"""Running many simulations: the one runner that ``sweep``, ``validate serving`` and
``calibrate`` share (serially, in a local process pool, or on Ray), and ``simulate``,
the one way an application command turns a config into a finished simulation.

Application layer: it imports the engine and the model, never the reverse.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from frontier_core.errors import ConfigError

_REGISTRY: list[Any] = []


def worker_registry(registry: Any = None) -> Any:
    """The plugin registry of this process: ``registry`` when given (and remembered, so
    that forked workers inherit it), else one built on first use."""
    # NOTE: perf — one plugin registry per worker process, built on its first run
    # (discovery costs ~0.1 s; a sweep runs thousands of simulations).
    if registry is not None:
        _REGISTRY[:] = [registry]
    if not _REGISTRY:
        from frontier_core.plugins import load_registry

        _REGISTRY.append(load_registry())
    return _REGISTRY[0]


def simulate(config: Any, registry: Any = None) -> Any:
    """Assemble and run one validated ``RunConfig``; the finished ``Simulation``."""
    from frontier_core.assemble import assemble

    return assemble(config, worker_registry() if registry is None else registry).run()


def ray_start(address: str) -> Any:
    """Import Ray and connect (or start local mode); a user error when it cannot."""
    try:
        import ray
    except ImportError:
        from frontier_core.plugins import install_hint

        raise ConfigError(
            "--ray needs Ray, which is not installed; install the kernel's extra: "
            f"{install_hint('frontier-core', 'ray')} (or run without --ray for a local pool)."
        ) from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address,
                     include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"--ray {address!r}: cannot start or reach a Ray cluster ({first}). Give 'local' "
                "for Ray's local mode, 'auto' for the cluster this machine belongs to, or its "
                "address (ray://HOST:10001 or HOST:6379)."
            ) from None
    return ray


def run_all(fn: Callable[..., Any], items: Sequence[Any], done: Callable[[int, Any], None], *,
            jobs: int = 1, ray: Any = None, registry: Any = None) -> None:
    """Call ``fn(item)`` for every item and ``done(index, result)`` as each finishes:
    on Ray (``ray``, a module from ``ray_start``), in a pool of ``jobs`` forked processes
    (which inherit the imported kernel and ``registry``, with any plugins registered
    in-process, so they simulate exactly what a serial run would), or one after another
    in this process. ``fn`` takes the registry as ``registry=`` when run here and finds
    it with ``worker_registry()`` in a worker. An exception ``fn`` raises in a worker is
    raised here. However this returns or raises (Ctrl-C included), no worker is left
    running."""
    if ray is not None:
        # Ray wraps functions, not partials: a module-level trampoline carries ``fn``.
        remote = ray.remote(_call)
        pending = {remote.remote(fn, item): i for i, item in enumerate(items)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            done(pending.pop(ready[0]), ray.get(ready[0]))
    elif jobs > 1 and len(items) > 1:
        worker_registry(registry)
        _pool(fn, items, done, jobs)
    else:
        for i, item in enumerate(items):
            done(i, fn(item, registry=registry))


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


# ---- the local process pool ----------------------------------------------------------
#
# Not concurrent.futures: a terminal's Ctrl-C reaches every process of the group, and a
# ProcessPoolExecutor worker interrupted there either dies holding the task queue's lock
# or catches the interrupt as a task's error and waits for the next task, while the main
# process waits to join it: 5 of 11 interrupted sweeps hung. Here a worker ignores
# SIGINT, holds no lock that another process needs (one pipe per worker, one task at a
# time), and the main process kills every worker whenever it stops, however it stops.

_STOP = {signal.SIGINT, signal.SIGTERM}


def _pool(fn: Callable[[Any], Any], items: Sequence[Any], done: Callable[[int, Any], None],
          jobs: int) -> None:
    """``fn(item)`` for every item in ``jobs`` forked worker processes, ``done(index,
    result)`` here as each finishes."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork")
    parent = os.getpid()
    workers: list[tuple[Any, Any]] = []  # (process, this end of its pipe)
    try:
        # Forked with SIGINT and SIGTERM blocked: a signal in the moment before a worker
        # sets its own handling stays pending, and is then discarded (see _serve).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        try:
            for _ in range(min(jobs, len(items))):
                here, there = ctx.Pipe()
                proc = ctx.Process(target=_serve, daemon=True,
                                   args=(fn, there, parent, [c for _, c in workers] + [here]))
                proc.start()
                there.close()
                workers.append((proc, here))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        todo = list(enumerate(items))[::-1]  # popped from the end: in order
        idle = [c for _, c in workers]
        running: dict[Any, int] = {}
        while todo or running:
            while idle and todo:
                conn = idle.pop()
                running[conn] = todo[-1][0]
                conn.send(todo.pop())
            for conn in wait(list(running)):
                i = running.pop(conn)
                try:
                    ok, value = conn.recv()
                except EOFError:
                    raise RuntimeError(
                        f"A worker process died while running item {i} of {len(items)} "
                        "(killed from outside, or out of memory); no result for it."
                    ) from None
                if not ok:
                    exc, remote = value
                    raise exc from _RemoteTraceback(remote)
                idle.append(conn)
                done(i, value)
    finally:
        # However this ends (done, an error, Ctrl-C): no worker outlives it. Signals wait
        # until the workers are gone, so that a second Ctrl-C cannot cut this short.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        try:
            for proc, conn in workers:
                proc.kill()
                conn.close()
            for proc, _ in workers:
                proc.join()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _serve(fn: Callable[[Any], Any], conn: Any, parent: int, inherited: list[Any]) -> None:
    """A worker: runs ``fn`` on each item received until its pipe closes."""
    # The main process alone decides what an interrupt stops; it kills the workers. The
    # CLI's SIGTERM handler (inherited by the fork) must not run here either.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for c in inherited:  # the main process's ends of the pipes: its death must close them
        c.close()
    _die_with(parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)
    while True:
        try:
            i, item = conn.recv()
        except EOFError:  # the main process has gone
            return
        try:
            reply = (True, fn(item))
            conn.send(reply)
        except Exception as e:  # raised again in the main process
            conn.send((False, (_portable(e), traceback.format_exc())))


def _die_with(parent: int) -> None:
    """Have this worker killed when the main process dies (Linux; elsewhere a worker
    ends when it next waits for work)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (shown as its cause)."""

    def __str__(self) -> str:
        return "\n" + self.args[0]
