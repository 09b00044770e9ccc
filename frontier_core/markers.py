"""Hook markers for the ``frontier`` plugin project.

A leaf module: plugins import ``hookimpl`` from here (or from ``frontier_core``)
without pulling in anything else of the kernel.
"""

from __future__ import annotations

import pluggy

PROJECT = "frontier"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
