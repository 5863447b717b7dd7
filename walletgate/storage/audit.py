"""The audit log: every spending decision as a row in ``transactions``.

Writes are group-committed: requests that arrive while one batch is being written wait
for the next batch, and one PostgreSQL transaction makes all of them durable together.
Under load that is one database round trip for many requests; when idle it costs what a
single insert would. ``insert`` returns only once the row is committed, so a spend's
intent row is durable before it is forwarded (SPEC §6). Outcome updates are queued and
written in the same batches; they are retried until they land, and a row whose outcome
never landed stays ``pending``, which keeps counting against caps until reconciled.

An allowed spend's row is written before its reservation; when the reservation is then
refused, :meth:`AuditWriter.refuse` turns the row into the refusal row it would have
been (``denied``, no claims), and :meth:`AuditWriter.discard` removes it when the request
must be decided again on newer state. Both touch only a row still ``pending``, ride the
same batches, and are retried until they land; until then the row counts (the safe side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.notify.events import spend_event
from walletgate.notify.outbox import record_events
from walletgate.storage.approvals import insert_holds
from walletgate.storage.audit_rows import (
    DISCARD_SQL,
    INSERT_ONE_SQL,
    INSERT_SQL,
    REFUSE_SQL,
    UPDATE_ONE_SQL,
    UPDATE_SQL,
    WRITE_ERRORS,
    AuditOutcome,
    AuditRecord,
    AuditUnavailable,
    Rewrite,
    insert_args,
    refuse_args,
    update_args,
)

__all__ = ["AuditOutcome", "AuditRecord", "AuditUnavailable", "AuditWriter"]

_log = logging.getLogger(__name__)


class AuditWriter:
    """Group-committing writer of audit rows. One instance per gateway process."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, timeout: float = 5.0) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._timeout = timeout
        self._inserts: list[tuple[AuditRecord, asyncio.Future[None]]] = []
        self._updates: list[AuditOutcome] = []
        self._rewrites: list[tuple[Rewrite, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the background batch writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Write everything still queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def insert(self, record: AuditRecord) -> None:
        """Queue ``record`` and return once it is committed; raise AuditUnavailable if not."""
        if self._task is None or self._closing:
            raise AuditUnavailable("the audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inserts.append((record, future))
        self._wakeup.set()
        # The caller may be cancelled (client gone); the row is written regardless.
        await asyncio.shield(future)

    def update(self, outcome: AuditOutcome) -> None:
        """Queue an outcome update; it is written with the next batch and retried on error."""
        self._updates.append(outcome)
        self._wakeup.set()

    async def refuse(self, record: AuditRecord) -> None:
        """Turn the row ``record.id``, written ``pending`` before its reservation, into
        the refusal row ``record`` (status ``denied``): the reservation was refused, or
        could not be made, and nothing was forwarded. Only a row still ``pending`` changes.

        Returns once that is committed, or once a first attempt failed: it then stays
        queued and is retried until it lands (the refusal stands either way).
        """
        await self._rewrite(Rewrite(record.id, record))

    async def discard(self, row_id: UUID) -> None:
        """Delete the row ``row_id``, written ``pending`` before its reservation, when the
        request was neither reserved nor forwarded and is decided again on newer state
        (it gets a row of its own then). Returns like :meth:`refuse`."""
        await self._rewrite(Rewrite(row_id, None))

    async def _rewrite(self, rewrite: Rewrite) -> None:
        if self._task is None or self._closing:
            raise AuditUnavailable("the audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rewrites.append((rewrite, future))
        self._wakeup.set()
        await asyncio.shield(future)

    @property
    def backlog(self) -> int:
        """Rows and updates waiting to be written (exported as a metric)."""
        return len(self._inserts) + len(self._updates) + len(self._rewrites)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._inserts or self._updates or self._rewrites:
                inserts = self._inserts[: self._max_batch]
                del self._inserts[: len(inserts)]
                updates = self._updates[: self._max_batch]
                del self._updates[: len(updates)]
                rewrites = self._rewrites[: self._max_batch]
                del self._rewrites[: len(rewrites)]
                try:
                    await asyncio.wait_for(self._write(inserts, updates, rewrites), self._timeout)
                except asyncpg.PostgresError as exc:
                    if _transient(exc):
                        if not await self._retry_later(inserts, updates, exc, backoff, rewrites):
                            return
                        backoff = min(backoff * 2, 2.0)
                        continue
                    # One row the database refuses must not spoil the batch (or, retried
                    # forever, every batch after it): write them one at a time.
                    await self._write_each(inserts, updates, rewrites)
                except (asyncpg.DataError, ValueError, TypeError):
                    # A value that cannot even be encoded (an int past asyncpg's or json's
                    # limits): isolated like a refused row, or the writer task would die
                    # and leave every insert() waiting forever.
                    await self._write_each(inserts, updates, rewrites)
                except (OSError, asyncpg.InterfaceError, TimeoutError) as exc:
                    if not await self._retry_later(inserts, updates, exc, backoff, rewrites):
                        return
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                _resolve(inserts)
                _resolve(rewrites)
            if self._closing:
                return

    async def _retry_later(
        self,
        inserts: list[tuple[AuditRecord, asyncio.Future[None]]],
        updates: list[AuditOutcome],
        exc: BaseException,
        backoff: float,
        rewrites: list[tuple[Rewrite, asyncio.Future[None]]],
    ) -> bool:
        """The database is unreachable: refuse the waiting spends, keep the outcomes."""
        _log.warning(
            "audit batch failed (%d rows, %d updates): %s", len(inserts), len(updates), exc
        )
        for _, future in inserts:
            if not future.done():
                future.set_exception(AuditUnavailable(f"audit log unavailable: {exc}"))
        # Outcomes must land eventually; keep them for the next attempt. So must the
        # rewrites of refused rows, whose callers need not wait for that.
        self._updates[:0] = updates
        self._rewrites[:0] = rewrites
        _resolve(rewrites)
        if self._closing:
            return False
        await asyncio.sleep(backoff)
        return True

    async def _write_each(
        self,
        inserts: list[tuple[AuditRecord, asyncio.Future[None]]],
        updates: list[AuditOutcome],
        rewrites: Sequence[tuple[Rewrite, asyncio.Future[None]]] = (),
    ) -> None:
        for record, future in inserts:
            try:
                await asyncio.wait_for(self._write([(record, future)], []), self._timeout)
            except (*WRITE_ERRORS, ValueError, TypeError) as exc:
                _log.error("audit row %s refused: %s", record.id, exc)
                if not future.done():
                    future.set_exception(AuditUnavailable(f"audit row refused: {exc}"))
            else:
                _resolve([(record, future)])
        for outcome in updates:
            # An outcome the database refuses is written without the backend's details
            # (the status is what counters and reconciliation need), or dropped with an
            # error log: the row then stays "pending", which keeps counting: the safe side.
            for attempt in (outcome, replace(outcome, tx_hash=None, backend_error=None)):
                try:
                    await asyncio.wait_for(self._write([], [attempt]), self._timeout)
                    break
                except (*WRITE_ERRORS, ValueError, TypeError) as exc:
                    _log.error("audit outcome of %s refused: %s", outcome.id, exc)
        for rewrite, future in rewrites:
            # A refusal row the database refuses stays "pending", which keeps counting
            # until reconciled: the safe side.
            try:
                await asyncio.wait_for(self._write([], [], [(rewrite, future)]), self._timeout)
            except (*WRITE_ERRORS, ValueError, TypeError) as exc:
                _log.error("audit rewrite of %s refused: %s", rewrite.id, exc)
            _resolve([(rewrite, future)])

    async def _write(
        self,
        inserts: list[tuple[AuditRecord, asyncio.Future[None]]],
        updates: list[AuditOutcome],
        rewrites: Sequence[tuple[Rewrite, asyncio.Future[None]]] = (),
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if inserts:
                await _execute(
                    conn, INSERT_SQL, INSERT_ONE_SQL, [insert_args(r) for r, _ in inserts]
                )
                held = [r for r, _ in inserts if r.approval_id]
                if held:
                    await insert_holds(conn, held)
                notified = [r for r, _ in inserts if r.notify and r.owner_id is not None]
                if notified:
                    await record_events(conn, [spend_event(r) for r in notified])
            for round_ in _rounds(updates):
                await _execute(conn, UPDATE_SQL, UPDATE_ONE_SQL, [update_args(u) for u in round_])
            # Rare (a reservation refused after its row was written): one statement each.
            for rewrite, _ in rewrites:
                if rewrite.record is None:
                    await conn.execute(DISCARD_SQL, rewrite.id)
                else:
                    await conn.execute(REFUSE_SQL, *refuse_args(rewrite.record))


async def _execute(
    conn: asyncpg.Connection, many: str, one: str, rows: list[tuple[Any, ...]]
) -> None:
    """``rows`` (at least one) as one statement: ``many`` takes a column per argument."""
    if len(rows) == 1:
        await conn.execute(one, *rows[0])
    else:
        await conn.execute(many, *_columns(rows))


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """``rows`` (at least one) as one list per column: the arrays unnest() takes."""
    return [list(column) for column in zip(*rows, strict=True)]


def _rounds(updates: list[AuditOutcome]) -> list[list[AuditOutcome]]:
    """``updates`` split so that no round updates a row twice, in queue order per row.

    An UPDATE … FROM joining a row to two outcomes applies only one of them, chosen by
    the plan, whereas one statement per outcome applied both in order (the later status
    wins, both timings are merged). Almost always there is one round."""
    rounds: list[list[AuditOutcome]] = []
    seen: dict[UUID, int] = {}
    for outcome in updates:
        index = seen.get(outcome.id, 0)
        seen[outcome.id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(outcome)
    return rounds


#: SQLSTATE classes that say "try again later", not "this row is wrong": connection
#: exceptions, insufficient resources, operator intervention, transaction rollback.
_TRANSIENT_CLASSES = ("08", "53", "57", "40")


def _transient(exc: asyncpg.PostgresError) -> bool:
    return str(getattr(exc, "sqlstate", "") or "")[:2] in _TRANSIENT_CLASSES


def _resolve(waiting: Sequence[tuple[object, asyncio.Future[None]]]) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_result(None)
