"""Workflows are components: a two-stage workflow built only from kernel mechanisms
(serve until the first token, keep the KV, hand over, release) runs and conserves."""

from __future__ import annotations

from types import SimpleNamespace

from simhelpers import small_config
from test_engine import check_invariants

from frontier_core.assemble import assemble
from frontier_core.components import ComponentSpec
from frontier_core.markers import hookimpl


class HandOver:
    """Prefill on cluster ``a``, wait a fixed transfer time, decode on cluster ``b``."""

    def __init__(self, ctx, delay=0.002):
        self.delay = delay

    def clusters(self):
        return ["a", "b"]

    def run(self, request, controller):
        request.stop_after_prefill = True
        yield controller.cluster("a").serve(request)
        if request.rejected:
            return
        prefill_replica = controller.cluster("a").replicas[request.replica]
        assert request.blocks > 0  # the prefill side still holds the KV
        yield controller.env.timeout(self.delay)
        prefill_replica.release(request)
        request.stop_after_prefill = False
        if request.generated < request.output_len:
            yield controller.cluster("b").serve(request)
        else:
            request.completion = controller.env.now


def plugin():
    @hookimpl
    def frontier_workflows():
        return [ComponentSpec("handover-test", lambda o, ctx: HandOver(ctx))]

    return SimpleNamespace(frontier_workflows=frontier_workflows)


def test_two_stage_workflow(frontier_registry_factory):
    import conftest

    registry = frontier_registry_factory(plugin(), conftest._test_plugin())
    cfg = small_config(
        deployment={
            "workflow": "handover-test",
            "clusters": [{"name": "a", "gpu": "a100-80g-sxm"},
                         {"name": "b", "gpu": "a100-80g-sxm", "replicas": 2,
                          "router": "least_kv"}],
        },
        workload={"arrival": {"process": "poisson", "rate": 20.0},
                  "prompt_len": {"dist": "uniform", "low": 32, "high": 2048},
                  "output_len": {"dist": "uniform", "low": 1, "high": 100},
                  "num_requests": 80},
    )
    sim = assemble(cfg, registry).run()
    for r in sim.controller.requests:
        assert r.generated == r.output_len
        assert r.first_token < r.completion or r.output_len == 1
        if r.output_len > 1:
            assert r.cluster == "b"
    a_iters = sum(len(rep.iterations) for rep in sim.clusters["a"].replicas) // 6
    prefill_only = all(
        int(v) == 0 for rep in sim.clusters["a"].replicas for v in list(rep.iterations)[3::6]
    )
    assert a_iters > 0 and prefill_only  # cluster a never decodes
    decoded_on_b = sum(int(v) for rep in sim.clusters["b"].replicas for v in list(rep.iterations)[3::6])
    assert decoded_on_b == sum(max(r.output_len - 1, 0) for r in sim.controller.requests)
    check_invariants(sim)
