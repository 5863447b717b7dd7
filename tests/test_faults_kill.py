"""Fault injection: every gateway SIGKILLed with many spends in flight, then restarted.

Twelve agents spend through three gateways in front of a slow backend (each spend
spends a while there), so when all three gateways are killed at once many spends are
somewhere on their way: reserved, logged, forwarded or answered. The backend finishes
what it received, so some of them are mined after their gateway died. The gateways
are restarted on the same ports and the agents carry on until their caps refuse them.

Afterwards every transaction the devnet mined has its audit row (the intent row is
durable before forwarding), the counters agree with the audit log (Redis holds the
live rows, less those whose gateway died after writing them and before reserving, plus
reservations without a live row; a counter rebuilt from PostgreSQL holds exactly the
live rows), and ``walletgate reconcile`` settles the rows the dead gateways left
pending. See tests/support/fault_checks.py.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.fault_backend import Fault, FaultyBackend
from tests.support.fault_checks import check_ledger
from tests.support.fault_world import World, fault_world
from tests.support.spender_fleet import worth

CAP = worth(8_000, 8)  # wei per wallet: about eight spends of VALUES fit, fees included
VALUES = (800, 1_200)
SLOW = 0.4  # seconds each spend spends in the backend
AGENTS, GATEWAYS = 12, 3


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[World]:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    async with (
        FaultyBackend(devnet.url, slow_seconds=SLOW) as backend,
        fault_world(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=redis_server_url,
            devnet=devnet,
            backend=backend,
            agents=AGENTS,
            gateways=GATEWAYS,
        ) as running,
    ):
        yield running


async def test_gateways_killed_with_spends_in_flight_lose_no_record(world: World) -> None:
    scenario = await world.begin("killed", CAP)
    world.backend.choose = lambda _call: Fault.SLOW
    load = world.load(values=VALUES, seed=4, resolve_seconds=SLOW + 2.0)
    await load.start()
    try:
        await load.until(
            "a quarter of the caps spent",
            lambda: sum(s.succeeded for s in load.sent) >= 2 * AGENTS,
        )
        for process in world.fleet.processes:
            process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for process in world.fleet.processes:
            process.wait()
        await asyncio.gather(*(world.restart_gateway(i) for i in range(GATEWAYS)))
        await load.until("every agent spent its budget", load.finished, within=120)
    finally:
        sent = await load.stop()
        world.backend.choose = lambda _call: Fault.PASS
    cut_off = [s for s in sent if s.started < killed < s.ended and s.reply is None]
    outside = await world.use_open_nonces(sent)

    witnesses = await scenario.witnesses(sent, outside)
    before = check_ledger(witnesses, CAP, settled=False)
    pending = [r for rows in witnesses.rows.values() for r in rows if r.status == "pending"]
    await world.counters_agree(witnesses, scenario.rule)

    await asyncio.sleep(max(0.0, killed + 1.1 - time.monotonic()))
    out = await world.reconcile("--pending-older-than", "1s")
    assert re.search(
        rf"^reconcile: {len(pending)} to reconcile: .*, 0 left as they are$", out, re.M
    ), out
    witnesses = await scenario.witnesses(sent, outside)
    after = check_ledger(witnesses, CAP, settled=True)
    await world.counters_agree(witnesses, scenario.rule)
    assert world.exited() == []
    assert before.mined == after.mined
    print(
        f"gateways killed: {after.line()}; {len(cut_off)} spends in flight at the kill, "
        f"{len(pending)} rows left pending and reconciled"
    )
    assert cut_off
