"""Several real ``walletgate serve`` processes sharing one PostgreSQL and one Redis.

The setup is what an operator does: a fresh database cloned from the migrated
template, ``walletgate policies apply``, ``walletgate agents token issue``, then N
gateway processes started with the same URLs. :class:`StallingBackend` is a wallet
backend in front of the devnet whose answers the test can delay, refuse or cut off, to
produce slow, definite-failure and unknown outcomes with a real chain behind them.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import asyncpg
from aiohttp import web

from tests.support.gateway import (
    free_port,
    issue_token,
    start_gateway,
    stop_process,
    wait_healthy,
    walletgate_cli,
)
from tests.support.servers import scratch_database


@dataclass
class Fleet:
    """Gateway processes on ``urls``, one agent token, and the shared database."""

    urls: list[str]
    env: dict[str, str]
    database_url: str
    token: str
    processes: list[subprocess.Popen[bytes]] = field(repr=False)

    async def call(
        self, session: aiohttp.ClientSession, gateway: int, method: str, params: list[Any]
    ) -> dict[str, Any]:
        """One JSON-RPC call to gateway number ``gateway`` (modulo the fleet size)."""
        call_id = secrets.randbelow(10**9)
        body = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}
        async with session.post(
            self.urls[gateway % len(self.urls)],
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
            return reply

    async def rpc(self, gateway: int, method: str, params: list[Any]) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await self.call(session, gateway, method, params)

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def apply(self, document: str) -> None:
        """``walletgate policies apply`` of ``document`` (YAML text)."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(document)
        try:
            walletgate_cli(["policies", "apply", handle.name], self.env)
        finally:
            Path(handle.name).unlink()

    def cli(self, *args: str, check: bool = True) -> Any:
        """Run a ``walletgate`` command against the fleet's database and Redis."""
        return walletgate_cli(list(args), self.env, check=check)


@asynccontextmanager
async def running_fleet(
    *,
    postgres_server_url: str,
    migrated_template: str,
    redis_url: str,
    backend_url: str,
    chain_id: int,
    document: str,
    agent: str,
    count: int = 3,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """``count`` gateways on a fresh database and ``redis_url`` (flushed by the caller)."""
    async with (
        scratch_database(postgres_server_url, "wg_fleet", migrated_template) as database_url,
        _gateways(
            database_url, redis_url, backend_url, chain_id, document, agent, count, extra_env
        ) as fleet,
    ):
        yield fleet


@asynccontextmanager
async def _gateways(
    database_url: str,
    redis_url: str,
    backend_url: str,
    chain_id: int,
    document: str,
    agent: str,
    count: int,
    extra_env: Mapping[str, str] | None,
) -> AsyncIterator[Fleet]:
    env = {
        "WALLETGATE_DATABASE_URL": database_url,
        "WALLETGATE_REDIS_URL": redis_url,
        "WALLETGATE_BACKEND_URL": backend_url,
        "WALLETGATE_CHAIN_ID": str(chain_id),
        "WALLETGATE_ACTOR": "fleet-tests",
        **(extra_env or {}),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        fleet = Fleet([], env, database_url, "", processes)
        fleet.apply(document)
        fleet.token = issue_token(agent, env)
        ports = [free_port() for _ in range(count)]
        processes += [start_gateway(env, port) for port in ports]
        fleet.urls = [f"http://127.0.0.1:{port}/" for port in ports]
        pairs = zip(fleet.urls, processes, strict=True)
        await asyncio.gather(*(wait_healthy(url, process) for url, process in pairs))
        yield fleet
    finally:
        for process in processes:
            stop_process(process)


class UpstreamTestBackend:
    """A JSON-RPC backend on a free loopback port, in this event loop, that subclasses
    put in front of ``upstream`` (the devnet): they decide in ``_handle`` what to pass
    on, delay, refuse or cut."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()


class StallingBackend(UpstreamTestBackend):
    """A JSON-RPC backend in front of ``upstream`` (the devnet), in this event loop.

    For spending calls (``eth_send*``) the test sets what happens: ``delay`` seconds of
    waiting first, then ``mode``: ``"forward"`` (pass on, answer), ``"refuse"`` (answer
    a JSON-RPC error without passing on: a definite failure), ``"cut"`` (pass on, then
    drop the connection without answering: the outcome is unknown to walletgate,
    although the chain has the transaction) or ``"drop"`` (drop the connection without
    passing on: unknown to walletgate, and the chain never saw it). Other calls are
    always passed on.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.delay = 0.0
        self.mode = "forward"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        call = await request.json()
        spending = isinstance(call, dict) and str(call.get("method", "")).startswith("eth_send")
        if spending and self.delay:
            await asyncio.sleep(self.delay)
        if spending and self.mode == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if spending and self.mode == "refuse":
            error = {"code": -32000, "message": "insufficient funds for gas * price + value"}
            return web.json_response({"jsonrpc": "2.0", "id": call.get("id"), "error": error})
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            answer = await response.read()
        if spending and self.mode == "cut":
            assert request.transport is not None
            request.transport.abort()
        return web.Response(body=answer, content_type="application/json")
