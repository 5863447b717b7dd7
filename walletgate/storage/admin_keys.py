"""Admin keys: the bearer secrets of the admin HTTP API (migrations/0004_admin_keys.sql).

A key is made and stored exactly like an agent token (:mod:`walletgate.storage.tokens`:
256 random bits, only their SHA-256 kept, a short clear prefix to tell keys apart) but
starts ``wga_``, so neither kind can be mistaken for the other, by walletgate or by a
secret scanner. An ``operator`` key may do everything; an ``owner`` key is confined to
one owner's objects (the admin API enforces that).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from walletgate.errors import UserError
from walletgate.storage.tokens import TOUCH_INTERVAL_SECONDS, hash_token, new_token

ADMIN_KEY_PREFIX = "wga_"
#: Characters of a key kept in clear as its identifier: "wga_" + 8 (48 bits).
ADMIN_DISPLAY_PREFIX_LENGTH = len(ADMIN_KEY_PREFIX) + 8
_KEY_RE = re.compile(r"^wga_[A-Za-z0-9_-]{20,100}$")
SCOPES = ("operator", "owner")


class AdminKeyError(UserError):
    """An admin key operation cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class AdminKeyRecord:
    """A stored admin key as operators see it: never the secret."""

    key_id: UUID
    prefix: str
    scope: str
    owner_id: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """The name changes made with this key are recorded under."""
        return f"admin-key:{self.prefix}"


@dataclass(frozen=True, slots=True)
class IssuedAdminKey:
    """A fresh key; ``key`` is the plaintext: show it once, never store it."""

    record: AdminKeyRecord
    key: str = field(repr=False)


_COLUMNS = (
    "id, prefix, scope, owner_id, created_at, created_by, last_used_at, revoked_at, revoked_by"
)


def _record(row: asyncpg.Record) -> AdminKeyRecord:
    return AdminKeyRecord(
        key_id=row["id"],
        prefix=row["prefix"],
        scope=row["scope"],
        owner_id=row["owner_id"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


def looks_like_admin_key(value: str) -> bool:
    """True when ``value`` has the shape of an admin key (no lookup is done)."""
    return bool(_KEY_RE.match(value))


async def issue_admin_key(
    conn: asyncpg.Connection | asyncpg.Pool, *, owner_id: str | None, actor: str
) -> IssuedAdminKey:
    """A new key: an operator key without ``owner_id``, else one confined to that owner.

    Raises :class:`AdminKeyError` when ``owner_id`` names no owner.
    """
    key = new_token(ADMIN_KEY_PREFIX)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO admin_keys (key_hash, prefix, scope, owner_id, created_by)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
            hash_token(key),
            key[:ADMIN_DISPLAY_PREFIX_LENGTH],
            "operator" if owner_id is None else "owner",
            owner_id,
            actor,
        )
    except (asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError):
        # The foreign key is the authority on whether the owner exists (no race).
        raise AdminKeyError(f"unknown owner {owner_id!r}") from None
    return IssuedAdminKey(_record(row), key)


async def list_admin_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[AdminKeyRecord]:
    """Every admin key, oldest first, without secrets."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM admin_keys ORDER BY created_at, id")
    return [_record(row) for row in rows]


async def revoke_admin_key(
    conn: asyncpg.Connection | asyncpg.Pool, reference: str, *, actor: str
) -> AdminKeyRecord:
    """Revoke the key named by id or display prefix; it is refused from the next request.

    Raises :class:`AdminKeyError` when no key or several keys match, or it was revoked.
    """
    reference = reference.strip()
    try:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM admin_keys WHERE id = $1", UUID(reference))
    except ValueError:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM admin_keys WHERE prefix = $1", reference)
    if not rows:
        shown = reference[:ADMIN_DISPLAY_PREFIX_LENGTH]
        raise AdminKeyError(f"no admin key matches {shown!r}")
    if len(rows) > 1:
        ids = ", ".join(str(row["id"]) for row in rows)
        raise AdminKeyError(f"prefix {reference!r} matches several admin keys ({ids}); use the id")
    found = _record(rows[0])
    row = await conn.fetchrow(
        f"""UPDATE admin_keys SET revoked_at = now(), revoked_by = $2
             WHERE id = $1 AND revoked_at IS NULL RETURNING {_COLUMNS}""",
        found.key_id,
        actor,
    )
    if row is None:
        raise AdminKeyError(f"admin key {found.prefix} ({found.key_id}) was already revoked")
    return _record(row)


async def authenticate_admin_key(
    conn: asyncpg.Connection | asyncpg.Pool, key: str
) -> AdminKeyRecord | None:
    """The active key whose secret is ``key``, or ``None``; records the use (at most
    once a minute per key, like agent tokens)."""
    if not looks_like_admin_key(key):
        return None
    digest = hash_token(key)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, key_hash FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        digest,
    )
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        return None
    await conn.execute(
        "UPDATE admin_keys SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL"
        " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        row["id"],
        float(TOUCH_INTERVAL_SECONDS),
    )
    return _record(row)
