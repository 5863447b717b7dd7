"""Fault injection: Redis stopped mid-load, then back EMPTY.

Three gateways share a private Valkey (killed with SIGKILL while eight agents spend
through them) and a PostgreSQL. While Redis is gone, every spend is refused with the
"unavailable" error (-32002) and none reaches the backend; reads are refused too, except
on the gateway configured with ``WALLETGATE_READS_FAIL_OPEN``, which keeps serving the
agents it knows. Redis then comes back with nothing in it: the counters are rebuilt from
the audit log before the next reservation, and the agents, which keep spending until
their caps refuse them, overspend nothing. See tests/support/fault_checks.py for the
checks every fault scenario ends with.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.devnet import Devnet
from tests.support.fault_backend import FaultyBackend
from tests.support.fault_checks import check_ledger
from tests.support.fault_world import World, fault_world
from tests.support.faults import PrivateValkey, private_valkey
from tests.support.gateway import free_port
from tests.support.spender_fleet import worth

CAP = worth(8_000, 8)  # wei per wallet: about eight spends of VALUES fit, fees included
VALUES = (800, 1_200)


@pytest.fixture(scope="module")
def valkey() -> Iterator[PrivateValkey]:
    with private_valkey() as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str, migrated_template: str, devnet: Devnet, valkey: PrivateValkey
) -> AsyncIterator[World]:
    async with (
        FaultyBackend(devnet.url) as backend,
        fault_world(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=valkey.url,
            devnet=devnet,
            backend=backend,
        ) as running,
    ):
        yield running


async def read(world: World, gateway: int, agent: str) -> dict[str, Any]:
    """``eth_getBalance`` of the agent's wallet through gateway ``gateway``."""
    address = next(s.address for s in world.spenders if s.agent == agent)
    return await world.rpc(gateway, agent, "eth_getBalance", [address, "latest"])


async def test_redis_killed_mid_load_fails_closed_and_comes_back_empty(
    world: World, valkey: PrivateValkey
) -> None:
    fail_open = await world.add_gateway(free_port(), {"WALLETGATE_READS_FAIL_OPEN": "1"})
    scenario = await world.begin("redis-outage", CAP)
    agents = {s.agent for s in world.spenders}
    load = world.load(values=VALUES, seed=1)
    await load.start()
    await load.until(
        "a quarter of the caps spent, every agent known to every gateway",
        lambda: (
            sum(s.succeeded for s in load.sent) >= 2 * len(agents)
            and {s.agent for s in load.sent if s.gateway == fail_open} == agents
        ),
    )
    valkey.kill()
    down = time.monotonic()
    await load.until(
        "spends refused while Redis is down",
        lambda: sum(s.unavailable for s in load.after(down)) >= 2 * len(agents),
    )
    agent = world.spenders[0].agent
    refused_read = await read(world, 0, agent)
    served_read = await read(world, fail_open, agent)
    valkey.start()  # empty: no persistence
    up = time.monotonic()
    await load.until("every agent spent its budget", load.finished)
    sent = await load.stop()

    witnesses = await scenario.witnesses(sent)
    tally = check_ledger(witnesses, CAP, settled=True)
    outage = [s for s in sent if down < s.started and s.ended < up]
    assert outage and all(s.unavailable for s in outage), [s.reply for s in outage]
    spent_before = {s.agent for s in sent if s.succeeded and s.ended < down}
    capped_after = {s.agent for s in load.after(up) if s.reason == "cumulative_cap_exceeded"}
    # Their caps refused them on counters rebuilt with what they spent before the outage.
    assert len(spent_before & capped_after) >= len(agents) // 2, (spent_before, capped_after)
    assert refused_read["error"]["code"] == -32002
    assert int(str(served_read["result"]), 16) > 0
    await world.counters_agree(witnesses, scenario.rule)
    assert world.exited() == []
    print(f"redis killed mid-load: {tally.line()}; {len(outage)} spends during the outage")
