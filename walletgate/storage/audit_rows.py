"""The rows of the audit log (``transactions``): what is written for a decision and its
outcome, the SQL that writes them in batches, and their arguments. The writer that
group-commits them is :mod:`walletgate.storage.audit`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.storage.approvals import HoldInfo


class AuditUnavailable(RuntimeError):
    """The audit row could not be made durable: the spend must not be forwarded."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A new row of the audit log (see migrations/0001_initial.sql for the columns)."""

    id: UUID
    created_at: datetime
    method: str
    request: Any
    decision: str
    reason: str
    status: str
    agent_id: str | None = None
    wallet_id: str | None = None
    owner_id: str | None = None
    chain_id: int | None = None
    backend: str = "default"
    intents: Sequence[Any] = ()
    explanation: Any = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)
    usd_value: Decimal | None = None
    claims: Sequence[Any] = ()
    timings: dict[str, float] = field(default_factory=dict)
    # Set for a held request: the id of the approval row written with it, and what
    # that row records (walletgate.storage.approvals).
    approval_id: UUID | None = None
    hold: HoldInfo | None = None
    # A `notify` tier fired: a spend.notify event goes to the owner's outbox in the
    # transaction that writes this row (walletgate.notify.outbox).
    notify: bool = False


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """What happened after forwarding: the final status and what the backend said."""

    id: UUID
    status: str  # committed | refunded | unknown
    settled_at: datetime
    tx_hash: str | None = None
    backend_error: Any = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A ``pending`` row never reserved nor forwarded: replaced by the refusal row
    ``record``, or deleted when ``record`` is None."""

    id: UUID
    record: AuditRecord | None


# What writing a batch may raise that is not a bug of walletgate's.
WRITE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def jsonb_safe(value: Any) -> Any:
    """``value`` with what PostgreSQL's jsonb cannot hold replaced, so that no content a
    client or a backend sends can make a row (and with it the whole group-committed
    batch) fail: NUL characters become U+FFFD, non-finite floats their names."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {jsonb_safe(str(key)): jsonb_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonb_safe(item) for item in value]
    return value


# Fractions parsed from requests are Decimal: str() keeps their exact digits.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False)
# A \u0000 escape in JSON text: preceded by an even number of backslashes (an odd number
# would make it the text "\u0000" of an escaped backslash, which jsonb accepts).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def dumps_jsonb(value: Any) -> str:
    """``value`` as JSON text that jsonb accepts (see :func:`jsonb_safe`).

    The C encoder does the work; the Python walk runs only for what it refuses
    (non-finite floats, keys it cannot write), and NUL escapes are rewritten in the
    text, which is much cheaper than walking every row's structure.
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        text = _ENCODER.encode(jsonb_safe(value))
    if "\\u0000" in text:
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return text


# One statement per group commit, whatever the batch size: the rows go as one array per
# column and unnest() turns them back into rows. PostgreSQL parses, plans and executes
# one statement instead of one per row. Identifier columns go as text[]: the assignment
# to the wg_id columns applies the domain's CHECK to every element, as a text parameter
# did. A row's jsonb columns go as one JSON array (one json.dumps per row, one array
# element: asyncpg checks every element of an array parameter in Python), taken apart
# by position; a JSON null there is only ever a None (SQL NULL) of a nullable column.
INSERT_SQL = """
INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend,
    method, decision, reason, status, usd_value, request, intents, explanation, amounts,
    claims, timings)
SELECT u.id, u.created_at, u.agent_id, u.wallet_id, u.owner_id, u.chain_id, u.backend,
       u.method, u.decision, u.reason, u.status, u.usd_value, u.json -> 0, u.json -> 1,
       u.json -> 2, u.json -> 3, u.json -> 4, u.json -> 5
  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
              $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
              $12::numeric[], $13::jsonb[])
       AS u (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend, method,
             decision, reason, status, usd_value, json)
"""

# A batch of one row goes as the plain statement with the same arguments: PostgreSQL
# plans the unnest() statements for every execution (a generic plan would assume 100
# rows), which costs more than it saves when there is one row.
INSERT_ONE_SQL = """
INSERT INTO transactions (id, created_at, agent_id, wallet_id, owner_id, chain_id, backend,
    method, decision, reason, status, usd_value, request, intents, explanation, amounts,
    claims, timings)
VALUES ($1::uuid, $2::timestamptz, $3::text, $4::text, $5::text, $6::bigint, $7::text,
        $8::text, $9::text, $10::text, $11::text, $12::numeric, $13::jsonb -> 0,
        $13::jsonb -> 1, $13::jsonb -> 2, $13::jsonb -> 3, $13::jsonb -> 4, $13::jsonb -> 5)
"""

# The refusal row a still pending row becomes (what _log_refusal would have inserted):
# claims go (a refusal reserves nothing), request and intents stay.
REFUSE_SQL = """
UPDATE transactions
   SET decision = $2::text, reason = $3::text, status = $4::text, usd_value = $5::numeric,
       explanation = $6::jsonb -> 0, amounts = $6::jsonb -> 1, claims = $6::jsonb -> 2,
       timings = $6::jsonb -> 3
 WHERE id = $1::uuid AND status = 'pending'
"""

DISCARD_SQL = "DELETE FROM transactions WHERE id = $1::uuid AND status = 'pending'"

# Each row is updated at most once per statement (see _rounds).
UPDATE_SQL = """
UPDATE transactions AS t
   SET status = u.status, settled_at = u.settled_at, tx_hash = u.tx_hash,
       backend_error = nullif(u.json -> 0, 'null'), timings = t.timings || (u.json -> 1)
  FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[])
       AS u (id, status, settled_at, tx_hash, json)
 WHERE t.id = u.id
"""

UPDATE_ONE_SQL = """
UPDATE transactions
   SET status = $2::text, settled_at = $3::timestamptz, tx_hash = $4::text,
       backend_error = nullif($5::jsonb -> 0, 'null'), timings = timings || ($5::jsonb -> 1)
 WHERE id = $1::uuid
"""


def _decided(record: AuditRecord) -> list[Any]:
    """What a decision wrote into the row's jsonb columns: explanation, amounts (as
    decimal strings), claims and timings."""
    amounts = {asset: str(units) for asset, units in record.amounts.items()}
    return [record.explanation, amounts, list(record.claims), record.timings]


def insert_args(record: AuditRecord) -> tuple[Any, ...]:
    """The arguments of INSERT_SQL's row (one element of its unnest columns)."""
    return (
        record.id,
        record.created_at,
        record.agent_id,
        record.wallet_id,
        record.owner_id,
        record.chain_id,
        record.backend,
        record.method,
        record.decision,
        record.reason,
        record.status,
        record.usd_value,
        dumps_jsonb([record.request, list(record.intents), *_decided(record)]),
    )


def refuse_args(record: AuditRecord) -> tuple[Any, ...]:
    """The arguments of REFUSE_SQL: a pending row rewritten as ``record`` (a refusal)."""
    return (
        record.id,
        record.decision,
        record.reason,
        record.status,
        record.usd_value,
        dumps_jsonb(_decided(record)),
    )


_TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")


def update_args(outcome: AuditOutcome) -> tuple[Any, ...]:
    # A backend may answer with anything; only a well-formed hash goes in the column.
    tx_hash = outcome.tx_hash.lower() if outcome.tx_hash else None
    return (
        outcome.id,
        outcome.status,
        outcome.settled_at,
        tx_hash if tx_hash and _TX_HASH.match(tx_hash) else None,
        # A None backend_error becomes JSON null, and that SQL NULL (nullif above).
        dumps_jsonb([outcome.backend_error, outcome.timings]),
    )
