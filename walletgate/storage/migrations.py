"""Schema migrations: ordered SQL files, each applied once, recorded with a checksum.

The files live in the top-level ``migrations/`` directory of the source tree. The package
reaches them through the ``walletgate/migrations`` symlink, and the wheel ships them as
package data (``walletgate/migrations/*.sql``), so one lookup
(``importlib.resources``) works from a checkout, an editable install and a wheel.

Concurrency: every runner takes one PostgreSQL advisory lock before it looks at
``schema_migrations``, so two ``walletgate migrate`` processes started together both
succeed and each file is applied exactly once (the second one finds nothing to do).
Each file runs in its own transaction together with the row that records it: a file
that fails leaves neither its changes nor its record behind.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from walletgate.config.settings import Settings
from walletgate.errors import UserError

# Arbitrary but fixed: the advisory lock key every walletgate migration runner shares
# ("walletgm" as ASCII). Session-level, so it is released even if the connection dies.
MIGRATION_LOCK_KEY = 0x77616C6C6574676D

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(UserError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its name (the sort key), its text and the text's sha256."""

    name: str
    sql: str
    checksum: str


def default_directory() -> Path:
    """The migrations shipped with this walletgate (source checkout or installed wheel)."""
    return Path(str(importlib.resources.files("walletgate") / "migrations"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read every ``*.sql`` file of ``directory`` (default: the shipped ones), by name."""
    directory = default_directory() if directory is None else directory
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    out = []
    for path in sorted(directory.glob("*.sql")):
        data = path.read_bytes()
        try:
            sql = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"migration {path}: not UTF-8 text ({exc.reason})") from None
        out.append(Migration(path.name, sql, hashlib.sha256(data).hexdigest()))
    if not out:
        raise MigrationError(f"migrations directory {directory} holds no *.sql files")
    return out


def plan_migrations(available: list[Migration], applied: Mapping[str, str]) -> list[Migration]:
    """The migrations still to apply, in order, given ``applied`` (name -> checksum).

    Refuses (``MigrationError``) when an applied file has changed since it was applied, or
    when the database records a migration this walletgate does not have (the database
    belongs to a newer walletgate): running on would mean running on an unknown schema.
    """
    by_name = {m.name: m for m in available}
    for name, recorded in sorted(applied.items()):
        migration = by_name.get(name)
        if migration is None:
            raise MigrationError(
                f"migration {name} is applied in the database but missing from the "
                "migrations directory: this database was migrated by another walletgate version"
            )
        if migration.checksum != recorded:
            raise MigrationError(
                f"migration {name} was changed after it was applied: recorded checksum "
                f"{recorded}, file checksum {migration.checksum}. Applied migrations must never "
                "be edited; put the change in a new migration file"
            )
    return [m for m in available if m.name not in applied]


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
    return {row["name"]: row["checksum"] for row in rows}


async def pending_migrations(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Names of the migrations not yet applied to ``conn``'s database, in order.

    Raises ``MigrationError`` when an applied migration has changed (see
    ``plan_migrations``); this takes no lock and changes nothing.
    """
    return [m.name for m in plan_migrations(load_migrations(directory), await _applied(conn))]


async def _apply_locked(conn: asyncpg.Connection, directory: Path | None) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    todo = plan_migrations(load_migrations(directory), await _applied(conn))
    for migration in todo:
        async with conn.transaction():
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.name} failed, nothing of it was applied: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            await conn.execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name,
                migration.checksum,
            )
    return [m.name for m in todo]


async def apply_migrations(
    conn_or_dsn: asyncpg.Connection | str,
    directory: Path | None = None,
    *,
    connect_timeout: float = 10.0,
) -> list[str]:
    """Apply the pending migrations of ``directory`` (default: the shipped ones).

    ``conn_or_dsn`` is an open connection (left open) or a PostgreSQL URL (connected
    within ``connect_timeout`` seconds, closed after). Returns the names applied by this
    call, in order; empty when the database was already up to date. Safe to run
    concurrently from several processes.
    """
    if isinstance(conn_or_dsn, str):
        conn = await asyncpg.connect(conn_or_dsn, timeout=connect_timeout)
        try:
            return await apply_migrations(conn, directory)
        finally:
            await conn.close()
    conn = conn_or_dsn
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        return await _apply_locked(conn, directory)
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """``walletgate migrate``: apply pending migrations to the configured database."""
    # Imported here: runtime imports this module (it migrates embedded databases).
    from walletgate.storage.runtime import database_connection

    async with database_connection(settings) as conn:
        applied = await apply_migrations(conn)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0
