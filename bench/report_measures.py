"""Numbers the report derives from a run's measurements (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from bench.results import OPEN, PASS_RATE, SCALE, Measurement, Results
from bench.stats import label, median


def cpu_per_request(measurements: Sequence[Measurement], groups: Iterable[str]) -> float:
    """CPU microseconds of ``groups`` per answered request, over all ``measurements``."""
    requests = sum(m.load.requests for m in measurements)
    if not measurements or requests == 0:
        return math.nan
    seconds = sum(m.cpu_seconds.get(g, 0.0) for m in measurements for g in groups)
    return seconds / requests * 1e6


def median_latency(measurements: Sequence[Measurement], pct: float) -> float:
    """The median over ``measurements`` of their ``pct`` latency (ms)."""
    return median([m.load.latency_ms.get(label(pct), math.nan) for m in measurements])


def present_targets(results: Results, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that ran in this run, in order."""
    return [n for n in names if n in results.targets]


def added_p99(results: Results, scenario: str, reference: str, basis: str = PASS_RATE) -> float:
    """walletgate's open-loop p99 minus ``reference``'s, at the same rate."""
    ours = results.select(OPEN, scenario, "walletgate", basis)
    theirs = results.select(OPEN, scenario, reference, basis)
    if not ours or not theirs:
        return math.nan
    return median_latency(ours, 99.0) - median_latency(theirs, 99.0)


def scale_costs(results: Results, scenario: str) -> list[tuple[str, float, float]]:
    """(target, offered requests/s, CPU µs per request of walletgate and its stores) per
    deployment of the scale section, in the order they ran; medians over the rounds."""
    out = []
    for name in scale_targets(results):
        groups = results.targets[name].groups
        cell = results.select(SCALE, scenario, name)
        per_round = [cpu_per_request([m], groups) for m in cell]
        offered = median([m.offered_rate or m.load.throughput for m in cell])
        out.append((name, offered, median(per_round)))
    return out


def scale_targets(results: Results) -> list[str]:
    """The deployments of the scale section, in the order they ran."""
    seen: dict[str, None] = {}
    for m in results.measurements:
        if m.section == SCALE:
            seen.setdefault(m.target, None)
    return list(seen)
