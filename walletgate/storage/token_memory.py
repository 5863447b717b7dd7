"""Which agent a bearer token belongs to, for :class:`walletgate.storage.cache.StateCache`.

Answers come from memory, then from the Redis token cache, then from PostgreSQL. The
in-memory ones hold only for the state version they were read under: a newer state
(a revoke bumps the version) forgets them all. Each token's use is recorded in
PostgreSQL in the background, at most once a minute.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.storage.cache_entries import TokenEntry, decode_token, encode_token
from walletgate.storage.cache_keys import token_key
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.redis_guard import redis_errors
from walletgate.storage.state_publish import DATABASE_ERRORS, database_errors
from walletgate.storage.tokens import (
    TOUCH_INTERVAL_SECONDS,
    TokenInfo,
    hash_token,
    lookup_token_versioned,
    touch_token,
)

_log = logging.getLogger(__name__)

#: Tokens remembered in memory per process; the oldest are forgotten beyond this, so a
#: flood of made-up tokens cannot grow a gateway without bound.
_MAX_TOKENS_IN_MEMORY = 65_536

#: Starts a background job the owner waits for when it closes.
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class TokenMemory:
    """One process's token answers, valid for the state version in memory."""

    def __init__(
        self,
        redis: RedisClient,
        pool: asyncpg.Pool,
        *,
        ttl: int,
        clock: Callable[[], float],
        spawn: Spawn,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._ttl = ttl
        self._clock = clock
        self._spawn = spawn
        self._version: int | None = None  # the state version in memory
        self._answers: OrderedDict[bytes, TokenInfo | None] = OrderedDict()
        self._touched: dict[UUID, float] = {}

    def installed(self, version: int) -> None:
        """A newer state is in memory: answers read under an older one no longer hold."""
        self._version = version
        self._answers.clear()

    async def lookup(self, token: str, min_version: int) -> TokenInfo | None:
        """The agent behind ``token`` (a well-formed one) as of state ``min_version`` or
        newer, or ``None`` for an unknown or revoked token; its use is noted. Raises
        :class:`~walletgate.storage.redis_guard.CacheUnavailable` when Redis fails, or
        PostgreSQL when it must be asked."""
        digest = hash_token(token)
        if digest in self._answers and self._version is not None and self._version >= min_version:
            self._answers.move_to_end(digest)
            info = self._answers[digest]
        else:
            info = await self._load(token, digest, min_version)
        if info is not None:
            self.note_use(info.token_id)
        return info

    def remembered(self, token: str) -> TokenInfo | None:
        """``token``'s agent as remembered in memory, with no I/O (``None`` when not)."""
        return self._answers.get(hash_token(token))

    async def _load(self, token: str, digest: bytes, min_version: int) -> TokenInfo | None:
        key = token_key(digest)
        with redis_errors("reading the token cache"):
            entry = decode_token(await self._redis.get(key))
        if entry is None or entry.version < min_version:
            with database_errors("looking up a token"):
                found = await lookup_token_versioned(self._pool, token)
            entry = TokenEntry(found.state_version, found.info)
            if found.info is not None:
                self._touched[found.info.token_id] = self._clock()  # the lookup touched it
            with redis_errors("writing the token cache"):
                await self._redis.set(key, encode_token(entry.version, entry.info), ex=self._ttl)
        self._remember(digest, entry)
        return entry.info

    def _remember(self, digest: bytes, entry: TokenEntry) -> None:
        # Only an answer at least as new as the in-memory snapshot may join its token
        # map: a refresh may have installed a newer version while this one was loading.
        if self._version is None or entry.version < self._version:
            return
        self._answers[digest] = entry.info
        if len(self._answers) > _MAX_TOKENS_IN_MEMORY:
            self._answers.popitem(last=False)

    def note_use(self, token_id: UUID) -> None:
        """Record ``last_used_at`` in the background, at most once a minute per token."""
        now = self._clock()
        last = self._touched.get(token_id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[token_id] = now
        self._spawn(self._touch(token_id))

    async def _touch(self, token_id: UUID) -> None:
        try:
            await touch_token(self._pool, token_id)
        except DATABASE_ERRORS as exc:
            # Bookkeeping only: the request itself was authorized from proven state.
            _log.warning("could not record the use of token %s: %s", token_id, exc)
