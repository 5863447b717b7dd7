"""A real ``walletgate serve`` process for end-to-end tests, in front of the devnet.

The setup goes through the same commands an operator uses (``policies apply``,
``agents token issue``), against a private database cloned from the migrated template
and the session's Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.servers import scratch_database

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = ROOT / "examples" / "policies.yaml"
_TOKEN_RE = re.compile(r"\bwg_[A-Za-z0-9_\-]{20,}")


def free_port() -> int:
    """A port the kernel picked as free (no scan race between parallel sessions)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def walletgate_cli(
    args: list[str], env: Mapping[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the ``walletgate`` command as an operator would, in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "walletgate.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"walletgate {' '.join(args)} exited {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def issue_token(agent: str, env: Mapping[str, str]) -> str:
    """Issue a token for ``agent`` with the CLI and return the secret it printed."""
    out = walletgate_cli(["agents", "token", "issue", agent], env).stdout
    match = _TOKEN_RE.search(out)
    assert match, f"no token in the output of 'agents token issue': {out!r}"
    return match.group(0)


@dataclass
class GatewayProcess:
    """A running gateway and what the tests need to talk to it."""

    url: str
    env: dict[str, str]
    tokens: dict[str, str]
    database_url: str
    redis_url: str
    process: subprocess.Popen[bytes]
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def post(
        self, body: Any, *, token: str | None = None, path: str = "/"
    ) -> tuple[int, Any]:
        """POST a JSON-RPC body (object or batch) as the trader (or with ``token``)."""
        headers = {"Authorization": f"Bearer {token or self.tokens['trader']}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url.rstrip("/") + path, json=body, headers=headers) as response,
        ):
            return response.status, await response.json(content_type=None)

    async def rpc(
        self, method: str, params: list[Any], *, token: str | None = None
    ) -> dict[str, Any]:
        _status, body = await self.post(
            {"jsonrpc": "2.0", "id": secrets.randbelow(10**9), "method": method, "params": params},
            token=token,
        )
        assert isinstance(body, dict), body
        return body

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until ``url``/healthz answers 200 (fails if the process exits or 60 s pass)."""
    deadline = asyncio.get_running_loop().time() + 60.0
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"walletgate serve exited with {process.returncode}")
            try:
                async with session.get(url + "healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("walletgate serve did not become healthy")
            await asyncio.sleep(0.2)


def start_gateway(
    env: Mapping[str, str],
    port: int,
    *,
    log: IO[bytes] | None = None,
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start ``walletgate serve`` on ``port`` with ``env`` and extra ``args``; its stdout
    and stderr go to ``log`` when given (to inspect what it logs), else stderr is
    inherited."""
    return subprocess.Popen(
        [sys.executable, "-m", "walletgate.cli", "serve", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else None,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    stop_processes(process)


def stop_processes(*processes: subprocess.Popen[bytes]) -> None:
    """Stop every process as :func:`stop_process` does, all told at the same moment: a
    fleet stops as one, not one gateway after another while the rest go on working."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.asynccontextmanager
async def running_gateway(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    policies: Path = EXAMPLE_POLICIES,
) -> AsyncIterator[GatewayProcess]:
    """walletgate serving ``policies`` in front of the devnet, in a subprocess, on a
    private database cloned from the migrated template and a flushed Redis."""
    async with (
        scratch_database(postgres_server_url, "wg_e2e", migrated_template) as database_url,
        _serving(database_url, redis_server_url, devnet, policies) as process,
    ):
        yield process


@contextlib.asynccontextmanager
async def _serving(
    database_url: str, redis_server_url: str, devnet: Devnet, policies: Path
) -> AsyncIterator[GatewayProcess]:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    env = {
        "WALLETGATE_DATABASE_URL": database_url,
        "WALLETGATE_REDIS_URL": redis_server_url,
        "WALLETGATE_BACKEND_URL": devnet.url,
        "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
        "WALLETGATE_ACTOR": "e2e-tests",
    }
    walletgate_cli(["policies", "apply", str(policies)], env)
    tokens = {agent: issue_token(agent, env) for agent in ("trader", "payroll")}
    port = free_port()
    process = start_gateway(env, port)
    url = f"http://127.0.0.1:{port}/"
    try:
        await wait_healthy(url, process)
        yield GatewayProcess(url, env, tokens, database_url, redis_server_url, process)
    finally:
        stop_process(process)


@pytest_asyncio.fixture(scope="module")
async def gateway(
    postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[GatewayProcess]:
    """walletgate serving the example policies in front of the devnet, in a subprocess."""
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet
    ) as process:
        yield process
