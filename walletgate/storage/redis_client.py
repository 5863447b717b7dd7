"""The Redis client type walletgate uses: one server or a Redis Cluster, same API.

``walletgate.storage.runtime.connect_redis`` returns either; code that only touches
keys of one hash slot per command or script works with both.
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

#: What a failing client raises: Redis errors, cluster routing errors (not RedisErrors
#: in redis-py), socket errors, and AttributeError: redis-py 8.1's cluster client,
#: refreshing its slot map after a MOVED reply (resharding, failover, or a first
#: command before it knew the map), closes connections that concurrent commands are
#: still using, which then fail with ``'NoneType' object has no attribute ...``.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    AttributeError,
)
