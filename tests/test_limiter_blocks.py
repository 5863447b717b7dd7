"""Request-rate quota leased in blocks (walletgate.limiter): the pure bookkeeping, and
three "processes" (each a RequestQuota with its own Redis client) sharing one real
Valkey counter, with time passed in so that hypothesis can drive arrival patterns over
many windows in a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walletgate.config.settings import Settings
from walletgate.limiter.blocks import MAX_SHARE, BlockBook, Need
from walletgate.limiter.quota import Admitted, RequestQuota
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import CounterRefusal, Counters, counter_of
from walletgate.storage.rebuild import LiveClaim
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.runtime import connect_redis
from walletgate.storage.windows import bucketing

WINDOW = 10  # seconds: rolling buckets of one second
T0 = 1_800_000_000.0


class NoHistory:
    """Request counts have no audit rows: a missing request counter restarts at zero,
    so the history is never asked (asserted)."""

    async def live_claims(self, claim_key: str, since: datetime) -> Sequence[LiveClaim]:
        raise AssertionError("request counters are never rebuilt from the audit log")


def claim(limit: int, units: int = 1, agent: str = "a1") -> CounterClaim:
    return CounterClaim(
        key=f"agent:{agent}:requests",
        amount=units,
        limit=limit,
        policy="p",
        rule="rate_limit",
        unit="requests",
        window_seconds=WINDOW,
    )


# -- pure bookkeeping -----------------------------------------------------------------


def need(units: int, bucket: int = 5, limit: int = 160) -> Need:
    return Need("k", bucket, units, limit)


def test_a_block_is_spent_locally_only_in_its_bucket() -> None:
    book = BlockBook()
    [ask] = book.asks([need(1)], now=0.0)
    assert (ask.need, ask.want, ask.held) == (1, 1, 0)  # a first block is one unit
    book.granted([ask], [1], now=0.0)
    assert book.take_local([need(1)]) == [need(1)]  # nothing left over
    [ask] = book.asks([need(1)], now=0.1)  # used up quickly: the next block doubles
    assert ask.want == 2
    book.granted([ask], [2], now=0.1)
    assert book.take_local([need(1)]) == []  # the second unit, with no trip
    [ask] = book.asks([need(1)], now=0.15)
    book.granted([ask], [4], now=0.15)  # 3 units held for bucket 5
    assert book.take_local([need(1, bucket=6)]) == [need(1, bucket=6)]  # not in bucket 6
    [ask] = book.asks([need(1, bucket=6)], now=1.2)
    assert (ask.give_back_bucket, ask.give_back) == (5, 3)  # handed back, never reused
    assert ask.want == 2  # it outlived its bucket: half the size


def test_block_size_is_capped_by_the_limit() -> None:
    book = BlockBook()
    size = 1
    for i in range(20):
        [ask] = book.asks([need(1)], now=i * 0.01)
        assert ask.want <= max(1, 160 // MAX_SHARE)
        size = ask.want
        book.granted([ask], [ask.want], now=i * 0.01)
        book.take_local([need(1)] * (ask.want - 1))
    assert size == 160 // MAX_SHARE


def test_a_partly_covered_need_uses_what_is_held_and_refusal_puts_it_back() -> None:
    book = BlockBook()
    [ask] = book.asks([need(1)], now=0.0)
    book.granted([ask], [3], now=0.0)  # 2 held
    [ask] = book.asks([need(5)], now=0.5)
    assert (ask.held, ask.need) == (2, 3)
    book.refused([ask])
    assert book.take_local([need(2)]) == []  # the two held units are back


# -- three processes on one real counter ------------------------------------------------


@dataclass
class Fleet:
    quotas: list[RequestQuota]
    clients: list[RedisClient]


@pytest_asyncio.fixture
async def fleet(redis_url: str) -> AsyncIterator[Fleet]:
    clients = [connect_redis(redis_url, Settings()) for _ in range(3)]
    quotas = [RequestQuota(c, Counters(c, NoHistory())) for c in clients]
    try:
        yield Fleet(quotas, clients)
    finally:
        for client in clients:
            await client.aclose()


async def _reset(fleet: Fleet) -> None:
    await fleet.clients[0].flushdb()
    for quota in fleet.quotas:
        quota.clear()


arrivals = st.lists(
    st.tuples(
        st.integers(0, 2),  # which process
        st.floats(0, 2.5, allow_nan=False),  # seconds since the previous one (0: a burst)
        st.integers(1, 4),  # units (a batch of reads counts each read)
    ),
    min_size=1,
    max_size=120,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=arrivals, limit=st.integers(1, 60))
@pytest.mark.asyncio
async def test_never_looser_than_the_limit_across_three_processes(
    fleet: Fleet, events: list[tuple[int, float, int]], limit: int
) -> None:
    await _reset(fleet)
    now, admitted = T0, []
    for process, gap, units in events:
        now += gap
        answer = await fleet.quotas[process].admit([claim(limit, units)], now)
        if isinstance(answer, Admitted):
            admitted.append((now, units))
        else:
            assert isinstance(answer, CounterRefusal)
    for at, _ in admitted:
        in_window = sum(u for t, u in admitted if at - WINDOW <= t <= at)
        assert in_window <= limit, (at, in_window, limit)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(gaps=st.lists(st.floats(0, 1.5, allow_nan=False), min_size=1, max_size=80))
@pytest.mark.asyncio
async def test_an_agent_alone_gets_its_whole_limit(fleet: Fleet, gaps: list[float]) -> None:
    """One process, one unit per request, demand within the limit in every window: held
    blocks never count against the agent's own later requests."""
    await _reset(fleet)
    limit = 24
    now, times = T0, []
    for gap in gaps:
        now += gap
        if sum(1 for t in times if now - WINDOW - 1 <= t) + 1 > limit:
            continue  # keep the demand itself within the limit (with the bucket slack)
        answer = await fleet.quotas[0].admit([claim(limit)], now)
        assert isinstance(answer, Admitted), (now, len(times))
        times.append(now)


