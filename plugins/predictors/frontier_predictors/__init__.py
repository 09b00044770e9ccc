"""Frontier operator-time predictors (distribution ``frontier-predictors``).

Provides the analytical ``roofline`` predictor: the runtime of any operator
call on any GPU from its datasheet (peak FLOP/s, HBM and link bandwidths) and
an achievable-fraction-of-peak table. The algorithm lives in
``frontier_predictors.roofline``; ``frontier_predictors.plugin`` only registers it.
"""

from __future__ import annotations

__version__ = "0.1.0"
