"""Reading the audit log: transactions filtered, searched and paged by a keyset cursor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class TxFilter:
    agent: str | None = None
    wallet: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    status: str | None = None
    owner: str | None = None
    #: Keyset pagination: only rows strictly after this (created_at, id) in list order.
    after: tuple[datetime, UUID] | None = None
    #: Free text: rows whose tx hash, agent, wallet, method, reason, status or explained
    #: rule contain it (case-insensitive, as a literal: no pattern characters).
    search: str | None = None


#: The columns a search looks in; strpos() treats the text literally (no LIKE escapes).
_SEARCH = (
    "strpos(lower(concat_ws(' ', id::text, tx_hash, agent_id, wallet_id, owner_id, method, "
    "reason, status, decision, explanation::text, backend_error::text, request::text)), ${n}) > 0"
)


async def list_transactions(
    conn: asyncpg.Connection | asyncpg.Pool, flt: TxFilter
) -> list[dict[str, Any]]:
    """Rows of the audit log matching ``flt``, newest first (ties: highest id first, so
    ``(created_at, id)`` of the last row is a stable cursor for the next page)."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("agent_id", flt.agent),
        ("wallet_id", flt.wallet),
        ("decision", flt.decision),
        ("status", flt.status),
        ("owner_id", flt.owner),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if flt.since is not None:
        args.append(flt.since)
        clauses.append(f"created_at >= ${len(args)}")
    if flt.until is not None:
        args.append(flt.until)
        clauses.append(f"created_at < ${len(args)}")
    if flt.after is not None:
        args.extend(flt.after)
        clauses.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    if flt.search:
        args.append(flt.search.lower())
        clauses.append(_SEARCH.format(n=len(args)))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(flt.limit)
    rows = await conn.fetch(
        f"""SELECT id, created_at, agent_id, wallet_id, chain_id, backend, method, decision,
                   reason, status, amounts, usd_value, tx_hash, explanation, backend_error,
                   owner_id
              FROM transactions {where}
             ORDER BY created_at DESC, id DESC
             LIMIT ${len(args)}""",
        *args,
    )
    out = []
    for row in rows:
        item = dict(row)
        for key in ("amounts", "explanation", "backend_error"):
            if isinstance(item[key], str):
                item[key] = json.loads(item[key])
        out.append(item)
    return out
