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

import asyncpg

from walletgate.storage.admin_keys import _COLUMNS, AdminKeyRecord, _record

_KEY_COLUMNS = ", ".join(f"k.{name.strip()}" for name in _COLUMNS.split(","))


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


async def find_session(pool: asyncpg.Pool, secret: str) -> ConsoleSession | None:
    """The live session of ``secret`` whose key is still active, or ``None``."""
    if not secret or len(secret) > 200:
        return None
    row = await pool.fetchrow(
        f"""SELECT {_KEY_COLUMNS}, s.csrf_token
              FROM console_sessions s JOIN admin_keys k ON k.id = s.admin_key_id
             WHERE s.id_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL""",
        _digest(secret),
    )
    if row is None:
        return None
    return ConsoleSession(_record(row), row["csrf_token"])


async def close_session(pool: asyncpg.Pool, secret: str) -> None:
    """End the session of ``secret`` (sign out)."""
    await pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", _digest(secret))
