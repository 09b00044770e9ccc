"""DP attention in the kernel: how requests are balanced over a replica's DP ranks, each
rank's own KV share, and the per-rank load statistics of the summary."""

from __future__ import annotations

import simpy
from moehelpers import build, config

from frontier_core.app.metrics import summarize
from frontier_core.builtin.schedulers import VLLMOptions, VLLMScheduler
from frontier_core.engine.kv import PagedKVCache
from frontier_core.engine.replica import ReplicaWorker
from frontier_core.records import Request

# Very uneven prompts (a few long ones among many short ones) arriving faster than the
# ranks serve them: dealing them in turn piles long contexts onto some ranks.
UNEVEN = {"arrival": {"process": "poisson", "rate": 100.0},
          "prompt_len": {"dist": "lognormal", "median": 200, "sigma": 1.5, "max": 8000},
          "output_len": {"dist": "uniform", "low": 100, "high": 200}, "num_requests": 120}


def _dp(balance: str, **cluster):
    cfg = config(cluster={"tp": 1, "dp": 4, "dp_balance": balance, **cluster}, workload=UNEVEN)
    return build(cfg).run()


def test_least_tokens_lowers_the_imbalance_of_round_robin():
    rr = summarize(_dp("round_robin"))["clusters"]["main"]["dp_attention"]
    lt = summarize(_dp("least_tokens"))["clusters"]["main"]["dp_attention"]
    assert rr["balance"] == "round_robin" and lt["balance"] == "least_tokens"
    # The context each rank attends over is spread more evenly, and so is the attention
    # time (the tokens computed per iteration need not be: a rank holding a long prompt
    # gets fewer requests).
    assert lt["context_imbalance"]["p50"] < 0.95 * rr["context_imbalance"]["p50"]
    assert lt["context_imbalance"]["mean"] < rr["context_imbalance"]["mean"]
    assert lt["attention_straggler"]["mean"] < rr["attention_straggler"]["mean"]
    assert lt["attention_wait_fraction"] < 0.9 * rr["attention_wait_fraction"]
    # The slowest rank is never faster than the mean one.
    assert rr["attention_straggler"]["p50"] >= 1.0 and lt["attention_straggler"]["p50"] >= 1.0


def test_least_requests_sends_each_request_to_the_rank_with_fewest():
    sim = build(config(cluster={"tp": 1, "dp": 4, "dp_balance": "least_requests"},
                       workload={**UNEVEN, "num_requests": 4,
                                 "arrival": {"process": "poisson", "rate": 1e6}}))
    rep = sim.clusters["main"].replicas[0]
    seen = []
    enqueue = rep.enqueue

    def spy(r):
        enqueue(r)
        seen.append(r.dp_rank)

    rep.enqueue = spy
    sim.run()
    assert seen == [0, 1, 2, 3]  # all arrive before any finishes: each goes to an empty rank
    assert rep.rank_requests == [0, 0, 0, 0] and rep.rank_queued == [0, 0, 0, 0]
    assert not rep._queued


def test_each_balance_picks_the_rank_its_engine_would():
    sim = build(config(cluster={"tp": 1, "dp": 4}, workload={**UNEVEN, "num_requests": 1}))
    rep = sim.clusters["main"].replicas[0]
    rep.rank_requests[:] = [3, 1, 1, 5]
    rep.kv.rank_used[:] = [10, 40, 30, 0]  # blocks of 16 tokens held
    rep.rank_queued[:] = [0, 0, 160, 700]  # prompt tokens waiting
    rep.dp_balance = "least_requests"
    assert rep._pick_rank() == 1  # fewest requests, the lower of two
    rep.dp_balance = "least_tokens"
    # Tokens in the KV (blocks × 16) plus prompt tokens waiting: 160, 640, 640, 700.
    assert rep._pick_rank() == 0
    rep.kv.rank_used[:] = [10, 40, 0, 0]  # 160, 640, 160, 700: the tie goes to fewer requests
    assert rep._pick_rank() == 2
    rep.dp_balance = "round_robin"
    assert [rep._pick_rank() for _ in range(5)] == [0, 1, 2, 3, 0]


