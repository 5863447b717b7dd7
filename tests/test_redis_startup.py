"""Redis at startup: connecting has its own timeout, and a pool is opened before use."""

from __future__ import annotations

import redis.asyncio as aioredis

from walletgate.config.settings import Settings, load_settings
from walletgate.storage.runtime import connect_redis, warm_redis


def test_connecting_has_its_own_timeout_separate_from_commands() -> None:
    settings = load_settings(
        env={"WALLETGATE_REDIS_TIMEOUT": "0.25", "WALLETGATE_REDIS_CONNECT_TIMEOUT": "4"}
    )
    client = connect_redis("redis://127.0.0.1:1/0", settings)
    assert isinstance(client, aioredis.Redis)
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == 0.25
    assert options["socket_connect_timeout"] == 4.0


async def test_warming_opens_the_pool_before_any_command(redis_url: str) -> None:
    client = connect_redis(redis_url, Settings(redis_warm_connections=12))
    observer = aioredis.Redis.from_url(redis_url)
    try:
        before = len(await observer.client_list())
        assert await warm_redis(client, 12) == 12
        assert len(await observer.client_list()) == before + 12
        assert len(client.connection_pool._available_connections) == 12
        await client.ping()  # reuses one: nothing new is opened
        assert len(await observer.client_list()) == before + 12
    finally:
        await client.aclose()
        await observer.aclose()
