"""The outbox: owner events written in the same transaction as the change they report.

An event row exists exactly when its change committed: a rolled-back change leaves no
event, and a committed one cannot lose its event. With the event, one delivery row is
written per endpoint of the owner that wants its type (migrations/0005_webhooks.sql);
the delivery worker (``walletgate.notify.delivery``) sends them later, at least once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg

#: Every event type walletgate emits (a webhook's ``events`` filter names some of them).
EVENT_TYPES = (
    "spend.notify",
    "hold.created",
    "hold.approved",
    "hold.rejected",
    "hold.expired",
    "hold.cancelled",
    "hold.executed",
    "hold.failed",
    "freeze.created",
    "freeze.lifted",
    "policy.applied",
    "webhook.test",
)
#: Sent by ``walletgate webhooks test`` to every endpoint of the owner, whatever its filter.
TEST_EVENT = "webhook.test"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write: for whom, what kind, and its JSON-able data."""

    owner_id: str
    type: str
    payload: Mapping[str, Any]
    id: UUID = field(default_factory=uuid4)


_INSERT_EVENTS = """
INSERT INTO outbox_events (id, owner_id, type, payload)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
"""

# One delivery per event and endpoint of its owner that wants its type.
_INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries (event_id, owner_id, webhook_id)
SELECT e.id, e.owner_id, w.id
  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e (id, owner_id, type)
  JOIN owner_webhooks AS w
    ON w.owner_id = e.owner_id
   AND (w.events IS NULL OR e.type = ANY (w.events) OR e.type = 'webhook.test')
"""


def _checked(event: NewEvent) -> NewEvent:
    if event.type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event.type!r}: expected one of {EVENT_TYPES}")
    return event


async def record_events(conn: asyncpg.Connection, events: Sequence[NewEvent]) -> list[UUID]:
    """Write ``events`` and their deliveries inside the caller's open transaction.

    Raises RuntimeError outside a transaction: an event written on its own could
    commit without its change, or the change without it.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("record_events must run inside the transaction of the change")
    checked = [_checked(event) for event in events]
    if not checked:
        return []
    ids = [event.id for event in checked]
    owners = [event.owner_id for event in checked]
    types = [event.type for event in checked]
    payloads = [json.dumps(dict(event.payload), default=str) for event in checked]
    await conn.execute(_INSERT_EVENTS, ids, owners, types, payloads)
    await conn.execute(_INSERT_DELIVERIES, ids, owners, types)
    return ids


async def record_event(
    conn: asyncpg.Connection, owner_id: str, type: str, payload: Mapping[str, Any]
) -> UUID:
    """Write one event for ``owner_id`` in the caller's transaction; returns its id.

    ``type`` is one of :data:`EVENT_TYPES`; ``payload`` becomes the delivery's ``data``.
    """
    (event_id,) = await record_events(conn, [NewEvent(owner_id, type, payload)])
    return event_id


async def owners_of_target(conn: asyncpg.Connection, scope: str, target: str | None) -> list[str]:
    """The owners an ``agent`` or ``wallet`` (or, with scope ``all``, everything) belongs to;
    none when it no longer exists."""
    if scope == "all":
        rows = await conn.fetch("SELECT id FROM owners ORDER BY id")
        return [row["id"] for row in rows]
    table = {"agent": "agents", "wallet": "wallets"}[scope]
    owner = await conn.fetchval(f"SELECT owner_id FROM {table} WHERE id = $1", target)
    return [] if owner is None else [owner]
