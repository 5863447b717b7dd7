"""Rebuilding a missing counter in Redis from the audit log, once per key at a time in
a process (:class:`CounterRebuilder`, used by :class:`walletgate.storage.counters.Counters`).

What a rebuilt counter holds is worked out by :func:`walletgate.storage.rebuild.rebuilt_counter`
from the live rows; ``counter_scripts.INIT`` writes it only if the counter is still
absent, with the reservation records of the rows still in flight (``HSETNX``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.commands.core import AsyncScript

from walletgate.policies.claims import REQUESTS
from walletgate.storage import counter_scripts
from walletgate.storage.counter_keys import (
    RECORD_MARGIN,
    Counter,
    CountersUnavailable,
    record_key,
)
from walletgate.storage.rebuild import ClaimHistory, rebuilt_counter
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.windows import bucketing

_log = logging.getLogger(__name__)

# What reading the audit log for a rebuild may raise (ValueError: a malformed row).
_HISTORY_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    ValueError,
)


class CounterRebuilder:
    """Recreates missing counters of one process from PostgreSQL."""

    def __init__(self, redis: RedisClient, history: ClaimHistory) -> None:
        self._history = history
        self._init: AsyncScript = redis.register_script(counter_scripts.INIT)
        # Rebuilds in progress in this process, by counter key: one query per key.
        self._rebuilding: dict[str, asyncio.Future[None]] = {}

    async def rebuild(self, counter: Counter, now: float) -> None:
        """Recreate ``counter`` from the audit log, once per key at a time per process."""
        running = self._rebuilding.get(counter.key)
        if running is not None:
            await asyncio.shield(running)
            return
        task = asyncio.ensure_future(self._rebuild_now(counter, now))
        self._rebuilding[counter.key] = task
        task.add_done_callback(lambda _: self._rebuilding.pop(counter.key, None))
        await asyncio.shield(task)

    async def _rebuild_now(self, counter: Counter, now: float) -> None:
        window = bucketing(counter.shape, now)
        claims: Sequence[Any] = ()
        # Request counts have no audit rows (reads are not logged): they restart at zero.
        if counter.claim.unit != REQUESTS:
            since = datetime.fromtimestamp(window.counts_from, UTC)
            try:
                claims = await self._history.live_claims(counter.claim.key, since)
            except _HISTORY_ERRORS as exc:
                raise CountersUnavailable(
                    f"cannot rebuild counter {counter.claim.key} from PostgreSQL: {exc}"
                ) from exc
        rebuilt = rebuilt_counter(counter.shape, counter.scale, window, claims)
        record_ttl = window.ttl + RECORD_MARGIN
        args: list[Any] = [window.ttl, len(rebuilt.buckets)]
        for bucket, total in sorted(rebuilt.buckets.items()):
            args += [bucket, total]
        records = sorted(rebuilt.records.items())
        for _reservation, entry in records:
            args += [entry, record_ttl]
        args.append(counter_scripts.REBUILT_FOR)
        keys = [counter.key, *(record_key(counter.group, rid) for rid, _ in records)]
        keys.append(counter_scripts.REBUILT_PREFIX + counter.key)
        created = await self._init(keys=keys, args=args)
        if int(created):
            _log.info("rebuilt counter %s from %d live claims", counter.claim.key, len(claims))
