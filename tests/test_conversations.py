"""Multi-turn conversations: prompts that carry the history, turns that wait for the
previous answer, content hashes that let prefix caching reuse the history, trace replay
by conversation id, determinism and the errors of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from simhelpers import small_config

from frontier_core.app.metrics import request_table, requests_csv, summarize
from frontier_core.assemble import assemble
from frontier_core.config import WorkloadConfig
from frontier_core.errors import ConfigError, TraceError
from frontier_core.workload import build_workload
from frontier_core.workload.conversations import transcripts


def fixed(value: int) -> dict[str, Any]:
    return {"dist": "fixed", "value": value}


def workload(conv: dict[str, Any], **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "arrival": {"process": "poisson", "rate": 1.0},
        "prompt_len": {"dist": "uniform", "low": 20, "high": 200},
        "output_len": {"dist": "uniform", "low": 20, "high": 300},
        "num_requests": 120,
        "conversations": {"turns": {"dist": "uniform", "low": 2, "high": 6}, **conv},
    }
    data.update(over)
    return data


def build(spec: dict[str, Any], seed: int = 0, base: Path | None = None):
    cfg = WorkloadConfig.model_validate(spec)
    return build_workload(cfg, np.random.default_rng(seed),
                          lambda p: Path(p) if base is None else base / p)


def run(registry, spec: dict[str, Any], cache: bool = True, seed: int = 1, **cluster: Any):
    cfg = small_config(
        deployment={"clusters": [{"name": "main", "gpu": "a100-80g-sxm",
                                  "prefix_cache": cache, **cluster}]},
        workload=spec, seed=seed,
    )
    return assemble(cfg, registry).run()


def by_conversation(col: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Row indices of each conversation's requests, in turn order."""
    out: dict[int, np.ndarray] = {}
    for c in np.unique(col["conversation"]):
        rows = np.flatnonzero(col["conversation"] == c)
        out[int(c)] = rows[np.argsort(col["turn"][rows])]
    return out


# ---- the requests of synthetic conversations -----------------------------------------


def test_turn_prompts_contain_the_history_exactly():
    wl = build(workload({"system_prompt": 100, "system_prompts": 3},
                        prompt_len=fixed(30), num_requests=101))
    assert len(wl) == 101  # num_requests counts turns; the last conversation is cut short
    assert wl.conversation is not None and wl.turn is not None
    for c in np.unique(wl.conversation):
        idx = np.flatnonzero(wl.conversation == c)
        assert wl.turn[idx].tolist() == list(range(len(idx)))
        assert len(idx) <= 6
        assert wl.prompt_len[idx[0]] == 100 + 30  # system prompt + the first user message
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            # turn t+1 = turn t's prompt + its (visible) answer + 30 new user tokens
            assert wl.prompt_len[b] == wl.prompt_len[a] + wl.output_len[a] + 30
    assert wl.arrival is not None and np.all(np.diff(wl.arrival) >= 0)
    assert "101 requests in" in wl.source and "conversations" in wl.source


def test_duration_drops_conversations_that_start_after_it():
    wl = build(workload({}, num_requests=None, duration_s=30.0))
    assert wl.arrival is not None and wl.arrival.max() <= 30.0
    assert wl.conversation is not None and wl.turn is not None
    starts = wl.arrival[wl.turn == 0]
    assert len(starts) == wl.conversation.max() + 1 >= 10  # about one a second
    ends = np.flatnonzero(np.diff(np.append(wl.conversation, -1)))
    assert np.all((wl.turn[ends] >= 1) & (wl.turn[ends] <= 5))  # every one has 2-6 turns


def test_reasoning_tokens_are_output_but_not_history():
    wl = build(workload({"reasoning": {"fraction": 1.0, "tokens": fixed(100)}},
                        prompt_len=fixed(30)))
    assert wl.conversation is not None
    assert np.all(wl.output_len >= 100 + 20)  # the hidden reasoning, then the answer
    for c in np.unique(wl.conversation):
        idx = np.flatnonzero(wl.conversation == c)
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            assert wl.prompt_len[b] == wl.prompt_len[a] + (wl.output_len[a] - 100) + 30


