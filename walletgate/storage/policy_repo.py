"""Owners, agents, wallets, assets and policies in PostgreSQL, as one policy document.

``load_document`` reads the tables back as a canonical document, ``plan`` diffs a
document against them, and ``apply`` makes them match it in one transaction: either
every change commits (with policy history and one state-version bump) or none does.
The tables are read by :mod:`.policy_read` and written by :mod:`.policy_write`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from walletgate.config.diff import Plan, diff_documents
from walletgate.config.documents import SourceDocument, normalize_document
from walletgate.notify.events import policy_events
from walletgate.notify.outbox import record_events
from walletgate.storage.policy_read import read_tables
from walletgate.storage.policy_write import ApplyError, PlanWriter
from walletgate.storage.state import bump_state_version

#: Where errors in a stored document are said to be.
DATABASE_SOURCE = "<database>"
# Serialises concurrent applies: each plans against the state the previous one left.
_APPLY_LOCK_KEY = 0x77676170706C79  # "wgapply"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What ``apply`` did. ``change_set`` and ``state_version`` are ``None`` for no-ops."""

    plan: Plan
    change_set: UUID | None = None
    state_version: int | None = None

    @property
    def changed(self) -> bool:
        return self.change_set is not None


async def load_document(conn: asyncpg.Connection) -> dict[str, Any]:
    """The current state as a canonical document (what ``export`` writes).

    Reads every table in one snapshot: inside the caller's transaction if there is one,
    otherwise in a read-only repeatable-read transaction of its own.
    """
    if conn.is_in_transaction():
        raw = await read_tables(conn)
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            raw = await read_tables(conn)
    return normalize_document(raw, DATABASE_SOURCE)


async def load_policy_versions(conn: asyncpg.Connection) -> dict[str, int]:
    """Each policy's row version (for ``compile_document(..., policy_versions=...)``)."""
    rows = await conn.fetch("SELECT id, version FROM policies")
    return {row["id"]: row["version"] for row in rows}


async def plan(conn: asyncpg.Connection, doc: Mapping[str, Any] | SourceDocument) -> Plan:
    """What ``apply`` would change. Raises ``DocumentInvalid`` if ``doc`` is not valid."""
    desired = normalize_document(doc)
    return diff_documents(await load_document(conn), desired)


async def apply(
    conn: asyncpg.Connection, doc: Mapping[str, Any] | SourceDocument, *, actor: str
) -> ApplyResult:
    """Make the database match ``doc`` in one transaction; entities not in ``doc`` go.

    Raises ``DocumentInvalid`` (before touching the database) if ``doc`` has any error,
    and :class:`ApplyError` if the database refuses a change (for example removing an
    agent that the audit log still refers to); either way nothing changes.
    """
    desired = normalize_document(doc)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPLY_LOCK_KEY)
        current = await load_document(conn)
        changes = diff_documents(current, desired)
        if changes.empty:
            return ApplyResult(changes)
        change_set = uuid4()
        try:
            await PlanWriter(conn, current, desired, changes, actor, change_set).write()
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ApplyError(f"the database refused the change: {exc.detail or exc}") from None
        state_version = await bump_state_version(conn)
        # Each owner whose part changed is told, in this transaction (its new webhooks,
        # written above, already receive it).
        events = policy_events(
            current,
            desired,
            changes,
            actor=actor,
            change_set=change_set,
            state_version=state_version,
        )
        await record_events(conn, events)
    return ApplyResult(changes, change_set, state_version)
