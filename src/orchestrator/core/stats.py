"""Summary statistics printed by the tools, the demo and the benchmarks: one definition."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile (0-100) by linear interpolation between closest ranks.

    The same definition as ``numpy.percentile``'s default and ``statistics.quantiles`` with
    ``method="inclusive"``. NaN for no values.
    """
    if not values:
        return math.nan
    if not 0 <= pct <= 100:
        raise ValueError(f"pct must be within 0-100, got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
