"""``walletgate migrate``: each file once, in order, under a lock, checksummed."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import asyncpg
import pytest

from walletgate.storage.migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    default_directory,
    load_migrations,
    pending_migrations,
    plan_migrations,
)

REPO_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped migrations that a test may change."""
    directory = tmp_path / "migrations"
    shutil.copytree(default_directory(), directory)
    return directory


async def _recorded(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    finally:
        await conn.close()
    return [(row["name"], row["checksum"]) for row in rows]


def _walletgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "walletgate.cli", *args]


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLETGATE_")}
    env["WALLETGATE_DATABASE_URL"] = database_url
    return env


def test_shipped_migrations_are_the_repository_files() -> None:
    shipped = {m.name: m.checksum for m in load_migrations()}
    repo = {m.name: m.checksum for m in load_migrations(REPO_MIGRATIONS)}
    assert shipped == repo
    assert "0001_initial.sql" in shipped


async def test_every_migration_is_applied_once_in_order(empty_database_url: str) -> None:
    expected = [m.name for m in load_migrations()]

    assert await apply_migrations(empty_database_url) == expected
    assert await apply_migrations(empty_database_url) == []

    recorded = await _recorded(empty_database_url)
    assert recorded == [(m.name, m.checksum) for m in load_migrations()]
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await pending_migrations(conn) == []
        assert await conn.fetchval("SELECT version FROM state_version") == 1
    finally:
        await conn.close()


async def test_pending_migrations_of_an_empty_database_are_all_of_them(
    empty_database_url: str,
) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await pending_migrations(conn) == [m.name for m in load_migrations()]
    finally:
        await conn.close()


async def test_test_databases_are_fully_migrated(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await pending_migrations(conn) == []


async def test_a_new_migration_is_applied_after_the_old_ones(
    empty_database_url: str, migrations_copy: Path
) -> None:
    await apply_migrations(empty_database_url, migrations_copy)
    (migrations_copy / "9999_extra.sql").write_text("CREATE TABLE extra (id int);\n")

    assert await apply_migrations(empty_database_url, migrations_copy) == ["9999_extra.sql"]
    assert [name for name, _ in await _recorded(empty_database_url)][-1] == "9999_extra.sql"


async def test_two_migrate_processes_started_together_both_succeed(
    empty_database_url: str,
) -> None:
    env = _env(empty_database_url)
    results = await asyncio.gather(
        _run(_walletgate("migrate"), env), _run(_walletgate("migrate"), env)
    )

    assert [code for code, _, _ in results] == [0, 0], results
    applied = [
        line.removeprefix("applied ")
        for _, out, _ in results
        for line in out.splitlines()
        if line.startswith("applied ")
    ]
    names = [m.name for m in load_migrations()]
    assert sorted(applied) == names  # each file applied by exactly one of the two
    assert [name for name, _ in await _recorded(empty_database_url)] == names


async def test_a_changed_applied_migration_is_refused(
    empty_database_url: str, migrations_copy: Path
) -> None:
    await apply_migrations(empty_database_url, migrations_copy)
    target = migrations_copy / "0001_initial.sql"
    old = load_migrations(migrations_copy)[0].checksum
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    new = load_migrations(migrations_copy)[0].checksum

    with pytest.raises(MigrationError) as refused:
        await apply_migrations(empty_database_url, migrations_copy)
    message = str(refused.value)
    assert "0001_initial.sql" in message and old in message and new in message

    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(MigrationError):
            await pending_migrations(conn, migrations_copy)
    finally:
        await conn.close()


async def test_migrate_command_exits_1_with_one_line_on_a_changed_migration(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE schema_migrations SET checksum = $1 WHERE name = '0001_initial.sql'", "0" * 64
        )
    finally:
        await conn.close()

    code, out, err = await _run(_walletgate("migrate"), _env(database_url))

    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("walletgate: migration 0001_initial.sql was changed")
    assert "0" * 64 in err and len(err.strip().splitlines()) == 1


async def test_a_migration_unknown_to_this_version_is_refused(
    empty_database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "9999_newer.sql").write_text("SELECT 1;\n")
    await apply_migrations(empty_database_url, migrations_copy)
    (migrations_copy / "9999_newer.sql").unlink()

    with pytest.raises(MigrationError, match=r"9999_newer\.sql .* missing"):
        await apply_migrations(empty_database_url, migrations_copy)


async def test_a_failing_migration_leaves_nothing_behind(
    empty_database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "9999_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT 1 / 0;\n"
    )

    with pytest.raises(MigrationError, match=r"9999_broken\.sql failed"):
        await apply_migrations(empty_database_url, migrations_copy)

    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await pending_migrations(conn, migrations_copy) == ["9999_broken.sql"]
    finally:
        await conn.close()


async def test_migrate_command_reports_an_unreachable_database(unused_tcp_port: int) -> None:
    url = f"postgresql://walletgate:hunter2@127.0.0.1:{unused_tcp_port}/walletgate"

    code, _, err = await _run(_walletgate("migrate"), _env(url))

    assert code == 1
    assert "Traceback" not in err
    assert (
        f"cannot connect to PostgreSQL at postgresql://walletgate:***@127.0.0.1:{unused_tcp_port}"
        in err
    )
    assert "hunter2" not in err


def test_a_directory_without_migrations_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="holds no"):
        load_migrations(tmp_path)
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nowhere")


def _m(name: str, checksum: str = "a" * 64) -> Migration:
    return Migration(name, "SELECT 1;", checksum)


def test_plan_keeps_file_order_and_skips_applied() -> None:
    available = [_m("0001_a.sql"), _m("0002_b.sql"), _m("0003_c.sql")]
    applied = {"0002_b.sql": "a" * 64}

    assert [m.name for m in plan_migrations(available, applied)] == ["0001_a.sql", "0003_c.sql"]


def test_plan_refuses_a_changed_checksum() -> None:
    with pytest.raises(MigrationError, match=f"recorded checksum {'b' * 64}"):
        plan_migrations([_m("0001_a.sql")], {"0001_a.sql": "b" * 64})
