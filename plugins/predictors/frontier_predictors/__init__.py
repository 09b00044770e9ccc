"""Frontier operator-time predictors (distribution ``frontier-predictors``).

Provides the measured-data and learned backends: ``table`` (interpolation over
profile tables), ``forest`` and ``proxy`` (tree ensembles on batch features),
``auto`` (measured data found for the run's GPU), their importers and trainer
(``frontier predictors``) and the torch kernel profiler (``frontier profile``).
The analytical ``roofline`` they fall back to is the kernel's
(``frontier_core.RooflinePredictor``); the learned models predict the ratio of a
measured time to it. ``frontier_predictors.plugin`` only registers the backends.
"""

from __future__ import annotations

__version__ = "0.1.0"
