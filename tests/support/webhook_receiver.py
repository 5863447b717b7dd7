"""A webhook receiver for tests: a real aiohttp server on loopback that records what it
gets, verifies signatures, and answers as told (200, 500, or hangs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from walletgate.notify.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    event_id: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """What arrived. ``fail_first`` answers that many requests 500; ``hang`` makes it
    hold requests open (until the sender gives up or dies)."""

    url: str
    secret: bytes
    fail_first: int = 0
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered_ids(self) -> set[str]:
        """Event ids answered 2xx (deduplicated, as a receiver must)."""
        return {r.event_id for r in self.received if 200 <= r.status < 300}

    def events(self, type_: str) -> list[dict[str, Any]]:
        """Distinct delivered events of one type."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.received:
            if r.status == 200 and r.body["type"] == type_:
                seen[r.event_id] = r.body
        return list(seen.values())

    async def wait_for(self, ids: set[str], within: float = 30.0) -> None:
        """Wait until every event id in ``ids`` was delivered (fails after ``within`` seconds)."""
        deadline = time.monotonic() + within
        while not ids <= self.delivered_ids():
            if time.monotonic() > deadline:
                missing = ids - self.delivered_ids()
                raise AssertionError(f"{len(missing)} events never arrived: {sorted(missing)}")
            await asyncio.sleep(0.1)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # The signature must verify, or the test fails on this request.
        verify(self.secret, request.headers[SIGNATURE_HEADER], raw, now=int(time.time()))
        body = json.loads(raw)
        assert request.headers[EVENT_ID_HEADER] == body["id"]
        self.arrived.set()
        if self.hang:
            self.received.append(Received(body["id"], body, raw, dict(request.headers), 0))
            await asyncio.sleep(3600)
        status = 500 if self.fail_first > 0 else 200
        self.fail_first -= 1
        self.received.append(Received(body["id"], body, raw, dict(request.headers), status))
        return web.Response(status=status, text="ok" if status == 200 else "boom")


@contextlib.asynccontextmanager
async def webhook_receiver(secret: bytes) -> AsyncIterator[Receiver]:
    """A receiver listening on a free loopback port until the block ends."""
    app = web.Application()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    receiver = Receiver("", secret)
    app.router.add_post("/hook", receiver._handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
