"""Deciding held spends: list, show, approve, reject, cancel (the CLI and the admin API).

Each action locks the approval row, checks its state and expiry, and moves it in one
transaction with its history row and the owner's event
(:mod:`walletgate.storage.approvals`). Approving only changes the state: a gateway's
approvals worker forwards the stored request, exactly once. Rejecting or cancelling
gives the reservation back right after the commit (or, if Redis fails then, on the
workers' next sweep). ``owner_id`` confines an action to one owner's approvals (an
owner-scoped admin key): another owner's approval is "not found".
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.errors import UserError
from walletgate.service.approval_signatures import (
    SignatureRefused,
    check_signature,
    request_hash,
    signature_key,
    typed_data,
)
from walletgate.service.approval_views import ApprovalFilter
from walletgate.storage import approvals as store
from walletgate.storage.counters import Counters, CountersUnavailable
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.runtime import Stores

__all__ = [
    "ApprovalConflict",
    "ApprovalError",
    "ApprovalFilter",
    "ApprovalNotFound",
    "SignatureRefused",
    "approve",
    "cancel",
    "get_approval",
    "get_approver",
    "list_approvals",
    "reject",
    "set_approver",
    "signing_request",
]


class ApprovalError(UserError):
    """An approval action that cannot be done."""


class ApprovalNotFound(ApprovalError):
    """No such approval (or not one of this owner's)."""


class ApprovalConflict(ApprovalError):
    """The approval is not in a state that allows the action (decided, expired...)."""


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def parse_approval_id(text: str | UUID) -> UUID:
    """An approval id from text; ApprovalNotFound for anything that is not a UUID."""
    if isinstance(text, UUID):
        return text
    try:
        return UUID(text)
    except ValueError:
        raise ApprovalNotFound(f"{text!r} is not an approval id (a UUID)") from None


def _public(item: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
    """An approval as plain data; its status says 'expired' once past expiry even
    before a sweeper moved it; ``full`` adds the stored request and request hash."""
    out = {k: v for k, v in item.items() if k not in ("claims", "request", "backend_error")}
    out["id"] = str(item["id"])
    out["transaction_id"] = str(item["transaction_id"])
    out["status"] = store.agent_view(item)["status"]
    if full:
        out["request"] = item["request"]
        out["request_hash"] = request_hash(item["request"])
        out["backend_error"] = item.get("backend_error")
    return out


async def list_approvals(
    stores: Stores, flt: ApprovalFilter | None = None, *, owner_id: str | None = None
) -> list[dict[str, Any]]:
    """Approvals matching ``flt`` (and ``owner_id``), newest first."""
    flt = flt or ApprovalFilter()
    owner = owner_id if owner_id is not None else flt.owner
    if owner_id is not None and flt.owner not in (None, owner_id):
        return []
    rows = await store.query(
        stores.pool,
        """($1::text IS NULL OR a.status = $1)
           AND ($2::text IS NULL OR t.agent_id = $2)
           AND ($3::text IS NULL OR t.wallet_id = $3)
           AND ($4::text IS NULL OR t.owner_id = $4)""",
        flt.limit,
        flt.status,
        flt.agent,
        flt.wallet,
        owner,
    )
    return [_public(row, full=False) for row in rows]


async def get_approval(
    stores: Stores, approval_id: str | UUID, *, owner_id: str | None = None
) -> dict[str, Any]:
    """One approval with its stored request, request hash, history and the owner's
    approver address (if any). Raises ApprovalNotFound."""
    uid = parse_approval_id(approval_id)
    item = await store.read(stores.pool, uid)
    if item is None or (owner_id is not None and item["owner_id"] != owner_id):
        raise ApprovalNotFound(f"no approval {uid}")
    out = _public(item, full=True)
    out["history"] = await store.history(stores.pool, uid)
    out["approver"] = await _approver(stores.pool, item["owner_id"])
    return out


async def signing_request(
    stores: Stores, approval_id: str | UUID, *, expiry: int, owner_id: str | None = None
) -> dict[str, Any]:
    """The EIP-712 document the owner's approver signs to approve ``approval_id``."""
    item = await get_approval(stores, approval_id, owner_id=owner_id)
    return typed_data(item["id"], item["request_hash"], int(item["chain_id"]), expiry=expiry)


async def _approver(conn: asyncpg.Pool | asyncpg.Connection, owner: str | None) -> str | None:
    if owner is None:
        return None
    found = await conn.fetchval("SELECT address FROM owner_approvers WHERE owner_id = $1", owner)
    return None if found is None else str(found)


async def _locked(conn: asyncpg.Connection, uid: UUID, owner_id: str | None) -> dict[str, Any]:
    row = await store.lock(conn, uid)
    if row is None or (owner_id is not None and row["owner_id"] != owner_id):
        raise ApprovalNotFound(f"no approval {uid}")
    return row


async def _decide(
    stores: Stores,
    approval_id: str | UUID,
    to: str,
    *,
    actor: str,
    reason: str,
    owner_id: str | None,
    allowed_from: tuple[str, ...] = ("pending",),
    signature: str | None = None,
    signature_expiry: int | None = None,
) -> dict[str, Any]:
    uid = parse_approval_id(approval_id)
    expired = False
    async with stores.pool.acquire() as conn:
        async with conn.transaction():
            row = await _locked(conn, uid, owner_id)
            if row["status"] == "pending" and row["expires_at"] <= datetime.now(UTC):
                # Checked on every action, whether or not a sweeper ran yet.
                await store.move(
                    conn, row, "expired", actor="walletgate", reason="nobody approved it in time"
                )
                expired = True
            elif row["status"] not in allowed_from:
                raise ApprovalConflict(
                    f"approval {uid} is {row['status']}: it cannot be {to} "
                    f"(only a {' or '.join(allowed_from)} one can)"
                )
            else:
                detail = {}
                if to == "approved":
                    detail = await _check_owner_signature(
                        conn, row, signature=signature, expiry=signature_expiry
                    )
                await store.move(conn, row, to, actor=actor, reason=reason, detail=detail)
        refunded = None
        if expired or to in store.RELEASED:
            refunded = await _give_back(stores, conn, row)
    if expired:
        raise ApprovalConflict(f"approval {uid} expired at {row['expires_at'].isoformat()}")
    out = await get_approval(stores, uid)
    if refunded is not None:
        out["refunded"] = refunded
    return out


async def _give_back(stores: Stores, conn: asyncpg.Connection, row: Mapping[str, Any]) -> bool:
    """Refund a released hold now; False when Redis failed (the workers retry it)."""
    counters = Counters(stores.redis, PostgresClaimHistory(stores.pool))
    try:
        await store.give_back(conn, counters, row)
    except CountersUnavailable:
        return False
    return True


async def _check_owner_signature(
    conn: asyncpg.Connection,
    row: Mapping[str, Any],
    *,
    signature: str | None,
    expiry: int | None,
) -> dict[str, Any]:
    """For an owner with an approver address: the signature must be its, over this
    approval, unexpired and never used before. Returns what the history records."""
    approver = await _approver(conn, row["owner_id"])
    if approver is None:
        if signature is not None:
            raise SignatureRefused(
                f"owner {row['owner_id']!r} has no approver address: no signature is needed"
            )
        return {}
    if signature is None or expiry is None:
        raise SignatureRefused(
            f"owner {row['owner_id']!r} approves with its approver key {approver}: pass "
            "--signature and --expiry (see 'walletgate approvals typed-data')"
        )
    key = signature_key(signature)
    used = await conn.fetchval(
        "SELECT approval_id FROM approval_signatures WHERE signature_hash = $1", key
    )
    if used is not None:
        raise SignatureRefused(f"this signature was already used (for approval {used})")
    signer = check_signature(
        approval_id=str(row["id"]),
        req_hash=request_hash(row["request"]),
        chain_id=int(row["chain_id"]),
        approver=approver,
        signature=signature,
        expiry=expiry,
        now=time.time(),
    )
    await conn.execute(
        "INSERT INTO approval_signatures (signature_hash, approval_id, signer) VALUES ($1, $2, $3)",
        key,
        row["id"],
        signer,
    )
    return {"signed_by": signer, "signature_expiry": expiry}


async def approve(
    stores: Stores,
    approval_id: str | UUID,
    *,
    actor: str,
    reason: str = "",
    signature: str | None = None,
    signature_expiry: int | None = None,
    owner_id: str | None = None,
) -> dict[str, Any]:
    """Approve a pending hold (a delay too: released now). A gateway forwards it next.

    Raises ApprovalNotFound, ApprovalConflict (decided or expired) or SignatureRefused
    (the owner has an approver address and the signature is missing, wrong, expired or
    already used)."""
    return await _decide(
        stores,
        approval_id,
        "approved",
        actor=actor,
        reason=reason,
        owner_id=owner_id,
        signature=signature,
        signature_expiry=signature_expiry,
    )


async def reject(
    stores: Stores,
    approval_id: str | UUID,
    *,
    actor: str,
    reason: str = "",
    owner_id: str | None = None,
) -> dict[str, Any]:
    """Reject a pending hold: never forwarded, its reservation given back."""
    return await _decide(
        stores, approval_id, "rejected", actor=actor, reason=reason, owner_id=owner_id
    )


async def cancel(
    stores: Stores,
    approval_id: str | UUID,
    *,
    actor: str,
    reason: str = "",
    owner_id: str | None = None,
) -> dict[str, Any]:
    """Cancel a pending hold (a delay before its release) or an approved one no gateway
    has started forwarding: never forwarded, its reservation given back."""
    return await _decide(
        stores,
        approval_id,
        "cancelled",
        actor=actor,
        reason=reason,
        owner_id=owner_id,
        allowed_from=("pending", "approved"),
    )


async def get_approver(stores: Stores, owner_id: str) -> str | None:
    """The owner's approver address, or None."""
    return await _approver(stores.pool, owner_id)


async def set_approver(
    stores: Stores, owner_id: str, address: str | None, *, actor: str
) -> str | None:
    """Register (``address``) or remove (None) the owner's approver address. Only the
    CLI offers this (not the admin API): a leaked admin key cannot replace it."""
    if address is None:
        await stores.pool.execute("DELETE FROM owner_approvers WHERE owner_id = $1", owner_id)
        return None
    if not _ADDRESS.match(address):
        raise ApprovalError(f"{address!r} is not an address (0x and 40 hex digits)")
    try:
        await stores.pool.execute(
            """INSERT INTO owner_approvers (owner_id, address, set_by) VALUES ($1, $2, $3)
               ON CONFLICT (owner_id) DO UPDATE
                  SET address = excluded.address, set_by = excluded.set_by, set_at = now()""",
            owner_id,
            address.lower(),
            actor,
        )
    except asyncpg.ForeignKeyViolationError:
        raise ApprovalError(f"no owner {owner_id!r}") from None
    return address.lower()
