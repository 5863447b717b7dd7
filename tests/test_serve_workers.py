"""``walletgate serve --workers N``: N processes on one port, supervised as one.

Real processes against the session's PostgreSQL, Redis and devnet: every worker
listens on the same port and answers, SIGTERM stops all of them, a worker that dies
takes the gateway down (so a process manager restarts it whole), and workers never
outlive a supervisor killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest
import pytest_asyncio

from tests.support.devnet import Devnet
from tests.support.gateway import EXAMPLE_POLICIES, free_port, issue_token, walletgate_cli
from tests.support.servers import with_database

_SUPERVISOR_LINE = re.compile(rb"with (\d+) workers \(pids ([\d, ]+)\)")
WAIT = 120.0  # upper bound for a process to start or stop; never asserted as a duration


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    log: Path
    url: str
    workers: list[int]


@pytest_asyncio.fixture
async def gateway_env(
    postgres_server_url: str, migrated_template: str, redis_url: str, devnet: Devnet
) -> AsyncIterator[dict[str, str]]:
    """Settings (as environment) of a gateway with the example policies, and a token."""
    name = f"wg_workers_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    env = {
        "WALLETGATE_DATABASE_URL": with_database(postgres_server_url, name),
        "WALLETGATE_REDIS_URL": redis_url,
        "WALLETGATE_BACKEND_URL": devnet.url,
        "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
        "WALLETGATE_ACTOR": "workers-tests",
    }
    try:
        await asyncio.to_thread(walletgate_cli, ["policies", "apply", str(EXAMPLE_POLICIES)], env)
        env["TOKEN"] = await asyncio.to_thread(issue_token, "trader", env)
        yield env
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _start(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "walletgate.cli", "serve", *extra],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


async def _until(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def supervised_cleanup() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Gateways started by a test; killed with their workers if still running after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        with_children = [process.pid]
        with contextlib.suppress(psutil.NoSuchProcess):
            with_children += [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
        for pid in with_children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(30)


@pytest_asyncio.fixture
async def supervised(
    gateway_env: dict[str, str],
    tmp_path: Path,
    supervised_cleanup: list[subprocess.Popen[bytes]],
) -> Supervised:
    """``walletgate serve --workers 2``, once both workers listen."""
    port = free_port()
    log = tmp_path / "serve.log"
    process = _start(gateway_env, log, "--port", str(port), "--workers", "2")
    supervised_cleanup.append(process)
    await _until(
        lambda: _SUPERVISOR_LINE.search(log.read_bytes()) or process.poll() is not None,
        "the supervisor's listening line",
    )
    match = _SUPERVISOR_LINE.search(log.read_bytes())
    assert match, log.read_text()
    pids = [int(p) for p in match.group(2).split(b",")]
    return Supervised(process, log, f"http://127.0.0.1:{port}/", pids)


def _listening_ports(pid: int) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_every_worker_listens_on_the_port_and_requests_are_answered(
    supervised: Supervised, gateway_env: dict[str, str], devnet: Devnet
) -> None:
    port = int(supervised.url.rsplit(":", 1)[1].strip("/"))
    assert len(supervised.workers) == 2
    children = {c.pid for c in psutil.Process(supervised.process.pid).children()}
    for worker in supervised.workers:
        assert worker in children
        assert port in _listening_ports(worker)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    headers = {"Authorization": f"Bearer {gateway_env['TOKEN']}"}
    for _ in range(20):  # fresh connections, spread by the kernel over the workers
        async with (
            aiohttp.ClientSession() as session,
            session.post(supervised.url, json=body, headers=headers) as response,
        ):
            assert (await response.json())["result"] == hex(devnet.chain_id)


async def test_sigterm_stops_every_worker_and_exits_cleanly(supervised: Supervised) -> None:
    supervised.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervised.process.wait, WAIT) == 0
    for worker in supervised.workers:
        await _until(lambda w=worker: _gone(w), f"worker {worker} to exit")


async def test_a_dead_worker_takes_the_gateway_down(supervised: Supervised) -> None:
    os.kill(supervised.workers[0], signal.SIGKILL)
    assert await asyncio.to_thread(supervised.process.wait, WAIT) == 1
    assert b"worker 0 exited" in supervised.log.read_bytes()
    await _until(lambda: _gone(supervised.workers[1]), "the other worker to exit")


async def test_workers_stop_when_the_supervisor_is_killed(supervised: Supervised) -> None:
    supervised.process.kill()
    supervised.process.wait(WAIT)
    for worker in supervised.workers:
        await _until(lambda w=worker: _gone(w), f"orphaned worker {worker} to exit")
    assert b"the supervising process is gone" in supervised.log.read_bytes()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workers", "0"], b"--workers must be at least 1"),
        (["--workers", "2", "--demo"], b"--demo runs one gateway process"),
    ],
)
async def test_impossible_worker_counts_are_refused(
    gateway_env: dict[str, str], tmp_path: Path, arguments: list[str], message: bytes
) -> None:
    log = tmp_path / "serve.log"
    process = _start(gateway_env, log, "--port", str(free_port()), *arguments)
    assert await asyncio.to_thread(process.wait, WAIT) == 2
    assert message in log.read_bytes()


async def test_a_worker_that_cannot_start_is_reported(
    gateway_env: dict[str, str], tmp_path: Path
) -> None:
    # The backend serves another chain: every worker refuses to start.
    env = {**gateway_env, "WALLETGATE_CHAIN_ID": "1"}
    log = tmp_path / "serve.log"
    process = _start(env, log, "--port", str(free_port()), "--workers", "2")
    assert await asyncio.to_thread(process.wait, WAIT) == 1
    text = log.read_bytes()
    assert b"refusing to start" in text and b"while starting" in text
