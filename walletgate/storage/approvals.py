"""Approvals in PostgreSQL: held spends and every move of their lifecycle.

A held spend is a ``transactions`` row (status ``held``, its counter claims reserved
and stored like a ``pending`` row's) and an ``approvals`` row (migrations/0006):

    pending -> approved | rejected | expired | cancelled
    approved -> executing -> executed | failed | unknown

Every move happens on a row locked ``FOR UPDATE`` (workers claim with ``SKIP LOCKED``)
in one transaction that also writes its history row (who, when, why), moves the
transaction row (``held`` -> ``refunded`` when released unforwarded, ``held`` ->
``pending`` when claimed for execution) and writes the owner's event to the outbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from walletgate.notify.outbox import EVENT_TYPES, NewEvent, record_events
from walletgate.storage.counters import Counters, claims_from_json, reservation_of
from walletgate.storage.rebuild import claims_from_row

if TYPE_CHECKING:
    from walletgate.storage.audit import AuditRecord

_log = logging.getLogger(__name__)

#: How long a hold waits for its owner when its tier names no ``approval_timeout``.
DEFAULT_TIMEOUT_SECONDS = 24 * 3600
#: Statuses a hold can still be decided in (cancel also stops an approved one that no
#: gateway has claimed yet).
OPEN = ("pending",)
#: Where a hold ended without being forwarded: its reservation is given back.
RELEASED = ("rejected", "expired", "cancelled")
#: Where a forwarded hold ended.
FINISHED = ("executed", "failed", "unknown")
#: The transaction row's status after each approval status that moves it.
_TX_MOVES: Mapping[str, tuple[str, str]] = {
    "rejected": ("held", "refunded"),
    "expired": ("held", "refunded"),
    "cancelled": ("held", "refunded"),
    "executing": ("held", "pending"),
    "unknown": ("pending", "unknown"),
}


@dataclass(frozen=True, slots=True)
class HoldInfo:
    """What the approvals row of a held spend records besides its transaction."""

    kind: str  # "approval" | "delay"
    expires_at: datetime
    release_at: datetime | None
    fingerprint: str


def fingerprint(method: str, params: Any, agent_id: str, chain_id: int) -> str:
    """The request's fingerprint: sha256 of its canonical method, params (which name
    the wallet), agent and chain. An identical resend has the same one."""
    canonical = json.dumps(
        {"agent": agent_id, "chain_id": chain_id, "method": method, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


_INSERT = """
INSERT INTO approvals (id, transaction_id, kind, expires_at, release_at, fingerprint,
                       requested_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[],
                     $5::timestamptz[], $6::text[], $7::timestamptz[])
"""

_HISTORY = """
INSERT INTO approval_transitions (approval_id, from_status, to_status, actor, reason, detail)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
"""


def _payload(approval_id: UUID, row: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "approval_id": str(approval_id),
        "transaction_id": str(row["transaction_id"]),
        "agent": row.get("agent_id"),
        "wallet": row.get("wallet_id"),
        "kind": row.get("kind"),
        **more,
    }


async def insert_holds(conn: asyncpg.Connection, records: Sequence[AuditRecord]) -> None:
    """The approvals rows of held ``records`` (inside the transaction writing them), with
    their first history row and ``hold.created`` events."""
    rows = []
    for r in records:
        assert r.approval_id is not None
        hold = r.hold
        rows.append(
            (
                r.approval_id,
                r.id,
                hold.kind if hold else "approval",
                hold.expires_at if hold else r.created_at,
                hold.release_at if hold else None,
                hold.fingerprint if hold else None,
                r.created_at,
            )
        )
    await conn.execute(_INSERT, *[list(column) for column in zip(*rows, strict=True)])
    await conn.execute(
        _HISTORY,
        [r.approval_id for r in records],
        [None] * len(records),
        ["pending"] * len(records),
        [f"agent:{r.agent_id}" for r in records],
        [
            str(r.explanation.get("message", "")) if isinstance(r.explanation, dict) else ""
            for r in records
        ],
        ["{}"] * len(records),
    )
    events = []
    for r in records:
        if r.owner_id is None or r.approval_id is None:
            continue
        hold = r.hold
        facts = {
            "transaction_id": r.id,
            "agent_id": r.agent_id,
            "wallet_id": r.wallet_id,
            "kind": hold.kind if hold else "approval",
        }
        payload = _payload(
            r.approval_id,
            facts,
            status="pending",
            method=r.method,
            amounts={asset: str(units) for asset, units in r.amounts.items()},
            usd_value=None if r.usd_value is None else str(r.usd_value),
            expires_at=hold.expires_at.isoformat() if hold else None,
            release_at=hold.release_at.isoformat() if hold and hold.release_at else None,
        )
        events.append(NewEvent(r.owner_id, "hold.created", payload))
    if events:
        await record_events(conn, events)


_SELECT = """
SELECT a.id, a.transaction_id, a.status, a.kind, a.requested_at, a.expires_at, a.release_at,
       a.decided_at, a.decided_by, a.note, a.fingerprint, a.claimed_at, a.finished_at,
       a.result, a.refunded_at, t.agent_id, t.wallet_id, t.owner_id, t.chain_id, t.backend,
       t.method, t.request, t.claims, t.status AS transaction_status, t.tx_hash,
       t.amounts, t.usd_value, t.backend_error
  FROM approvals a JOIN transactions t ON t.id = a.transaction_id
