"""The decision itself, timed in-process: decode + evaluate (the pure core) of the bench's
spends under policy sets of every size.

End to end, a spend's cost also holds Redis and PostgreSQL trips and the HTTP work,
which the shared machine makes noisy; this isolates what depends on the policy set. It
is the timeit method: many decisions per timing, the best of several timings, the
sizes interleaved so a slow moment of the machine does not land on one of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from bench.policyset import BENCH_AGENT, policy_document
from bench.scenarios import Scenario
from walletgate.config.documents import compile_document
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import PolicySet
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call

#: A fixed moment inside the policies' price validity.
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def decide_once(policies: PolicySet, scenario: Scenario, chain_id: int) -> None:
    """What the request path does between parsing and the counters, for one spend."""
    body = scenario.body
    decoded = decode_call(body["method"], body["params"], chain_id=chain_id)
    evaluate(SpendRequest(BENCH_AGENT, decoded, chain_id), policies, NOW)


def _timed(policies: PolicySet, scenario: Scenario, chain_id: int, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        decide_once(policies, scenario, chain_id)
    return (time.perf_counter() - started) / count * 1e6


def compile_sets(wallet_counts: Sequence[int], chain_id: int) -> dict[int, PolicySet]:
    """The compiled policy set of every fleet size (the 100,000-wallet one takes a while)."""
    return {w: compile_document(policy_document(w, chain_id), 1) for w in wallet_counts}


def decision_costs(
    sets: Mapping[int, PolicySet],
    scenarios: Sequence[Scenario],
    chain_id: int,
    *,
    count: int = 2000,
    repeats: int = 7,
) -> dict[int, dict[str, float]]:
    """Microseconds per decision: wallet count -> scenario name -> best of ``repeats``."""
    best: dict[int, dict[str, float]] = {w: {} for w in sets}
    for repeat in range(repeats):
        order = list(sets)
        shift = repeat % len(order)
        for wallets in order[shift:] + order[:shift]:
            for scenario in scenarios:
                value = _timed(sets[wallets], scenario, chain_id, count)
                previous = best[wallets].get(scenario.name, float("inf"))
                best[wallets][scenario.name] = min(previous, value)
    return best
