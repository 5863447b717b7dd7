"""Open-loop load at a fixed rate, in its own process; prints one JSON summary line.

``python -m bench.openloop --url URL --body-file F --rate 1000 --duration 10``

Requests start on a fixed schedule (``rate`` per second) whether or not earlier ones
have been answered, as independent agents would send them; a closed-loop client waits
for each answer and so hides the queueing a slow server causes (coordinated omission).
When no keep-alive connection is free, a new one is opened (up to ``--connections``)
and the request waits in a backlog meanwhile: that wait counts in its latency, which
runs from the moment the schedule fired to the end of the answer. How late the
generator itself fired is reported separately (``generator_lag_ms``), as is the CPU it
used per request, so a reader can check that it was not the bottleneck.

The machine has two cores and the generator shares them with the target, so it must
be cheap: it uses no task or future per request, only asyncio protocol callbacks, and
parses answers with httptools (llhttp, the parser of Node.js). ``--closed N`` runs N
connections back to back instead: the generator's own ceiling against the stub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

from bench.stats import latency_summary

#: Scheduled requests waiting for a connection beyond this are dropped (and counted):
#: an overloaded target must not make the generator itself run out of memory.
MAX_BACKLOG = 100_000
INITIAL_CONNECTIONS = 16
TICK = 0.001


@dataclass
class Tally:
    """What a run measured (latencies in milliseconds)."""

    completed: int = 0
    errors: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)


def build_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 POST of ``body`` to ``url``."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.started: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._pool.ready(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def send(self, started: float) -> None:
        assert self._transport is not None
        self.started = started
        self._transport.write(self._pool.request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    # httptools callback
    def on_message_complete(self) -> None:
        started, self.started = self.started, None
        ok = self._parser.get_status_code() == 200
        self._pool.answered(self, started, ok)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.lost(self)


class Pool:
    """Keep-alive connections to one target, and what their answers measured."""

    def __init__(self, host: str, port: int, request: bytes, limit: int, closed: bool) -> None:
        self.request = request
        self.tally = Tally()
        self._host = host
        self._port = port
        self._limit = limit
        self._closed_loop = closed
        self._deadline = float("inf")
        self._connections: set[_Connection] = set()
        self._idle: deque[_Connection] = deque()
        self._backlog: deque[float] = deque()
        self._open = 0
        self._drained = asyncio.Event()
        self._connecting: set[asyncio.Future[None]] = set()

    async def open(self, count: int) -> None:
        """Open ``count`` connections now (before the clock starts)."""
        await asyncio.gather(*(self._connect() for _ in range(count)))

    async def _connect(self) -> None:
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _Connection(self), self._host, self._port)
        except OSError:
            self._open -= 1
            while self._backlog and self._open == 0:
                self._backlog.popleft()
                self.tally.errors += 1

    def submit(self, fired: float) -> None:
        """Send a request now, or as soon as a connection is free."""
        if self._idle:
            self._idle.popleft().send(fired)
            return
        if len(self._backlog) >= MAX_BACKLOG:
            self.tally.dropped += 1
            return
        self._backlog.append(fired)
        if self._open < self._limit:
            self._spawn_connect()

    def _spawn_connect(self) -> None:
        task = asyncio.ensure_future(self._connect())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def ready(self, connection: _Connection) -> None:
        self._connections.add(connection)
        self._next(connection)

    def answered(self, connection: _Connection, started: float | None, ok: bool) -> None:
        if started is not None:
            if ok:
                self.tally.completed += 1
                self.tally.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            else:
                self.tally.errors += 1
        self._next(connection)

    def lost(self, connection: _Connection) -> None:
        self._open -= 1
        self._connections.discard(connection)
        if connection.started is not None:
            self.tally.errors += 1
        if connection in self._idle:
            self._idle.remove(connection)
        if self._backlog and self._open < self._limit:
            self._spawn_connect()

    def _next(self, connection: _Connection) -> None:
        if self._closed_loop and time.perf_counter() < self._deadline:
            connection.send(time.perf_counter())
        elif self._backlog:
            connection.send(self._backlog.popleft())
        else:
            self._idle.append(connection)
            if self.in_flight == 0:
                self._drained.set()

    @property
    def in_flight(self) -> int:
        return self._open - len(self._idle) + len(self._backlog)

    async def drain(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for every answer still due."""
        if self.in_flight:
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), seconds)
            except TimeoutError:
                self.tally.errors += self.in_flight

    def close(self) -> None:
        """Close every connection."""
        for connection in list(self._connections):
            connection.close()

    def start_closed(self, seconds: float) -> None:
        """Closed loop: every connection sends back to back until ``seconds`` pass."""
        self._deadline = time.perf_counter() + seconds
        while self._idle:
            self._idle.popleft().send(time.perf_counter())


