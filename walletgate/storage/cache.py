"""The gateway's view of policies and tokens: PostgreSQL truth, Redis cache, in-process copy.

The version stamp protocol (SPEC §5):

- PostgreSQL ``state_version.version`` is the truth. ``apply``, ``revoke`` and freezes
  bump it in the same transaction as their change.
- After commit, :func:`~walletgate.storage.state_publish.publish_state` reloads the
  state from PostgreSQL, writes the policy document and the version key to Redis (the
  version only ever goes up), announces the version on a pub/sub channel, and returns
  once every gateway's state lease has acknowledged it or run out.
- A request whose caller and agent are already in memory (:meth:`StateCache.held`) is
  served from memory on the word of this process's state lease (:mod:`.leases`), with
  no trip to Redis, while the lease holds; a spend still proves the version inside its
  first counter script, atomically with its reservation (``Counters.admit``). Without
  a valid lease, every request proves the version in its first trip (or
  :meth:`StateCache.snapshot` reads it: one Redis round trip). When the version moved
  on, the compiled policies and the token map are refreshed from Redis, or from
  PostgreSQL when Redis has nothing (TTL, FLUSHALL, restart), and the request is
  decided again.

So once ``apply`` or ``revoke`` returns, no gateway serves a request from older state.
Pub/sub only makes the wait short (a gateway that misses the message is waited out for
its lease term). The version key has a TTL, so PostgreSQL is consulted again at least
that often even if a publish was lost after commit. Redis failures raise
:class:`CacheUnavailable` and are never papered over with stale state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from walletgate.config.documents import compile_document
from walletgate.config.settings import Settings
from walletgate.policies.model import PolicySet
from walletgate.storage.balance_cache import drop_balances, get_balance, put_balance
from walletgate.storage.cache_entries import StateEntry, decode_state, decode_version
from walletgate.storage.cache_keys import (
    BALANCE_DROPS_CHANNEL,
    POLICY_DOCUMENT_KEY,
    STATE_CHANNEL,
    STATE_VERSION_KEY,
)
from walletgate.storage.leases import StateLease
from walletgate.storage.near_balances import NearBalances
from walletgate.storage.policy_repo import load_document
from walletgate.storage.redis_client import RedisClient, as_text
from walletgate.storage.redis_guard import CacheUnavailable, redis_errors
from walletgate.storage.state import current_state_version
from walletgate.storage.state_publish import (
    DocumentLoader,
    database_errors,
    load_state,
    publish_state,
    store_state,
)
from walletgate.storage.token_memory import TokenMemory
from walletgate.storage.tokens import TokenInfo, looks_like_token

__all__ = [
    "CacheUnavailable",
    "Snapshot",
    "StateCache",
    "drop_balances",
    "get_balance",
    "publish_state",
    "put_balance",
]

_log = logging.getLogger(__name__)

DocumentCompiler = Callable[[Mapping[str, Any], int, Mapping[str, int]], PolicySet]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The compiled policies a request is judged under, and their state version."""

    version: int
    policies: PolicySet


