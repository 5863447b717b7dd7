"""Fault injection: a backend that is slow, hangs, or resets the connection.

Eight agents spend through two gateways (``WALLETGATE_BACKEND_TIMEOUT`` of 2 s) in front
of a backend that, call by call, answers normally, answers slowly (within the timeout),
hangs past the timeout and passes the transaction on afterwards, passes it on and then
resets the connection (mined, but walletgate never hears back), or resets the
connection without passing it on (never mined).

- Slow answers are waited for: those spends commit.
- The gateway's timeout fires on every hung call; hung and reset calls are answered
  with "backend_unknown" (-32002), and their reservations keep counting: Redis, and a
  counter rebuilt from PostgreSQL, hold them until they are reconciled.
- ``walletgate reconcile`` settles every one of them against the devnet: the mined ones
  are committed, the ones whose nonce the agent then used for another transaction are
  refunded, and nothing is left unknown.
See tests/support/fault_checks.py for the checks every fault scenario ends with.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.fault_backend import Fault, FaultyBackend
from tests.support.fault_checks import check_ledger
from tests.support.fault_load import Sent
from tests.support.fault_world import World, fault_world
from tests.support.spender_fleet import worth

CAP = worth(8_000, 8)  # wei per wallet: about eight spends of VALUES fit, fees included
VALUES = (500, 900)
TIMEOUT = 2.0  # the gateways' backend timeout (seconds)
SLOW, HANG = 0.25, TIMEOUT + 1.0
#: How often each fault happens, per spending call.
WEIGHTS = {Fault.PASS: 45, Fault.SLOW: 15, Fault.HANG: 12, Fault.RESET: 16, Fault.DROP: 12}


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[World]:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    async with (
        FaultyBackend(devnet.url, slow_seconds=SLOW, hang_seconds=HANG) as backend,
        fault_world(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=redis_server_url,
            devnet=devnet,
            backend=backend,
            env={"WALLETGATE_BACKEND_TIMEOUT": str(TIMEOUT)},
        ) as running,
    ):
        yield running


def faults_by_seed(seed: int) -> Any:
    """A fault per call, drawn from WEIGHTS (deterministic for a seed)."""
    chooser = random.Random(seed)
    faults, weights = list(WEIGHTS), list(WEIGHTS.values())
    return lambda _call: chooser.choices(faults, weights)[0]


async def test_slow_hung_and_reset_backends_then_reconcile(world: World) -> None:
    scenario = await world.begin("backend-faults", CAP)
    world.backend.choose = faults_by_seed(3)
    load = world.load(values=VALUES, seed=3, resolve_seconds=HANG + 1.0)
    await load.start()
    try:
        await load.until("every agent spent its budget", load.finished, within=120)
    finally:
        sent = await load.stop()
        world.backend.choose = lambda _call: Fault.PASS
    outside = await world.use_open_nonces(sent)

    witnesses = await scenario.witnesses(sent, outside)
    before = check_ledger(witnesses, CAP, settled=False)
    fault_of = {r.raw: r.fault for r in witnesses.received}
    by_fault: dict[Fault, list[Sent]] = {fault: [] for fault in Fault}
    for s in sent:
        if s.raw in fault_of:
            by_fault[fault_of[s.raw]].append(s)
    assert all(by_fault.values()), {f: len(calls) for f, calls in by_fault.items()}
    assert all(s.succeeded for s in by_fault[Fault.SLOW]), "a slow answer was not waited for"
    for s in by_fault[Fault.HANG]:
        assert s.reason == "backend_unknown" and "timed out" in s.error["message"], s.reply
    for s in by_fault[Fault.RESET] + by_fault[Fault.DROP]:
        assert s.reason == "backend_unknown" and "connection failed" in s.error["message"]
    unknown = [s for s in sent if (row := witnesses.row(s.raw)) and row.status == "unknown"]
    assert len(unknown) == len(by_fault[Fault.HANG] + by_fault[Fault.RESET] + by_fault[Fault.DROP])
    await world.counters_agree(witnesses, scenario.rule)  # unknowns count

    out = await world.reconcile()
    mined = {m.tx_hash for m in witnesses.mined}
    committed = sum(s.tx_hash in mined for s in unknown)
    summary = f"{len(unknown)} to reconcile: commit {committed}, refund {len(unknown) - committed}"
    assert f"{summary}, 0 left as they are" in out, out
    assert re.search(r"^reconcile: 0 to reconcile", await world.reconcile(), re.M)  # settled once

    witnesses = await scenario.witnesses(sent, outside)
    after = check_ledger(witnesses, CAP, settled=True)
    await world.counters_agree(witnesses, scenario.rule)
    assert world.exited() == []
    counts = ", ".join(f"{fault} {len(calls)}" for fault, calls in by_fault.items())
    print(f"backend faults: {after.line()}; faults: {counts}; reconcile: {summary}")
    assert before.mined == after.mined
