"""Gateways for the state lease and rate block tests: real ``walletgate serve`` processes
that a test may pause (SIGSTOP), resume, kill and restart, and a client for them.

Every request the client sends comes from a loopback address of its own (127.1.x.y):
a gateway throttles an address after 20 bad tokens a minute, and these tests send
revoked tokens on purpose, many times. Replies are reduced to an :class:`Outcome`:
answered, or refused with a reason (``rate_limited``, ``unavailable``,
``destination_denied``...), or refused as unauthorized (HTTP 401).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from tests.support.gateway import start_gateway, stop_process, wait_healthy, walletgate_cli
from walletgate.storage.tokens import issue_token

#: Requests to a paused gateway wait in its listen queue; nothing waits longer than this.
REQUEST_TIMEOUT = 30.0
_SOURCE_NUMBERS = itertools.count()
_LEASE_VALID = re.compile(r"^walletgate_state_lease_valid(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.M)


def _next_source() -> str:
    """The next of 64,516 loopback addresses (after the last, the first again: the
    throttle has long forgotten it by then)."""
    number = next(_SOURCE_NUMBERS) % (256 * 254)
    return f"127.1.{number // 254}.{number % 254 + 1}"


@dataclass(frozen=True)
class Outcome:
    """What a gateway did with one call: HTTP status and the JSON-RPC reply's gist."""

    status: int
    answered: bool
    reason: str | None  # error.data.reason, or the error code as text when it has none
    code: int | None
    reply: Any = field(repr=False, compare=False)

    @property
    def unauthorized(self) -> bool:
        return self.status == 401

    @property
    def kind(self) -> str:
        """``answered``, ``unauthorized`` or the refusal's reason."""
        if self.answered:
            return "answered"
        if self.unauthorized:
            return "unauthorized"
        return self.reason or "?"


def outcome_of(status: int, reply: Any) -> Outcome:
    """The :class:`Outcome` of one call's reply (a single JSON-RPC response object)."""
    if not isinstance(reply, dict):
        return Outcome(status, False, f"unexpected reply {reply!r}", None, reply)
    if "result" in reply:
        return Outcome(status, True, None, None, reply)
    error = reply.get("error") or {}
    data = error.get("data")
    reason = data.get("reason") if isinstance(data, dict) else None
    code = error.get("code")
    return Outcome(status, False, reason or str(code), code, reply)


def read_call(method: str = "eth_chainId", params: list[Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": secrets.randbelow(10**9),
        "method": method,
        "params": params or [],
    }


async def post(
    url: str,
    body: Any,
    token: str,
    *,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, Any]:
    """POST ``body`` with ``token``: on ``session`` if given, else on a connection of its
    own from a fresh loopback address."""
    headers = {"Authorization": f"Bearer {token}"}
    if session is not None:
        async with session.post(url, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)
    connector = aiohttp.TCPConnector(local_addr=(_next_source(), 0), force_close=True)
    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        ) as own,
        own.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def call(
    url: str,
    token: str,
    method: str,
    params: list[Any] | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
) -> Outcome:
    """One JSON-RPC call through the gateway at ``url``."""
    status, reply = await post(url, read_call(method, params), token, session=session)
    return outcome_of(status, reply)


async def batch(
    url: str, token: str, size: int, *, session: aiohttp.ClientSession | None = None
) -> list[Outcome]:
    """A batch of ``size`` reads (``eth_chainId``) in one request."""
    status, replies = await post(url, [read_call() for _ in range(size)], token, session=session)
    if not isinstance(replies, list):  # refused as a whole (401, 503...)
        return [outcome_of(status, replies)] * size
    return [outcome_of(status, reply) for reply in replies]


@dataclass
class Gateways:
    """Gateway processes on ``urls`` sharing ``env`` (one database, one Redis)."""

    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    env: dict[str, str]
    database_url: str
    paused: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.urls)

    def running(self) -> list[int]:
        """Gateways that are neither paused nor dead."""
        return [
            i
            for i, process in enumerate(self.processes)
            if i not in self.paused and process.poll() is None
        ]

    def pause(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGSTOP)
        self.paused.add(index)

    def resume(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGCONT)
        self.paused.discard(index)

    def resume_all(self) -> None:
        for index in list(self.paused):
            self.resume(index)

    def kill(self, index: int) -> None:
        self.resume(index)  # a paused one could not even die
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait()

    async def restart(self, index: int) -> None:
        """Start gateway ``index`` again on its port (after it was killed)."""
        stop_process(self.processes[index])
        port = int(self.urls[index].rstrip("/").rpartition(":")[2])
        self.processes[index] = start_gateway(self.env, port)
        await wait_healthy(self.urls[index], self.processes[index])

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A ``walletgate`` command as an operator runs it, against the same stores."""
        return walletgate_cli(list(args), self.env, check=check)

    async def cli_async(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """:meth:`cli` in a thread, so that this event loop keeps serving meanwhile."""
        return await asyncio.to_thread(self.cli, *args, check=check)

    async def issue(self, agent: str) -> tuple[str, str]:
        """A new token for ``agent``: (its id, its secret)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            issued = await issue_token(conn, agent, actor="lease-tests")
        finally:
            await conn.close()
        return str(issued.token_id), issued.token

    async def lease_valid(self, index: int) -> float | None:
        """The gateway's ``walletgate_state_lease_valid`` gauge (``None``: not exported)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as s,
            s.get(self.urls[index] + "metrics") as response,
        ):
            text = await response.text()
        found = _LEASE_VALID.search(text)
        return None if found is None else float(found.group(1))


def kinds(outcomes: Iterable[Outcome]) -> list[str]:
    return [o.kind for o in outcomes]
