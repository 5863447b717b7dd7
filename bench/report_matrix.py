"""The report's side-by-side sections: every scenario on the backend, nginx, the
pass-through and walletgate (throughput, latency closed and open loop, CPU)."""

from __future__ import annotations

import math

from bench.report_format import md_table, ms_text, rate_text, times_text
from bench.report_measures import cpu_per_request, median_latency, present_targets
from bench.results import CLOSED, OPEN, OWN_RATE, PASS_RATE, Results
from bench.stats import PERCENTILES, label, ratio, relative_spread

MATRIX = ("direct", "nginx", "passthrough", "walletgate")
CPU_GROUPS = ("proxy", "backend", "postgres", "redis")


def throughput_section(results: Results) -> list[str]:
    """Closed-loop saturation throughput, every scenario on every matrix target."""
    names = present_targets(results, MATRIX)
    header = (
        "scenario",
        *(results.targets[n].label for n in names),
        "walletgate ÷ pass-through",
        "spread",
    )
    rows = []
    for scenario, title in results.scenarios.items():
        cells = [rate_text(results.throughput(CLOSED, scenario, n)) for n in names]
        spread = relative_spread(
            [m.load.throughput for m in results.select(CLOSED, scenario, "walletgate")]
        )
        rows.append(
            (
                title,
                *cells,
                times_text(
                    ratio(
                        results.throughput(CLOSED, scenario, "walletgate"),
                        results.throughput(CLOSED, scenario, "passthrough"),
                    )
                ),
                "–" if math.isnan(spread) else f"{spread:.0%}",
            )
        )
    return [
        "### Throughput at saturation (closed loop)",
        "",
        "Requests per second (a batch of 10 is one request). *spread*: how far apart "
        "walletgate's rounds were, (max − min) / min.",
        "",
        *md_table(header, rows),
    ]


def closed_latency_section(results: Results) -> list[str]:
    """Closed-loop latency percentiles, every scenario on every matrix target."""
    rows = []
    for scenario, title in results.scenarios.items():
        for name in present_targets(results, MATRIX):
            cell = results.select(CLOSED, scenario, name)
            if cell:
                rows.append(
                    (
                        title,
                        results.targets[name].label,
                        *(ms_text(median_latency(cell, p)) for p in PERCENTILES),
                    )
                )
    header = ("scenario", "target", *(f"{label(p)} ms" for p in PERCENTILES))
    return [
        "### Latency at saturation (closed loop)",
        "",
        "Queueing dominates here: every connection always has a request waiting.",
        "",
        *md_table(header, rows),
    ]


def open_section(results: Results) -> list[str]:
    """Open-loop latency at the fixed rates, and what walletgate adds."""
    rows = []
    for scenario, title in results.scenarios.items():
        for basis in (PASS_RATE, OWN_RATE):
            for name in present_targets(results, MATRIX):
                for m in results.select(OPEN, scenario, name, basis):
                    p99 = m.load.latency_ms["p99"]
                    added = (
                        (
                            ms_text(p99 - _p99(results, scenario, "direct", basis)),
                            ms_text(p99 - _p99(results, scenario, "passthrough", basis))
                            if name != "passthrough"
                            else "",
                        )
                        if name != "direct"
                        else ("", "")
                    )
                    rows.append(
                        (
                            title,
                            results.targets[name].label,
                            f"{m.offered_rate:,.0f}/s ({basis})",
                            rate_text(m.load.throughput),
                            *(
                                ms_text(m.load.latency_ms.get(label(p), math.nan))
                                for p in PERCENTILES
                            ),
                            *added,
                        )
                    )
    header = (
        "scenario",
        "target",
        "offered",
        "answered",
        *(f"{label(p)} ms" for p in PERCENTILES),
        "p99 added vs backend",
        "vs pass-through",
    )
    out = [
        "### Latency at a fixed rate (open loop)",
        "",
        "Requests start on schedule whether or not earlier ones were answered; latency is "
        "counted from the scheduled start, so queueing in front of a slow target counts. "
        "The rate is half the pass-through's saturation rate for the scenario (the issue's "
        "target), and a quarter of walletgate's own saturation rate (a load it carries with "
        "room to spare), where the backend and the pass-through ran too for comparison.",
        "",
        *md_table(header, rows),
    ]
    if results.skipped:
        out += ["Not run (the target cannot carry the rate):", ""]
        out += [f"- {item}" for item in results.skipped] + [""]
    return out


def _p99(results: Results, scenario: str, target: str, basis: str) -> float:
    return median_latency(results.select(OPEN, scenario, target, basis), 99.0)


def cpu_section(results: Results) -> list[str]:
    """CPU time per request, split by process group."""
    rows = []
    for scenario, title in results.scenarios.items():
        for name in present_targets(results, MATRIX):
            cell = results.select(CLOSED, scenario, name)
            if not cell:
                continue
            groups = results.targets[name].groups
            values = [cpu_per_request(cell, [g]) if g in groups else math.nan for g in CPU_GROUPS]
            rows.append(
                (
                    title,
                    results.targets[name].label,
                    *("–" if math.isnan(v) else f"{v:,.0f}" for v in values),
                    f"{cpu_per_request(cell, groups):,.0f}",
                )
            )
    header = ("scenario", "target", "proxy", "stub backend", "PostgreSQL", "Redis", "total")
    return [
        "### CPU time per request (µs, closed loop)",
        "",
        "From `/proc/<pid>/stat` (user + system, the process and its children) of each "
        "server process, over the measurement, divided by the requests answered.",
        "",
        *md_table(header, rows),
    ]
