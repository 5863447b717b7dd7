"""``walletgate backup FILE`` and ``walletgate restore FILE``: the database, whole.

PostgreSQL is walletgate's source of truth: policies, tokens, freezes and the audit
log, whose live rows are also every counter's total (Redis rebuilds them from it). A
backup is therefore ``pg_dump`` of the database, in its custom format, made with the
tools of the same pgserver install that runs the embedded server (so the versions
match). ``restore`` loads the file into a scratch database next to the live one, checks
its schema version (the ``schema_migrations`` table) against the migrations this
walletgate ships, and only then swaps it in under the live name, which PostgreSQL
allows only while nobody is connected: stop the gateways first. The Redis state is
then flushed (embedded mode), since it describes the replaced database; everything in
it is rebuilt from PostgreSQL on first use.

External servers have better tools (continuous WAL archiving and point-in-time
recovery, docs/operations.md); these commands work on them too, as long as the
server's major version is pgserver's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from walletgate.config.settings import Settings
from walletgate.errors import UserError
from walletgate.storage.migrations import (
    MigrationError,
    apply_migrations,
    load_migrations,
    plan_migrations,
)
from walletgate.storage.runtime import connect_redis, redact_url, server_urls


class BackupError(UserError):
    """A backup or restore failed; the message says why and what is left as it was."""


def postgres_tool(name: str) -> Path:
    """The path of PostgreSQL tool ``name`` (``pg_dump``) of the pgserver install."""
    from pgserver._commands import POSTGRES_BIN_PATH

    path = Path(POSTGRES_BIN_PATH) / name
    if not path.is_file():
        raise BackupError(f"{name} is missing from the pgserver install ({path})")
    return path


async def _run_tool(name: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(postgres_tool(name)),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{name} failed: {detail[-1] if detail else process.returncode}")


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise BackupError(f"the database URL {redact_url(url)} names no database")
    return name


async def _schema_of(url: str) -> dict[str, str]:
    """The ``schema_migrations`` records of the database at ``url`` (name -> checksum)."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            return {}
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
    finally:
        await conn.close()
    return {row["name"]: row["checksum"] for row in rows}


async def backup(database_url: str, file: Path) -> list[str]:
    """Write the database at ``database_url`` to ``file`` (pg_dump custom format, via a
    temporary file renamed into place); returns its schema version (migration names)."""
    applied = await _schema_of(database_url)
    if not applied:
        raise BackupError(f"{redact_url(database_url)} holds no walletgate schema to back up")
    partial = file.with_name(f".{file.name}.partial")
    try:
        await _run_tool(
            "pg_dump", "--format=custom", "--no-owner", f"--file={partial}", database_url
        )
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    return sorted(applied)


@dataclass(frozen=True)
class Restored:
    """What ``restore`` did: the backup's schema version and migrations applied on top."""

    schema: list[str]
    migrated: list[str]


async def restore(database_url: str, file: Path) -> Restored:
    """Replace the database at ``database_url`` with the backup in ``file``.

    The backup is restored into a scratch database first; its schema version must be
    one this walletgate knows (the same migrations, unchanged, possibly fewer: the
    missing ones are applied after). Then it takes the live database's name. Raises
    :class:`BackupError` (the live database untouched) otherwise.
    """
    if not await asyncio.to_thread(file.is_file):
        raise BackupError(f"no backup file {file}")
    live = _database_name(database_url)
    scratch = f"{live}_restore_{secrets.token_hex(4)}"
    admin_url = _with_database(database_url, "postgres")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}" TEMPLATE template0')
        swapped = False
        try:
            scratch_url = _with_database(database_url, scratch)
            await _run_tool(
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={scratch_url}",
                str(file),
            )
            schema = await _check_schema(scratch_url, file)
            await _swap(admin, live, scratch)
            swapped = True
        finally:
            if not swapped:
                await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        await admin.close()
    migrated = await apply_migrations(database_url)
    return Restored(schema, migrated)


async def _check_schema(url: str, file: Path) -> list[str]:
    applied = await _schema_of(url)
    if not applied:
        raise BackupError(f"{file} is not a walletgate backup: it has no schema_migrations table")
    try:
        plan_migrations(load_migrations(), applied)
    except MigrationError as exc:
        raise BackupError(f"{file} cannot be restored by this walletgate: {exc}") from None
    return sorted(applied)


async def _swap(admin: asyncpg.Connection, live: str, scratch: str) -> None:
    """Give ``scratch`` the name ``live``; PostgreSQL refuses while anyone is connected
    to the live database, which is the check that the gateways are stopped."""
    retired = f"{live}_replaced_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'ALTER DATABASE "{live}" RENAME TO "{retired}"')
    except asyncpg.ObjectInUseError:
        raise BackupError(
            f"database {live!r} is in use: stop every gateway (and other walletgate commands) "
            "using it first; nothing was changed"
        ) from None
    await admin.execute(f'ALTER DATABASE "{scratch}" RENAME TO "{live}"')
    await admin.execute(f'DROP DATABASE "{retired}" WITH (FORCE)')


async def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler of ``walletgate backup FILE``."""
    file = Path(args.file)
    async with server_urls(settings, need_redis=False) as urls:
        schema = await backup(urls.database_url, file)
    print(f"Backed up {redact_url(urls.database_url)} to {file} (schema version {schema[-1]}).")
    return 0


async def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler of ``walletgate restore FILE``."""
    file = Path(args.file)
    async with server_urls(settings, need_redis=False) as urls:
        done = await restore(urls.database_url, file)
        if urls.embedded and urls.redis_url is not None:
            # The counters and caches describe the replaced database; they rebuild
            # from the restored one on first use.
            client = connect_redis(urls.redis_url, settings)
            try:
                await client.flushdb()
            finally:
                await client.aclose()
    print(
        f"Restored {file} into {redact_url(urls.database_url)} (schema version {done.schema[-1]})."
    )
    if done.migrated:
        print(f"Applied the migrations newer than the backup: {', '.join(done.migrated)}.")
    if not urls.embedded:
        print(
            "Flush the gateways' Redis now (FLUSHDB, or FLUSHALL on each Cluster master): its "
            "counters and caches describe the replaced database; they rebuild from PostgreSQL."
        )
    return 0
