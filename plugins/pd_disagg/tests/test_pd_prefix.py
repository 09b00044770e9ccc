"""The pd workflow with prefix caching: the decode replica's cache saves exactly the
cached blocks' bytes on the link, the prefill replica's cache saves prefill compute,
the decode router sees the prefix, KV accounting stays exact, and nothing changes
when no decode cluster caches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from frontier_pd_disagg import plugin as pd_plugin
from pdhelpers import flat_plugin, pd_config

from frontier_core.app.metrics import request_table, summarize
from frontier_core.assemble import assemble

PROMPT, SYSTEM = 1800, 1024  # a 1,024-token system prompt: two 512-token hash blocks


@pytest.fixture
def registry(frontier_registry_factory):
    return frontier_registry_factory(pd_plugin, flat_plugin())


def _trace(tmp_path: Path, n: int = 40, gap_ms: int = 200, groups: int = 1,
           shared: bool = True, output: int = 20) -> Path:
    """Mooncake JSONL: request i opens with system prompt ``i % groups`` (unless not
    ``shared``: every prompt its own), then blocks of its own."""
    lines = []
    for i in range(n):
        head = [2 * (i % groups) + 1, 2 * (i % groups) + 2] if shared else [-1 - i, -1001 - i]
        lines.append(json.dumps({"timestamp": i * gap_ms, "input_length": PROMPT,
                                 "output_length": output,
                                 "hash_ids": head + [100 + i, 200 + i]}))
    p = tmp_path / "pd_prefix.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def _run(registry, path: Path, decode_cache: bool, prefill_cache: bool = False,
         decode: dict[str, Any] | None = None, watch: list[str] | None = None):
    cfg = pd_config(
        prefill={"gpu": "a100-80g-sxm", "prefix_cache": prefill_cache},
        decode={"gpu": "a100-80g-sxm", "prefix_cache": decode_cache, **(decode or {})},
        workload={"trace": {"format": "mooncake", "path": str(path)}},
    )
    sim = assemble(cfg, registry)
    if watch is not None:
        _watch_kv(sim, watch)
    return sim.run()


def _watch_kv(sim, failures: list[str], period: float = 0.01, horizon: float = 300.0) -> None:
    """Every ``period`` s until all requests finish (or ``horizon`` s, so that a stuck
    run ends), on every replica: the blocks requests own (reservations included) + the
    blocks of cache entries someone holds + free blocks = capacity, and the idle entries
    are exactly the unreferenced ones."""
    env, ctl = sim.env, sim.controller
    wf = ctl.workflow
    wf._bind(ctl)

    def proc():
        while ctl.finished < ctl.total and env.now < horizon:
            own: dict[tuple[str, int], int] = dict(wf.reserved)
            for r in ctl.requests:
                if r.blocks:
                    own[(r.cluster, r.replica)] = own.get((r.cluster, r.replica), 0) + r.blocks
            for name, cw in sim.clusters.items():
                for rep in cw.replicas:
                    kv = rep.kv
                    shared = sum(e[1] for e in kv.entries.values() if e[0] > 0)
                    total = own.get((name, rep.index), 0) + shared + kv.free_blocks
                    if total != kv.num_blocks:
                        failures.append(f"t={env.now}: {name}[{rep.index}] accounts for "
                                        f"{total} of {kv.num_blocks} blocks")
                    if set(kv.idle) != {h for h, e in kv.entries.items() if e[0] == 0}:
                        failures.append(f"t={env.now}: {name}[{rep.index}] idle set wrong")
            yield env.timeout(period)

    env.process(proc())


def _all_released(sim) -> None:
    for cw in sim.clusters.values():
        for rep in cw.replicas:
            kv = rep.kv
            assert all(e[0] == 0 for e in kv.entries.values())  # idle-cached or gone
            assert kv.idle_blocks == sum(e[1] for e in kv.entries.values())
            assert kv.free_blocks == kv.num_blocks
    assert all(v == 0 for v in sim.controller.workflow.reserved.values())


def test_decode_cache_saves_exactly_the_cached_blocks_bytes(registry, tmp_path):
    path = _trace(tmp_path)
    failures: list[str] = []
    off = _run(registry, path, decode_cache=False)
    on = _run(registry, path, decode_cache=True, watch=failures)
    assert not failures, failures[:3]
    per_token = on.model.kv_bytes_per_token(1)
    t_off, t_on = off.controller.workflow.transfers, on.controller.workflow.transfers
    assert [t.nbytes for t in t_off] == [PROMPT * per_token] * 40
    # The first request seeds the decode replica's cache; every later one finds the
    # system prompt there and sends only the rest of its prompt.
    assert [t.cached_tokens for t in t_on] == [0] + [SYSTEM] * 39
    assert [t.nbytes for t in t_on] == [PROMPT * per_token] + [(PROMPT - SYSTEM) * per_token] * 39
    assert [t.cached_blocks for t in t_on] == [0] + [SYSTEM // 16] * 39
    saved = sum(t.nbytes for t in t_off) - sum(t.nbytes for t in t_on)
    assert saved == sum(t.skipped_bytes for t in t_on) == 39 * SYSTEM * per_token
    s = summarize(on)
    dc = s["workflow"]["decode_prefix_cache"]
    assert dc["tokens_skipped"] == 39 * SYSTEM and dc["transfers_with_hit"] == 39
    assert dc["bytes_skipped"] == saved and dc["blocks_held_from_cache"] == 39 * 64
    assert s["workflow"]["transfers"]["bytes_total"] == dc["bytes_transferred"]
    assert s["clusters"]["decode"]["prefix_cache"]["cached_tokens"] == 39 * SYSTEM
    assert "decode_prefix_cache" not in summarize(off)["workflow"]
    # Less to send, so the second token comes sooner; every request still finishes.
    col_on, col_off = request_table(on), request_table(off)
    assert col_on["transfer_s"][1:].mean() < col_off["transfer_s"][1:].mean()
    assert all(r.generated == r.output_len for r in on.controller.requests)
    _all_released(on)


def test_without_shared_prefixes_a_decode_cache_changes_nothing(registry, tmp_path):
    path = _trace(tmp_path, shared=False)
    off, on = _run(registry, path, False), _run(registry, path, True)
    a, b = request_table(off), request_table(on)
    for k in ("first_token_s", "completion_s", "transfer_s", "decode_s"):
        assert a[k].tolist() == b[k].tolist()
    assert ([t.nbytes for t in off.controller.workflow.transfers]
            == [t.nbytes for t in on.controller.workflow.transfers])
    assert summarize(on)["workflow"]["decode_prefix_cache"]["bytes_skipped"] == 0
    _all_released(on)


def test_prefill_cache_skips_prefill_compute_but_not_the_transfer(registry, tmp_path):
    path = _trace(tmp_path)
    off, on = _run(registry, path, False), _run(registry, path, False, prefill_cache=True)
    s = summarize(on)
    assert s["clusters"]["prefill"]["prefix_cache"]["cached_tokens"] == 39 * SYSTEM
    assert request_table(on)["cached_tokens"].tolist() == [0] + [SYSTEM] * 39
    assert request_table(on)["prefill_s"][1:].mean() < request_table(off)["prefill_s"][1:].mean()
    # The decode side has no cache: the whole prompt's KV still crosses the link.
    assert ([t.nbytes for t in on.controller.workflow.transfers]
            == [t.nbytes for t in off.controller.workflow.transfers])
    _all_released(on)


def test_prefix_aware_decode_router_finds_more_cached_blocks(registry, tmp_path):
    path = _trace(tmp_path, n=60, groups=3)

    def skipped(router: str) -> int:
        sim = _run(registry, path, True, decode={"replicas": 2, "router": router})
        _all_released(sim)
        return sum(t.cached_tokens for t in sim.controller.workflow.transfers)

    # Round robin over two replicas sends each system prompt to both (six misses);
    # prefix_aware follows the first copy (three misses).
    assert skipped("round_robin") == (60 - 6) * SYSTEM
    assert skipped("prefix_aware") == (60 - 3) * SYSTEM


def _tight_decode() -> dict[str, Any]:
    """A decode replica (Llama-2-7B, A100) with room for three 2,000-token contexts."""
    from frontier_core.builtin.hardware import HARDWARE
    from frontier_core.builtin.models import MODELS

    m = next(x for x in MODELS if x.name == "llama-2-7b")
    a100 = next(h for h in HARDWARE if h.name == "a100-80g-sxm")
    room = 3 * (PROMPT + 200)
    reserve = (a100.mem_bytes * 0.9 - m.weight_bytes() - room * m.kv_bytes_per_token(1)) / 1024**3
    return {"activation_reserve_gb": reserve, "scheduler": {"name": "vllm", "watermark": 0.0}}


def test_kv_accounting_holds_under_decode_memory_pressure(registry, tmp_path):
    """A burst into a decode replica with room for about three requests: cached blocks
    held by reference for queued transfers are never evicted, every request finishes,
    all memory comes back, and sharing the system prompts lets more requests decode at
    once (they wait less for decode memory)."""
    path = _trace(tmp_path, n=40, gap_ms=5, groups=2, output=200)
    failures: list[str] = []
    off = _run(registry, path, False, prefill_cache=True, decode=_tight_decode())
    sim = _run(registry, path, True, prefill_cache=True, watch=failures, decode=_tight_decode())
    assert not failures, failures[:3]
    assert sim.plans["decode"].kv_blocks * 16 < 4 * (PROMPT + 200)
    assert all(r.generated == r.output_len for r in sim.controller.requests)
    s, s_off = summarize(sim), summarize(off)
    assert s["workflow"]["backpressure"]["requests_blocked"] > 0
    assert s["workflow"]["decode_prefix_cache"]["tokens_skipped"] > 0
    wait = "decode_memory_wait_s"
    assert s["workflow"]["e2e_breakdown_mean_s"][wait] < s_off["workflow"]["e2e_breakdown_mean_s"][wait]
    _all_released(sim)


def test_decode_preemption_with_a_decode_cache_completes(registry, tmp_path):
    path = _trace(tmp_path, n=40, gap_ms=5, groups=2, output=1000)
    sim = _run(registry, path, True, prefill_cache=True, decode=_tight_decode())
    assert sum(r.preemptions for r in sim.clusters["decode"].replicas) > 0
    assert sim.controller.finished == 40
