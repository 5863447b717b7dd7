"""``open_stores`` with configured URLs: connect, or refuse with a message that says why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from walletgate.config.settings import Settings, SettingsError
from walletgate.storage.runtime import (
    StoreUnavailableError,
    connect_redis,
    open_stores,
    redact_url,
)


def url_settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    # data_dir points somewhere harmless: with URLs nothing may be started in it.
    return Settings(data_dir=tmp_path / "unused", database_url=database_url, redis_url=redis_url)


async def test_open_stores_connects_to_configured_servers(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = url_settings(database_url, redis_url, tmp_path)

    async with open_stores(settings) as stores:
        assert await stores.pool.fetchval("SELECT version FROM state_version") == 1
        await stores.redis.set(b"probe", b"\xff")
        assert await stores.redis.get(b"probe") == b"\xff"  # bytes in, bytes out
        assert (stores.database_url, stores.redis_url) == (database_url, redis_url)

    assert not (tmp_path / "unused").exists()


async def test_open_stores_refuses_a_database_with_pending_migrations(
    empty_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = url_settings(empty_database_url, redis_url, tmp_path)

    with pytest.raises(StoreUnavailableError, match="run 'walletgate migrate' first"):
        async with open_stores(settings):
            pass


async def test_open_stores_reports_an_unreachable_redis(
    database_url: str, unused_tcp_port: int, tmp_path: Path
) -> None:
    redis_url = f"redis://:s3cret@127.0.0.1:{unused_tcp_port}/0"
    settings = url_settings(database_url, redis_url, tmp_path)

    with pytest.raises(StoreUnavailableError) as refused:
        async with open_stores(settings):
            pass

    message = str(refused.value)
    assert f"cannot connect to Redis at redis://:***@127.0.0.1:{unused_tcp_port}/0" in message
    assert "s3cret" not in message


async def test_open_stores_reports_an_unreachable_database(
    redis_url: str, unused_tcp_port: int, tmp_path: Path
) -> None:
    database_url = f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/walletgate"
    settings = url_settings(database_url, redis_url, tmp_path)

    expected = re.escape(f"cannot connect to PostgreSQL at {database_url}")
    with pytest.raises(StoreUnavailableError, match=expected):
        async with open_stores(settings):
            pass


async def test_half_configured_servers_are_a_settings_error(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "unused", database_url=database_url)

    with pytest.raises(SettingsError, match="redis_url is not"):
        async with open_stores(settings):
            pass


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(SettingsError, match="unsupported scheme 'http'"):
        connect_redis("http://127.0.0.1:6379", Settings())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:p%40ss@host/0", "rediss://user:***@host/0"),
        (
            "postgresql://postgres@/walletgate?host=/tmp/x",
            "postgresql://postgres@/walletgate?host=/tmp/x",
        ),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
