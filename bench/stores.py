"""PostgreSQL and Redis for the bench: provisioning one database per walletgate deployment.

By default the bench runs walletgate's own embedded servers (``walletgate.storage.
embedded``) in its work directory; ``WALLETGATE_BENCH_DATABASE_URL`` (a server URL whose
user may create databases) and ``WALLETGATE_BENCH_REDIS_URL`` point it at other servers.
Durability is left as configured (the embedded PostgreSQL commits with fsync): the audit
row of a spend must be durable before forwarding, and its cost is part of what is
measured.

Each deployment (a wallet count and an audit-table size) gets its own database,
migrated and filled through walletgate's own code (``apply_migrations``,
``policy_repo.apply``, ``issue_token``), and its own Redis database number.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import redis.asyncio as aioredis

from bench.policyset import (
    AGENTS_PER_OWNER,
    BENCH_AGENT,
    WALLETS_PER_AGENT,
    Fleet,
    policy_document,
)
from walletgate.storage.embedded import attach, detach
from walletgate.storage.migrations import apply_migrations
from walletgate.storage.policy_repo import apply
from walletgate.storage.tokens import issue_token

DATABASE_URL_ENV = "WALLETGATE_BENCH_DATABASE_URL"
REDIS_URL_ENV = "WALLETGATE_BENCH_REDIS_URL"
ACTOR = "bench"


@dataclass(frozen=True)
class Stores:
    """Where the bench's PostgreSQL server and Redis server answer."""

    admin_url: str  # a database on the server from which others are created
    redis_url: str
    embedded: bool

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        return with_path(self.admin_url, f"/{name}")

    def redis_database_url(self, index: int) -> str:
        """The URL of Redis database number ``index``."""
        return with_path(self.redis_url, f"/{index}")


def with_path(url: str, path: str) -> str:
    """``url`` with its path replaced (works for TCP and unix-socket URLs)."""
    return urlunsplit(urlsplit(url)._replace(path=path))


@contextlib.contextmanager
def bench_stores(workdir: Path) -> Iterator[Stores]:
    """The configured servers, or embedded ones in ``workdir`` for the block's duration."""
    database_url = os.environ.get(DATABASE_URL_ENV)
    redis_url = os.environ.get(REDIS_URL_ENV)
    if database_url and redis_url:
        yield Stores(database_url, redis_url, embedded=False)
        return
    if database_url or redis_url:
        raise SystemExit(f"bench: set both {DATABASE_URL_ENV} and {REDIS_URL_ENV}, or neither")
    servers_dir = workdir / "servers"
    servers = attach(servers_dir)
    try:
        yield Stores(with_path(servers.database_url, "/postgres"), servers.redis_url, True)
    finally:
        detach(servers_dir)


async def server_pids(stores: Stores) -> dict[str, list[int]]:
    """The PostgreSQL postmaster and the Redis server process, when they run on this
    machine (their CPU time is part of what a request costs); empty lists otherwise."""
    out: dict[str, list[int]] = {"postgres": [], "redis": []}
    conn = await asyncpg.connect(stores.admin_url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        # While connected: the backend process exists only as long as the connection.
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(backend).parent()
            if postmaster is not None and "postgres" in postmaster.name():
                out["postgres"] = [postmaster.pid]
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(stores.redis_url)
    try:
        redis_pid = int((await client.info("server"))["process_id"])
    finally:
        await client.aclose()
    with contextlib.suppress(psutil.Error):
        name = psutil.Process(redis_pid).name()
        if "valkey" in name or "redis" in name:
            out["redis"] = [redis_pid]
    return out


@contextlib.asynccontextmanager
async def _admin(stores: Stores) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stores.admin_url)
    try:
        yield conn
    finally:
        await conn.close()


def database_name(label: str) -> str:
    """A fresh database name for a deployment (private to this bench run)."""
    return f"wg_bench_{label}_{secrets.token_hex(3)}"


