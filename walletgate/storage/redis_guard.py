"""One typed error for "Redis did not answer", so callers can fail closed on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from walletgate.storage.redis_client import REDIS_ERRORS


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
    except REDIS_ERRORS as exc:
        # Not only RedisError: a Redis Cluster client also fails with its own routing
        # errors and, in a connection race, AttributeError (see REDIS_ERRORS), and such
        # a failure must refuse the request as unavailable, not crash it (HTTP 500).
        raise CacheUnavailable(f"Redis is unavailable while {what}: {exc}") from exc
