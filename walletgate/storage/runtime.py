"""Connect to PostgreSQL and Redis: embedded servers or configured URLs, one code path.

``open_stores`` is what the gateway and every CLI command that touches state use. In
embedded mode (no URL configured) it starts or joins the data directory's servers and
migrates them, since nobody else will; with URLs it only connects and refuses to run on
a database with pending migrations (``walletgate migrate`` is an explicit, operator step
in a deployment). After that both modes are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
from redis._parsers import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from walletgate.config.settings import Settings, SettingsError
from walletgate.errors import UserError
from walletgate.storage.embedded import attach, detach
from walletgate.storage.migrations import apply_migrations, pending_migrations
from walletgate.storage.redis_client import RedisClient

REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Redis Cluster URLs name one node to discover the cluster from: ``redis+cluster://``.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class StoreUnavailableError(UserError):
    """PostgreSQL or Redis cannot be reached, or the database is not migrated."""


@dataclass(frozen=True)
class Stores:
    """Open connections to the source of truth (PostgreSQL) and the fast state (Redis)."""

    pool: asyncpg.Pool
    redis: RedisClient
    database_url: str
    redis_url: str
    #: The gateways' state lease term (ms): how long a change may wait for a paused one.
    state_lease_ms: int = 500


@dataclass(frozen=True)
class ServerUrls:
    database_url: str
    redis_url: str | None
    embedded: bool


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***@"
    return urlunsplit(parts._replace(netloc=userinfo + parts.netloc.rpartition("@")[2]))


@asynccontextmanager
async def server_urls(settings: Settings, *, need_redis: bool = True) -> AsyncIterator[ServerUrls]:
    """Where PostgreSQL (and, if ``need_redis``, Redis) are for ``settings``; in embedded
    mode the data directory's servers run (at least) until the block exits."""
    if settings.embedded:
        servers = await asyncio.to_thread(attach, settings.data_dir)
        try:
            yield ServerUrls(servers.database_url, servers.redis_url, embedded=True)
        finally:
            await asyncio.to_thread(detach, settings.data_dir)
        return
    if settings.database_url is None:
        raise SettingsError(
            "redis_url is set but database_url is not (WALLETGATE_DATABASE_URL): configure "
            "both, or neither to use the embedded servers"
        )
    if need_redis and settings.redis_url is None:
        raise SettingsError(
            "database_url is set but redis_url is not (WALLETGATE_REDIS_URL): configure "
            "both, or neither to use the embedded servers"
        )
    yield ServerUrls(settings.database_url, settings.redis_url, embedded=False)


def _unavailable(what: str, url: str, exc: BaseException) -> StoreUnavailableError:
    reason = str(exc) or type(exc).__name__
    return StoreUnavailableError(f"cannot connect to {what} at {redact_url(url)}: {reason}")