async def create_policy_database(stores: Stores, name: str, wallets: int, chain_id: int) -> str:
    """A migrated database holding the policy set of ``wallets`` wallets; returns its URL."""
    async with _admin(stores) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    url = stores.database_url(name)
    await apply_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        await apply(conn, policy_document(wallets, chain_id), actor=ACTOR)
    finally:
        await conn.close()
    return url


async def clone_database(stores: Stores, source: str, name: str) -> str:
    """A copy of database ``source`` (nobody may be connected to it); returns its URL."""
    async with _admin(stores) as admin:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return stores.database_url(name)


async def drop_databases(stores: Stores, names: list[str]) -> None:
    """Drop the bench's databases (FORCE: the gateways may still hold connections)."""
    async with _admin(stores) as admin:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def issue_bench_token(database_url: str) -> str:
    """A new token for the bench agent."""
    conn = await asyncpg.connect(database_url)
    try:
        return (await issue_token(conn, BENCH_AGENT, actor=ACTOR)).token
    finally:
        await conn.close()


async def flush_redis(url: str) -> None:
    """Empty one Redis database (a deployment starts with no counters or caches)."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


# Clones a template row (one allowed, one denied, written by walletgate itself) ``$1``
# times, spread over the last 30 days and over every wallet of the fleet. The claims
# (what a counter rebuild sums) are rewritten to the row's wallet, agent and owner; the
# request and explanation are kept as written (only people read them).
_FILL = """
WITH template AS (
    SELECT * FROM transactions WHERE id = ANY($5::uuid[])
), numbered AS (
    SELECT n,
           n % $2 AS w,
           (n % $2) / $3 AS a,
           (n % $2) / $3 / $4 AS o,
           CASE WHEN n % 10 = 0 THEN 'deny' ELSE 'allow' END AS decision
      FROM generate_series(1, $1) AS n
)
INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend,
    method, request, intents, decision, reason, explanation, status, amounts, usd_value,
    tx_hash, claims, timings, settled_at)
SELECT gen_random_uuid(),
       now() - n * interval '2.592 seconds',
       'agent-' || a, 'wallet-' || w, 'owner-' || o,
       t.chain_id, t.backend, t.method,
       t.request, t.intents, t.decision, t.reason, t.explanation, t.status,
       t.amounts, t.usd_value, t.tx_hash,
       replace(replace(replace(t.claims::text, 'wallet-0', 'wallet-' || w),
                       'agent-0', 'agent-' || a), 'owner-0', 'owner-' || o)::jsonb,
       t.timings,
       CASE WHEN t.settled_at IS NULL THEN NULL ELSE now() - n * interval '2.592 seconds' END
  FROM numbered JOIN template t ON t.decision = numbered.decision
"""


async def fill_audit(database_url: str, rows: int, wallets: int) -> int:
    """Add ``rows`` audit rows cloned from the bench agent's newest allowed and denied
    rows; returns how many rows the table then holds."""
    conn = await asyncpg.connect(database_url, command_timeout=None)
    try:
        templates = await conn.fetch(
            """SELECT DISTINCT ON (decision) id FROM transactions
                WHERE agent_id = $1 AND decision IN ('allow', 'deny') AND status <> 'pending'
                ORDER BY decision, created_at DESC""",
            BENCH_AGENT,
        )
        if len(templates) != 2:
            raise RuntimeError("fill_audit needs one allowed and one denied spend to copy")
        async with conn.transaction():
            # Bench data, consistent by construction: skip the per-row foreign-key
            # triggers (a superuser setting, local to this transaction).
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                _FILL,
                rows,
                Fleet(wallets).wallets,
                WALLETS_PER_AGENT,
                AGENTS_PER_OWNER,
                [r["id"] for r in templates],
            )
        # As after a bulk load in production: statistics and the visibility map are
        # current, so no autovacuum of these rows runs in the middle of a measurement.
        await conn.execute("VACUUM (ANALYZE) transactions")
        count: int = await conn.fetchval("SELECT count(*) FROM transactions")
        return count
    finally:
        await conn.close()
