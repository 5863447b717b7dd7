"""Rebuilding a lost counter from PostgreSQL, the source of truth (SPEC §5).

Every reservation is in the audit log: the row of an allowed spend stores its claims
(key, amount in base units) and its ``created_at`` is the time the reservation was
bucketed at. A counter's total is therefore the sum, per bucket, of the claims with
its key on the live rows (``pending``, ``committed``, ``unknown``) of its window:
exactly what was reserved and not refunded. Rows still in flight (``pending``,
``unknown``) also get their reservation record back, so a later refund or
reconciliation takes their amount back out of the rebuilt counter.

:func:`rebuilt_counter` is the pure part; :class:`PostgresClaimHistory` reads the rows.
Why no interleaving of a rebuild with in-flight reservations can overspend is argued
in docs/policies.md ("Windows, rounding and Redis loss").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from walletgate.storage.windows import Bucketing, WindowShape, bucket_of

#: Statuses of rows whose reservations still count ("held": a spend waiting for its
#: owner's approval or its delay reserves its amount when it is held).
LIVE_STATUSES = ("held", "pending", "committed", "unknown")
#: Of those, the ones whose reservation may still be refunded.
IN_FLIGHT_STATUSES = frozenset({"held", "pending", "unknown"})

# A claim key starts with its scope; each scope has a column and a partial index.
_SCOPE_COLUMNS = {"wallet": "wallet_id", "agent": "agent_id", "owner": "owner_id"}


@dataclass(frozen=True, slots=True)
class LiveClaim:
    """One live row's claim on one counter key."""

    reservation_id: str
    created_at: datetime
    amount: int  # base units (or a count), as reserved
    in_flight: bool  # pending or unknown: may still be refunded


class ClaimHistory(Protocol):
    """Where rebuilds read past reservations from."""

    async def live_claims(self, claim_key: str, since: datetime) -> Sequence[LiveClaim]:
        """The live claims on ``claim_key`` made at or after ``since``."""
        ...


@dataclass(frozen=True, slots=True)
class RebuiltCounter:
    """What a rebuild writes: bucket totals (scaled) and the in-flight records' entries."""

    buckets: Mapping[int, int]
    records: Mapping[str, str]  # reservation id -> "<bucket> <scaled amount>"


def scaled_up(amount: int, scale: int) -> int:
    """``amount`` in units of ``scale``, rounded up: a spend never counts for less."""
    return -(-amount // scale)


def rebuilt_counter(
    shape: WindowShape, scale: int, window: Bucketing, claims: Sequence[LiveClaim]
) -> RebuiltCounter:
    """The counter that the reservations ``claims`` add up to under ``window``.

    Each claim is bucketed by its ``created_at`` and scaled exactly as its reservation
    was, so the result equals the counter the reservations built, bucket by bucket.
    """
    buckets: dict[int, int] = {}
    records: dict[str, str] = {}
    for claim in claims:
        bucket = bucket_of(shape, claim.created_at.timestamp())
        if bucket < window.oldest:
            continue
        amount = scaled_up(claim.amount, scale)
        buckets[bucket] = buckets.get(bucket, 0) + amount
        if claim.in_flight:
            records[claim.reservation_id] = f"{bucket} {amount}"
    return RebuiltCounter(buckets, records)


_LIVE_CLAIMS = """
SELECT t.id, t.created_at, t.status, c.value->>'amount' AS amount
  FROM transactions AS t, jsonb_array_elements(t.claims) AS c
 WHERE t.status = ANY($1::text[])
   AND t.{column} = $2
   AND t.created_at >= $3
   AND c.value->>'key' = $4
"""


class PostgresClaimHistory:
    """Live claims from the ``transactions`` table (the audit log)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def live_claims(self, claim_key: str, since: datetime) -> Sequence[LiveClaim]:
        """The live claims on ``claim_key`` since ``since``, through the scope's index."""
        scope, entity = _scope_of(claim_key)
        rows = await self._pool.fetch(
            _LIVE_CLAIMS.format(column=_SCOPE_COLUMNS[scope]),
            list(LIVE_STATUSES),
            entity,
            since,
            claim_key,
        )
        return [
            LiveClaim(
                reservation_id=str(row["id"]),
                created_at=row["created_at"],
                amount=int(row["amount"]),
                in_flight=row["status"] in IN_FLIGHT_STATUSES,
            )
            for row in rows
        ]


def _scope_of(claim_key: str) -> tuple[str, str]:
    scope, _, rest = claim_key.partition(":")
    entity = rest.partition(":")[0]
    if scope not in _SCOPE_COLUMNS or not entity:
        raise ValueError(f"counter key {claim_key!r} names no wallet, agent or owner scope")
    return scope, entity


def claims_from_row(raw: Any) -> list[dict[str, Any]]:
    """A row's ``claims`` column as a list of dicts (asyncpg returns JSONB as text)."""
    value = json.loads(raw) if isinstance(raw, str) else raw
    return list(value) if isinstance(value, list) else []
