"""The simpy engine: GlobalController -> ClusterWorker -> ReplicaWorker.

Never imports pluggy: components arrive already built (see assemble.py).
"""

from frontier_core.engine.cluster import ClusterWorker
from frontier_core.engine.controller import GlobalController
from frontier_core.engine.kv import PagedKVCache
from frontier_core.engine.network import Channel, Network
from frontier_core.engine.replica import ReplicaWorker

__all__ = ["Channel", "ClusterWorker", "GlobalController", "Network", "PagedKVCache", "ReplicaWorker"]
