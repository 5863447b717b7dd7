"""Webhook deliveries as operator actions: list them, retry one, send a test event.

The CLI (``walletgate webhooks …``, ``webhook_commands``) and the admin API call these
functions and only format what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.errors import UserError
from walletgate.notify.outbox import TEST_EVENT, record_event

DELIVERY_STATUSES = ("pending", "delivered", "failed")
_MAX_LIMIT = 1000


class WebhookError(UserError):
    """An unknown delivery or owner, or a bad filter."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one event to one endpoint, and how it went."""

    id: UUID
    event_id: UUID
    event_type: str
    owner: str
    webhook: str
    url: str | None  # None: the endpoint is no longer in the policy document
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-able data (ids as strings, times ISO-8601)."""
        out: dict[str, Any] = {}
        for key in self.__slots__:
            value = getattr(self, key)
            out[key] = (
                str(value)
                if isinstance(value, UUID)
                else value.isoformat()
                if isinstance(value, datetime)
                else value
            )
        return out


_SELECT = """
SELECT d.id, d.event_id, e.type AS event_type, d.owner_id AS owner, d.webhook_id AS webhook,
       w.url, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status,
       d.last_error, d.delivered_at, d.created_at
  FROM webhook_deliveries AS d
  JOIN outbox_events AS e ON e.id = d.event_id
  LEFT JOIN owner_webhooks AS w ON w.owner_id = d.owner_id AND w.id = d.webhook_id
"""


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**dict(row))


async def list_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    status: str | None = None,
    owner: str | None = None,
    event_id: UUID | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Deliveries, newest first, filtered by status, owner and event.

    Keyset pagination: pass the last row's ``(created_at, id)`` as ``after`` to get the
    page that follows it (stable while new deliveries arrive)."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise WebhookError(f"unknown status {status!r}: expected one of {DELIVERY_STATUSES}")
    if not 1 <= limit <= _MAX_LIMIT:
        raise WebhookError(f"limit must be between 1 and {_MAX_LIMIT}")
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("d.status", status),
        ("d.owner_id", owner),
        ("d.event_id", event_id),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if after is not None:
        args += after
        clauses.append(f"(d.created_at, d.id) < (${len(args) - 1}, ${len(args)})")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit)
    rows = await conn.fetch(
        f"{_SELECT} {where} ORDER BY d.created_at DESC, d.id DESC LIMIT ${len(args)}", *args
    )
    return [_delivery(row) for row in rows]


async def get_delivery(conn: asyncpg.Connection | asyncpg.Pool, delivery_id: UUID) -> Delivery:
    """One delivery; raises :class:`WebhookError` if there is none with that id."""
    row = await conn.fetchrow(f"{_SELECT} WHERE d.id = $1", delivery_id)
    if row is None:
        raise WebhookError(f"there is no webhook delivery {delivery_id}")
    return _delivery(row)


def parse_delivery_id(text: str) -> UUID:
    """A delivery id as the user typed it; raises :class:`WebhookError` if malformed."""
    try:
        return UUID(text)
    except ValueError:
        raise WebhookError(
            f"{text!r} is not a delivery id (a UUID, as 'webhooks list' shows)"
        ) from None


async def retry_delivery(
    conn: asyncpg.Connection | asyncpg.Pool, delivery_id: UUID, *, actor: str
) -> Delivery:
    """Put a delivery (failed, pending, or even delivered: receivers dedupe by event id)
    back in the queue, due now, with a fresh set of attempts. Records who did it."""
    updated = await conn.fetchval(
        """UPDATE webhook_deliveries
              SET status = 'pending', attempts = 0, next_attempt_at = now(),
                  delivered_at = NULL, retried_by = $2, retried_at = now()
            WHERE id = $1
        RETURNING id""",
        delivery_id,
        actor,
    )
    if updated is None:
        raise WebhookError(f"there is no webhook delivery {delivery_id}")
    return await get_delivery(conn, delivery_id)


async def send_test_event(pool: asyncpg.Pool, owner: str, *, actor: str) -> list[Delivery]:
    """Write a ``webhook.test`` event to every endpoint of ``owner``; the gateways send
    it. Returns its deliveries (none when the owner has no endpoints)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM owners WHERE id = $1)", owner):
            raise WebhookError(f"there is no owner {owner!r}")
        event_id = await record_event(conn, owner, TEST_EVENT, {"actor": actor})
    return await list_deliveries(pool, event_id=event_id)
