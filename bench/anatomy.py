"""What one request costs in trips to the stores: counted on the servers, not guessed.

Requests are sent one at a time (so group commit cannot share a transaction between
them) and the servers' own counters are read before and after:

- Redis round trips: ``total_reads_processed`` (the read events the server handled: one
  per command, or per pipeline, that a client sent);
- Redis commands, counting those run inside Lua scripts (``INFO commandstats``);
- PostgreSQL write transactions: how far the next transaction id moved (read-only
  transactions take none; the statistics views lag by up to ten seconds, this does not).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

#: Time for queued work (the audit writer's outcome updates) to land after the last answer.
SETTLE = 0.5


@dataclass(frozen=True)
class Anatomy:
    """Store traffic per request of one scenario."""

    requests: int
    redis_round_trips: float
    redis_commands: float
    postgres_transactions: float


def _commands(info: dict[str, Any]) -> int:
    return sum(
        int(stats["calls"])
        for name, stats in info.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    )


async def _redis_counters(client: aioredis.Redis) -> tuple[int, int]:
    stats = await client.info("stats")
    commands = await client.info("commandstats")
    return int(stats["total_reads_processed"]), _commands(commands)


async def _next_transaction_id(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    return value


async def measure(
    url: str,
    token: str,
    body: Any,
    *,
    redis_url: str,
    database_url: str,
    requests: int = 50,
) -> Anatomy:
    """Send ``body`` ``requests`` times, one after the other; count the store traffic."""
    client = aioredis.Redis.from_url(redis_url)
    conn = await asyncpg.connect(database_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(SETTLE)
            reads_before, commands_before = await _redis_counters(client)
            xacts_before = await _next_transaction_id(conn)
            for _ in range(requests):
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()
            await asyncio.sleep(SETTLE)
            reads_after, commands_after = await _redis_counters(client)
            xacts_after = await _next_transaction_id(conn)
    finally:
        await client.aclose()
        await conn.close()
    own_reads = 2  # this module's two INFO calls after the first snapshot
    return Anatomy(
        requests,
        (reads_after - reads_before - own_reads) / requests,
        (commands_after - commands_before) / requests,
        (xacts_after - xacts_before) / requests,
    )
