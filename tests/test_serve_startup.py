"""A cold ``walletgate serve --workers 3`` under a burst of spends: no ``unavailable``.

Each run starts the three workers from nothing and, as soon as they all listen, sends
200 spends at once. Every worker opened its Redis pool before it listened, and a new
connection has its own connect timeout (``redis_connect_timeout``) instead of the
0.5 s command timeout, so with Redis healthy no spend is refused as unavailable; and
the cap still holds (a small ETH cap: what was allowed is exactly what reached the chain).

``WALLETGATE_STARTUP_BURST_RUNS`` sets the number of runs (default 4).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest_asyncio

from tests.support.devnet import Devnet
from tests.support.gateway import free_port, issue_token, walletgate_cli
from tests.support.servers import scratch_database
from tests.support.spender_fleet import document, fresh_recipient, transfer

RUNS = int(os.environ.get("WALLETGATE_STARTUP_BURST_RUNS", "4"))
BURST = 200
CAP_WEI = 10**15
# At most five fit (fewer with network fees): the rest are judged and refused, so the
# burst exercises Redis on every spend without mining hundreds of transactions.
SPEND_WEI = CAP_WEI // 5
WAIT = 120.0  # upper bound for a process to start or stop; never asserted as a duration


@pytest_asyncio.fixture
async def burst_env(
    postgres_server_url: str, migrated_template: str, redis_url: str, devnet: Devnet
) -> AsyncIterator[dict[str, str]]:
    async with scratch_database(postgres_server_url, "wg_burst", migrated_template) as url:
        env = {
            "WALLETGATE_DATABASE_URL": url,
            "WALLETGATE_REDIS_URL": redis_url,
            "WALLETGATE_BACKEND_URL": devnet.url,
            "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
            "WALLETGATE_ACTOR": "burst-tests",
            "WALLETGATE_ACCESS_LOG": "false",
        }
        doc = Path(os.environ.get("TMPDIR", "/tmp")) / f"burst-{secrets.token_hex(4)}.yaml"
        doc.write_text(document(devnet.chain_id, "burst", CAP_WEI))
        try:
            await asyncio.to_thread(walletgate_cli, ["policies", "apply", str(doc)], env)
        finally:
            doc.unlink()
        env["TOKEN"] = await asyncio.to_thread(issue_token, "spender", env)
        yield env


def _start(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "walletgate.cli", "serve", "--workers", "3"]
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [*command, "--port", str(port)],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


async def _cold_start(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = _start(env, log, port)
    deadline = asyncio.get_running_loop().time() + WAIT
    while b"with 3 workers" not in await asyncio.to_thread(log.read_bytes):
        assert process.poll() is None, await asyncio.to_thread(log.read_text)
        assert asyncio.get_running_loop().time() < deadline, "the workers did not listen"
        await asyncio.sleep(0.05)
    return process, f"http://127.0.0.1:{port}/"


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(WAIT)
    except subprocess.TimeoutExpired:
        children = psutil.Process(process.pid).children(recursive=True)
        for pid in [process.pid, *(c.pid for c in children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(WAIT)


async def _spend(session: aiohttp.ClientSession, url: str, token: str, recipient: str) -> str:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction"}
    body["params"] = transfer(recipient, SPEND_WEI)
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        reply = await r.json(content_type=None)
    if "result" in reply:
        return "allowed"
    return str(reply["error"].get("data", {}).get("reason", reply["error"]))


async def test_a_cold_three_worker_gateway_answers_a_burst_without_unavailable(
    burst_env: dict[str, str], tmp_path: Path, devnet: Devnet
) -> None:
    recipient = fresh_recipient()
    totals: collections.Counter[str] = collections.Counter()
    for run in range(RUNS):
        process, url = await _cold_start(burst_env, tmp_path / f"serve-{run}.log")
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                outcomes = await asyncio.gather(
                    *(_spend(session, url, burst_env["TOKEN"], recipient) for _ in range(BURST))
                )
        finally:
            await asyncio.to_thread(_stop, process)
        seen = collections.Counter(outcomes)
        assert "unavailable" not in seen, (run, seen)
        assert set(seen) <= {"allowed", "cumulative_cap_exceeded"}, (run, seen)
        totals += seen
    assert totals["allowed"] >= 1
    assert sum(totals.values()) == RUNS * BURST
    assert await devnet.balance(recipient) == totals["allowed"] * SPEND_WEI
