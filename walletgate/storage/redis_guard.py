"""One typed error for "Redis did not answer", so callers can fail closed on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError


class CacheUnavailable(RuntimeError):
    """The caches cannot answer: Redis (or, behind a cold cache, PostgreSQL) failed.

    A gateway must refuse spends when it sees this (SPEC §6); it never falls back to
    state it cannot prove current.
    """


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into :class:`CacheUnavailable`.

    ``what`` names the operation for the message (``"reading the state version"``).
    """
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise CacheUnavailable(f"Redis is unavailable while {what}: {exc}") from exc
