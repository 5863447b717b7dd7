"""The counters against real Redis (one node and a 3-node Redis Cluster) and PostgreSQL.

Every test runs twice, on a single Valkey and on the session's 3-node cluster. A
"gateway process" is a :class:`Counters` with its own Redis client; rows of the audit
log are written by the real :class:`AuditWriter`, so rebuilds read what the pipeline
writes.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from tests.support.cluster import ValkeyNode, flush_cluster
from tests.support.gateway import free_port
from walletgate.config.settings import Settings
from walletgate.policies.decision import CounterClaim
from walletgate.storage.audit import AuditRecord, AuditWriter
from walletgate.storage.cache_keys import STATE_VERSION_KEY
from walletgate.storage.counter_scripts import REBUILT_PREFIX
from walletgate.storage.counters import (
    CounterRefusal,
    Counters,
    CountersUnavailable,
    Reservation,
    StaleState,
    claims_to_json,
    counter_of,
    record_key,
)
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.runtime import connect_redis

ETH = 10**18
NOW = time.time()


@dataclass
class Rig:
    """Two gateway processes' counters on one Redis (or cluster) and one database."""

    kind: str
    redis: RedisClient
    other_redis: RedisClient
    pool: asyncpg.Pool
    audit: AuditWriter
    flush: Callable[[], Awaitable[None]]

    def counters(self, *, other: bool = False) -> Counters:
        return Counters(self.other_redis if other else self.redis, PostgresClaimHistory(self.pool))


@pytest_asyncio.fixture(params=["single", "cluster"])
async def rig(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, redis_url: str
) -> AsyncIterator[Rig]:
    await _entities(pool)
    audit = AuditWriter(pool)
    await audit.start()
    if request.param == "single":
        clients: list[RedisClient] = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
        first = clients[0]

        async def flush() -> None:
            await first.flushdb()
    else:
        nodes: list[ValkeyNode] = request.getfixturevalue("cluster_nodes")
        flush_cluster(nodes)
        clients = [RedisCluster(host="127.0.0.1", port=nodes[i].port) for i in (0, 1)]
        for client in clients:
            await client.initialize()  # see tests/support/cluster.py

        async def flush() -> None:
            flush_cluster(nodes)

    try:
        yield Rig(request.param, clients[0], clients[1], pool, audit, flush)
    finally:
        await audit.close()
        for client in clients:
            await client.aclose()


async def _entities(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """INSERT INTO owners (id) VALUES ('acme');
           INSERT INTO agents (id, owner_id) VALUES ('bot', 'acme');
           INSERT INTO wallets (id, owner_id, agent_id, address, chain_id)
           VALUES ('w1', 'acme', 'bot', '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', 1337),
                  ('w2', 'acme', 'bot', '0x2b5ad5c4795c026514f8317c7a215e218dccd6cf', 1337)"""
    )


def cap(
    limit: int,
    amount: int,
    *,
    scope: str = "wallet:w1",
    rule: str = "cap",
    unit: str = "eth",
    window: int | None = 86400,
    calendar: str | None = None,
    timezone: str = "UTC",
) -> CounterClaim:
    return CounterClaim(
        key=f"{scope}:p:{rule}:{unit}",
        amount=amount,
        limit=limit,
        policy="p",
        rule=rule,
        unit=unit,
        window_seconds=window,
        calendar=calendar,
        timezone=timezone,
    )


async def spend(
    rig: Rig,
    counters: Counters,
    claims: Sequence[CounterClaim],
    *,
    now: float = NOW,
    outcome: str = "committed",
) -> Reservation | CounterRefusal:
    """What the pipeline does: reserve, durable row, confirm, then settle and record."""
    tx_id = uuid.uuid4()
    reserved = await counters.reserve(str(tx_id), claims, now)
    if isinstance(reserved, CounterRefusal):
        return reserved
    await rig.audit.insert(
        AuditRecord(
            id=tx_id,
            created_at=datetime.fromtimestamp(now, UTC),
            method="eth_sendTransaction",
            request={},
            decision="allow",
            reason="allowed",
            status="pending",
            agent_id="bot",
            wallet_id="w1",
            owner_id="acme",
            chain_id=1337,
            claims=claims_to_json(claims),
        )
    )
    assert await counters.confirm(reserved)
    if outcome == "committed":
        await counters.commit(reserved)
    elif outcome == "refunded":
        await counters.refund(reserved)
    if outcome != "pending":
        await rig.pool.execute("UPDATE transactions SET status = $2 WHERE id = $1", tx_id, outcome)
    return reserved


