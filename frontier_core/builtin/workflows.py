"""The co-located workflow: one stage, every request served start to finish on one cluster."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from frontier_core.components import BuildContext
from frontier_core.errors import ConfigError
from frontier_core.records import Request


class ColocatedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: str | None = None


class Colocated:
    """Prefill and decode on the same replicas (vLLM-style serving)."""

    def __init__(self, opts: ColocatedOptions, ctx: BuildContext) -> None:
        names = [c.name for c in ctx.config.deployment.clusters]
        if opts.cluster is None:
            if len(names) != 1:
                raise ConfigError(
                    f"The colocated workflow serves one cluster but the deployment has "
                    f"{len(names)} ({', '.join(names)}); set deployment.workflow.cluster to one of them."
                )
            self.name = names[0]
        elif opts.cluster not in names:
            raise ConfigError(
                f"deployment.workflow.cluster is {opts.cluster!r}, which is not a cluster of "
                f"this deployment; choose one of: {', '.join(names)}."
            )
        else:
            self.name = opts.cluster

    def clusters(self) -> list[str]:
        return [self.name]

    def run(self, request: Request, controller):
        yield controller.cluster(self.name).serve(request)
