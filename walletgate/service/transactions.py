"""The transaction audit log: filtered pages and settling a spend by hand
(``walletgate tx list | settle`` and the admin API's ``/transactions``).

Pages are keyset-paginated over ``(created_at, id)``, newest first. The cursor handed
out is opaque (URL-safe base64 of the last row's key): callers pass it back unchanged,
and a malformed one is a :class:`CursorError`, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from walletgate.errors import UserError
from walletgate.service.settlement import HandSettlement, Outcome, settle_by_hand
from walletgate.storage.audit_queries import TxFilter, list_transactions
from walletgate.storage.counters import Counters
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.runtime import Stores

#: The most rows one page may hold.
MAX_PAGE = 10_000


class CursorError(UserError):
    """A pagination cursor that this service did not hand out."""


@dataclass(frozen=True, slots=True)
class TransactionPage:
    """Rows newest first, and the cursor of the next page (``None``: this is the last)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """The opaque cursor that continues after the row ``(created_at, row_id)``."""
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The row key inside ``cursor``; raises :class:`CursorError` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return at, UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise CursorError("malformed cursor: pass back next_cursor unchanged") from None


async def list_transaction_page(
    stores: Stores, flt: TxFilter, *, cursor: str | None = None
) -> TransactionPage:
    """One page of the audit rows matching ``flt`` (``flt.limit`` rows at most)."""
    limit = max(1, min(flt.limit, MAX_PAGE))
    after = decode_cursor(cursor) if cursor else None
    # One row more than asked tells whether another page follows.
    rows = await list_transactions(stores.pool, replace(flt, limit=limit + 1, after=after))
    if len(rows) <= limit:
        return TransactionPage(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return TransactionPage(rows, encode_cursor(last["created_at"], last["id"]))


async def get_transaction(stores: Stores, tx_id: UUID) -> dict[str, Any] | None:
    """One audit row by id (the columns a page lists), or ``None``."""
    row = await stores.pool.fetchrow(
        """SELECT id, created_at, agent_id, wallet_id, chain_id, backend, method, decision,
                  reason, status, amounts, usd_value, tx_hash, explanation, backend_error,
                  owner_id
             FROM transactions WHERE id = $1""",
        tx_id,
    )
    if row is None:
        return None
    item = dict(row)
    for key in ("amounts", "explanation", "backend_error"):
        if isinstance(item[key], str):
            item[key] = json.loads(item[key])
    return item


async def settle_transaction(
    stores: Stores,
    spend_id: str,
    outcome: Outcome,
    *,
    reason: str,
    actor: str,
    pending_older_than: timedelta,
    tx_hash: str | None = None,
) -> HandSettlement:
    """Settle an ``unknown`` (or stale ``pending``) spend by hand; the counters follow.

    Raises ``SettlementError`` when the spend cannot be settled.
    """
    return await settle_by_hand(
        stores.pool,
        Counters(stores.redis, PostgresClaimHistory(stores.pool)),
        spend_id,
        outcome,
        reason=reason,
        actor=actor,
        pending_older_than=pending_older_than,
        tx_hash=tx_hash,
    )


#: The longest history a spending chart may ask for.
MAX_HISTORY_DAYS = 90


async def daily_spending(
    stores: Stores, *, days: int, owner: str | None = None, wallet: str | None = None
) -> list[dict[str, Any]]:
    """What was spent per UTC day, wallet and asset over the last ``days`` days (today
    included): the audit rows that count against caps (pending, committed, unknown),
    summed in PostgreSQL as ``numeric``, so base units stay exact (returned as decimal
    strings). Days with nothing spent are absent; the caller fills them."""
    days = max(1, min(days, MAX_HISTORY_DAYS))
    rows = await stores.pool.fetch(
        """SELECT t.wallet_id, a.key AS asset,
                  (t.created_at AT TIME ZONE 'UTC')::date AS day,
                  sum(a.value::numeric)::text AS spent
             FROM transactions t, jsonb_each_text(t.amounts) a
            WHERE t.status IN ('pending', 'committed', 'unknown')
              AND t.wallet_id IS NOT NULL
              AND t.created_at >= (now() AT TIME ZONE 'UTC')::date - ($1::int - 1)
              AND ($2::text IS NULL OR t.owner_id = $2)
              AND ($3::text IS NULL OR t.wallet_id = $3)
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3""",
        days,
        owner,
        wallet,
    )
    return [
        {"wallet": r["wallet_id"], "asset": r["asset"], "day": r["day"], "spent": r["spent"]}
        for r in rows
    ]
