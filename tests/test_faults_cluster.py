"""Fault injection: one master of a 3-node Redis Cluster stopped under load.

A private cluster (three masters, no replicas, ``cluster-require-full-coverage no`` so
that the survivors keep serving their own slots once the dead node is declared failed)
backs two gateways. Eight agents spend, four with wallets whose counters live in slots
of the master that is then killed (SIGKILL), four elsewhere. That master is neither the
one holding the shared state version nor the one the gateways were pointed at.

- The wallets of the dead master fail closed: every spend is refused as unavailable
  and none reaches the backend.
- The other wallets keep working: they spend until their caps refuse them.
- The master comes back (same port, its cluster configuration kept, its data gone):
  the counters it served are rebuilt from PostgreSQL and those wallets spend again,
  never past their caps.
See tests/support/fault_checks.py for the checks every fault scenario ends with.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
import pytest_asyncio
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from tests.support.cluster import ValkeyNode, running_cluster
from tests.support.devnet import Devnet
from tests.support.fault_backend import FaultyBackend
from tests.support.fault_checks import check_ledger
from tests.support.fault_load import Load, Sent, Spender
from tests.support.fault_world import World, fault_world
from tests.support.faults import restart
from tests.support.spender_fleet import worth
from walletgate.config.settings import Settings
from walletgate.policies.claims import claim_key
from walletgate.policies.decision import CounterClaim
from walletgate.policies.model import Scope
from walletgate.storage.cache_keys import STATE_VERSION_KEY
from walletgate.storage.counters import group_of
from walletgate.storage.redis_client import REDIS_ERRORS
from walletgate.storage.redis_guard import CacheUnavailable, redis_errors
from walletgate.storage.runtime import connect_redis

CAP = worth(8_000, 8)  # wei per wallet: about eight spends of VALUES fit, fees included
VALUES = (800, 1_200)
PER_SIDE = 4  # agents with wallets on the stopped master, and elsewhere
#: Milliseconds a node may stay silent before the others declare it failed.
NODE_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class Layout:
    """Which master is stopped, and whose wallet counters it serves."""

    victim: int
    on_victim: list[Spender]
    elsewhere: list[Spender]

    @property
    def spenders(self) -> list[Spender]:
        return self.on_victim + self.elsewhere


def counter_tag(spender: Spender) -> str:
    """The hash tag of the spender's wallet counters (walletgate.storage.counters)."""
    key = claim_key(Scope.WALLET, spender.wallet, "budget", "rule", "eth")
    return group_of(
        CounterClaim(key=key, amount=0, limit=0, policy="budget", rule="rule", unit="eth")
    )


def node_index(nodes: list[ValkeyNode], key: str) -> int:
    """The index of the node serving ``key``'s slot."""
    with RedisCluster(host="127.0.0.1", port=nodes[0].port) as client:
        port = client.get_node_from_key(key).port
    return [node.port for node in nodes].index(port)


def layout_of(nodes: list[ValkeyNode]) -> Layout:
    """Pick the master to stop and fresh agents on both sides of it."""
    # Not node 0 (the gateways' way into the cluster), not the state version's.
    state = node_index(nodes, STATE_VERSION_KEY)
    victim = next(i for i in range(1, len(nodes)) if i != state)
    on_victim: list[Spender] = []
    elsewhere: list[Spender] = []
    serial = 0
    while len(on_victim) < PER_SIDE or len(elsewhere) < PER_SIDE:
        spender = Spender.fresh(f"agent{serial}")
        serial += 1
        side = on_victim if node_index(nodes, counter_tag(spender)) == victim else elsewhere
        if len(side) < PER_SIDE:
            side.append(spender)
    return Layout(victim, on_victim, elsewhere)


def cluster_ok(nodes: list[ValkeyNode]) -> bool:
    return all("cluster_state:ok" in str(node.command("CLUSTER", "INFO")) for node in nodes)


def tally_of(load: Load, agent: str, what: Callable[[Sent], bool], since: float = 0.0) -> int:
    return sum(s.agent == agent and what(s) for s in load.after(since))


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[ValkeyNode]]:
    with (
        tempfile.TemporaryDirectory(prefix="walletgate-faults-cluster-") as directory,
        running_cluster(Path(directory)) as started,
    ):
        for node in started:
            node.command("CONFIG", "SET", "cluster-require-full-coverage", "no")
            node.command("CONFIG", "SET", "cluster-node-timeout", NODE_TIMEOUT_MS)
        yield started


@pytest.fixture(scope="module")
def layout(nodes: list[ValkeyNode]) -> Layout:
    return layout_of(nodes)


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str,
    migrated_template: str,
    devnet: Devnet,
    nodes: list[ValkeyNode],
    layout: Layout,
) -> AsyncIterator[World]:
    async with (
        FaultyBackend(devnet.url) as backend,
        fault_world(
            postgres_server_url=postgres_server_url,
            migrated_template=migrated_template,
            redis_url=f"redis+cluster://127.0.0.1:{nodes[0].port}",
            devnet=devnet,
            backend=backend,
            agents=layout.spenders,
        ) as running,
    ):
        yield running


