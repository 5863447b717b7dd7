"""Numbers from measurements: percentiles, medians, ratios. Pure functions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

#: The latency percentiles every measurement reports.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in binary floating point.
    rank = max(1, math.ceil(round(pct / 100.0 * len(sorted_values), 9)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    """``{"p50": …, "p90": …, "p99": …, "p99.9": …}`` of ``values`` (any unit)."""
    ordered = sorted(values)
    return {label(p): percentile(ordered, p) for p in PERCENTILES}


def label(pct: float) -> str:
    """``p50``, ``p99.9``: how a percentile is named in results and the report."""
    return f"p{pct:g}"


def median(values: Sequence[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(value: float, reference: float) -> float:
    """``value / reference``; NaN when either is missing or the reference is zero."""
    if math.isnan(value) or math.isnan(reference) or reference == 0:
        return math.nan
    return value / reference


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / min of the finite values: how far apart a set of measurements is."""
    finite = [v for v in values if not math.isnan(v)]
    if len(finite) < 2 or min(finite) <= 0:
        return math.nan
    return (max(finite) - min(finite)) / min(finite)
