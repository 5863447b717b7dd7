"""The Redis client type walletgate uses: one server or a Redis Cluster, same API.

``walletgate.storage.runtime.connect_redis`` returns either; code that only touches
keys of one hash slot per command or script works with both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

#: What a failing client raises: Redis errors, cluster routing errors (not RedisErrors
#: in redis-py), socket errors, and AttributeError: redis-py 8.1's cluster client,
#: refreshing its slot map after a MOVED reply (resharding, failover, or a first
#: command before it knew the map), closes connections that concurrent commands are
#: still using, which then fail with ``'NoneType' object has no attribute ...``; under
#: uvloop the same race raises RuntimeError ("unable to perform operation on
#: <TCPTransport closed=True>; the handler is closed") where asyncio's own loop raises
#: an OSError.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    AttributeError,
    RuntimeError,
)


def as_text(value: Any) -> str:
    """A Redis reply (bytes from a client without ``decode_responses``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_hash_fields(
    redis: RedisClient, entries: Sequence[tuple[str, str]]
) -> list[str | None]:
    """HGET of every ``(key, field)``, in one round trip (one per node on a cluster),
    ``None`` where there is nothing. Raises what the client raises."""
    if len(entries) == 1:
        found = [await redis.hget(*entries[0])]
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for key, field in entries:
                pipe.hget(key, field)
            found = await pipe.execute()
    return [None if raw is None else as_text(raw) for raw in found]
