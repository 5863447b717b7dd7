"""A wallet backend in front of the devnet that records what reaches it and misbehaves
on demand, call by call.

Every spending call (``eth_send*``) that arrives is recorded before anything else
happens, which is what "reached the backend" means in the fault tests: each recorded
call must have an audit row. The test's ``choose`` function picks a :class:`Fault` for
each spending call, so one run under load mixes outcomes; other calls are passed on.

It runs in the test's event loop (the gateways are subprocesses). A gateway that gives
up on a slow answer closes its connection; aiohttp lets the handler run on regardless,
so a hung call still reaches the chain afterwards, as it would with a real node.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from tests.support.fleet import UpstreamTestBackend


class Fault(StrEnum):
    """What the backend does with one spending call."""

    PASS = "pass"  # pass it on, answer
    SLOW = "slow"  # wait ``slow_seconds`` (less than the gateway's timeout), then PASS
    HANG = "hang"  # wait ``hang_seconds`` (past the gateway's timeout), then pass it on
    RESET = "reset"  # pass it on, then reset the connection: mined, answer lost
    DROP = "drop"  # reset the connection without passing it on: never mined


@dataclass(frozen=True)
class Received:
    """One spending call as it reached the backend."""

    call: dict[str, Any]
    fault: Fault
    at: float  # time.monotonic()

    @property
    def raw(self) -> str | None:
        """The raw transaction of an ``eth_sendRawTransaction``."""
        params = self.call.get("params")
        if self.call.get("method") == "eth_sendRawTransaction" and isinstance(params, list):
            return str(params[0]).lower() if params else None
        return None


def _always_pass(_call: dict[str, Any]) -> Fault:
    return Fault.PASS


def _reset(request: web.Request) -> None:
    """Close the client's connection with a TCP RST (linger 0), not a polite FIN."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class FaultyBackend(UpstreamTestBackend):
    """A JSON-RPC backend on ``url`` in front of ``upstream`` (see the module docstring)."""

    def __init__(
        self, upstream: str, *, slow_seconds: float = 0.2, hang_seconds: float = 2.0
    ) -> None:
        super().__init__(upstream)
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.choose: Callable[[dict[str, Any]], Fault] = _always_pass
        self.received: list[Received] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def spends_since(self, mark: int) -> list[Received]:
        """The spending calls received since ``len(self.received)`` was ``mark``."""
        return self.received[mark:]

    async def _pass_on(self, body: bytes) -> bytes:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            return await response.read()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            call = json.loads(body)
        except ValueError:
            call = None
        spending = isinstance(call, dict) and str(call.get("method", "")).startswith("eth_send")
        if not spending:
            return web.Response(body=await self._pass_on(body), content_type="application/json")
        assert isinstance(call, dict)
        fault = self.choose(call)
        self.received.append(Received(call, fault, time.monotonic()))
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._misbehave(request, body, fault)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _misbehave(self, request: web.Request, body: bytes, fault: Fault) -> web.Response:
        if fault is Fault.DROP:
            _reset(request)
            return web.Response()
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_seconds)
        if fault is Fault.HANG:
            await asyncio.sleep(self.hang_seconds)
        answer = await self._pass_on(body)
        if fault is Fault.RESET:
            _reset(request)
        return web.Response(body=answer, content_type="application/json")

    async def quiet(self) -> None:
        """Wait until every call that arrived has been passed on (or dropped): hung
        calls reach the chain after their gateway gave up on them."""
        await self._idle.wait()
