"""The report's look inside: trips to the stores, profiles, the load generators' own
limits."""

from __future__ import annotations

import math
from typing import Any

from bench.report_format import md_table, ms_text, rate_text, times_text
from bench.results import CLOSED, OPEN, Measurement, Results
from bench.stats import ratio


def anatomy_section(results: Results) -> list[str]:
    """Trips to the stores per request."""
    if not results.anatomy:
        return []
    rows = [
        (
            results.scenarios.get(name, name),
            f"{counts['redis_round_trips']:.1f}",
            f"{counts['redis_commands']:.1f}",
            f"{counts['postgres_transactions']:.1f}",
        )
        for name, counts in results.anatomy.items()
    ]
    header = (
        "scenario",
        "Redis round trips",
        "Redis commands (incl. inside scripts)",
        "PostgreSQL write transactions",
    )
    return [
        "### Trips to the stores per request",
        "",
        "Counted by the servers (Valkey's `total_reads_processed` and `commandstats`, "
        "PostgreSQL's next transaction id) over requests sent one at a time, so group commit "
        "shares nothing. The aiohttp pass-through makes none of these trips.",
        "",
        *md_table(header, rows),
    ]


def profile_section(results: Results) -> list[str]:
    """py-spy profiles of the spend and read paths."""
    return [
        *_one_profile(results.profile, "allowed-spend path", "allowed spends"),
        *_one_profile(results.read_profile, "read path", "reads (eth_blockNumber)"),
    ]


def _one_profile(p: dict[str, Any], path: str, load: str) -> list[str]:
    if not p:
        return []
    samples = p["samples"]
    possible = p["seconds"] * p["rate_hz"]
    components = sorted(p["components"].items(), key=lambda item: -item[1])
    rows = [(name, f"{count / samples:.1%}") for name, count in components]
    functions = [(f"`{name}`", f"{count / samples:.1%}") for name, count in p["functions"].items()]
    return [
        f"### Profile of the {path}",
        "",
        f"py-spy, {p['rate_hz']} Hz for {p['seconds']:g} s, of walletgate saturated with "
        f"{load}: {samples:,} samples, so the process was busy "
        f"{samples / possible:.0%} of the time (py-spy does not sample idle time). "
        "Each sample is charged to the component nearest the top of its stack; "
        "socket writes and event-loop callbacks are charged to their caller.",
        "",
        *md_table(("component", "share of samples"), rows),
        "Across components (a sample may count in several rows):",
        "",
        *md_table(
            ("cost", "share of samples"),
            [(k, f"{v / samples:.1%}") for k, v in p.get("cross_cutting", {}).items()],
        ),
        "walletgate functions, inclusive (time with the function on the stack):",
        "",
        *md_table(("function", "share of samples"), functions[:15]),
    ]


def generator_section(results: Results) -> list[str]:
    """Evidence that the load generators were not the bottleneck."""
    direct = results.throughput(CLOSED, "reads", "direct")
    passthrough = results.throughput(CLOSED, "reads", "passthrough")
    walletgate = results.throughput(CLOSED, "reads", "walletgate")
    ceiling = results.calibration.get("python_generator_ceiling", math.nan)
    opened = [m for m in results.measurements if m.section == OPEN]
    highest = max(opened, key=lambda m: m.offered_rate or 0.0, default=None)
    lags = [m.load.generator_lag_ms for m in opened]
    return [
        "### The load generators are not the bottleneck",
        "",
        f"- wrk drove the stub backend directly at {rate_text(direct)} reads: "
        f"{times_text(ratio(direct, passthrough))} the aiohttp pass-through and "
        f"{times_text(ratio(direct, walletgate))} walletgate. (nginx comes close to that "
        "ceiling, so its numbers are a lower bound.)",
        f"- The open-loop generator (Python, its own process) reached {rate_text(ceiling)} "
        "against the stub in closed-loop mode. The highest rate it was asked to offer was "
        f"{rate_text(highest.offered_rate or math.nan) if highest else '–'}, at "
        f"{highest.load.generator_cpu_us if highest else math.nan:.0f} µs of its own CPU "
        f"per request ({_share_of_core(highest)} of a core). Its scheduling lag (how late "
        f"it fired, which is not counted in the latencies) was at most "
        f"{ms_text(max(lags, default=math.nan))} ms at p99.",
        "",
    ]


def _share_of_core(measurement: Measurement | None) -> str:
    if measurement is None or not measurement.offered_rate:
        return "–"
    return f"{measurement.load.generator_cpu_us * measurement.offered_rate / 1e6:.0%}"