# What a failed connection attempt raises: refused/unresolvable (OSError), too slow
# (TimeoutError), or refused by the server (bad password, missing database).
_PG_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@asynccontextmanager
async def database_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One connection to the configured (or embedded) database; Redis is not needed."""
    async with server_urls(settings, need_redis=False) as urls:
        try:
            conn = await asyncpg.connect(urls.database_url, timeout=settings.database_timeout)
        except _PG_CONNECT_ERRORS as exc:
            raise _unavailable("PostgreSQL", urls.database_url, exc) from None
        try:
            yield conn
        finally:
            await conn.close()


class _CommandTableOnce(AsyncCommandsParser):
    """Reads the cluster's command table once, not at every slot-map refresh.

    redis-py (8.1) reads it again from the client's "default" master whenever it
    refreshes the slot map (after any connection error), and a failure there fails the
    refresh and closes every connection: with that one master down, commands for the
    slots of the healthy masters failed too, and wallets whose counters live there
    were refused as unavailable. The table does not change while a client runs.
    """

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if node is not None:
            self.node = node
        if not self.commands:
            await super().initialize()


def connect_redis(url: str, settings: Settings) -> RedisClient:
    """A Redis client for ``url`` returning bytes, with the short command timeout of
    ``settings.redis_timeout``: a slow Redis must make a spend fail fast (and closed),
    not hang the request. Connecting has its own, longer ``redis_connect_timeout``.

    ``redis://``, ``rediss://`` and ``unix://`` connect to one server;
    ``redis+cluster://host:port`` (or ``rediss+cluster://``) to a Redis Cluster, found
    from that node. Callers keep every multi-key script on one hash slot (SPEC §5).
    """
    parts = urlsplit(url)
    # One immediate retry on a broken pooled connection, none on a timeout, no backoff:
    # redis-py's default (10 retries, exponential backoff) holds a request for seconds
    # before it can fail closed.
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
    if parts.scheme in CLUSTER_SCHEMES:
        node_url = urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme]))
        cluster: RedisCluster = RedisCluster.from_url(
            node_url,
            decode_responses=False,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_connect_timeout,
            retry=retry,
        )
        cluster.commands_parser = _CommandTableOnce()
        return cluster
    if parts.scheme not in REDIS_SCHEMES:
        schemes = [*REDIS_SCHEMES, *CLUSTER_SCHEMES]
        raise SettingsError(
            f"redis_url {redact_url(url)}: unsupported scheme {parts.scheme!r} "
            f"(expected one of {', '.join(s + '://' for s in schemes)})"
        )
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        retry=retry,
    )
    return client


async def _create_pool(url: str, settings: Settings) -> asyncpg.Pool:
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            url, timeout=settings.database_timeout, min_size=1, max_size=20
        )
    except _PG_CONNECT_ERRORS as exc:
        raise _unavailable("PostgreSQL", url, exc) from None
    return pool


async def _require_migrated(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pending = await pending_migrations(conn)
    if pending:
        raise StoreUnavailableError(
            f"the database has {len(pending)} pending migration(s) ({', '.join(pending)}): "
            "run 'walletgate migrate' first"
        )


async def _warm(client: RedisClient, url: str, connections: int) -> None:
    try:
        await warm_redis(client, connections)
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        raise _unavailable("Redis", url, exc) from None


async def _ping_redis(client: RedisClient, url: str) -> None:
    try:
        await client.ping()
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        raise _unavailable("Redis", url, exc) from None


async def warm_redis(client: RedisClient, connections: int) -> int:
    """Open ``connections`` pooled connections of ``client`` (per node of a cluster) and
    put them back in its pool, so the first burst of requests after start finds them
    open instead of each opening its own at once; returns how many are open."""
    if connections < 1:
        return 0
    if isinstance(client, RedisCluster):
        # Every command on every node at once: one connection per node per PING.
        await client.initialize()
        await asyncio.gather(
            *(client.ping(target_nodes=RedisCluster.ALL_NODES) for _ in range(connections))
        )
        return connections
    pool = client.connection_pool
    opened = []
    try:
        for _ in range(connections):
            # Connected (and handshaken) on checkout; a failure raises like a command's.
            opened.append(await pool.get_connection())  # type: ignore[no-untyped-call]
    finally:
        for connection in opened:
            await pool.release(connection)
    return len(opened)


@asynccontextmanager
async def open_stores(settings: Settings, *, warm: bool = False) -> AsyncIterator[Stores]:
    """Open PostgreSQL and Redis for ``settings`` and close them when the block exits.

    Embedded mode starts (or joins) the data directory's servers and applies pending
    migrations. ``warm`` (a gateway) also opens its Redis pool's first connections.
    With URLs configured, a database that is unreachable or has pending
    migrations raises ``StoreUnavailableError``, whose message says what to do.
    """
    async with server_urls(settings) as urls:
        assert urls.redis_url is not None  # need_redis=True guarantees it
        if urls.embedded:
            try:
                await apply_migrations(urls.database_url, connect_timeout=settings.database_timeout)
            except _PG_CONNECT_ERRORS as exc:
                raise _unavailable("PostgreSQL", urls.database_url, exc) from None
        pool = await _create_pool(urls.database_url, settings)
        try:
            await _require_migrated(pool)
            client = connect_redis(urls.redis_url, settings)
            try:
                await _ping_redis(client, urls.redis_url)
                if warm:
                    await _warm(client, urls.redis_url, settings.redis_warm_connections)
                yield Stores(
                    pool, client, urls.database_url, urls.redis_url, settings.state_lease_ms
                )
            finally:
                await client.aclose()
        finally:
            await pool.close()