@pytest.mark.asyncio
async def test_a_fast_agent_needs_few_trips_and_unused_units_go_back(fleet: Fleet) -> None:
    await _reset(fleet)
    quota, limit = fleet.quotas[0], 1600
    trips = 0
    now = T0 + 0.01
    for i in range(200):
        answer = await quota.admit([claim(limit)], now + i * 0.001)
        assert isinstance(answer, Admitted)
        trips += answer.trip
    assert trips < 20  # blocks of up to limit / 16 units
    key = counter_of(claim(limit)).key
    bucket = bucketing(counter_of(claim(limit)).shape, now).bucket
    counted = int(await fleet.clients[0].hget(key, str(bucket)) or 0)
    assert counted >= 200  # everything used was counted up front
    # The next bucket: the held units of the old one are given back in the next trip.
    answer = await quota.admit([claim(limit)], now + 1.0)
    assert isinstance(answer, Admitted) and answer.trip
    assert int(await fleet.clients[0].hget(key, str(bucket)) or 0) == 200


@pytest.mark.asyncio
async def test_other_processes_blocks_do_not_starve_a_slow_one(fleet: Fleet) -> None:
    """Two busy processes hold at most limit / 16 unused units each: a third, slow one
    still gets the rest of the budget."""
    await _reset(fleet)
    limit, now = 320, T0 + 0.01
    for i in range(100):
        for busy in fleet.quotas[:2]:
            assert isinstance(await busy.admit([claim(limit)], now + i * 0.001), Admitted)
    slow = fleet.quotas[2]
    got = 0
    while isinstance(await slow.admit([claim(limit)], now + 0.5), Admitted):
        got += 1
    assert got >= limit - 200 - 2 * (limit // MAX_SHARE)


@pytest.mark.asyncio
async def test_concurrent_requests_in_one_process_never_overspend(fleet: Fleet) -> None:
    await _reset(fleet)
    limit, now = 50, T0 + 0.01
    results = await asyncio.gather(
        *(fleet.quotas[i % 3].admit([claim(limit)], now) for i in range(200))
    )
    assert sum(isinstance(r, Admitted) for r in results) <= limit
    assert sum(isinstance(r, Admitted) for r in results) >= limit - 3 * (limit // MAX_SHARE)
