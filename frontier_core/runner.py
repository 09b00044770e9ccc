"""Running many simulations: the one runner that ``sweep``, ``validate serving`` and
``calibrate`` share (serially, in a local process pool, or on Ray), and ``simulate``,
the one way an application command turns a config into a finished simulation.

Application layer: it imports the engine and the model, never the reverse.
"""

from __future__ import annotations

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
        raise ConfigError(
            "--ray needs Ray, which is not installed; install the extra: "
            "pip install 'frontier-core[ray]' (or run without --ray for a local pool)."
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
    it with ``worker_registry()`` in a worker."""
    if ray is not None:
        # Ray wraps functions, not partials: a module-level trampoline carries ``fn``.
        remote = ray.remote(_call)
        pending = {remote.remote(fn, item): i for i, item in enumerate(items)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            done(pending.pop(ready[0]), ray.get(ready[0]))
    elif jobs > 1 and len(items) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        worker_registry(registry)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for f in as_completed(futures):
                done(futures[f], f.result())
    else:
        for i, item in enumerate(items):
            done(i, fn(item, registry=registry))


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)
