"""Embedded servers: real PostgreSQL and Valkey, shared per data directory, no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis

from walletgate.config.settings import Settings
from walletgate.storage.embedded import (
    EmbeddedServerError,
    EmbeddedServers,
    ProcessId,
    attach,
    detach,
    read_state,
)
from walletgate.storage.migrations import load_migrations
from walletgate.storage.runtime import open_stores

# A walletgate process in miniature: attach, report the URLs, hold on until its stdin
# closes, detach. Several of them sharing a data directory are several walletgate
# commands running side by side. It restores Python's Ctrl-C handler because a test run
# started in the background inherits SIGINT as ignored, unlike a command in a terminal.
USER_PROGRAM = """
import json, signal, sys
from pathlib import Path
from walletgate.storage.embedded import attach, detach
signal.signal(signal.SIGINT, signal.default_int_handler)
data_dir = Path(sys.argv[1])
servers = attach(data_dir)
print(json.dumps([servers.database_url, servers.redis_url]), flush=True)
sys.stdin.read()
detach(data_dir)
"""


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes that belong to ``data_dir``: postmaster and supervisor (by command
    line), Valkey (it rewrites its command line, so by working directory)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
        if str(data_dir) in where:
            found.append(process)
    return found


async def wait_for_no_server_processes(data_dir: Path) -> None:
    """The supervisor notices a dead user at its next poll; give it ample time."""
    for _ in range(600):
        if not server_processes(data_dir):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"left behind: {server_processes(data_dir)}")


class User:
    """A separate process using the embedded servers of one data directory."""

    def __init__(self, process: asyncio.subprocess.Process, servers: EmbeddedServers) -> None:
        self.process = process
        self.servers = servers

    @classmethod
    async def start(cls, data_dir: Path) -> User:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            USER_PROGRAM,
            str(data_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await process.stdout.readline()
        database_url, redis_url = json.loads(line)
        return cls(process, EmbeddedServers(database_url, redis_url))

    async def finish(self) -> int:
        """Let the user detach and exit normally."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return await self.process.wait()

    async def kill(self, signum: int) -> None:
        self.process.send_signal(signum)
        await self.process.wait()


async def assert_servers_answer(servers: EmbeddedServers) -> None:
    conn = await asyncpg.connect(servers.database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(servers.redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_embedded_default_starts_migrates_serves_and_stops(embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    settings = Settings(data_dir=data_dir)
    assert settings.embedded

    async with open_stores(settings) as stores:
        migrations = await stores.pool.fetchval("SELECT count(*) FROM schema_migrations")
        assert migrations == len(load_migrations())
        await stores.pool.execute("INSERT INTO owners (id, name) VALUES ('alice', 'Alice')")
        await stores.redis.set(b"walletgate:probe", b"1")
        assert await stores.redis.get(b"walletgate:probe") == b"1"
        assert server_processes(data_dir)

    assert server_processes(data_dir) == []

    # PostgreSQL keeps its data in the data directory; a second start finds it.
    async with open_stores(settings) as stores:
        assert await stores.pool.fetchval("SELECT name FROM owners WHERE id = 'alice'") == "Alice"
    assert server_processes(data_dir) == []


async def test_processes_sharing_a_data_dir_share_one_pair_of_servers(
    embedded_data_dir: Path,
) -> None:
    data_dir = embedded_data_dir
    first, second = await asyncio.gather(User.start(data_dir), User.start(data_dir))
    assert first.servers == second.servers
    postmasters = [p for p in server_processes(data_dir) if "-D" in p.cmdline()]
    assert len(postmasters) == 1

    # A third, short-lived command (like `walletgate migrate`) joins and leaves...
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walletgate.cli", "--data-dir", str(data_dir), "migrate",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await migrate.communicate()
    assert migrate.returncode == 0, out
    # ...and so does the first user: the servers stay up for the one still running.
    assert await first.finish() == 0
    await assert_servers_answer(second.servers)

    assert await second.finish() == 0
    assert server_processes(data_dir) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
async def test_servers_stop_when_the_last_user_dies(embedded_data_dir: Path, signum: int) -> None:
    data_dir = embedded_data_dir
    user = await User.start(data_dir)
    await assert_servers_answer(user.servers)

    await user.kill(signum)

    await wait_for_no_server_processes(data_dir)


async def test_servers_left_by_a_killed_supervisor_are_taken_over(
    embedded_data_dir: Path,
) -> None:
    data_dir = embedded_data_dir
    user = await User.start(data_dir)
    state = read_state(data_dir)
    assert state is not None
    os.kill(state.supervisor.pid, signal.SIGKILL)
    assert await user.finish() == 0
    assert server_processes(data_dir), "expected orphaned servers to take over"

    servers = await asyncio.to_thread(attach, data_dir)
    try:
        await assert_servers_answer(servers)
        assert not state.valkey.alive()  # the orphaned Valkey was stopped, not leaked
    finally:
        await asyncio.to_thread(detach, data_dir)

    assert server_processes(data_dir) == []


async def test_attach_twice_in_one_process_needs_two_detaches(embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    first = await asyncio.to_thread(attach, data_dir)
    second = await asyncio.to_thread(attach, data_dir)
    assert first == second

    await asyncio.to_thread(detach, data_dir)
    await assert_servers_answer(first)
    await asyncio.to_thread(detach, data_dir)

    assert server_processes(data_dir) == []


async def test_a_start_up_failure_is_reported_and_leaves_nothing(
    embedded_data_dir: Path,
) -> None:
    data_dir = embedded_data_dir
    data_dir.mkdir()
    (data_dir / "postgres").write_text("not a directory")

    with pytest.raises(EmbeddedServerError, match="failed to start") as failed:
        await asyncio.to_thread(attach, data_dir)

    assert str(data_dir / "embedded.log") in str(failed.value)
    await wait_for_no_server_processes(data_dir)


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")

    with pytest.raises(EmbeddedServerError, match=f"data directory {path}"):
        attach(path)


def test_process_identity_survives_pid_reuse() -> None:
    me = ProcessId.of(os.getpid())
    assert me.alive()
    assert ProcessId.from_key(me.key) == me
    assert not ProcessId(me.pid, me.create_time - 1.0).alive()
