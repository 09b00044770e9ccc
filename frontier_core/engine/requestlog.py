"""RequestLog: the fields of finished requests in compact columns.

The controller records a request here when it finishes (or is rejected) and lets the
``Request`` object go, so memory per request is a few hundred bytes of columns instead
of the object, its dicts and lists. The outputs read the columns (``columns``); Python
code that wants request objects gets them rebuilt (``GlobalController.requests``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import numpy as np

from frontier_core.records import Request

# Request fields kept per finished request, by type. Not kept: ``done`` (a spent simpy
# event), ``prefix`` (the workload holds it), ``held`` and ``pending`` (empty once the KV
# is released); ``stage_times`` is kept as one float column per key.
FLOAT_FIELDS = ("arrival", "first_token", "completion", "first_scheduled", "load_s",
                "queued_at")
INT_FIELDS = ("id", "prompt_len", "output_len", "computed", "generated", "prefill_target",
              "blocks", "preemptions", "replica", "dp_rank", "prefix_block", "shared_blocks",
              "cached_tokens", "matched_at", "prefix_tokens", "conversation", "turn")
BOOL_FIELDS = ("warmup", "stop_after_prefill")
OBJECT_FIELDS = ("rejected", "cluster")  # str or None: references, shared between rows
NOT_KEPT = ("done", "prefix", "held", "pending", "stage_times")


class RequestLog:
    """Columns of the recorded requests, in the order they were recorded."""

    def __init__(self) -> None:
        self.cols: dict[str, Any] = {}
        for name in FLOAT_FIELDS:
            self.cols[name] = array("d")
        for name in (*INT_FIELDS, *BOOL_FIELDS):
            self.cols[name] = array("q")
        for name in OBJECT_FIELDS:
            self.cols[name] = []
        self.names = (*FLOAT_FIELDS, *INT_FIELDS, *BOOL_FIELDS, *OBJECT_FIELDS)
        self._get = attrgetter(*self.names)
        self._append = [self.cols[n].append for n in self.names]
        self.stage_times: dict[str, array] = {}
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, r: Request) -> None:
        """Record a request (once, when it is done with)."""
        for app, v in zip(self._append, self._get(r), strict=True):
            app(v)
        st = self.stage_times
        if r.stage_times or st:
            for key, col in st.items():
                col.append(r.stage_times.get(key, math.nan))
            for key, v in r.stage_times.items():
                if key not in st:
                    col = st[key] = array("d", [math.nan]) * self.n
                    col.append(v)
        self.n += 1

    def columns(self, more: Iterable[Request] = (), names: Iterable[str] | None = None
                ) -> dict[str, Any]:
        """The columns (``names``, default all) as numpy arrays in id order (the requests
        of ``more``, still running, included), and ``stage_times``: key -> float array
        (NaN: no stamp)."""
        want = set(self.names if names is None else names)
        log = self
        more = list(more)
        if more:  # a copy with the unfinished ones added
            log = RequestLog()
            for name in self.names:
                log.cols[name] = type(self.cols[name])(self.cols[name])
            log.stage_times = {k: array("d", v) for k, v in self.stage_times.items()}
            log.n = self.n
            for r in more:
                log.add(r)
        order = np.argsort(np.frombuffer(log.cols["id"], np.int64), kind="stable")
        out: dict[str, Any] = {}
        for name in (n for n in FLOAT_FIELDS if n in want):
            out[name] = np.frombuffer(log.cols[name], float)[order]
        for name in (n for n in INT_FIELDS if n in want):
            out[name] = np.frombuffer(log.cols[name], np.int64)[order]
        for name in (n for n in BOOL_FIELDS if n in want):
            out[name] = np.frombuffer(log.cols[name], np.int64)[order].astype(bool)
        for name in (n for n in OBJECT_FIELDS if n in want):
            out[name] = np.array(log.cols[name], dtype=object)[order]
        out["stage_times"] = {k: np.frombuffer(v, float)[order]
                              for k, v in log.stage_times.items()}
        return out

    def request(self, i: int, prefix: Any = None) -> Request:
        """The ``i``-th recorded request rebuilt as a ``Request`` (a copy: changing it
        changes nothing recorded)."""
        kw: dict[str, Any] = {n: self.cols[n][i] for n in self.names}
        for n in BOOL_FIELDS:
            kw[n] = bool(kw[n])
        r = Request(**kw)
        r.prefix = prefix
        r.stage_times = {k: v[i] for k, v in self.stage_times.items() if not math.isnan(v[i])}
        return r
