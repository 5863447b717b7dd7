"""The state lease scripts (walletgate.storage.leases) against a real Valkey: a renewal
extends a lease only for the current version, and a change's wait ends when every live
lease acknowledged it or ran out, or after a full term when the registry was lost.

The process-level guarantees (apply and revoke against paused and killed gateways) are
in tests/test_state_leases.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from walletgate.config.settings import Settings, SettingsError, load_settings
from walletgate.storage.cache_keys import LEASE_TERM_KEY, LEASES_KEY, STATE_VERSION_KEY
from walletgate.storage.leases import StateLease, wait_for_leases
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.runtime import connect_redis

TERM_MS = 300


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    client = connect_redis(redis_url, Settings())
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_a_lease_is_extended_only_for_the_current_version(redis: RedisClient) -> None:
    lease = StateLease(redis, term_ms=TERM_MS)
    assert await lease.renew(1) is None  # no version key: nothing is trusted
    assert not lease.trusts(1)
    await redis.set(STATE_VERSION_KEY, 5)
    assert await lease.renew(4) == 5  # an old version is not acknowledged
    assert not lease.trusts(4) and not lease.trusts(5)
    assert await lease.renew(5) == 5
    assert lease.trusts(5) and lease.trusts(6) and not lease.trusts(4)
    lease.distrust()
    assert not lease.trusts(5)


@pytest.mark.asyncio
async def test_trust_ends_before_redis_expires_the_lease(redis: RedisClient) -> None:
    await redis.set(STATE_VERSION_KEY, 1)
    clock = [100.0]
    lease = StateLease(redis, term_ms=TERM_MS, clock=lambda: clock[0])
    await lease.renew(1)
    clock[0] += TERM_MS / 1000 * 0.9 - 0.05 - 0.001
    assert lease.trusts(1)
    clock[0] += 0.002
    assert not lease.trusts(1)


@pytest.mark.asyncio
async def test_the_wait_ends_once_every_lease_acknowledged(redis: RedisClient) -> None:
    await redis.set(STATE_VERSION_KEY, 1)
    leases = [StateLease(redis, term_ms=TERM_MS) for _ in range(3)]
    for lease in leases:
        await lease.renew(1)
    await redis.set(STATE_VERSION_KEY, 2)
    for lease in leases:
        assert await lease.renew(2) == 2
    waited = await wait_for_leases(redis, 2, term_ms=TERM_MS)
    assert waited.pending_at_start == 0 and waited.fallback is None


@pytest.mark.asyncio
async def test_a_silent_lease_is_waited_out_on_redis_time(redis: RedisClient) -> None:
    await redis.set(STATE_VERSION_KEY, 1)
    silent, live = StateLease(redis, term_ms=TERM_MS), StateLease(redis, term_ms=TERM_MS)
    await silent.renew(1)
    await live.renew(1)
    await redis.set(STATE_VERSION_KEY, 2)
    await live.renew(2)
    # The registry's creation is a term in the past, so only the silent lease is waited for.
    await redis.set(LEASE_TERM_KEY, f"{TERM_MS} 0")
    started = time.monotonic()
    waited = await wait_for_leases(redis, 2, term_ms=TERM_MS)
    assert waited.pending_at_start == 1 and waited.fallback is None
    # When the wait returned, Redis had expired the silent lease: it was removed.
    assert await redis.hget(LEASES_KEY, silent.lease_id) is None
    # The silent process's own trust had ended before: it renewed before `started`.
    assert not silent.trusts(1)
    assert silent.trusts(1) is False and time.monotonic() >= started


@pytest.mark.asyncio
async def test_an_old_version_renewal_cannot_extend_a_lease(redis: RedisClient) -> None:
    await redis.set(STATE_VERSION_KEY, 1)
    lease = StateLease(redis, term_ms=TERM_MS)
    await lease.renew(1)
    before = await redis.hget(LEASES_KEY, lease.lease_id)
    await redis.set(STATE_VERSION_KEY, 2)
    assert await lease.renew(1) == 2
    assert await redis.hget(LEASES_KEY, lease.lease_id) == before  # not extended


@pytest.mark.asyncio
async def test_a_lost_registry_is_waited_out_for_a_full_term(redis: RedisClient) -> None:
    await redis.set(STATE_VERSION_KEY, 1)
    lease = StateLease(redis, term_ms=TERM_MS)
    await lease.renew(1)
    await redis.delete(LEASES_KEY, LEASE_TERM_KEY)  # as after FLUSHALL or a restart
    await redis.set(STATE_VERSION_KEY, 2)
    waited = await wait_for_leases(redis, 2, term_ms=TERM_MS)
    assert waited.fallback is not None and "missing" in waited.fallback
    assert waited.waited >= TERM_MS / 1000
    assert not lease.trusts(1)  # the lease it could not see had run out locally too


@pytest.mark.asyncio
async def test_a_young_registry_is_waited_out_too(redis: RedisClient) -> None:
    """Recreated after a flush by one gateway, the registry cannot name leases other
    gateways held before the flush: a waiter waits until a term after its creation."""
    await redis.set(STATE_VERSION_KEY, 2)
    fresh = StateLease(redis, term_ms=TERM_MS)
    await fresh.renew(2)  # creates the registry now
    waited = await wait_for_leases(redis, 2, term_ms=TERM_MS)
    assert waited.fallback is None
    assert waited.waited >= TERM_MS / 1000 * 0.9


@pytest.mark.parametrize("value", ["100", "60001", "-1"])
def test_a_lease_term_out_of_range_is_a_clear_settings_error(value: str) -> None:
    with pytest.raises(SettingsError, match="state_lease_ms"):
        load_settings(env={"WALLETGATE_STATE_LEASE_MS": value})
