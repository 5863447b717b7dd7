"""Real PostgreSQL and Redis for the tests (a pytest plugin, see tests/conftest.py).

Session-wide servers:
- PostgreSQL: ``WALLETGATE_TEST_DATABASE_URL`` (a server URL whose user may create
  databases) if set, else a private embedded PostgreSQL in a temporary directory.
- Redis: ``WALLETGATE_TEST_REDIS_URL`` if set (its database is FLUSHed before every test
  that uses it, so do not point it at data you keep), else a private embedded Valkey.
The embedded pair is walletgate's own (``walletgate.storage.embedded``), private to the
session, so parallel test runs on one machine do not collide.

Per test: ``database_url`` is a fresh database cloned from a template migrated once per
session (``CREATE DATABASE … TEMPLATE``: milliseconds, not a full migration), dropped
after the test (``empty_database_url``: the same, unmigrated); ``pool`` is an asyncpg
pool on it; ``redis_url`` / ``redis`` point at a flushed Redis. Nothing here is a mock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from walletgate.storage.embedded import EmbeddedServers, attach, detach
from walletgate.storage.migrations import apply_migrations

DATABASE_URL_ENV = "WALLETGATE_TEST_DATABASE_URL"
REDIS_URL_ENV = "WALLETGATE_TEST_REDIS_URL"


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead (works for TCP and unix-socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def test_servers_dir() -> Iterator[Path]:
    """A private directory for this session's embedded servers, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="walletgate-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A fresh directory to use as a walletgate ``data_dir`` (embedded servers) in a test.

    Not under ``tmp_path``: every pytest session that starts resets
    ``/tmp/pytest-of-<user>`` to mode 0700, and when the tests run as root, PostgreSQL
    runs as the ``pgserver`` user, which then can no longer reach its data directory."""
    path = Path(tempfile.mkdtemp(prefix="walletgate-data-"))
    yield path / "wg"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_test_servers(test_servers_dir: Path) -> Iterator[EmbeddedServers]:
    """This session's private embedded PostgreSQL and Valkey (the product's own code).

    Their supervisor stops them even if the test run is killed."""
    servers = attach(test_servers_dir)
    try:
        yield servers
    finally:
        detach(test_servers_dir)


@pytest_asyncio.fixture(scope="session")
async def postgres_server_url(request: pytest.FixtureRequest) -> str:
    """URL of a PostgreSQL server (database ``postgres``) where the tests create databases."""
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        return external
    servers: EmbeddedServers = request.getfixturevalue("embedded_test_servers")
    url = with_database(servers.database_url, "postgres")
    conn = await asyncpg.connect(url)
    try:
        # Test data is disposable: durability only costs time here.
        await conn.execute("ALTER SYSTEM SET fsync = off")
        await conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture(scope="session")
async def migrated_template(postgres_server_url: str) -> AsyncIterator[str]:
    """Name of a database migrated once per session, the template of every test database."""
    name = f"wg_template_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await apply_migrations(with_database(postgres_server_url, name))
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(
    postgres_server_url: str, prefix: str, template: str | None = None
) -> AsyncIterator[str]:
    """URL of a database named ``prefix`` and a random suffix, created (as a copy of
    ``template`` if given) for the block and dropped after it."""
    name = f"{prefix}_{secrets.token_hex(8)}"
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"{copy}')
    try:
        yield with_database(postgres_server_url, name)
    finally:
        # A new connection: a fault test may have restarted the server meanwhile.
        # FORCE: a test that forgot to close a connection must not leak its database.
        await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(postgres_server_url: str, statement: str) -> None:
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def database_url(postgres_server_url: str, migrated_template: str) -> AsyncIterator[str]:
    """URL of a fresh, fully migrated database private to this test."""
    async with scratch_database(postgres_server_url, "wg_test", migrated_template) as url:
        yield url


@pytest_asyncio.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """URL of a database with nothing in it, not even ``schema_migrations``."""
    async with scratch_database(postgres_server_url, "wg_empty") as url:
        yield url


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's database."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=10) as created:
        yield created


@pytest.fixture(scope="session")
def redis_server_url(request: pytest.FixtureRequest) -> str:
    """URL of this session's Redis-compatible server."""
    external = os.environ.get(REDIS_URL_ENV)
    if external:
        return external
    servers: EmbeddedServers = request.getfixturevalue("embedded_test_servers")
    return servers.redis_url


@pytest_asyncio.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """URL of a Redis server whose database was flushed just before this test."""
    client = aioredis.Redis.from_url(redis_server_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    yield redis_server_url


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A ``redis.asyncio.Redis`` client (bytes responses) on a flushed server."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()
