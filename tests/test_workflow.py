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


class ReportingHandOver(HandOver):
    """HandOver with a slow hand-over and a report: columns, a file, a trace event."""

    def __init__(self, ctx):
        super().__init__(ctx, delay=0.25)

    def report(self, sim, pids):
        from frontier_core import WorkflowReport

        reqs = sorted(sim.controller.requests, key=lambda r: r.id)
        return WorkflowReport(
            summary={"handovers": len(reqs)},
            columns={"handover_cluster": [r.cluster for r in reqs]},
            files={"handover.txt": "ok\n"},
            trace_events=[{"ph": "i", "name": "marker", "pid": pids["b"], "tid": 1, "ts": 0}],
        )


def test_workflow_report_reaches_every_output_and_parked_kv_waits(
    frontier_registry_factory, tmp_path
):
    """Prefill memory for about two prompts, each kept 250 ms after its prefill: the
    prefill replica must wait for releases instead of rejecting its waiting requests."""
    import json

    import conftest

    from frontier_core.app.metrics import write_outputs

    @hookimpl
    def frontier_workflows():
        return [ComponentSpec("report-test", lambda o, ctx: ReportingHandOver(ctx))]

    registry = frontier_registry_factory(SimpleNamespace(frontier_workflows=frontier_workflows),
                                         conftest._test_plugin())
    cfg = small_config(
        deployment={
            "workflow": "report-test",
            "clusters": [{"name": "a", "gpu": "a100-80g-sxm", "activation_reserve_gb": 54.0},
                         {"name": "b", "gpu": "a100-80g-sxm"}],
        },
        workload={"arrival": {"process": "poisson", "rate": 50.0},
                  "prompt_len": {"dist": "fixed", "value": 1000},
                  "output_len": {"dist": "fixed", "value": 5},
                  "num_requests": 12},
    )
    sim = assemble(cfg, registry).run()
    assert sim.plans["a"].kv_blocks * 16 < 3 * 1001
    assert all(r.rejected is None and r.generated == 5 for r in sim.controller.requests)
    s = write_outputs(sim, tmp_path / "o")
    assert s["workflow"] == {"handovers": 12}
    assert (tmp_path / "o" / "handover.txt").read_text() == "ok\n"
    head = (tmp_path / "o" / "requests.csv").read_text().splitlines()
    assert head[0].endswith(",handover_cluster") and head[1].endswith(",b")
    trace = json.loads((tmp_path / "o" / "trace.json").read_text())["traceEvents"]
    assert any(e.get("name") == "marker" for e in trace)