async def test_a_stopped_master_fails_its_wallets_closed_and_the_others_keep_working(
    world: World, nodes: list[ValkeyNode], layout: Layout
) -> None:
    scenario = await world.begin("cluster-master", CAP)
    victims = {s.agent for s in layout.on_victim}
    others = {s.agent for s in layout.elsewhere}
    load = world.load(values=VALUES, seed=5, per_agent=400)
    await load.start()
    await load.until(
        "every agent spent through both gateways",
        lambda: all(tally_of(load, a, lambda s: s.succeeded) >= 2 for a in victims | others),
    )
    stopped = nodes[layout.victim].process
    stopped.kill()
    stopped.wait()
    killed = time.monotonic()
    await load.until(
        "the others spent their budgets while the stopped master's agents were refused",
        lambda: (
            others <= load.finished_agents()
            and all(tally_of(load, a, lambda s: s.unavailable, killed) >= 5 for a in victims)
        ),
    )
    restarted = time.monotonic()
    back = restart(stopped)
    try:
        await load.until("the cluster is whole again", lambda: cluster_ok(nodes))
        returned = time.monotonic()
        await load.until("every agent spent its budget", load.finished, within=120)
        sent = await load.stop()

        witnesses = await scenario.witnesses(sent)
        tally = check_ledger(witnesses, CAP, settled=True)
        while_down = [s for s in sent if killed < s.started and s.ended < restarted]
        refused = [s for s in while_down if s.agent in victims]
        served = [s for s in while_down if s.agent in others]
        assert refused and all(s.unavailable for s in refused), [s.reply for s in refused]
        assert {s.agent for s in served if s.succeeded} == others
        for agent in others:
            # redis-py refreshes its slot map after every error from the dead master and
            # recycles its connections to the others, so one of their commands may fail
            # now and then: that spend is refused (fail closed), and the next one passes.
            mine = [s for s in served if s.agent == agent]
            assert not any(a.unavailable and b.unavailable for a, b in pairwise(mine)), mine
        assert victims <= {s.agent for s in load.after(returned) if s.succeeded}
        await world.counters_agree(witnesses, scenario.rule)
        assert world.exited() == []
        hiccups = sum(s.unavailable for s in served)
        print(
            f"cluster master stopped: {tally.line()}; while it was down: {len(refused)} "
            f"spends of its wallets refused, {len(served)} of the others answered "
            f"({hiccups} refused as unavailable)"
        )
    finally:
        back.kill()
        back.wait()


async def test_slow_live_masters_and_a_dead_one_do_not_fail_every_command() -> None:
    """redis-py refreshes its slot map after every error and then reads the command
    table from its "default" master: the first of its nodes, after it moved every node
    that timed out or failed to the back. Once the live masters have been slow (a
    command outlived the socket timeout) and a dead master is left in front, that read
    fails, the refresh fails, and so does every command, also for the live masters'
    slots. walletgate's client reads the table once, so those keep working."""
    with (
        tempfile.TemporaryDirectory(prefix="walletgate-faults-cluster-") as directory,
        running_cluster(Path(directory)) as cluster,
    ):
        for node in cluster:
            node.command("CONFIG", "SET", "cluster-require-full-coverage", "no")
        settings = Settings(redis_timeout=0.5)
        client = connect_redis(f"redis+cluster://127.0.0.1:{cluster[0].port}", settings)
        try:
            keys = {node_index(cluster, f"{{k{i}}}"): f"{{k{i}}}" for i in range(40)}
            for key in keys.values():
                await client.set(key, b"1")
            dead = len(cluster) - 1
            cluster[dead].process.kill()
            cluster[dead].process.wait()
            for index in range(dead):  # each live master slower than the socket timeout
                with pytest.raises(REDIS_ERRORS):
                    await client.blpop([keys[index] + ":queue"], timeout=1)
            for _ in range(3):
                for index, key in keys.items():
                    if index != dead:
                        assert await client.get(key) == b"1"
                with pytest.raises(REDIS_ERRORS):
                    await client.get(keys[dead])
        finally:
            await client.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        RedisClusterException("All slots are not covered"),
        AttributeError("'NoneType' object has no attribute 'writelines'"),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:1"),
    ],
)
def test_a_cluster_client_failure_reads_as_unavailable(failure: Exception) -> None:
    """What the cluster client raises when a master dies mid-command (the stopped-master
    test saw a connection race's AttributeError reach the state-version read, an HTTP
    500) is "Redis is unavailable": the request is refused as such."""
    with (
        pytest.raises(CacheUnavailable, match="while reading the state version"),
        redis_errors("reading the state version"),
    ):
        raise failure
