"""Settling a spend whose outcome walletgate never learnt: one code path for all callers.

A spend the gateway forwarded but never heard back about stays ``unknown`` (or, when
the gateway died mid-flight, ``pending``), and its reservation keeps counting against
its caps. It is settled exactly once, as the gateway would have settled it:

- **committed**: the amount stays counted (the reservation records are dropped);
- **refunded**: the counters get the amount back through the reservation records
  (``Counters.refund``, idempotent: each record is taken back at most once).

The counters move first, then the row, and only a row still unsettled is updated, so
an interrupted settlement is repeated by the next run and a gateway that settled the
row meanwhile wins. ``walletgate reconcile`` settles what the backend can prove
(:func:`settle_spend`); ``walletgate tx settle`` lets an operator settle what it cannot
(:func:`settle_by_hand`), audited with who did it and why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.errors import UserError
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import Counters, claims_from_json, reservation_of
from walletgate.storage.rebuild import claims_from_row


class Outcome(StrEnum):
    """What became of a forwarded spend."""

    COMMITTED = "committed"
    REFUNDED = "refunded"


class SettlementError(UserError):
    """The spend cannot be settled (unknown id, already settled, still in flight)."""


# Only a row still unsettled is settled: a gateway that finished meanwhile wins.
_SETTLE = """
UPDATE transactions
   SET status = $2, tx_hash = coalesce($3, tx_hash), settled_at = now(),
       backend_error = coalesce(backend_error, '{}'::jsonb) || $4::jsonb
 WHERE id = $1 AND status IN ('unknown', 'pending')
"""


async def settle_spend(
    pool: asyncpg.Pool | asyncpg.Connection,
    counters: Counters,
    spend_id: UUID,
    claims: Sequence[CounterClaim],
    outcome: Outcome,
    note: Mapping[str, Any],
    *,
    tx_hash: str | None = None,
) -> bool:
    """Settle spend ``spend_id`` (whose row holds ``claims``) as ``outcome``: counters
    first (exactly once, through the reservation records), then the row, with ``note``
    merged into its ``backend_error`` record. False when the row was no longer
    unsettled (someone else settled it first; the counters are unaffected then, since
    its reservation records were already consumed)."""
    reservation = reservation_of(str(spend_id), claims)
    if outcome is Outcome.COMMITTED:
        await counters.commit(reservation)
    else:
        await counters.refund(reservation)
    result = await pool.execute(_SETTLE, spend_id, str(outcome), tx_hash, json.dumps(note))
    return str(result).endswith(" 1")


@dataclass(frozen=True, slots=True)
class HandSettlement:
    """What ``settle_by_hand`` did."""

    spend_id: UUID
    previous_status: str
    outcome: Outcome
    actor: str
    reason: str


_ROW = """
SELECT id, status, created_at, claims, method, agent_id, wallet_id,
       now() - created_at AS age
  FROM transactions WHERE id = $1
"""


def _spend_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise SettlementError(f"{text!r} is not a spend id (a UUID, as 'tx list' shows)") from None


async def settle_by_hand(
    pool: asyncpg.Pool,
    counters: Counters,
    spend_id: str,
    outcome: Outcome,
    *,
    reason: str,
    actor: str,
    pending_older_than: timedelta,
    tx_hash: str | None = None,
) -> HandSettlement:
    """An operator settles an ``unknown`` spend (or a ``pending`` one older than
    ``pending_older_than``, whose gateway died) as ``outcome``, for ``reason``.

    Audited in the row: ``backend_error.settled_by_hand`` records the outcome, the actor,
    the reason and the time. Raises :class:`SettlementError` for anything else.
    """
    if not reason.strip():
        raise SettlementError("--reason is required: say why (it is kept in the audit log)")
    uid = _spend_id(spend_id)
    row = await pool.fetchrow(_ROW, uid)
    if row is None:
        raise SettlementError(f"no spend with id {uid}")
    status = row["status"]
    if status not in ("unknown", "pending"):
        raise SettlementError(
            f"spend {uid} is {status!r}: only an 'unknown' spend (or a stale 'pending' one) "
            "can be settled by hand"
        )
    if status == "pending" and row["age"] < pending_older_than:
        raise SettlementError(
            f"spend {uid} is 'pending' and only {_seconds(row['age'])} s old: a gateway may "
            "still be forwarding it; wait, or lower --pending-older-than"
        )
    note = {
        "settled_by_hand": {
            "outcome": str(outcome),
            "by": actor,
            "reason": reason,
            "previous_status": status,
            "at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
    }
    claims = claims_from_json(claims_from_row(row["claims"]))
    if not await settle_spend(pool, counters, uid, claims, outcome, note, tx_hash=tx_hash):
        raise SettlementError(f"spend {uid} was settled by someone else meanwhile; nothing done")
    return HandSettlement(uid, status, outcome, actor, reason)


def _seconds(age: timedelta) -> int:
    return int(age.total_seconds())
