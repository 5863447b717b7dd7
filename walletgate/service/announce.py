"""Telling every gateway about a committed change (one code path for every action).

An action commits its change in PostgreSQL (with the state version bump) first, then
announces it through the policy cache. The announcement is made even when nothing
changed, so repeating an action repairs a cache an earlier failed announcement left
stale. A failed announcement does not undo the change: it is reported to the caller,
which says so (the CLI on stderr with exit status 1, the admin API in its answer).
"""

from __future__ import annotations

from dataclasses import dataclass

from walletgate.storage.cache import CacheUnavailable, publish_state
from walletgate.storage.runtime import Stores


@dataclass(frozen=True, slots=True)
class Announcement:
    """The state version announced, or why the gateways could not be told."""

    version: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def announce(stores: Stores, *, cache_ttl: int) -> Announcement:
    """Publish the committed state to Redis and every gateway, and wait until every
    gateway acknowledged it (or its lease ran out); never raises for Redis."""
    try:
        version = await publish_state(
            stores.redis, stores.pool, ttl=cache_ttl, lease_ms=stores.state_lease_ms
        )
    except CacheUnavailable as exc:
        return Announcement(None, str(exc))
    return Announcement(version)
