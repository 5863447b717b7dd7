"""The report's scaling sections: more wallets, a larger audit table, more workers."""

from __future__ import annotations

import math

from bench.report_format import md_table, pct_text, rate_text, times_text
from bench.report_measures import cpu_per_request, scale_costs
from bench.results import SCALE, WORKERS, Results
from bench.stats import median, ratio


def scale_section(results: Results) -> list[str]:
    """Decision cost and whole-spend cost across the scale deployments."""
    rows = []
    for scenario in ("spend_allowed", "spend_refused"):
        costs = scale_costs(results, scenario)
        if not costs:
            continue
        first_cost = costs[0][2]
        for name, rate_value, cost in costs:
            cell = results.select(SCALE, scenario, name)
            own = median([cpu_per_request([m], ["proxy"]) for m in cell])
            p50 = median([m.load.latency_ms.get("p50", math.nan) for m in cell])
            p99 = median([m.load.latency_ms.get("p99", math.nan) for m in cell])
            rows.append(
                (
                    results.scenarios[scenario],
                    results.targets[name].label,
                    rate_text(rate_value),
                    f"{own:,.0f}",
                    f"{cost:,.0f}",
                    pct_text(cost / first_cost - 1),
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                )
            )
    header = (
        "scenario",
        "deployment",
        "offered",
        "walletgate CPU µs/req",
        "+ PostgreSQL + Redis",
        "vs first",
        "p50 ms",
        "p99 ms",
    )
    return [
        "### Scale: decision cost with more wallets and a larger audit table",
        "",
        "The decision itself (decode + evaluate, the pure core), in-process: best of 7 "
        "timings of 2,000 decisions each, the sizes interleaved; µs per decision, and the "
        "change from the smallest policy set:",
        "",
        *md_table(("wallets", "allowed spend", "refused spend"), _decision_rows(results)),
        "The whole spend through walletgate, against separate deployments (own database, "
        "own Redis database), each in open loop at the same fixed rate (half the main "
        "deployment's saturation rate, so that the CPU per request compares like with "
        "like: under saturation it moves with how much each run happened to batch), "
        "rounds interleaved; CPU per request and latencies are medians over the rounds:",
        "",
        *md_table(header, rows),
    ]


def _decision_rows(results: Results) -> list[tuple[str, ...]]:
    counts = sorted(results.decisions, key=int)
    rows = []
    for wallets in counts:
        cells = []
        for scenario in ("spend_allowed", "spend_refused"):
            value = results.decisions[wallets].get(scenario, math.nan)
            first = results.decisions[counts[0]].get(scenario, math.nan)
            cells.append(f"{value:.1f} ({pct_text(value / first - 1)})")
        rows.append((f"{int(wallets):,}", *cells))
    return rows


def workers_section(results: Results) -> list[str]:
    """One process against ``--workers N``."""
    # One process first, then the --workers one.
    names = sorted(
        {m.target for m in results.measurements if m.section == WORKERS},
        key=lambda name: (name != "walletgate", name),
    )
    if not names:
        return []
    rows = []
    for scenario in sorted({m.scenario for m in results.measurements if m.section == WORKERS}):
        rates = [results.throughput(WORKERS, scenario, n) for n in names]
        rows.append(
            (
                results.scenarios[scenario],
                *(rate_text(r) for r in rates),
                times_text(ratio(rates[-1], rates[0])),
            )
        )
    header = ("scenario", *(results.targets[n].label for n in names), "scaling")
    return [
        "### `walletgate serve --workers N`",
        "",
        f"Closed loop with {2 * results.config['connections']} connections. Both share one "
        "PostgreSQL and one Redis, which run on the same two cores.",
        "",
        *md_table(header, rows),
    ]
