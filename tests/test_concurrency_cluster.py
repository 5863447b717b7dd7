"""The concurrency proof on a 3-node Redis Cluster (see tests/test_concurrency.py).

A module of its own so that its three gateways do not run next to the single-node
ones: six gateways' connection pools would exceed the test PostgreSQL's connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.cluster import ValkeyNode, flush_cluster
from tests.support.devnet import Devnet
from tests.support.fleet import Fleet
from tests.support.spender_fleet import (
    document,
    fresh_recipient,
    spender_fleet,
    transfer,
    worth,
)
from tests.test_concurrency import (
    PARALLEL,
    PROOF_ENV,
    UNIT_CAP,
    assert_exact_unit_outcome,
    assert_random_outcome,
    random_amounts,
    run_scenario,
)


@pytest_asyncio.fixture(scope="module")
async def cluster_fleet(
    postgres_server_url: str,
    migrated_template: str,
    cluster_nodes: list[ValkeyNode],
    redis_cluster_url: str,
    devnet: Devnet,
) -> AsyncIterator[Fleet]:
    flush_cluster(cluster_nodes)
    servers = (postgres_server_url, migrated_template, redis_cluster_url, devnet)
    async with spender_fleet(*servers, extra_env=PROOF_ENV) as running:
        yield running


async def test_200_parallel_spends_on_a_redis_cluster(cluster_fleet: Fleet, devnet: Devnet) -> None:
    outcome = await run_scenario(cluster_fleet, devnet, "unit", UNIT_CAP, [1] * PARALLEL)
    assert_exact_unit_outcome(outcome)


async def test_random_amounts_on_a_redis_cluster(cluster_fleet: Fleet, devnet: Devnet) -> None:
    cap, amounts = random_amounts(55)
    outcome = await run_scenario(cluster_fleet, devnet, "random-55", cap, amounts)
    print(
        f"cluster seed 55: cap {cap} wei, {len(outcome.committed)} committed, "
        f"overspend {outcome.overspend}"
    )
    assert_random_outcome(outcome)


async def test_a_flushed_cluster_rebuilds_before_the_next_reservation(
    cluster_fleet: Fleet, devnet: Devnet, cluster_nodes: list[ValkeyNode]
) -> None:
    cluster_fleet.apply(document(devnet.chain_id, "rebuild", worth(100, 10)))
    recipient = fresh_recipient()
    for i in range(9):
        reply = await cluster_fleet.rpc(i, "eth_sendTransaction", transfer(recipient, 10))
        assert "result" in reply, reply
    flush_cluster(cluster_nodes)
    refused = await cluster_fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 20))
    assert refused["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert "result" in await cluster_fleet.rpc(2, "eth_sendTransaction", transfer(recipient, 10))
    assert await devnet.balance(recipient) == 100
