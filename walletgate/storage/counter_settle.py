"""Settling counter reservations (step 2 of the protocol in :mod:`.counters`), and the
commands that ride this process's pipeline.

:class:`CounterSettlement` is the base of :class:`walletgate.storage.counters.Counters`:
it owns the Redis client and, on one server, the :class:`AutoPipeline` that admissions
and settlements share. A reservation is settled exactly once: ``commit`` (or
``commit_soon``) deletes its records so the amounts stay counted, ``refund`` takes the
amounts back through them; ``confirm`` checks a held spend's records survived.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from walletgate.storage import counter_scripts
from walletgate.storage.auto_pipeline import AutoPipeline
from walletgate.storage.counter_keys import CountersUnavailable, Reservation, record_key
from walletgate.storage.redis_client import REDIS_ERRORS, RedisClient, as_text

#: How often one reservation may find a counter missing and rebuild it (admission), or
#: find its record naming a counter it did not read just before (refund).
REBUILD_ATTEMPTS = 3


class CounterSettlement:
    """Settles reservations and sends pipelined commands, on a Redis server or Cluster."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        # On one server, the scripts and settlements of concurrent requests share
        # round trips (a cluster client splits pipelines by node on its own).
        self._auto = None if isinstance(redis, RedisCluster) else AutoPipeline(redis)
        self._refund: AsyncScript = redis.register_script(counter_scripts.REFUND)

    async def confirm(self, reservation: Reservation) -> bool:
        """True when every record of ``reservation`` is intact in Redis.

        For a reservation made before its audit row (a held spend): call once the row
        is durable. False means Redis lost the reservation in between (flush, restart):
        a counter rebuilt from PostgreSQL before the row was written may not count it,
        so it must not become approvable. (An allowed spend writes its row first and
        needs no confirmation.)
        """
        records = [record_key(tag, reservation.id) for tag, _ in reservation.groups]
        try:
            if self._auto is not None:
                auto = self._auto
                entries = await asyncio.gather(*(auto.execute("HLEN", r) for r in records))
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for record in records:
                        pipe.hlen(record)
                    entries = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        expected = [count for _, count in reservation.groups]
        return [int(found) for found in entries] == expected

    async def commit(self, reservation: Reservation, *, also_delete: str | None = None) -> None:
        """The backend accepted the request: the amounts stay counted.

        ``also_delete`` names one more key to delete in the same round trip (a cache
        entry the request made stale); if it fails, the reservation is not committed.
        """
        await self._delete(_settled_keys(reservation, also_delete), defer=False)

    async def commit_soon(
        self, reservation: Reservation, *, also_delete: str | None = None
    ) -> None:
        """:meth:`commit`, riding the next pipeline this process sends (on one server).

        Nothing needs the records gone sooner: a committed amount stays counted whether
        its record is there or not, nobody refunds a committed spend, a rebuild reads
        PostgreSQL, and the record expires by itself. So the DEL goes with the next
        admission's pipeline, or alone a moment later when none comes (see
        :meth:`delete_later`).
        """
        await self.delete_later(*_settled_keys(reservation, also_delete))

    async def delete_later(self, *keys: str) -> None:
        """Delete ``keys`` with the next pipeline this process sends, or alone after a
        moment (``auto_pipeline.DEFER_LINGER``) when none comes; a failure is then logged,
        not raised. On a cluster they are deleted at once (and a failure raised as
        :class:`CountersUnavailable`)."""
        await self._delete(keys, defer=True)

    async def _delete(self, keys: list[str] | tuple[str, ...], *, defer: bool) -> None:
        """DEL ``keys``: deferred to the next pipeline when ``defer`` (on one server),
        else now, a failure raised as :class:`CountersUnavailable`."""
        if not keys:
            return
        if self._auto is not None and defer:
            self._auto.defer("DEL", *keys)
            return
        try:
            if self._auto is not None:
                await self._auto.execute("DEL", *keys)
            else:
                await self._redis.delete(*keys)  # a cluster client splits it by slot
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        """Send one command (a cache drop a spend makes, its announcement) in this
        event-loop turn's pipeline: queued at once, so an admission issued in the same
        turn shares its round trip. Await the future for the answer."""
        if self._auto is not None:
            return self._auto.submit(*command)
        return asyncio.ensure_future(self._redis.execute_command(*command))

    async def send_later(self, *command: Any) -> None:
        """Send one command with the next pipeline, like :meth:`delete_later`."""
        if self._auto is not None:
            self._auto.defer(*command)
            return
        try:
            await self._redis.execute_command(*command)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    async def flush_deferred(self) -> None:
        """Send the deferred settlements (:meth:`commit_soon`) now and wait for them:
        before the process stops."""
        if self._auto is not None:
            await self._auto.drain()

    async def refund(self, reservation: Reservation) -> None:
        """The request was not sent or the backend definitely refused it: take the
        amounts back. Idempotent: each record is taken back at most once."""
        try:
            for tag in reservation.tags:
                await self._refund_record(record_key(tag, reservation.id))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    async def _refund_record(self, record: str) -> None:
        for _ in range(REBUILD_ATTEMPTS):
            named = [as_text(key) for key in await self._redis.hkeys(record)]
            if not named:
                return
            if int(await self._refund(keys=[record, *named])) >= 0:
                return
        raise CountersUnavailable(f"reservation record {record} kept changing during a refund")


def _settled_keys(reservation: Reservation, also_delete: str | None) -> list[str]:
    """The keys a commit deletes: the reservation's records, and ``also_delete``."""
    keys = [record_key(tag, reservation.id) for tag in reservation.tags]
    if also_delete is not None:
        keys.append(also_delete)
    return keys


def unavailable(exc: BaseException) -> CountersUnavailable:
    """``exc`` as the :class:`CountersUnavailable` that makes spends fail closed."""
    if isinstance(exc, CountersUnavailable):
        return exc
    return CountersUnavailable(f"counters unavailable: {type(exc).__name__}: {exc}")
