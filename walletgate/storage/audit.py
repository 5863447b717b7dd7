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
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.notify.events import spend_event
from walletgate.notify.outbox import record_events
from walletgate.storage.approvals import HoldInfo, insert_holds

_log = logging.getLogger(__name__)


class AuditUnavailable(RuntimeError):
    """The audit row could not be made durable: the spend must not be forwarded."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A new row of the audit log (see migrations/0001_initial.sql for the columns)."""

    id: UUID
    created_at: datetime
    method: str
    request: Any
    decision: str
    reason: str
    status: str
    agent_id: str | None = None
    wallet_id: str | None = None
    owner_id: str | None = None
    chain_id: int | None = None
    backend: str = "default"
    intents: Sequence[Any] = ()
    explanation: Any = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)
    usd_value: Decimal | None = None
    claims: Sequence[Any] = ()
    timings: dict[str, float] = field(default_factory=dict)
    # Set for a held request: the id of the approval row written with it, and what
    # that row records (walletgate.storage.approvals).
    approval_id: UUID | None = None
    hold: HoldInfo | None = None
    # A `notify` tier fired: a spend.notify event goes to the owner's outbox in the
    # transaction that writes this row (walletgate.notify.outbox).
    notify: bool = False


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """What happened after forwarding: the final status and what the backend said."""

    id: UUID
    status: str  # committed | refunded | unknown
    settled_at: datetime
    tx_hash: str | None = None
    backend_error: Any = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Rewrite:
    """A ``pending`` row never reserved nor forwarded: replaced by the refusal row
    ``record``, or deleted when ``record`` is None."""

    id: UUID
    record: AuditRecord | None


# What writing a batch may raise that is not a bug of walletgate's.
_WRITE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def _jsonb_safe(value: Any) -> Any:
    """``value`` with what PostgreSQL's jsonb cannot hold replaced, so that no content a
    client or a backend sends can make a row (and with it the whole group-committed
    batch) fail: NUL characters become U+FFFD, non-finite floats their names."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_jsonb_safe(str(key)): _jsonb_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonb_safe(item) for item in value]
    return value


# Fractions parsed from requests are Decimal: str() keeps their exact digits.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False)
# A \u0000 escape in JSON text: preceded by an even number of backslashes (an odd number
# would make it the text "\u0000" of an escaped backslash, which jsonb accepts).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    """``value`` as JSON text that jsonb accepts (see :func:`_jsonb_safe`).

    The C encoder does the work; the Python walk runs only for what it refuses
    (non-finite floats, keys it cannot write), and NUL escapes are rewritten in the
    text, which is much cheaper than walking every row's structure.
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        text = _ENCODER.encode(_jsonb_safe(value))
    if "\\u0000" in text:
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return text


# One statement per group commit, whatever the batch size: the rows go as one array per
# column and unnest() turns them back into rows. PostgreSQL parses, plans and executes
# one statement instead of one per row. Identifier columns go as text[]: the assignment
# to the wg_id columns applies the domain's CHECK to every element, as a text parameter
# did. A row's jsonb columns go as one JSON array (one json.dumps per row, one array
# element: asyncpg checks every element of an array parameter in Python), taken apart
# by position; a JSON null there is only ever a None (SQL NULL) of a nullable column.
_INSERT = """
INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend,
    method, decision, reason, status, usd_value, request, intents, explanation, amounts,
    claims, timings)
SELECT u.id, u.created_at, u.agent_id, u.wallet_id, u.owner_id, u.chain_id, u.backend,
       u.method, u.decision, u.reason, u.status, u.usd_value, u.json -> 0, u.json -> 1,
       u.json -> 2, u.json -> 3, u.json -> 4, u.json -> 5
  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
              $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
              $12::numeric[], $13::jsonb[])
       AS u (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend, method,
             decision, reason, status, usd_value, json)
"""

# A batch of one row goes as the plain statement with the same arguments: PostgreSQL
# plans the unnest() statements for every execution (a generic plan would assume 100
# rows), which costs more than it saves when there is one row.
_INSERT_ONE = """
INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend,
    method, decision, reason, status, usd_value, request, intents, explanation, amounts,
    claims, timings)
VALUES ($1::uuid, $2::timestamptz, $3::text, $4::text, $5::text, $6::bigint, $7::text,
        $8::text, $9::text, $10::text, $11::text, $12::numeric, $13::jsonb -> 0,
        $13::jsonb -> 1, $13::jsonb -> 2, $13::jsonb -> 3, $13::jsonb -> 4, $13::jsonb -> 5)
"""

# The refusal row a still pending row becomes (what _log_refusal would have inserted):
# claims go (a refusal reserves nothing), request and intents stay.
_REFUSE = """
UPDATE transactions
   SET decision = $2::text, reason = $3::text, status = $4::text, usd_value = $5::numeric,
       explanation = $6::jsonb -> 0, amounts = $6::jsonb -> 1, claims = $6::jsonb -> 2,
       timings = $6::jsonb -> 3
 WHERE id = $1::uuid AND status = 'pending'
"""