"""


def as_dict(row: asyncpg.Record) -> dict[str, Any]:
    """An approval row with its JSON columns decoded."""
    item = dict(row)
    for key in ("request", "claims", "amounts", "result", "backend_error"):
        if isinstance(item.get(key), str):
            item[key] = json.loads(item[key])
    return item


async def query(
    conn: asyncpg.Connection | asyncpg.Pool, where: str, limit: int, *args: Any
) -> list[dict[str, Any]]:
    """Approvals matching ``where`` (on ``a`` and ``t``), newest first."""
    rows = await conn.fetch(
        f"{_SELECT} WHERE {where} ORDER BY a.requested_at DESC, a.id DESC LIMIT {int(limit)}",
        *args,
    )
    return [as_dict(row) for row in rows]


async def lock(conn: asyncpg.Connection, approval_id: UUID) -> dict[str, Any] | None:
    """Approval ``approval_id`` locked for update (in the caller's transaction)."""
    row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1 FOR UPDATE OF a", approval_id)
    return None if row is None else as_dict(row)


async def read(conn: asyncpg.Connection | asyncpg.Pool, approval_id: UUID) -> dict[str, Any] | None:
    """Approval ``approval_id`` (not locked), or None."""
    row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1", approval_id)
    return None if row is None else as_dict(row)


async def history(
    conn: asyncpg.Connection | asyncpg.Pool, approval_id: UUID
) -> list[dict[str, Any]]:
    """The approval's transitions, oldest first."""
    rows = await conn.fetch(
        "SELECT from_status, to_status, actor, reason, detail, at FROM approval_transitions"
        " WHERE approval_id = $1 ORDER BY id",
        approval_id,
    )
    out = []
    for row in rows:
        item = dict(row)
        if isinstance(item["detail"], str):
            item["detail"] = json.loads(item["detail"])
        out.append(item)
    return out


async def move(
    conn: asyncpg.Connection,
    row: Mapping[str, Any],
    to: str,
    *,
    actor: str,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
    result: Any = None,
) -> None:
    """Move the locked approval ``row`` to ``to`` (inside the caller's transaction): the
    approvals row, its history, the transaction row where it moves, the owner's event."""
    approval_id = row["id"]
    await conn.execute(
        """UPDATE approvals
              SET status = $2,
                  decided_at = coalesce(decided_at, now()),
                  decided_by = CASE WHEN status = 'pending' THEN $3 ELSE decided_by END,
                  note = CASE WHEN status = 'pending' THEN $4 ELSE note END,
                  claimed_at = CASE WHEN $2 = 'executing' THEN now() ELSE claimed_at END,
                  finished_at = CASE WHEN $2 = ANY($5::text[]) THEN now() ELSE finished_at END,
                  result = coalesce($6::jsonb, result)
            WHERE id = $1""",
        approval_id,
        to,
        actor,
        reason,
        list(FINISHED),
        None if result is None else json.dumps(result),
    )
    moved = _TX_MOVES.get(to)
    if moved is not None:
        before, after = moved
        note = {"message": f"not forwarded: {to} by {actor}"} if after == "refunded" else None
        if to == "unknown":
            note = {"message": "the gateway executing the approval stopped while forwarding"}
        await conn.execute(
            """UPDATE transactions
                  SET status = $3,
                      settled_at = CASE WHEN $3 = 'pending' THEN settled_at ELSE now() END,
                      backend_error = coalesce($4::jsonb, backend_error)
                WHERE id = $1 AND status = $2""",
            row["transaction_id"],
            before,
            after,
            None if note is None else json.dumps(note),
        )
    await conn.execute(
        _HISTORY,
        [approval_id],
        [row["status"]],
        [to],
        [actor],
        [reason],
        [json.dumps(dict(detail or {}), default=str)],
    )
    event = f"hold.{to}"
    if event in EVENT_TYPES and row.get("owner_id"):
        payload = _payload(approval_id, row, status=to, actor=actor, reason=reason)
        if to == "executed":
            payload["result"] = result
        await record_events(conn, [NewEvent(row["owner_id"], event, payload)])


async def due(conn: asyncpg.Connection, where: str, limit: int, *args: Any) -> list[dict[str, Any]]:
    """Approvals matching the SQL condition ``where`` (on ``a`` and ``t``, parameters
    ``args``), locked ``FOR UPDATE SKIP LOCKED``: another process working on one skips
    it (call inside a transaction)."""
    rows = await conn.fetch(
        f"{_SELECT} WHERE {where} ORDER BY a.requested_at LIMIT {int(limit)}"
        " FOR UPDATE OF a SKIP LOCKED",
        *args,
    )
    return [as_dict(row) for row in rows]


async def find_resent(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: str, print_: str
) -> dict[str, Any] | None:
    """The live approval of ``agent_id`` for the request with fingerprint ``print_``:
    one still open or being executed, or one finished and not yet expired."""
    row = await conn.fetchrow(
        f"""{_SELECT}
         WHERE a.fingerprint = $1 AND t.agent_id = $2
           AND (a.status IN ('approved', 'executing')
                OR (a.status = 'pending' AND a.expires_at > now())
                OR (a.status IN ('executed', 'failed', 'unknown') AND a.expires_at > now()))
         ORDER BY a.requested_at DESC LIMIT 1""",
        print_,
        agent_id,
    )
    return None if row is None else as_dict(row)


def agent_view(item: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What the agent may learn of its own approval (``walletgate_getApproval``)."""
    status = item["status"]
    # Expiry holds even before a sweeper has moved the row (it refunds it soon).
    if status == "pending" and item["expires_at"] <= (now or datetime.now(UTC)):
        status = "expired"
    tx_status = item.get("transaction_status")
    # A row left 'unknown' (or 'executing' by a dead gateway) is settled by reconcile on
    # the transaction row: report what it settled to.
    if status in ("unknown", "executing") and tx_status in ("committed", "refunded"):
        status = "executed" if tx_status == "committed" else "failed"
    out = {
        "approval_id": str(item["id"]),
        "transaction_id": str(item["transaction_id"]),
        "status": status,
        "kind": item["kind"],
        "reason": "delayed" if item["kind"] == "delay" else "approval_required",
        "method": item["method"],
        "requested_at": item["requested_at"].isoformat(),
        "expires_at": item["expires_at"].isoformat(),
        "release_at": item["release_at"].isoformat() if item.get("release_at") else None,
        "decided_at": item["decided_at"].isoformat() if item.get("decided_at") else None,
        "tx_hash": item.get("tx_hash"),
    }
    if status == "executed":
        out["result"] = item.get("result")
    if status == "failed" and isinstance(item.get("backend_error"), dict):
        out["error"] = item["backend_error"]
    return out


async def give_back(
    conn: asyncpg.Connection | asyncpg.Pool, counters: Counters, row: Mapping[str, Any]
) -> None:
    """Refund the reservation of a hold that ended unforwarded (rejected, cancelled,
    expired) and note it. Counters first: a crash in between leaves the note unwritten
    and the next sweep refunds again, which takes nothing twice (each reservation
    record is taken back at most once). Raises CountersUnavailable when Redis fails."""
    claims = claims_from_json(claims_from_row(row["claims"]))
    await counters.refund(reservation_of(str(row["transaction_id"]), claims))
    await conn.execute(
        "UPDATE approvals SET refunded_at = now() WHERE id = $1 AND refunded_at IS NULL",
        row["id"],
    )


async def cancel_lost_hold(pool: asyncpg.Pool | None, approval_id: UUID, why: str) -> None:
    """Cancel a hold just written whose reservation Redis lost (the caller refunded
    what was left of it): approving it later would count it where a rebuilt counter
    may not. A database error is logged; the operator sees it."""
    if pool is None:
        return
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await lock(conn, approval_id)
            if row is not None and row["status"] == "pending":
                await move(conn, row, "cancelled", actor="walletgate", reason=why)
                await conn.execute(
                    "UPDATE approvals SET refunded_at = now() WHERE id = $1", approval_id
                )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        _log.error("could not cancel hold %s (%s): %s", approval_id, why, exc)
