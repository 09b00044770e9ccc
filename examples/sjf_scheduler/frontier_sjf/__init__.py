"""frontier-sjf: an example Frontier plugin providing a shortest-job-first scheduler.

The algorithm is in ``frontier_sjf.scheduler`` (usable without a plugin manager);
``frontier_sjf.plugin`` registers it under the name ``sjf``.
"""

from __future__ import annotations

__version__ = "0.1.0"