async def fits(counters: Counters, claim: CounterClaim, *, now: float = NOW) -> bool:
    return await counters.peek([claim], now) is None


async def room(counters: Counters, limit: int, **kw: Any) -> int:
    """How much more the counter takes: the largest amount a peek accepts."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if await fits(counters, cap(limit, middle, **kw)):
            low = middle
        else:
            high = middle - 1
    return low


# -- the reservation protocol ------------------------------------------------------------


async def test_reserves_up_to_the_cap_exactly(rig: Rig) -> None:
    counters = rig.counters()
    results = [await spend(rig, counters, [cap(50, 1)]) for _ in range(51)]
    assert all(isinstance(r, Reservation) for r in results[:50])
    refusal = results[50]
    assert isinstance(refusal, CounterRefusal)
    assert refusal.claim.rule == "cap"
    assert refusal.already == 50
    assert refusal.retry_after is not None and 0 < refusal.retry_after <= 86400 + 1440


async def test_parallel_reservations_from_two_processes_never_overspend(rig: Rig) -> None:
    processes = [rig.counters(), rig.counters(other=True)]
    results = await asyncio.gather(
        *(processes[i % 2].reserve(f"r{i}", [cap(50, 1)], NOW) for i in range(200))
    )
    reserved = [r for r in results if isinstance(r, Reservation)]
    assert len(reserved) == 50
    assert await room(processes[0], 50) == 0


async def test_refund_takes_back_exactly_once_and_commit_keeps(rig: Rig) -> None:
    counters = rig.counters()
    kept = await spend(rig, counters, [cap(100, 30)], outcome="pending")
    refunded = await spend(rig, counters, [cap(100, 50)], outcome="pending")
    assert isinstance(kept, Reservation) and isinstance(refunded, Reservation)
    await counters.commit(kept)
    await counters.refund(kept)  # committed: nothing to take back
    await counters.refund(refunded)
    await counters.refund(refunded)  # a second refund finds nothing
    assert await room(counters, 100) == 70


async def test_a_refusal_in_a_later_scope_takes_back_the_earlier_ones(rig: Rig) -> None:
    counters = rig.counters()
    owner = cap(100, 5, scope="owner:acme", rule="owner-cap")
    wallet = cap(5, 5)
    wallet_key, owner_key = counter_of(wallet).key, counter_of(owner).key
    if rig.kind == "cluster":
        assert key_slot(wallet_key.encode()) != key_slot(owner_key.encode())
    assert isinstance(await spend(rig, counters, [wallet, owner]), Reservation)
    # The owner group is reserved first (sorted order); the wallet group then refuses.
    refusal = await spend(rig, counters, [replace(wallet, amount=1), replace(owner, amount=1)])
    assert isinstance(refusal, CounterRefusal) and refusal.claim.rule == "cap"
    assert await room(counters, 100, scope="owner:acme", rule="owner-cap") == 95


async def test_keys_of_one_reservation_group_share_a_slot(rig: Rig) -> None:
    claims = [cap(10, 1), cap(10, 1, rule="tx-rate", unit="transactions", window=60)]
    keys = [counter_of(claim).key for claim in claims]
    keys.append(record_key(counter_of(claims[0]).group, "some-id"))
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert isinstance(await spend(rig, rig.counters(), claims), Reservation)


async def test_scripts_are_reloaded_after_redis_forgets_them(rig: Rig) -> None:
    counters = rig.counters()
    assert isinstance(await spend(rig, counters, [cap(10, 4)]), Reservation)
    await rig.redis.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
    assert isinstance(await spend(rig, counters, [cap(10, 6)]), Reservation)
    assert isinstance(await spend(rig, counters, [cap(10, 1)]), CounterRefusal)


# -- admission: version proof, request counts and the spend in one step ----------------------


def _rate(limit: int, *, scope: str = "agent:bot") -> CounterClaim:
    return cap(limit, 1, scope=scope, rule="rpm", unit="requests", window=60)


async def test_admit_counts_the_request_for_good_and_reserves_the_spend(rig: Rig) -> None:
    counters = rig.counters()
    admitted = await counters.admit("a1", requests=[_rate(5)], spend=[cap(10, 4)], now=NOW)
    assert isinstance(admitted, Reservation) and admitted.groups
    await counters.refund(admitted)  # the spend is taken back, the request stays counted
    assert await room(counters, 10) == 10
    assert await room(counters, 5, scope="agent:bot", rule="rpm", unit="requests", window=60) == 4


async def test_admit_over_a_request_rate_counts_nothing(rig: Rig) -> None:
    counters = rig.counters()
    for i in range(2):
        assert isinstance(await counters.admit(f"q{i}", requests=[_rate(2)], now=NOW), Reservation)
    refused = await counters.admit("q2", requests=[_rate(2)], spend=[cap(10, 4)], now=NOW)
    assert isinstance(refused, CounterRefusal) and refused.claim.unit == "requests"
    assert refused.already == 2
    assert await room(counters, 10) == 10  # the spend was not reserved


async def test_admit_over_a_cap_still_counts_the_request(rig: Rig) -> None:
    counters = rig.counters()
    refused = await counters.admit("a1", requests=[_rate(5)], spend=[cap(3, 4)], now=NOW)
    assert isinstance(refused, CounterRefusal) and refused.claim.rule == "cap"
    assert await room(counters, 3) == 3
    assert await room(counters, 5, scope="agent:bot", rule="rpm", unit="requests", window=60) == 4


async def test_admit_on_a_state_version_that_moved_on_counts_nothing(rig: Rig) -> None:
    counters = rig.counters()
    await rig.redis.set(STATE_VERSION_KEY, 7)
    for seen in (7, 8):  # the version in memory may be ahead of Redis's, never behind
        current = await counters.admit(
            f"v{seen}", requests=[_rate(5)], spend=[cap(10, 1)], now=NOW, version=seen
        )
        assert isinstance(current, Reservation)
        await counters.refund(current)
    stale = await counters.admit("v6", requests=[_rate(5)], spend=[cap(10, 1)], now=NOW, version=6)
    assert isinstance(stale, StaleState)
    await rig.redis.delete(STATE_VERSION_KEY)  # expired or flushed: not proven either
    gone = await counters.admit("v0", requests=[_rate(5)], spend=[cap(10, 1)], now=NOW, version=8)
    assert isinstance(gone, StaleState)
    assert await room(counters, 10) == 10
    assert await room(counters, 5, scope="agent:bot", rule="rpm", unit="requests", window=60) == 3


async def test_admit_with_only_a_version_to_prove(rig: Rig) -> None:
    counters = rig.counters()
    await rig.redis.set(STATE_VERSION_KEY, 3)
    assert await counters.admit("p", now=NOW, version=3) == Reservation("p", ())
    assert isinstance(await counters.admit("p", now=NOW, version=2), StaleState)


async def test_admit_reads_what_the_request_needs_next_once_admitted(rig: Rig) -> None:
    counters = rig.counters()
    await rig.redis.hset("wg:balance:{1337:0xabc}", "latest", "0x10")
    reads = [("wg:balance:{1337:0xabc}", "latest"), ("wg:balance:{1337:0xdef}", "latest")]
    admitted = await counters.admit("r", requests=[_rate(1)], now=NOW, reads=reads)
    assert isinstance(admitted, Reservation) and admitted.read == ("0x10", None)
    refused = await counters.admit("r", requests=[_rate(1)], now=NOW, reads=reads)
    assert isinstance(refused, CounterRefusal)


# -- precision -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_wei_amounts_never_overspend_and_refuse_only_within_the_rounding(
    rig: Rig, seed: int
) -> None:
    chooser = random.Random(seed)
    counters = rig.counters()
    limit = chooser.randrange(10**23, 10**27)
    scale = counter_of(cap(limit, 1)).scale
    assert scale > 1  # these limits are scaled
    spent, count = 0, 0
    for index in range(40):
        if index == 20:
            spent, count = 0, 0  # a fresh counter halfway
        remaining = limit - spent
        amount = chooser.choice(
            [
                chooser.randrange(1, limit // 4),
                max(1, remaining),  # exactly what is left
                max(1, remaining - chooser.randrange(0, 3 * scale)),  # just under it
                remaining + chooser.randrange(1, 3 * scale),  # just over it
            ]
        )
        amount = min(amount, limit)
        claim = cap(limit, amount, scope=f"wallet:w1-{seed}-{index // 20}")
        result = await counters.reserve(f"{seed}-{index}", [claim], NOW)
        # A refusal within REBUILT_FOR seconds of a rebuild is tried again a few times
        # (Counters.admit), 0.14 s each: only the arithmetic matters here.
        await rig.redis.delete(REBUILT_PREFIX + counter_of(claim).key)
        if isinstance(result, Reservation):
            spent += amount
            count += 1
            assert spent <= limit, "never over the cap"
        else:
            # Refused: over the cap, or within the stated rounding of it.
            assert spent + amount > limit - (count + 2) * scale


async def test_amounts_of_1e24_wei_and_more_are_exact_at_the_cap(rig: Rig) -> None:
    counters = rig.counters()
    limit = 3 * 10**24
    for i in range(3):
        assert isinstance(await counters.reserve(f"r{i}", [cap(limit, 10**24)], NOW), Reservation)
    assert isinstance(await counters.reserve("x", [cap(limit, 1)], NOW), CounterRefusal)
    assert await room(counters, limit) == 0


async def test_token_caps_are_exact(rig: Rig) -> None:
    counters = rig.counters()
    limit = 40_000 * 10**6  # 40000 WUSD, 6 decimals: no scaling
    assert counter_of(cap(limit, 1, unit="wusd")).scale == 1
    for amount in (39_999_999_999, 1):
        result = await counters.reserve(str(uuid.uuid4()), [cap(limit, amount, unit="wusd")], NOW)
        assert isinstance(result, Reservation)
    over = await counters.reserve("x", [cap(limit, 1, unit="wusd")], NOW)
    assert isinstance(over, CounterRefusal)


# -- windows ---------------------------------------------------------------------------------


async def test_a_rolling_window_forgets_spends_after_the_window_and_one_bucket(rig: Rig) -> None:
    counters = rig.counters()
    start = 1_800_000_000.0
    assert isinstance(await spend(rig, counters, [cap(10, 10)], now=start), Reservation)
    assert not await fits(counters, cap(10, 1), now=start + 86399)
    assert await fits(counters, cap(10, 10), now=start + 86400 + 1440 + 1)


async def test_a_calendar_day_resets_at_local_midnight(rig: Rig) -> None:
    counters = rig.counters()

    def daily(amount: int) -> CounterClaim:
        return cap(10, amount, window=None, calendar="day", timezone="Europe/Berlin")

    late = datetime(2026, 10, 25, 22, 59, tzinfo=UTC).timestamp()  # 23:59 in Berlin
    assert isinstance(await spend(rig, counters, [daily(10)], now=late), Reservation)
    refusal = await counters.peek([daily(1)], late)
    assert refusal is not None and refusal.retry_after == 60
    assert await fits(counters, daily(10), now=late + 60)


async def test_counters_and_records_expire_with_their_window(rig: Rig) -> None:
    counters = rig.counters()
    reserved = await counters.reserve("r1", [cap(10, 1, window=3600)], NOW)
    assert isinstance(reserved, Reservation)
    key = counter_of(cap(10, 1, window=3600)).key
    assert 0 < await rig.redis.ttl(key) <= 3600 + 60 + 1
    record = record_key(reserved.groups[0][0], "r1")
    assert 0 < await rig.redis.ttl(record) <= 3600 + 60 + 1 + 3600
    # A one-second window, for real: the counter leaves Redis on its own.
    short = cap(10, 1, rule="short", window=1)
    short_reserved = await counters.reserve("r2", [short], time.time())
    assert isinstance(short_reserved, Reservation)
    await counters.commit(short_reserved)
    for _ in range(200):
        if not await rig.redis.exists(counter_of(short).key):
            break
        await asyncio.sleep(0.05)
    assert not await rig.redis.exists(counter_of(short).key)


# -- rebuild from PostgreSQL -----------------------------------------------------------------


async def test_after_a_flush_the_counter_is_rebuilt_before_the_next_reservation(
    rig: Rig,
) -> None:
    counters = rig.counters()
    for amount in (40, 50):
        assert isinstance(await spend(rig, counters, [cap(100, amount)]), Reservation)
    assert isinstance(await spend(rig, counters, [cap(100, 7)], outcome="refunded"), Reservation)
    key = counter_of(cap(100, 1)).key
    before = await rig.redis.hgetall(key)
    await rig.flush()
    assert isinstance(await spend(rig, counters, [cap(100, 20)]), CounterRefusal)
    assert await rig.redis.hgetall(key) == before  # the same buckets, exactly
    assert isinstance(await spend(rig, counters, [cap(100, 10)]), Reservation)


async def test_unknown_and_pending_reservations_count_after_a_flush(rig: Rig) -> None:
    counters = rig.counters()
    assert isinstance(await spend(rig, counters, [cap(100, 60)]), Reservation)
    unknown = await spend(rig, counters, [cap(100, 20)], outcome="unknown")
    pending = await spend(rig, counters, [cap(100, 10)], outcome="pending")
    assert isinstance(unknown, Reservation) and isinstance(pending, Reservation)
    await rig.flush()
    assert isinstance(await spend(rig, counters, [cap(100, 20)]), CounterRefusal)
    assert await room(counters, 100) == 10
    # Their records were rebuilt too: settling them later still takes the amounts back.
    await counters.refund(unknown)
    await counters.refund(pending)
    assert await room(counters, 100) == 40


async def test_concurrent_rebuilds_never_add_up(rig: Rig) -> None:
    first, second = rig.counters(), rig.counters(other=True)
    assert isinstance(await spend(rig, first, [cap(100, 90)]), Reservation)
    await rig.flush()
    # One reservation id per spend (it is the spend's transaction id: ADMIT is
    # idempotent per id, see test_admit_after_a_rebuild_counts_the_row_once).
    answers = await asyncio.gather(
        *(
            c.reserve(f"r{i}-{n}", [cap(100, 1)], NOW)
            for i in range(20)
            for n, c in enumerate((first, second))
        )
    )
    assert sum(isinstance(a, Reservation) for a in answers) == 10
    assert await room(first, 100) == 0


async def test_a_reservation_lost_before_forwarding_is_not_confirmed(rig: Rig) -> None:
    counters = rig.counters()
    reserved = await counters.reserve("lost", [cap(100, 10)], NOW)
    assert isinstance(reserved, Reservation)
    await rig.flush()  # between the reservation and the audit row
    assert not await counters.confirm(reserved)


async def test_a_reservation_a_rebuild_counted_is_confirmed(rig: Rig) -> None:
    counters = rig.counters()
    reserved = await spend(rig, counters, [cap(100, 10)], outcome="pending")
    assert isinstance(reserved, Reservation)
    await rig.flush()  # after the row was written: a rebuild sees it
    assert await room(counters, 100) == 90
    assert await counters.confirm(reserved)


async def test_a_new_window_or_scale_starts_a_counter_rebuilt_from_the_same_rows(rig: Rig) -> None:
    counters = rig.counters()
    assert isinstance(await spend(rig, counters, [cap(100, 60)]), Reservation)
    week = 7 * 86400
    assert counter_of(cap(100, 1, window=week)).key != counter_of(cap(100, 1)).key
    assert await room(counters, 100, window=week) == 40
    assert await room(counters, 80, window=week) == 20  # a lowered cap
    # A cap that needs a scale (10**15 wei per unit): the 60 wei are rebuilt as one unit.
    huge = 10**30
    assert counter_of(cap(huge, 1)).scale == 10**15
    assert await room(counters, huge) == huge - 10**15


async def test_request_counts_restart_from_zero(rig: Rig) -> None:
    counters = rig.counters()
    requests = cap(3, 1, scope="agent:bot", rule="rpm", unit="requests", window=60)
    for i in range(3):
        assert isinstance(await counters.reserve(f"q{i}", [requests], NOW), Reservation)
    assert isinstance(await counters.reserve("q3", [requests], NOW), CounterRefusal)
    await rig.flush()
    assert isinstance(await counters.reserve("q4", [requests], NOW), Reservation)


async def test_a_rebuild_fails_closed_without_postgresql(rig: Rig, database_url: str) -> None:
    assert isinstance(await spend(rig, rig.counters(), [cap(100, 1)]), Reservation)
    await rig.flush()
    closed = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await closed.close()
    counters = Counters(rig.redis, PostgresClaimHistory(closed))
    with pytest.raises(CountersUnavailable, match="cannot rebuild counter"):
        await counters.reserve("x", [cap(100, 1)], NOW)


# -- failing Redis ---------------------------------------------------------------------------


async def test_an_unreachable_redis_fails_closed(pool: asyncpg.Pool) -> None:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0", Settings(redis_timeout=0.5))
    counters = Counters(client, PostgresClaimHistory(pool))
    try:
        with pytest.raises(CountersUnavailable, match="counters unavailable"):
            await counters.reserve("x", [cap(100, 1)], NOW)
        with pytest.raises(CountersUnavailable):
            await counters.peek([cap(100, 1)], NOW)
    finally:
        await client.aclose()


# -- memory ----------------------------------------------------------------------------------


async def test_redis_memory_per_active_wallet(redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
    """What one active wallet keeps in Redis under examples/policies.yaml's trader rules.

    A wallet has its own counter per wallet-scoped cap (``eth-daily``); agent- and
    owner-scoped counters (rate limits, ``owner-daily-usd``) are shared by every wallet
    of the agent or owner. Reservation records live only while a spend is in flight.
    Measured with ``MEMORY USAGE`` after one spend, and with a spend in every bucket.
    """
    counters = Counters(redis, PostgresClaimHistory(pool))
    wallet = cap(5 * ETH, ETH // 1000, scope="wallet:trader-hot", rule="eth-daily")
    usd = 10**6  # micro-dollars
    shared = [
        cap(20_000 * usd, 3 * usd, scope="owner:acme", rule="owner-daily-usd", unit="micro_usd"),
        cap(600, 1, scope="agent:trader", rule="spends", unit="transactions", window=60),
        cap(600, 1, scope="agent:trader", rule="requests", unit="requests", window=60),
    ]

    async def usage(claim: CounterClaim) -> int:
        return int(await redis.memory_usage(counter_of(claim).key, samples=0))

    start = 1_800_000_000.0
    first = await counters.reserve("first", [wallet, *shared], start)
    assert isinstance(first, Reservation)
    await counters.commit(first)
    one_spend = await usage(wallet)
    for bucket in range(1, 62):  # a spend in every 24-minute bucket of the daily caps
        spent = await counters.reserve(f"d{bucket}", [wallet, shared[0]], start + bucket * 1440)
        assert isinstance(spent, Reservation), bucket
        await counters.commit(spent)
    later = start + 62 * 1440
    for second in range(61):  # and in every 1-second bucket of the per-minute limits
        counted = await counters.reserve(f"m{second}", shared[1:], later + second)
        assert isinstance(counted, Reservation), second
        await counters.commit(counted)
    busiest = await usage(wallet)
    shared_busiest = sum([await usage(claim) for claim in shared])
    assert await redis.keys("*:res:*") == []  # records leave with their settlement
    print(
        f"\nRedis per active wallet: {one_spend} B after one spend, {busiest} B with every "
        f"bucket used; shared agent/owner counters {shared_busiest} B at most"
    )
    assert one_spend < 256 and busiest < 2048 and shared_busiest < 4096


# -- the audit row first, then the reservation (no confirmation trip) -----------------------


async def write_row(rig: Rig, tx_id: uuid.UUID, claims: Sequence[CounterClaim]) -> None:
    """The durable intent row the pipeline writes before it reserves."""
    await rig.audit.insert(
        AuditRecord(
            id=tx_id,
            created_at=datetime.fromtimestamp(NOW, UTC),
            method="eth_sendTransaction",
            request={},
            decision="allow",
            reason="allowed",
            status="pending",
            agent_id="bot",
            wallet_id="w1",
            owner_id="acme",
            chain_id=1337,
            claims=claims_to_json(claims),
        )
    )


async def test_admit_after_a_rebuild_counts_the_row_once(rig: Rig) -> None:
    counters, other = rig.counters(), rig.counters(other=True)
    assert isinstance(await spend(rig, counters, [cap(100, 20)]), Reservation)
    # Redis loses everything between a spend's row and its reservation; another
    # process rebuilds the counter first: it counts the row and re-creates its record.
    first = uuid.uuid4()
    await write_row(rig, first, [cap(100, 30)])
    await rig.flush()
    assert await room(other, 100) == 50
    reserved = await counters.reserve(str(first), [cap(100, 30)], NOW)
    assert isinstance(reserved, Reservation)
    assert await room(counters, 100) == 50  # counted once, not twice
    # The reservation itself finds the counter missing: the same.
    second = uuid.uuid4()
    await write_row(rig, second, [cap(100, 10)])
    await rig.flush()
    again = await counters.reserve(str(second), [cap(100, 10)], NOW)
    assert isinstance(again, Reservation)
    assert await room(counters, 100) == 40
    # Settled exactly once: a refund takes the amount back once.
    await counters.refund(again)
    await counters.refund(again)
    assert await room(counters, 100) == 50


async def test_a_refusal_after_a_rebuild_takes_back_what_it_counted(rig: Rig) -> None:
    counters = rig.counters()
    assert isinstance(await spend(rig, counters, [cap(100, 80)]), Reservation)
    tx_id = uuid.uuid4()
    await write_row(rig, tx_id, [cap(100, 30)])
    await rig.flush()
    # The rebuild counts the row (110 > 100): refused, and what it counted is taken
    # back (then tried again on its own, which still does not fit).
    refused = await counters.reserve(str(tx_id), [cap(100, 30)], NOW)
    assert isinstance(refused, CounterRefusal) and refused.already == 80
    assert await room(counters, 100) == 20
    assert not await rig.redis.exists(record_key(counter_of(cap(100, 30)).group, str(tx_id)))
    # The pipeline turns the row into the refusal row it would have written: it stops
    # counting, so a rebuild agrees.
    row = await rig.pool.fetchrow("SELECT * FROM transactions WHERE id = $1", tx_id)
    await rig.audit.refuse(
        AuditRecord(
            id=tx_id,
            created_at=row["created_at"],
            method=row["method"],
            request={},
            decision="deny",
            reason="cumulative_cap_exceeded",
            status="denied",
            explanation={"decision": "deny", "reason": "cumulative_cap_exceeded"},
        )
    )
    row = await rig.pool.fetchrow("SELECT * FROM transactions WHERE id = $1", tx_id)
    assert (row["decision"], row["reason"], row["status"]) == (
        "deny",
        "cumulative_cap_exceeded",
        "denied",
    )
    assert row["claims"] in ("[]", []) and row["settled_at"] is None
    await rig.flush()
    assert await room(counters, 100) == 20
    # A row dropped because its request is decided again on newer state: gone.
    dropped = uuid.uuid4()
    await write_row(rig, dropped, [cap(100, 5)])
    await rig.audit.discard(dropped)
    assert await rig.pool.fetchval("SELECT count(*) FROM transactions WHERE id = $1", dropped) == 0


async def test_a_deferred_commit_lands(rig: Rig) -> None:
    counters = rig.counters()
    records = []
    for _ in range(2):
        tx_id = uuid.uuid4()
        await write_row(rig, tx_id, [cap(100, 10)])
        reserved = await counters.reserve(str(tx_id), [cap(100, 10)], NOW)
        assert isinstance(reserved, Reservation)
        records.append(record_key(counter_of(cap(100, 10)).group, str(tx_id)))
        await counters.commit_soon(reserved)
        if not records[1:]:
            # It rides the next admission's round trip (one server), or went at once
            # (cluster): either way it has landed when that admission is answered.
            assert isinstance(await counters.reserve("next", [cap(100, 5)], NOW), Reservation)
            assert not await rig.redis.exists(records[0])
    # With nothing else to ride, it goes by itself (at once when the process stops).
    await counters.flush_deferred()
    assert not await rig.redis.exists(records[1])
    assert await room(counters, 100) == 75  # committed amounts stay counted
