"""``walletgate backup`` / ``walletgate restore``: spend, back up, lose both stores,
restore, start again: the audit log is intact, the counters rebuild to the same totals
and the next spend is judged against them. And a backup this walletgate does not know
the schema of is refused, leaving the database as it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.gateway import (
    free_port,
    issue_token,
    start_gateway,
    stop_process,
    wait_healthy,
    walletgate_cli,
)
from tests.support.servers import scratch_database
from tests.support.spender_fleet import document, fresh_recipient, transfer

CAP = 10**15
SPEND = 4 * 10**14  # two fit under CAP, three do not (fees or not)


async def counters(redis_url: str) -> dict[bytes, Any]:
    """Every counter's buckets (not the reservation records, which a commit removes)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match="{wg:c:*") if b":res:" not in k]
        return {key: await client.hgetall(key) for key in sorted(keys)}
    finally:
        await client.aclose()


async def audit_log(database_url: str) -> list[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, status, decision, claims::text, tx_hash FROM transactions ORDER BY id"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


@pytest_asyncio.fixture
async def env(
    postgres_server_url: str, migrated_template: str, redis_url: str, devnet: Devnet
) -> AsyncIterator[dict[str, str]]:
    """Settings of a gateway on its own database, with the spender's policy and token."""
    async with scratch_database(postgres_server_url, "wg_backup", migrated_template) as url:
        env = {
            "WALLETGATE_DATABASE_URL": url,
            "WALLETGATE_REDIS_URL": redis_url,
            "WALLETGATE_BACKEND_URL": devnet.url,
            "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
            "WALLETGATE_ACTOR": "backup-tests",
        }
        yield env


@asynccontextmanager
async def gateway(env: dict[str, str]) -> AsyncIterator[str]:
    port = free_port()
    process = start_gateway(env, port)
    url = f"http://127.0.0.1:{port}/"
    try:
        await wait_healthy(url, process)
        yield url
    finally:
        stop_process(process)


async def send(url: str, token: str, recipient: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction"}
    body["params"] = transfer(recipient, SPEND)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as reply,
    ):
        answer: dict[str, Any] = await reply.json(content_type=None)
        return answer


async def cli(env: dict[str, str], *args: str, check: bool = True) -> Any:
    return await asyncio.to_thread(walletgate_cli, list(args), env, check=check)


async def wipe(database_url: str, redis_url: str) -> None:
    """Lose both stores: every table of the database, and Redis."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()


async def test_a_restored_backup_keeps_the_audit_log_and_the_counters(
    env: dict[str, str], devnet: Devnet, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(document(devnet.chain_id, "daily", CAP))
    await cli(env, "policies", "apply", str(policy))
    token = await asyncio.to_thread(issue_token, "spender", env)
    async with gateway(env) as url:
        assert "result" in await send(url, token, fresh_recipient())
        refused_before = await send(url, token, fresh_recipient())
        assert "result" in refused_before  # two fit
    database_url, redis_url = env["WALLETGATE_DATABASE_URL"], env["WALLETGATE_REDIS_URL"]
    log_before = await audit_log(database_url)
    totals_before = await counters(redis_url)
    assert totals_before and len(log_before) == 2
    backup = tmp_path / "walletgate.dump"
    out = (await cli(env, "backup", str(backup))).stdout
    assert "Backed up" in out and backup.stat().st_size > 0

    await wipe(database_url, redis_url)
    assert await audit_log_missing(database_url)
    restored = await cli(env, "restore", str(backup))
    assert "Restored" in restored.stdout
    await wipe_redis_only(redis_url)  # external servers: the operator flushes Redis

    assert await audit_log(database_url) == log_before
    async with gateway(env) as url:
        third = await send(url, token, fresh_recipient())
        assert third["error"]["data"]["reason"] == "cumulative_cap_exceeded"
        assert await counters(redis_url) == totals_before  # rebuilt from the audit log
    assert len(await audit_log(database_url)) == 3


async def test_a_backup_of_an_unknown_schema_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    database_url = env["WALLETGATE_DATABASE_URL"]
    backup = tmp_path / "future.dump"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (name, checksum) VALUES ('9999_future.sql', $1)",
            "0" * 64,
        )
        await cli(env, "backup", str(backup))
        await conn.execute("DELETE FROM schema_migrations WHERE name = '9999_future.sql'")
        await conn.execute("INSERT INTO owners (id) VALUES ('kept')")
    finally:
        await conn.close()
    refused = await cli(env, "restore", str(backup), check=False)
    assert refused.returncode == 1
    assert "9999_future.sql" in refused.stderr and "cannot be restored" in refused.stderr
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM owners WHERE id = 'kept'") == 1
    finally:
        await conn.close()


async def audit_log_missing(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('transactions') IS NULL"))
    finally:
        await conn.close()


async def wipe_redis_only(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
