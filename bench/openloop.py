"""Open-loop load at a fixed rate, in its own process; prints one JSON summary line.

``python -m bench.openloop --url URL --body-file F --rate 1000 --duration 10``

Requests start on a fixed schedule (``rate`` per second) whether or not earlier ones
have been answered, as real independent agents would send them; a closed-loop client
would wait and hide the queueing a slow server causes (coordinated omission). Latency
is measured from the moment the schedule fired to the last byte of the answer, so time
spent waiting for a connection to a saturated server counts. How late the generator
itself fired (its own scheduling lag) is reported separately, so a reader can see it
was not the bottleneck; so is the rate actually achieved.

``--closed N`` instead runs N concurrent loops as fast as they go: that is how the bench
measures this generator's own ceiling against the stub backend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import uvloop

from bench.stats import latency_summary

#: Requests in flight beyond this are not started (counted as ``dropped``): an
#: overloaded target must not make the generator itself run out of memory or sockets.
MAX_OUTSTANDING = 4096


@dataclass
class Outcome:
    """What a load run measured (latencies in milliseconds)."""

    mode: str
    offered_rate: float
    duration: float
    completed: int = 0
    errors: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The JSON-able result: counts, achieved rate and percentiles (no raw samples)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_ms", "lags_ms")}
        out["achieved_rate"] = self.completed / self.duration if self.duration else 0.0
        out["latency_ms"] = latency_summary(self.latencies_ms)
        out["generator_lag_ms"] = latency_summary(self.lags_ms)
        return out


class Target:
    """One URL, one body, one set of headers, over a pooled keep-alive session."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> None:
        self._session = session
        self._url = url
        self._body = body
        self._headers = headers

    async def send(self) -> bool:
        """One request; True when it was answered with HTTP 200."""
        try:
            async with self._session.post(
                self._url, data=self._body, headers=self._headers
            ) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, OSError):
            return False


async def open_loop(target: Target, rate: float, duration: float) -> Outcome:
    """Start ``rate`` requests per second for ``duration`` seconds on a fixed schedule."""
    outcome = Outcome("open", rate, duration)
    # uvloop's loop.time() ticks in whole milliseconds: measure with perf_counter.
    clock = time.perf_counter
    pending: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        ok = await target.send()
        if ok:
            outcome.completed += 1
            outcome.latencies_ms.append((clock() - scheduled) * 1000.0)
        else:
            outcome.errors += 1

    total = int(rate * duration)
    start = clock() + 0.01
    for i in range(total):
        scheduled = start + i / rate
        wait = scheduled - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        outcome.lags_ms.append(max(0.0, clock() - scheduled) * 1000.0)
        if len(pending) >= MAX_OUTSTANDING:
            outcome.dropped += 1
            continue
        task = asyncio.create_task(one(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    # Stragglers are waited for (bounded): their latency is the point of the exercise.
    if pending:
        await asyncio.wait(pending, timeout=30.0)
    outcome.duration = max(duration, clock() - start)
    return outcome


async def closed_loop(target: Target, concurrency: int, duration: float) -> Outcome:
    """``concurrency`` loops, each sending its next request when the last is answered."""
    outcome = Outcome("closed", 0.0, duration)
    clock = time.perf_counter
    deadline = clock() + duration

    async def worker() -> None:
        while clock() < deadline:
            started = clock()
            if await target.send():
                outcome.completed += 1
                outcome.latencies_ms.append((clock() - started) * 1000.0)
            else:
                outcome.errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcome


async def run(args: argparse.Namespace, body: bytes) -> Outcome:
    headers = {"Content-Type": "application/json"}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        target = Target(session, args.url, body, headers)
        if args.warmup > 0:
            await closed_loop(target, min(8, args.connections), args.warmup)
        if args.closed:
            return await closed_loop(target, args.closed, args.duration)
        return await open_loop(target, args.rate, args.duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of closed loop first")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--closed", type=int, default=0, metavar="N", help="N closed loops")
    args = parser.parse_args(argv)
    if not args.closed and args.rate <= 0:
        parser.error("--rate must be positive")
    outcome = uvloop.run(run(args, Path(args.body_file).read_bytes()))
    json.dump(outcome.summary(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
