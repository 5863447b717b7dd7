"""Publishing the committed state: PostgreSQL truth written to the Redis policy cache,
announced to every gateway, and waited for until every gateway's state lease has
acknowledged it (:mod:`walletgate.storage.leases`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import asyncpg

from walletgate.config.settings import Settings
from walletgate.storage.cache_entries import StateEntry, encode_state
from walletgate.storage.cache_keys import POLICY_DOCUMENT_KEY, STATE_CHANNEL, STATE_VERSION_KEY
from walletgate.storage.freezes import load_active_freezes
from walletgate.storage.leases import wait_for_leases
from walletgate.storage.policy_repo import load_document, load_policy_versions
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.redis_guard import CacheUnavailable, redis_errors
from walletgate.storage.state import current_state_version

_log = logging.getLogger(__name__)

DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# Write the policy document and the version key together, unless Redis already holds a
# newer version (a slower publisher must not roll the state back). Equal versions are
# rewritten, which renews the TTL. Both keys share the {wg:state} hash tag.
_STORE_STATE_LUA = """
local current = tonumber(redis.call('GET', KEYS[1])) or 0
local version = tonumber(ARGV[1])
if version < current then
    return current
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return version
"""

DocumentLoader = Callable[[asyncpg.Connection], Awaitable[Mapping[str, Any]]]


#: ``compile_document(document, state_version, policy_versions)``
@contextmanager
def database_errors(what: str) -> Iterator[None]:
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise CacheUnavailable(f"PostgreSQL is unavailable while {what}: {exc}") from exc


async def load_state(pool: asyncpg.Pool, loader: DocumentLoader) -> StateEntry:
    """The committed version and document, read in one snapshot so they belong together."""
    with database_errors("loading the policy state"):
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            version = await current_state_version(conn)
            document = await loader(conn)
            policy_versions = await load_policy_versions(conn)
            freezes = await load_active_freezes(conn)
    return StateEntry(version, document, policy_versions, freezes)


async def store_state(redis: RedisClient, state: StateEntry, ttl: int) -> int:
    """Write ``state`` to Redis unless it holds a newer one; return the version it holds."""
    payload = encode_state(state)
    script = redis.register_script(_STORE_STATE_LUA)  # EVALSHA, reloading on NOSCRIPT
    with redis_errors("writing the policy cache"):
        held = await script(
            keys=[STATE_VERSION_KEY, POLICY_DOCUMENT_KEY], args=[state.version, payload, ttl]
        )
    return int(held)


async def publish_state(
    redis: RedisClient,
    pool: asyncpg.Pool,
    *,
    ttl: int = Settings.policy_cache_ttl,
    loader: DocumentLoader = load_document,
    lease_ms: int = Settings.state_lease_ms,
) -> int:
    """Tell every gateway about the committed state; return the version now announced.

    Call after the transaction that bumped the state version has committed (``apply``,
    ``revoke``). Returns once every gateway's state lease has acknowledged the version
    or run out (:func:`walletgate.storage.leases.wait_for_leases`): from then on no
    gateway serves a request from older state. Raises :class:`CacheUnavailable` when
    Redis or PostgreSQL fails: the change is committed, but gateways see it only when
    the version key expires.
    """
    state = await load_state(pool, loader)
    held = await store_state(redis, state, ttl)
    with redis_errors("announcing the state version"):
        await redis.publish(STATE_CHANNEL, held)
    waited = await wait_for_leases(redis, held, term_ms=lease_ms)
    if waited.fallback is not None or waited.pending_at_start:
        _log.info(
            "state version %d: waited %.3f s for %d gateway lease(s)%s",
            held,
            waited.waited,
            waited.pending_at_start,
            f" ({waited.fallback})" if waited.fallback else "",
        )
    return held
