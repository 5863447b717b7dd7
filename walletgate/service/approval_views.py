"""Reading approvals (held spends): list and show, with the held transaction's facts.

Deciding them (approve, reject, cancel) is :mod:`walletgate.service.approvals`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from walletgate.storage.runtime import Stores

_SELECT = """
SELECT a.id, a.transaction_id, a.kind, a.status, a.requested_at, a.expires_at,
       a.release_at, a.decided_at, a.decided_by, a.note, a.finished_at, a.result,
       t.agent_id, t.wallet_id, t.owner_id, t.chain_id, t.method,
       t.reason, t.amounts, t.usd_value
  FROM approvals a JOIN transactions t ON t.id = a.transaction_id
"""


@dataclass(frozen=True, slots=True)
class ApprovalFilter:
    status: str | None = None
    agent: str | None = None
    wallet: str | None = None
    owner: str | None = None
    limit: int = 100


def _item(row: Any) -> dict[str, Any]:
    item = dict(row)
    for key in ("amounts", "result"):
        if isinstance(item[key], str):
            item[key] = json.loads(item[key])
    return item


async def list_approvals(stores: Stores, flt: ApprovalFilter) -> list[dict[str, Any]]:
    """Approvals matching ``flt``, newest first."""
    rows = await stores.pool.fetch(
        f"""{_SELECT}
         WHERE ($1::text IS NULL OR a.status = $1)
           AND ($2::text IS NULL OR t.agent_id = $2)
           AND ($3::text IS NULL OR t.wallet_id = $3)
           AND ($4::text IS NULL OR t.owner_id = $4)
         ORDER BY a.requested_at DESC, a.id DESC
         LIMIT $5""",
        flt.status,
        flt.agent,
        flt.wallet,
        flt.owner,
        flt.limit,
    )
    return [_item(row) for row in rows]


async def get_approval(stores: Stores, approval_id: UUID) -> dict[str, Any] | None:
    """One approval by id, or ``None``."""
    row = await stores.pool.fetchrow(f"{_SELECT} WHERE a.id = $1", approval_id)
    return None if row is None else _item(row)
