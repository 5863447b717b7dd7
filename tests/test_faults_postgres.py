"""Fault injection: PostgreSQL crashes mid-load, then comes back.

Two gateways run on a private PostgreSQL (immediate shutdown, SIGQUIT: no checkpoint,
every client cut off, as in a crash) and the session's Redis, while eight agents spend
through them. While the database is gone no audit row can be made durable, so every
spend is refused with the "unavailable" error (-32002) and none reaches the backend;
reads, which need no audit row, keep working. When the database returns (after crash
recovery), the same gateway processes resume: nothing is restarted. Every spend that
was forwarded has its audit row, and every outcome queued while the database was down
lands once it is back, so no row is left pending. See tests/support/fault_checks.py for
the checks every fault scenario ends with.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.fault_backend import FaultyBackend
from tests.support.fault_checks import check_ledger
from tests.support.fault_world import World, fault_world
from tests.support.faults import PrivatePostgres, private_postgres
from tests.support.servers import with_database
from tests.support.spender_fleet import worth
from walletgate.storage.migrations import apply_migrations

CAP = worth(8_000, 8)  # wei per wallet: about eight spends of VALUES fit, fees included
VALUES = (800, 1_200)
TEMPLATE = "wg_faults_template"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres: PrivatePostgres, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[World]:
    admin = await asyncpg.connect(postgres.url)
    try:
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    await apply_migrations(with_database(postgres.url, TEMPLATE))
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    async with (
        FaultyBackend(devnet.url) as backend,
        fault_world(
            postgres_server_url=postgres.url,
            migrated_template=TEMPLATE,
            redis_url=redis_server_url,
            devnet=devnet,
            backend=backend,
        ) as running,
    ):
        yield running


async def test_postgres_crashes_mid_load_and_walletgate_resumes_without_a_restart(
    world: World, postgres: PrivatePostgres, redis_server_url: str
) -> None:
    scenario = await world.begin("postgres-outage", CAP)
    agents = {s.agent for s in world.spenders}
    load = world.load(values=VALUES, seed=2)
    await load.start()
    await load.until(
        "a quarter of the caps spent",
        lambda: sum(s.succeeded for s in load.sent) >= 2 * len(agents),
    )
    postgres.crash()
    down = time.monotonic()
    await load.until(
        "spends refused while PostgreSQL is down",
        lambda: sum(s.unavailable for s in load.after(down)) >= 2 * len(agents),
    )
    spender = world.spenders[0]
    read = await world.rpc(0, spender.agent, "eth_getBalance", [spender.address, "latest"])
    postgres.start()
    up = time.monotonic()
    await load.until("every agent spent its budget", load.finished)
    sent = await load.stop()
    # Outcomes queued while the database was down land once it is back: no row is left
    # pending, not even that of a spend refused because its row seemed lost, which the
    # database committed all the same (the connection died during COMMIT).
    await world.outcomes_written(s.raw for s in sent)

    witnesses = await scenario.witnesses(sent)
    tally = check_ledger(witnesses, CAP, settled=True)
    outage = [s for s in sent if down < s.started and s.ended < up]
    assert outage and all(s.unavailable for s in outage), [s.reply for s in outage]
    assert int(str(read["result"]), 16) > 0
    out = await world.reconcile("--pending-older-than", "1s")
    assert re.search(r"^reconcile: 0 to reconcile", out, re.M), out
    await world.counters_agree(witnesses, scenario.rule)
    assert world.exited() == []
    print(f"postgres crashed mid-load: {tally.line()}; {len(outage)} spends during the outage")