def test_hashes_share_the_system_prompt_and_the_history():
    # Two conversations with system prompt 0 (40 tokens: two full 16-token blocks and a
    # partial one), user 10, answer 30; the second has one turn.
    prompt, covered, h = transcripts([2, 1], [0, 0], [10, 10, 10], [30, 30, 30], [0, 0, 0],
                                     40, 16)
    assert prompt.tolist() == [50, 90, 50] and covered.tolist() == [80, 120, 80]
    assert h[0][:2] == h[2][:2]  # the full system-prompt blocks
    assert h[0][2] != h[2][2]  # the block that holds the first user message is per chat
    assert h[1][:5] == h[0][:5]  # turn 1 repeats turn 0's transcript (80 = 5 blocks)
    assert len(h[1]) == 8 and h[1][7] not in h[0]  # 120 tokens: 7 full + a partial
    # A reasoning turn's hashes stop at its prompt; its partial last block differs from
    # the full block that the next turn has at that place.
    _, covered, h = transcripts([2], [0], [10, 10], [30, 30], [50, 0], 0, 16)
    assert covered.tolist() == [10, 80]
    assert len(h[0]) == 1 and h[0][0] != h[1][0]


# ---- runs ------------------------------------------------------------------------------


def test_a_turn_waits_for_the_previous_one_and_its_think_time(registry):
    sim = run(registry, workload({"think_time_s": 2.0}))
    wl = sim.workload
    col = request_table(sim)
    assert len(col["id"]) == 120 and (col["rejected"] == "").all()
    think = wl.think_s
    assert think is not None and think[wl.turn > 0].mean() == pytest.approx(2.0, rel=0.3)
    for rows in by_conversation(col).values():
        for a, b in zip(rows[:-1], rows[1:], strict=True):
            assert col["arrival_s"][b] >= col["completion_s"][a]
            assert col["arrival_s"][b] == pytest.approx(
                col["completion_s"][a] + think[col["id"][b]], abs=1e-9)
    first = col["turn"] == 0
    assert col["arrival_s"][first] == pytest.approx(wl.arrival[col["id"][first]])


def test_shared_system_prompt_gives_exact_hits(registry):
    # One-turn conversations 2 s apart, a 70-token system prompt: its four full 16-token
    # blocks (64 tokens) are shared; the fifth also holds the user's tokens.
    spec = workload({"turns": fixed(1), "system_prompt": 70},
                    arrival={"process": "fixed", "rate": 0.5},
                    prompt_len=fixed(10), output_len=fixed(5), num_requests=4)
    col = request_table(run(registry, spec))
    assert col["cached_tokens"].tolist() == [0, 64, 64, 64]
    assert col["conversation"].tolist() == [0, 1, 2, 3] and col["turn"].tolist() == [0] * 4


@pytest.mark.parametrize("reasoning,hits", [(None, [0, 32, 64]),
                                            ({"tokens": fixed(50)}, [0, 0, 48])])
def test_history_hits_are_exact(registry, reasoning, hits):
    # user 10, answer 30, 16-token blocks. Turn 0 (prompt 10) leaves its computed blocks:
    # 39 tokens computed, two full blocks; turn 1 (prompt 50) finds 32, leaves 79 tokens:
    # turn 2 (prompt 90) finds 64. With reasoning the answer's KV follows the hidden
    # tokens: only prompts are cached (turn 1's 50 tokens: three full blocks for turn 2).
    conv: dict[str, Any] = {"turns": fixed(3)}
    if reasoning is not None:
        conv["reasoning"] = reasoning
    spec = workload(conv, prompt_len=fixed(10), output_len=fixed(30), num_requests=3)
    col = request_table(run(registry, spec))
    assert col["prompt_tokens"].tolist() == [10, 50, 90]
    assert col["cached_tokens"].tolist() == hits