def test_same_seed_gives_the_same_run_with_each_balance():
    for balance in ("least_tokens", "least_requests"):
        a, b = _dp(balance), _dp(balance)
        ka = [(r.id, r.dp_rank, r.first_token, r.completion) for r in a.controller.requests]
        kb = [(r.id, r.dp_rank, r.first_token, r.completion) for r in b.controller.requests]
        assert ka == kb
        assert (summarize(a)["clusters"]["main"]["dp_attention"]
                == summarize(b)["clusters"]["main"]["dp_attention"])



def two_ranks(on_reject=lambda r, why: None):
    """A replica of two DP ranks sharing 128 KV blocks of 16 tokens (64 each), run by
    vLLM's scheduler: the simpy environment, the KV cache and the replica."""
    ex = build(config(cluster={"tp": 1, "dp": 2})).executors["main"]
    env = simpy.Environment()
    kv = PagedKVCache(num_blocks=128, block_size=16)
    rep = ReplicaWorker(env, "main", 0, VLLMScheduler(VLLMOptions(max_num_seqs=16)), ex, kv,
                        on_reject)
    return env, kv, rep

def test_a_full_rank_waits_while_a_rank_with_room_admits():
    # Two ranks of 64 blocks of 16 tokens. Dealt in turn: a long prompt on rank 0, a short
    # one on rank 1, another long one on rank 0 (no room: rank 0 holds the first), and a
    # short one on rank 1, queued behind it, which starts in the next schedule: the first
    # one that finds a rank without room sets that rank's queue aside from then on.
    rejected = []
    env, kv, rep = two_ranks(lambda r, why: rejected.append(why))
    assert kv.rank_cap == 64
    reqs = [Request(i, 0.0, p, 64) for i, p in enumerate((800, 100, 800, 100))]
    for r in reqs:
        r.done = env.event()
        rep.enqueue(r)
    env.run()
    assert not rejected and [r.dp_rank for r in reqs] == [0, 1, 0, 1]
    long0, short1, long2, short3 = reqs
    assert short1.first_scheduled == long0.first_scheduled == 0.0
    assert 0.0 < short3.first_scheduled < short1.first_token + 1e-9  # its rank had room
    assert long2.first_scheduled >= long0.completion  # its rank had no room before
    assert kv.rank_used == [0, 0] and kv.free_blocks == kv.num_blocks


def test_a_rank_short_for_its_second_request_does_not_hold_back_the_others():
    # Rank 0's first prompt leaves after its prefill (one output token); in the next
    # schedule rank 0 takes one more 700-token prompt (44 of its 64 blocks) but not the
    # second, which must not keep rank 1's prompt behind it waiting.
    env, kv, rep = two_ranks()
    sizes = [(400, 1), (100, 64), (700, 64), (100, 64), (700, 64), (100, 64)]
    reqs = [Request(i, 0.0, p, o) for i, (p, o) in enumerate(sizes)]
    for r in reqs:
        r.done = env.event()
        rep.enqueue(r)
    env.run()
    assert [r.dp_rank for r in reqs] == [0, 1, 0, 1, 0, 1]
    assert reqs[2].first_scheduled == reqs[3].first_scheduled > 0.0
    assert reqs[5].first_scheduled == reqs[3].first_scheduled  # not behind reqs[4]
    assert reqs[4].first_scheduled >= reqs[2].completion


def test_one_pool_would_have_admitted_the_long_prompt_at_once():
    # The same four requests with one rank: the pool holds both long prompts.
    env, kv, rep = two_ranks()
    kv.rank_used = None  # as before DP ranks had their own share
    reqs = [Request(i, 0.0, p, 64) for i, p in enumerate((800, 100, 800, 100))]
    for r in reqs:
        r.done = env.event()
        rep.enqueue(r)
    env.run()
    assert reqs[2].first_scheduled == 0.0


def test_the_largest_request_a_cluster_takes_is_one_rank_s_share():
    cfg = config(cluster={"tp": 1, "dp": 4, "gpu_memory_fraction": 0.9},
                 workload={**UNEVEN, "num_requests": 2})
    sim = build(cfg)
    rep = sim.clusters["main"].replicas[0]
    cap_tokens = (rep.kv.rank_cap - rep.kv.seq_blocks) * rep.kv.block_size
    assert sim.clusters["main"].max_tokens == cap_tokens
