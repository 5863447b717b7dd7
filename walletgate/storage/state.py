"""The global state version: one number that every cache compares against.

Every change that a gateway must see at once (policy apply, token revoke, freeze) bumps
it inside the same PostgreSQL transaction as the change itself.
"""

from __future__ import annotations

import asyncpg


async def bump_state_version(conn: asyncpg.Connection) -> int:
    """Increment the state version inside the caller's transaction; return the new value."""
    version: int = await conn.fetchval(
        "UPDATE state_version SET version = version + 1 WHERE id = 1 RETURNING version"
    )
    return version


async def current_state_version(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The committed state version."""
    version: int = await conn.fetchval("SELECT version FROM state_version WHERE id = 1")
    return version