def test_prefix_caching_pays_off_on_conversations_and_reasoning_cuts_the_hit(registry):
    spec = workload({"think_time_s": 1.0})
    on, off = run(registry, spec, True), run(registry, spec, False)
    s_on, s_off = summarize(on), summarize(off)
    hit = s_on["clusters"]["main"]["prefix_cache"]["token_hit_rate"]
    assert hit > 0.5  # most of a later turn's prompt is the history
    assert s_on["latency_s"]["ttft_s"]["mean"] < 0.8 * s_off["latency_s"]["ttft_s"]["mean"]
    assert request_table(on)["prompt_tokens"].tolist() == \
        request_table(off)["prompt_tokens"].tolist()
    thinking = run(registry, workload({"think_time_s": 1.0, "reasoning": {
        "fraction": 1.0, "tokens": {"dist": "uniform", "low": 100, "high": 400}}}))
    hit_r = summarize(thinking)["clusters"]["main"]["prefix_cache"]["token_hit_rate"]
    assert hit_r < hit - 0.1


def test_a_rejected_turn_ends_its_conversation(registry):
    # Llama-2-7B holds 4,096 tokens: turns 0 and 1 fit (2,000 and 4,000 tokens), turn 2
    # (a 5,500-token prompt) is rejected, and turns 3 and 4 are never sent.
    spec = workload({"turns": fixed(5)}, arrival={"process": "fixed", "rate": 0.1},
                    prompt_len=fixed(1500), output_len=fixed(500), num_requests=10)
    sim = run(registry, spec)
    col = request_table(sim)
    assert col["turn"].tolist() == [0, 1, 2, 0, 1, 2]
    assert [bool(r) for r in col["rejected"]] == [False, False, True] * 2
    assert sim.controller.finished == sim.controller.total == 6


def test_closed_loop_runs_conversations_one_after_another(registry):
    spec = workload({}, arrival=None, closed_loop={"concurrency": 2})
    col = request_table(run(registry, spec))
    assert len(col["id"]) == 120
    spans = [(col["arrival_s"][r[0]], col["completion_s"][r[-1]])
             for r in by_conversation(col).values()]
    for t, _ in spans:  # at most two conversations in flight at any start
        assert sum(1 for a, b in spans if a <= t < b) <= 2


