"""Turn a ``WorkloadConfig`` into request arrays: prompt and output lengths (tokens) and
arrival times (seconds), from a trace file or from seeded synthetic distributions.

Trace formats (see ``TraceConfig``): ``azure`` CSV (TIMESTAMP, ContextTokens,
GeneratedTokens), ``mooncake`` JSONL (timestamp in ms, input_length, output_length;
its hash_ids, one per ``hash_block`` prompt tokens, feed prefix caching) and ``lengths`` CSV (Vidur/Sarathi column names, with an
optional ``arrived_at`` column in seconds). Files are read with the csv and json modules;
every problem in them is a ``TraceError`` naming the file and 1-based line. A ``lengths``
CSV with a ``conversation_id`` column, or mooncake records with a ``conversation_id`` key,
are replayed as multi-turn conversations; ``workload.conversations`` generates synthetic
ones (both in ``conversations``).
"""

from frontier_core.workload.build import build_workload
from frontier_core.workload.sampling import Workload

__all__ = ["Workload", "build_workload"]
