"""A wallet backend that records every request it gets, for proving what was forwarded.

It runs an aiohttp server on loopback in a thread of its own, with its own event loop,
so that synchronous tests (hypothesis) and asynchronous ones can both talk to a gateway
that talks to it. Requests are passed on to an upstream JSON-RPC server (the devnet)
and its answer is returned unchanged, unless the path asks for a misbehaving backend:

- ``/bounce/...``: answers ``302 Found`` pointing at ``redirect_to`` (a second recorder
  that must never be reached), except for ``eth_chainId``, which walletgate checks at
  start-up and in ``/readyz``;
- ``/broken/...``: answers ``500`` with an HTML page (no JSON), except for
  ``eth_chainId``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.gateway import free_port


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the backend received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def calls(self) -> list[dict[str, Any]]:
        """The JSON-RPC request objects in the body (one, or every element of a batch)."""
        try:
            document = json.loads(self.body)
        except ValueError:
            return []
        items = document if isinstance(document, list) else [document]
        return [item for item in items if isinstance(item, dict)]

    def rpc_methods(self) -> list[str]:
        return [str(call.get("method")) for call in self.calls()]


class RecordingBackend:
    """An HTTP backend on ``url`` that records requests (see the module docstring)."""

    def __init__(self, upstream: str | None = None, redirect_to: str | None = None) -> None:
        self.upstream = upstream
        self.redirect_to = redirect_to
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- what the tests read ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position to pass to :meth:`since`."""
        with self._lock:
            return len(self._requests)

    def since(self, mark: int) -> list[RecordedRequest]:
        """The requests received after :meth:`mark` returned ``mark``."""
        with self._lock:
            return list(self._requests[mark:])

    def forwarded_calls(self, mark: int = 0) -> list[dict[str, Any]]:
        """Every JSON-RPC call received after ``mark``, batches flattened."""
        return [call for request in self.since(mark) for call in request.calls()]

    # -- the server ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = RecordedRequest(
            request.method, request.path, request.query_string, dict(request.headers), body
        )
        with self._lock:
            self._requests.append(recorded)
        only_chain_id = recorded.rpc_methods() == ["eth_chainId"]
        if request.path.startswith("/bounce") and not only_chain_id:
            return web.Response(status=302, headers={"Location": self.redirect_to or "/"})
        if request.path.startswith("/broken") and not only_chain_id:
            return web.Response(
                status=500, text="<html>upstream exploded</html>", content_type="text/html"
            )
        if self.upstream is None:
            return web.json_response({"jsonrpc": "2.0", "id": None, "result": "0x539"})
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            return web.Response(
                status=response.status,
                body=await response.read(),
                content_type="application/json",
            )

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _run(self, coro: Any) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=30)

    def start(self) -> None:
        self._thread.start()
        self._run(self._start())

    def stop(self) -> None:
        try:
            self._run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


@contextmanager
def recording_backend(
    upstream: str | None = None, redirect_to: str | None = None
) -> Iterator[RecordingBackend]:
    """A started :class:`RecordingBackend`, stopped when the block exits."""
    backend = RecordingBackend(upstream, redirect_to)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