_DISCARD = "DELETE FROM transactions WHERE id = $1::uuid AND status = 'pending'"

# Each row is updated at most once per statement (see _rounds).
_UPDATE = """
UPDATE transactions AS t
   SET status = u.status, settled_at = u.settled_at, tx_hash = u.tx_hash,
       backend_error = nullif(u.json -> 0, 'null'), timings = t.timings || (u.json -> 1)
  FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[])
       AS u (id, status, settled_at, tx_hash, json)
 WHERE t.id = u.id
"""

_UPDATE_ONE = """
UPDATE transactions
   SET status = $2::text, settled_at = $3::timestamptz, tx_hash = $4::text,
       backend_error = nullif($5::jsonb -> 0, 'null'), timings = timings || ($5::jsonb -> 1)
 WHERE id = $1::uuid
"""


def _insert_args(record: AuditRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.created_at,
        record.agent_id,
        record.wallet_id,
        record.owner_id,
        record.chain_id,
        record.backend,
        record.method,
        record.decision,
        record.reason,
        record.status,
        record.usd_value,
        _dumps(
            [
                record.request,
                list(record.intents),
                record.explanation,
                {asset: str(units) for asset, units in record.amounts.items()},
                list(record.claims),
                record.timings,
            ]
        ),
    )


def _refuse_args(record: AuditRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.decision,
        record.reason,
        record.status,
        record.usd_value,
        _dumps(
            [
                record.explanation,
                {asset: str(units) for asset, units in record.amounts.items()},
                list(record.claims),
                record.timings,
            ]
        ),
    )


_TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")


def _update_args(outcome: AuditOutcome) -> tuple[Any, ...]:
    # A backend may answer with anything; only a well-formed hash goes in the column.
    tx_hash = outcome.tx_hash.lower() if outcome.tx_hash else None
    return (
        outcome.id,
        outcome.status,
        outcome.settled_at,
        tx_hash if tx_hash and _TX_HASH.match(tx_hash) else None,
        # A None backend_error becomes JSON null, and that SQL NULL (nullif above).
        _dumps([outcome.backend_error, outcome.timings]),
    )


class AuditWriter:
    """Group-committing writer of audit rows. One instance per gateway process."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, timeout: float = 5.0) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._timeout = timeout
        self._inserts: list[tuple[AuditRecord, asyncio.Future[None]]] = []
        self._updates: list[AuditOutcome] = []
        self._rewrites: list[tuple[_Rewrite, asyncio.Future[None]]] = []
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
        await self._rewrite(_Rewrite(record.id, record))

    async def discard(self, row_id: UUID) -> None:
        """Delete the row ``row_id``, written ``pending`` before its reservation, when the
        request was neither reserved nor forwarded and is decided again on newer state
        (it gets a row of its own then). Returns like :meth:`refuse`."""
        await self._rewrite(_Rewrite(row_id, None))

    async def _rewrite(self, rewrite: _Rewrite) -> None:
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
        rewrites: list[tuple[_Rewrite, asyncio.Future[None]]],
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
        rewrites: Sequence[tuple[_Rewrite, asyncio.Future[None]]] = (),
    ) -> None:
        for record, future in inserts:
            try:
                await asyncio.wait_for(self._write([(record, future)], []), self._timeout)
            except (*_WRITE_ERRORS, ValueError, TypeError) as exc:
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
                except (*_WRITE_ERRORS, ValueError, TypeError) as exc:
                    _log.error("audit outcome of %s refused: %s", outcome.id, exc)
        for rewrite, future in rewrites:
            # A refusal row the database refuses stays "pending", which keeps counting
            # until reconciled: the safe side.
            try:
                await asyncio.wait_for(self._write([], [], [(rewrite, future)]), self._timeout)
            except (*_WRITE_ERRORS, ValueError, TypeError) as exc:
                _log.error("audit rewrite of %s refused: %s", rewrite.id, exc)
            _resolve([(rewrite, future)])

    async def _write(
        self,
        inserts: list[tuple[AuditRecord, asyncio.Future[None]]],
        updates: list[AuditOutcome],
        rewrites: Sequence[tuple[_Rewrite, asyncio.Future[None]]] = (),
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if inserts:
                await _execute(conn, _INSERT, _INSERT_ONE, [_insert_args(r) for r, _ in inserts])
                held = [r for r, _ in inserts if r.approval_id]
                if held:
                    await insert_holds(conn, held)
                notified = [r for r, _ in inserts if r.notify and r.owner_id is not None]
                if notified:
                    await record_events(conn, [spend_event(r) for r in notified])
            for round_ in _rounds(updates):
                await _execute(conn, _UPDATE, _UPDATE_ONE, [_update_args(u) for u in round_])
            # Rare (a reservation refused after its row was written): one statement each.
            for rewrite, _ in rewrites:
                if rewrite.record is None:
                    await conn.execute(_DISCARD, rewrite.id)
                else:
                    await conn.execute(_REFUSE, *_refuse_args(rewrite.record))


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