def test_same_seed_same_requests(registry):
    spec = workload({"think_time_s": 0.5, "system_prompt": 64, "system_prompts": 2,
                     "reasoning": {"fraction": 0.5, "tokens": fixed(80)}})
    a, b = build(spec, seed=3), build(spec, seed=3)
    for f in ("prompt_len", "output_len", "arrival", "conversation", "turn", "think_s",
              "prefix_tokens"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.prefix == b.prefix
    assert not np.array_equal(build(spec, seed=4).prompt_len, a.prompt_len)
    csv_a = requests_csv(request_table(run(registry, spec)))
    assert csv_a == requests_csv(request_table(run(registry, spec)))
    assert csv_a.splitlines()[0].endswith("cached_tokens,conversation,turn")


# ---- traces ----------------------------------------------------------------------------


def test_lengths_trace_with_conversation_ids(registry, tmp_path):
    trace = tmp_path / "chats.csv"
    trace.write_text(
        "arrived_at,prompt_len,output_len,conversation_id\n"
        "0.0,100,50,a\n"
        "0.1,120,20,b\n"
        "0.2,300,40,a\n"  # before turn 0 of a completes: sent at its completion
        "5.0,200,10,b\n"  # long after turn 0 of b: sent at its trace time
        "6.0,80,10,c\n"
    )
    spec = {"trace": {"format": "lengths", "path": str(trace)}}
    wl = build(spec)
    assert wl.conversation.tolist() == [0, 1, 0, 1, 2] and wl.turn.tolist() == [0, 0, 1, 1, 0]
    assert wl.prompt_len.tolist() == [100, 120, 300, 200, 80]  # the trace's own lengths
    assert wl.prefix is None
    assert wl.source.endswith("3 conversations of 1.7 turns on average")
    col = request_table(run(registry, spec, cache=False))
    assert col["arrival_s"][2] == col["completion_s"][0] > 0.2
    assert col["arrival_s"][3] == 5.0 and col["arrival_s"][4] == 6.0
    assert col["turn"].tolist() == [0, 0, 1, 1, 0]


def test_mooncake_trace_with_conversation_ids_keeps_its_hashes(registry, tmp_path):
    rows = [{"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [1, 2],
             "conversation_id": 7},
            {"timestamp": 10, "input_length": 1500, "output_length": 10, "hash_ids": [1, 2, 3],
             "conversation_id": 7},
            {"timestamp": 20, "input_length": 600, "output_length": 10, "hash_ids": [9, 10]}]
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = {"trace": {"format": "mooncake", "path": str(trace)}}
    wl = build(spec)
    assert wl.conversation.tolist() == [0, 0, 1] and wl.turn.tolist() == [0, 1, 0]
    assert wl.prefix == [(1, 2), (1, 2, 3), (9, 10)] and wl.prefix_tokens is None
    col = request_table(run(registry, spec))
    assert col["arrival_s"][1] == col["completion_s"][0]  # 10 ms is before it completes
    assert col["cached_tokens"].tolist() == [0, 1000, 0]  # two 512-token blocks, capped


def test_trace_turn_column_must_follow_row_order(tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("arrived_at,prompt_len,output_len,conversation_id,turn\n"
                     "0,10,5,a,0\n0,10,5,a,2\n1,10,5,a,1\n")
    with pytest.raises(TraceError, match=r"bad.csv:4: turn '1' of conversation 'a' does not "
                                         r"follow turn 2 \(line 3\)"):
        build({"trace": {"format": "lengths", "path": str(trace)}})
    trace.write_text("arrived_at,prompt_len,output_len,conversation_id,turn\n0,10,5,a,x\n")
    with pytest.raises(TraceError, match=r"bad.csv:2: turn='x' is not a turn number"):
        build({"trace": {"format": "lengths", "path": str(trace)}})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1, '
                   '"conversation_id": [1]}\n')
    with pytest.raises(TraceError, match=r"bad.jsonl:1: conversation_id=\[1\] is not a "
                                         "conversation id"):
        build({"trace": {"format": "mooncake", "path": str(bad)}})


# ---- bad configs -------------------------------------------------------------------------


def test_bad_conversation_configs_are_one_paragraph_errors(tmp_path):
    from frontier_core.configfile import load_config

    def load(workload_yaml: str) -> str:
        p = tmp_path / "c.yaml"
        p.write_text("workload:\n" + workload_yaml)
        with pytest.raises(ConfigError) as e:
            load_config(p)
        msg = str(e.value)
        assert "\n\n" not in msg
        return msg

    base = ("  arrival: {process: poisson, rate: 1}\n  prompt_len: {dist: fixed, value: 10}\n"
            "  output_len: {dist: fixed, value: 10}\n  num_requests: 10\n")
    msg = load(base + "  conversations: {turns: {dist: fixed, value: 0}}\n")
    assert "workload.conversations.turns" in msg and "c.yaml:6" in msg
    msg = load(base + "  conversations: {turns: {dist: fixed, value: 2}, reasoning: "
               "{fraction: 1.5, tokens: {dist: fixed, value: 5}}}\n")
    assert "workload.conversations.reasoning.fraction" in msg
    msg = load(base + "  conversations: {turns: {dist: fixed, value: 2}, turn: 3}\n")
    assert "workload.conversations.turn" in msg
    msg = load("  trace: {format: lengths, path: x.csv}\n"
               "  conversations: {turns: {dist: fixed, value: 2}}\n")
    assert "conversations and trace exclude each other" in msg
    with pytest.raises(ConfigError, match="closed-loop conversations need "
                                          "workload.num_requests"):
        build(workload({}, arrival=None, closed_loop={"concurrency": 2}, num_requests=None,
                       duration_s=10.0))


def test_a_block_size_that_does_not_divide_the_hash_block_is_a_config_error(registry) -> None:
    cfg = small_config(
        deployment={"clusters": [{"name": "main", "gpu": "a100-80g-sxm", "prefix_cache": True,
                                  "block_size": 32}]},
        workload={"arrival": {"process": "poisson", "rate": 2.0},
                  "prompt_len": {"dist": "fixed", "value": 50},
                  "output_len": {"dist": "fixed", "value": 10}, "num_requests": 6,
                  "conversations": {"turns": {"dist": "fixed", "value": 2}, "hash_block": 16}},
    )
    with pytest.raises(ConfigError, match="does not divide the workload's hash block of 16"):
        assemble(cfg, registry)
