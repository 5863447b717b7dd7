"""Console sessions (migrations/0007_console_sessions.sql): server-side, short-lived.

A session is a random 256-bit secret in an httpOnly cookie; only its SHA-256 is stored,
with the admin key it was opened with and a CSRF token bound to it. Every request looks
the session up together with its key, so revoking the key ends the session at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from uuid import NAMESPACE_URL, uuid5

import asyncpg

from walletgate.storage.admin_keys import _COLUMNS, AdminKeyRecord, _record

_KEY_COLUMNS = ", ".join(f"k.{name.strip()}" for name in _COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class ApproverKey(AdminKeyRecord):
    """What a session opened by the owner's approver signature acts as: an owner-scoped
    key that exists only in that session, recorded under the approver's address."""

    address: str = ""

    @property
    def actor(self) -> str:
        return f"owner-approver:{self.address}"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live session: the key it acts with and its CSRF token."""

    key: AdminKeyRecord
    csrf_token: str


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def open_session(pool: asyncpg.Pool, key: AdminKeyRecord, lifetime: timedelta) -> str:
    """A new session for ``key``; returns its secret (the cookie value), never stored."""
    secret = secrets.token_urlsafe(32)
    await pool.execute(
        "DELETE FROM console_sessions WHERE expires_at < now()"  # keep the table small
    )
    await pool.execute(
        """INSERT INTO console_sessions (id_hash, admin_key_id, csrf_token, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))""",
        _digest(secret),
        key.key_id,
        secrets.token_urlsafe(32),
        lifetime.total_seconds(),
    )
    return secret


async def open_owner_session(
    pool: asyncpg.Pool, owner_id: str, approver: str, lifetime: timedelta
) -> str:
    """A new session for ``owner_id`` opened by its approver ``approver``'s signature."""
    secret = secrets.token_urlsafe(32)
    await pool.execute("DELETE FROM console_sessions WHERE expires_at < now()")
    await pool.execute(
        """INSERT INTO console_sessions (id_hash, owner_id, approver, csrf_token, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        _digest(secret),
        owner_id,
        approver,
        secrets.token_urlsafe(32),
        lifetime.total_seconds(),
    )
    return secret


async def _find_owner_session(pool: asyncpg.Pool, digest: bytes) -> ConsoleSession | None:
    # Alive only while its address is still the owner's approver: clearing or changing
    # the approver ends it, as revoking ends a key's sessions.
    row = await pool.fetchrow(
        """SELECT s.owner_id, s.approver, s.created_at, s.csrf_token
             FROM console_sessions s
             JOIN owner_approvers a ON a.owner_id = s.owner_id AND a.address = s.approver
            WHERE s.id_hash = $1 AND s.expires_at > now()""",
        digest,
    )
    if row is None:
        return None
    key = ApproverKey(
        key_id=uuid5(
            NAMESPACE_URL, f"walletgate:owner-approver:{row['owner_id']}:{row['approver']}"
        ),
        prefix=f"approver:{row['approver'][:10]}",
        scope="owner",
        owner_id=row["owner_id"],
        created_at=row["created_at"],
        created_by=f"owner-approver:{row['approver']}",
        last_used_at=None,
        revoked_at=None,
        revoked_by=None,
        address=row["approver"],
    )
    return ConsoleSession(key, row["csrf_token"])


async def find_session(pool: asyncpg.Pool, secret: str) -> ConsoleSession | None:
    """The live session of ``secret`` whose key (or approver address) is still active,
    or ``None``."""
    if not secret or len(secret) > 200:
        return None
    row = await pool.fetchrow(
        f"""SELECT {_KEY_COLUMNS}, s.csrf_token
              FROM console_sessions s JOIN admin_keys k ON k.id = s.admin_key_id
             WHERE s.id_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL""",
        _digest(secret),
    )
    if row is None:
        return await _find_owner_session(pool, _digest(secret))
    return ConsoleSession(_record(row), row["csrf_token"])


async def close_session(pool: asyncpg.Pool, secret: str) -> None:
    """End the session of ``secret`` (sign out)."""
    await pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", _digest(secret))


async def save_challenge(
    pool: asyncpg.Pool, nonce: str, owner_id: str, address: str, message: str, lifetime: timedelta
) -> None:
    """Keep a sign-in challenge (its nonce used once, until its expiry)."""
    await pool.execute("DELETE FROM console_challenges WHERE expires_at < now() - interval '1 day'")
    await pool.execute(
        """INSERT INTO console_challenges (nonce, owner_id, address, message, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        nonce,
        owner_id,
        address,
        message,
        lifetime.total_seconds(),
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """A challenge just taken for use: whom it was for, what was signed, if still fresh."""

    owner_id: str
    address: str
    message: str
    fresh: bool


async def take_challenge(pool: asyncpg.Pool, nonce: str) -> Challenge | None:
    """Mark the challenge ``nonce`` used, whatever the signature turns out to be, and
    return it; ``None`` when it is unknown or was used already (each is used once, even
    by two requests at the same time: the update is the test)."""
    row = await pool.fetchrow(
        """UPDATE console_challenges SET used_at = now()
            WHERE nonce = $1 AND used_at IS NULL
        RETURNING owner_id, address, message, expires_at > now() AS fresh""",
        nonce,
    )
    if row is None:
        return None
    return Challenge(row["owner_id"], row["address"], row["message"], row["fresh"])
