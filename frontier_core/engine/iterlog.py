"""Replicas' iteration records, moved out of memory as the run goes.

A replica appends one record of ``ITER_FIELDS`` per iteration to its ``iterations``
array (see frontier_core/engine/replica.py). ``IterationSpill`` moves what has
accumulated there to an anonymous temporary file from time to time (the controller
calls ``spill`` every ``SPILL_EVERY`` finished requests), so the records no longer
grow with the run; ``rows`` and ``chunks`` read them back, the file's first, then what
is still in memory, in the order they were recorded.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

# Per-iteration record fields, flattened into one array (a replica's ``iterations``).
ITER_FIELDS = ("start", "latency", "prefills", "decodes", "tokens", "kv_used")

# Finished requests between two spills, and the records a replica must hold for its
# array to be spilled (fewer stay in memory: not worth a write).
SPILL_EVERY = 4096
SPILL_MIN = 1 << 15  # doubles (256 KiB)


class IterationSpill:
    """The spilled records of every replica: one temporary file per replica that spilled."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._files: dict[int, tuple[Any, IO[bytes], int]] = {}  # id(replica) -> (replica, file, doubles)

    def spill(self, replicas: list[Any]) -> None:
        """Move each replica's recorded iterations to its file, leaving its array empty
        (the same array: the replica's loop holds its ``extend``)."""
        for rep in replicas:
            arr: array = rep.iterations
            if len(arr) < SPILL_MIN:
                continue
            _, f, n = self._files.get(id(rep), (rep, None, 0))
            if f is None:
                f = tempfile.TemporaryFile()
            arr.tofile(f)
            self._files[id(rep)] = (rep, f, n + len(arr))
            del arr[:]

    def count(self, rep: Any) -> int:
        """Iterations the replica recorded in all."""
        n = self._files.get(id(rep), (None, None, 0))[2]
        return (n + len(rep.iterations)) // self.width

    def chunks(self, rep: Any, rows: int = 1 << 16) -> Iterator[np.ndarray]:
        """The replica's records as (k, width) float arrays of at most ``rows`` rows, in
        order."""
        w = self.width
        _, f, n = self._files.get(id(rep), (None, None, 0))
        if f is not None:
            f.seek(0)
            left = n
            while left:
                k = min(left, rows * w)
                yield np.fromfile(f, dtype=float, count=k).reshape(-1, w)
                left -= k
            f.seek(0, 2)
        mem = np.frombuffer(rep.iterations, dtype=float).reshape(-1, w)
        for lo in range(0, len(mem), rows):
            yield mem[lo:lo + rows]

    def rows(self, rep: Any) -> np.ndarray:
        """All the replica's records as one (n, width) array."""
        parts = list(self.chunks(rep, 1 << 20))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros((0, self.width))

    def close(self) -> None:
        """Delete the files (the spilled records are gone)."""
        for _, f, _ in self._files.values():
            f.close()
        self._files.clear()

    def __del__(self) -> None:
        self.close()