async def open_loop(pool: Pool, rate: float, seconds: float) -> None:
    """Fire ``rate`` requests per second for ``seconds`` on a fixed schedule."""
    clock = time.perf_counter
    total = int(rate * seconds)
    start = clock() + 0.01
    sent = 0
    while sent < total:
        now = clock()
        due = start + sent / rate
        if due > now:
            # The loop's timers tick in whole milliseconds: shorter sleeps would spin.
            # Requests due within one tick go out together, each timed from then on.
            await asyncio.sleep(max(due - now, TICK))
            continue
        while sent < total and start + sent / rate <= now:
            pool.tally.lags_ms.append((now - (start + sent / rate)) * 1000.0)
            pool.submit(now)
            sent += 1
    await pool.drain(30.0)


async def run(args: argparse.Namespace, body: bytes) -> tuple[Tally, float, float]:
    """Run as configured; returns the tally, the seconds measured and the CPU seconds
    this process used meanwhile."""
    headers = {"Content-Type": "application/json"}
    for header in args.header:
        name, _, value = header.partition(":")
        if value.strip():
            headers[name.strip()] = value.strip()
    target = urlsplit(args.url)
    request = build_request(args.url, body, headers)
    if args.warmup > 0:
        warm = Pool(target.hostname or "127.0.0.1", target.port or 80, request, 8, True)
        await warm.open(8)
        warm.start_closed(args.warmup)
        await asyncio.sleep(args.warmup)
        await warm.drain(5.0)
        warm.close()
    closed = args.closed > 0
    host, port = target.hostname or "127.0.0.1", target.port or 80
    pool = Pool(host, port, request, args.connections, closed)
    await pool.open(args.closed if closed else min(INITIAL_CONNECTIONS, args.connections))
    started, cpu = time.perf_counter(), time.process_time()
    if closed:
        pool.start_closed(args.duration)
        await asyncio.sleep(args.duration)
        await pool.drain(30.0)
    else:
        await open_loop(pool, args.rate, args.duration)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    pool.close()
    return pool.tally, seconds, cpu


def summary(
    tally: Tally, args: argparse.Namespace, seconds: float, cpu: float
) -> dict[str, object]:
    """The JSON-able result: counts, rates, percentiles, the generator's own cost."""
    return {
        "mode": "closed" if args.closed else "open",
        "offered_rate": 0.0 if args.closed else args.rate,
        "duration": seconds,
        "completed": tally.completed,
        "errors": tally.errors,
        "dropped": tally.dropped,
        "achieved_rate": tally.completed / seconds if seconds else 0.0,
        "latency_ms": latency_summary(tally.latencies_ms),
        "generator_lag_ms": latency_summary(tally.lags_ms),
        "generator_cpu_us_per_request": cpu / max(1, tally.completed) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of closed loop first")
    parser.add_argument("--connections", type=int, default=512, help="at most this many")
    parser.add_argument("--closed", type=int, default=0, metavar="N", help="N closed loops")
    args = parser.parse_args(argv)
    if not args.closed and args.rate <= 0:
        parser.error("--rate must be positive")
    body = Path(args.body_file).read_bytes()
    tally, seconds, cpu = uvloop.run(run(args, body))
    json.dump(summary(tally, args, seconds, cpu), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
