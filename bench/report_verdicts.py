"""The issue's targets, each judged on one run, and the report section that lists them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report_format import md_table, pct_text, rate_text, times_text
from bench.report_measures import added_p99, cpu_per_request, scale_costs, scale_targets
from bench.results import CLOSED, OWN_RATE, WORKERS, Results
from bench.stats import ratio

FLAT = 0.10  # "flat within 10%"


@dataclass(frozen=True)
class Verdict:
    """One target of the issue: what it measures, the target, this run's result, met."""

    measure: str
    target: str
    result: str
    met: bool | None  # None: could not be judged in this run


def _throughput_verdict(results: Results, scenario: str, measure: str, at_least: float) -> Verdict:
    ours = results.throughput(CLOSED, scenario, "walletgate")
    theirs = results.throughput(CLOSED, scenario, "passthrough")
    value = ratio(ours, theirs)
    met = None if math.isnan(value) else value >= at_least
    text = f"{times_text(value)} ({rate_text(ours)} ÷ {rate_text(theirs)})"
    return Verdict(measure, f"≥ {at_least:g}×", text, met)


def _cpu_verdict(results: Results, scenario: str, measure: str, at_most: float) -> Verdict:
    """CPU per request of walletgate and everything it uses (its stores, the stub)
    against the pass-through's and the stub's, under saturation."""
    costs = []
    for name in ("walletgate", "passthrough"):
        groups = results.targets[name].groups if name in results.targets else ()
        costs.append(cpu_per_request(results.select(CLOSED, scenario, name), groups))
    value = ratio(costs[0], costs[1])
    met = None if math.isnan(value) else value <= at_most
    text = f"{times_text(value)} ({costs[0]:,.0f} ÷ {costs[1]:,.0f} µs)"
    return Verdict(measure, f"≤ {at_most:g}×", text, met)


def _own_rate_p99_verdict(results: Results, scenario: str, measure: str, at_most: float) -> Verdict:
    """p99 added against the backend directly, at a quarter of walletgate's own
    saturation rate (open loop, the same rate offered to both)."""
    added = added_p99(results, scenario, "direct", OWN_RATE)
    met = None if math.isnan(added) else added <= at_most
    text = "not measured" if math.isnan(added) else f"{added:+.2f} ms"
    return Verdict(measure, f"≤ +{at_most:g} ms", text, met)


def _workers_verdict(results: Results, scenario: str, measure: str, at_least: float) -> Verdict:
    """``--workers N`` against one process, side by side in the workers section."""
    names = {m.target for m in results.measurements if m.section == WORKERS}
    many = sorted(name for name in names if name != "walletgate")
    one = results.throughput(WORKERS, scenario, "walletgate")
    more = results.throughput(WORKERS, scenario, many[0]) if many else math.nan
    value = ratio(more, one)
    met = None if math.isnan(value) else value >= at_least
    text = f"{times_text(value)} ({rate_text(more)} ÷ {rate_text(one)})"
    return Verdict(measure, f"≥ {at_least:g}×", text, met)


def _decision_verdict(results: Results) -> Verdict | None:
    counts = sorted(results.decisions, key=int)
    if len(counts) < 2:
        return None
    first, last = results.decisions[counts[0]], results.decisions[counts[-1]]
    changes = [(s, last[s] / first[s] - 1) for s in first if s in last]
    return Verdict(
        f"decision cost (decode + evaluate), {int(counts[0]):,} → {int(counts[-1]):,} wallets",
        "flat within 10%",
        "; ".join(f"{s}: {pct_text(c)}" for s, c in changes),
        all(abs(c) <= FLAT for _, c in changes),
    )


def _flat_verdict(results: Results, measure: str, first: str, last: str) -> Verdict:
    changes = []
    for scenario in ("spend_allowed", "spend_refused"):
        costs = {name: cost for name, _rate_value, cost in scale_costs(results, scenario)}
        if first in costs and last in costs:
            changes.append((scenario, costs[last] / costs[first] - 1))
    if not changes:
        return Verdict(measure, "flat within 10%", "not measured", None)
    text = "; ".join(f"{s}: CPU/request {pct_text(c)}" for s, c in changes)
    return Verdict(measure, "flat within 10%", text, all(abs(c) <= FLAT for _, c in changes))


def verdicts(results: Results) -> list[Verdict]:
    """Each target of the issue, judged on this run."""
    workers = results.config.get("workers", 2)
    out = [
        # Issue 13's table, in its order: closed-loop throughput against the aiohttp
        # pass-through in the same run, CPU per request, p99 added, --workers scaling.
        _throughput_verdict(results, "reads", "reads ÷ pass-through", 0.85),
        _throughput_verdict(results, "balance", "cached eth_getBalance ÷ pass-through", 1.5),
        _throughput_verdict(results, "batch10", "batches of 10 reads ÷ pass-through", 1.0),
        _throughput_verdict(results, "spend_allowed", "allowed spends ÷ pass-through", 0.3),
        _cpu_verdict(
            results,
            "spend_allowed",
            "CPU per allowed spend (walletgate + PostgreSQL + Redis + stub) ÷ the "
            "pass-through's (pass-through + stub)",
            4.0,
        ),
        _own_rate_p99_verdict(
            results, "reads", "p99 added at a quarter of walletgate's own saturation, reads", 1.0
        ),
        _own_rate_p99_verdict(
            results,
            "spend_allowed",
            "p99 added at a quarter of walletgate's own saturation, allowed spends",
            3.0,
        ),
        _workers_verdict(results, "reads", f"`--workers {workers}` over one process, reads", 1.7),
    ]
    decided = _decision_verdict(results)
    if decided is not None:
        out.append(decided)
    deployments = scale_targets(results)
    plain = [d for d in deployments if not d.endswith("-audit")]
    audit = [d for d in deployments if d.endswith("-audit")]
    whole = "whole spend at one fixed rate (CPU of walletgate, PostgreSQL and Redis per request)"
    if len(plain) >= 2:
        first, last = plain[0], plain[-1]
        wallets = f"{_wallets(results, first)} → {_wallets(results, last)} wallets"
        out.append(_flat_verdict(results, f"{whole}, {wallets}", first, last))
    if audit:
        base = audit[0].removesuffix("-audit")
        if base not in results.targets:
            base = "walletgate"
        rows = results.targets[audit[0]].label.rsplit(", ", 1)[-1].removesuffix(")")
        out.append(_flat_verdict(results, f"{whole}, 0 → {rows}", base, audit[0]))
    return out


def _wallets(results: Results, name: str) -> str:
    label_text = results.targets[name].label
    return label_text.split("(", 1)[1].split(" wallets", 1)[0] if "(" in label_text else name


def verdict_section(results: Results) -> list[str]:
    """The targets of the issue and whether this run met them."""
    rows = [
        (v.measure, v.target, v.result, {True: "yes", False: "**no**", None: "–"}[v.met])
        for v in verdicts(results)
    ]
    intro = (
        "Issue 13's targets, each a ratio or a difference measured side by side in this run: "
        "throughput at saturation against the aiohttp pass-through (walletgate ÷ "
        "pass-through), CPU time per request of every process a request uses, p99 latency "
        "added against the backend directly at a quarter of walletgate's own saturation "
        "rate, and `--workers` against one process."
    )
    return [
        "### Targets",
        "",
        intro,
        "",
        *md_table(("measure", "target", "this run", "met"), rows),
    ]