class StateCache:
    """One gateway process's view of policies and tokens (see the module docstring).

    Use one instance per process and share it between requests::

        snapshot = await cache.snapshot()                 # one Redis GET
        caller = await cache.authenticate(token, at=snapshot)  # usually no I/O

    Both raise :class:`CacheUnavailable` when the state cannot be proven current.
    """

    def __init__(
        self,
        redis: RedisClient,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        loader: DocumentLoader = load_document,
        compiler: DocumentCompiler = compile_document,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._policy_ttl = settings.policy_cache_ttl
        self._loader = loader
        self._compiler = compiler
        self._state: StateEntry | None = None  # what _snapshot was compiled from
        self._snapshot: Snapshot | None = None
        self._installs = 0  # counts refreshes, so waiters can tell one happened
        self._refresh_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        # Token answers valid for the current snapshot's version (see _install).
        self._tokens = TokenMemory(
            redis, pool, ttl=settings.token_cache_ttl, clock=clock, spawn=self._spawn
        )
        #: This process's state lease: while it holds, reads trust memory (no trip).
        self.lease = StateLease(redis, term_ms=settings.state_lease_ms)
        self._leasing = False  # keep_lease is running
        #: In-memory copies of cached balances, kept fresh by the drop announcements
        #: that :meth:`watch` listens to (None: balances are read from Redis only).
        self.near: NearBalances | None = None
        #: Called with each lease renewal's result (extended, moved, failed).
        self.on_renewal: Callable[[str], None] | None = None
        #: Called with the new version whenever a newer state is installed.
        self.on_install: list[Callable[[int], None]] = []

    @property
    def version(self) -> int | None:
        """The state version held in memory (``None`` before the first snapshot)."""
        return None if self._snapshot is None else self._snapshot.version

    async def snapshot(self) -> Snapshot:
        """The current policies: one Redis round trip when nothing changed.

        Raises :class:`CacheUnavailable` when Redis fails, or when Redis has nothing
        and PostgreSQL fails.
        """
        installs = self._installs
        with redis_errors("reading the state version"):
            seen = decode_version(await self._redis.get(STATE_VERSION_KEY))
        current = self._current_for(seen, installs)
        if current is not None:
            return current
        async with self._refresh_lock:
            # Another request may have refreshed while this one waited for the lock.
            current = self._current_for(seen, installs)
            if current is not None:
                return current
            return await self._refresh(seen)

    def _current_for(self, seen: int | None, installs: int) -> Snapshot | None:
        """The in-memory snapshot if it is at least as new as ``seen``."""
        held = self._snapshot
        if held is None:
            return None
        if seen is None:
            # Redis had no version: good enough only if a refresh happened meanwhile.
            return held if self._installs != installs else None
        # Versions only grow, so a higher in-memory version came from newer truth.
        return held if seen <= held.version else None

    async def _refresh(self, seen: int | None) -> Snapshot:
        if seen is not None:
            with redis_errors("reading the policy cache"):
                cached = decode_state(await self._redis.get(POLICY_DOCUMENT_KEY))
            if cached is not None and cached.version >= seen:
                return self._install(cached)
        loaded = await self._load_from_database()
        # If Redis already holds a newer version (a publish raced this load), the next
        # request sees it and refreshes again; nothing older is ever written back.
        await store_state(self._redis, loaded, self._policy_ttl)
        return self._install(loaded)

    async def _load_from_database(self) -> StateEntry:
        """The committed state; the in-memory one if PostgreSQL has not moved past it.

        The version key expires every TTL even when nothing changed; checking the
        version first spares each gateway a full document load and compile then.
        """
        if self._state is not None:
            with database_errors("reading the state version"):
                version = await current_state_version(self._pool)
            if version == self._state.version:
                return self._state
        return await load_state(self._pool, self._loader)

    def _install(self, state: StateEntry) -> Snapshot:
        self._installs += 1
        if self._snapshot is not None and self._snapshot.version == state.version:
            return self._snapshot  # one version is one state: nothing to recompile
        compiled = self._compiler(state.document, state.version, state.policy_versions)
        policies = replace(compiled, frozen=state.freezes)
        self._state = state
        self._snapshot = Snapshot(state.version, policies)
        self._tokens.installed(state.version)
        for listener in self.on_install:
            listener(state.version)
        if self._leasing:
            # Acknowledge the new version at once: a change waiting for this gateway's
            # lease returns as soon as the renewal lands.
            self._spawn(self._acknowledge())
        return self._snapshot

    async def authenticate(self, token: str, *, at: Snapshot | None = None) -> TokenInfo | None:
        """The agent behind ``token``, or ``None`` for an unknown or revoked token.

        The answer is valid for ``at`` (by default a fresh :meth:`snapshot`, which costs
        one Redis round trip; pass the request's snapshot to save it). Known answers
        come from memory, then from the Redis token cache, then from PostgreSQL.
        Raises :class:`CacheUnavailable` like :meth:`snapshot`.
        """
        if not looks_like_token(token):
            return None
        snapshot = at if at is not None else await self.snapshot()
        return await self._tokens.lookup(token, snapshot.version)

    def held(self, token: str) -> tuple[Snapshot, TokenInfo] | None:
        """The snapshot in memory and ``token``'s agent under it, with no I/O; ``None``
        unless both are in memory.

        Not proven current: the caller must prove ``snapshot.version`` still current
        in its first trip to Redis (``Counters.admit(version=...)``) before acting on
        the answer. A use of the token is noted, as :meth:`authenticate` does.
        """
        found = self.remembered(token)
        if found is not None:
            self._tokens.note_use(found[1].token_id)
        return found

    def remembered(self, token: str) -> tuple[Snapshot, TokenInfo] | None:
        """The last snapshot and ``token``'s agent as this process remembers them, with
        no I/O; ``None`` unless both are in memory. Possibly stale: only for serving
        reads while Redis is down, when the operator chose ``reads_fail_open``."""
        if self._snapshot is None or not looks_like_token(token):
            return None
        info = self._tokens.remembered(token)
        return None if info is None else (self._snapshot, info)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def distrust(self) -> None:
        """A request found the state moved on: stop trusting memory until renewed."""
        self.lease.distrust()

    async def _acknowledge(self) -> None:
        """Renew the lease with the version in memory (refreshing first when Redis holds
        a newer one). Redis and PostgreSQL errors are logged: the lease then runs out
        and requests prove the state one by one (failing closed if they cannot)."""
        try:
            for _ in range(3):
                held = self.version
                if held is None:
                    held = (await self.snapshot()).version
                current = await self.lease.renew(held)
                if current == held:
                    self._note_renewal("extended")
                    return
                self._note_renewal("moved")
                await self.snapshot()  # a newer (or missing) version: refresh, then again
        except (RedisError, OSError, CacheUnavailable) as exc:
            self._note_renewal("failed")
            _log.warning("could not renew the state lease: %s", exc)

    def _note_renewal(self, result: str) -> None:
        if self.on_renewal is not None:
            self.on_renewal(result)

    async def keep_lease(self) -> None:
        """Renew the state lease every third of its term, until cancelled. Without it a
        process never trusts its memory (every request proves the state)."""
        self._leasing = True
        try:
            while True:
                await self._acknowledge()
                await asyncio.sleep(self.lease.term / 3)
        finally:
            self._leasing = False
            await self.lease.release()

    async def watch(self, *, retry_seconds: float = 1.0) -> None:
        """Refresh as soon as a new version is announced, until cancelled.

        This is what lets a change return quickly: the gateway installs the announced
        state and acknowledges it in its lease. Without it (a lost message), a change
        waits for this gateway's lease to run out instead; correctness never depends on
        it. Redis errors are logged and retried.
        """
        channels = [STATE_CHANNEL] if self.near is None else [STATE_CHANNEL, BALANCE_DROPS_CHANNEL]
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(*channels)
                    async for message in pubsub.listen():
                        await self._heard(message, len(channels))
            except (RedisError, OSError, CacheUnavailable) as exc:
                _log.warning("state announcements interrupted (%s); retrying", exc)
                if self.near is not None:
                    self.near.unsubscribed()
                await asyncio.sleep(retry_seconds)

    async def _heard(self, message: Mapping[str, Any], channels: int) -> None:
        kind = message["type"]
        if kind == "subscribe":
            # Once every channel is confirmed, no drop can be missed any more.
            if self.near is not None and message["data"] == channels:
                self.near.subscribed()
            return
        if kind != "message":
            return
        if as_text(message["channel"]) == BALANCE_DROPS_CHANNEL:
            if self.near is not None:
                self.near.drop(as_text(message["data"]))
            return
        announced = decode_version(message["data"])
        if announced is not None and (self.version or 0) < announced:
            self.lease.distrust()
            await self.snapshot()

    async def aclose(self) -> None:
        """Wait for background bookkeeping (``last_used_at`` writes) to finish."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
