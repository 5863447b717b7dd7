"""Commands issued by concurrent requests in one event-loop turn go to Redis together.

Under load, many requests reach their Redis step in the same turn of the event loop.
Sent one by one, each pays a pool checkout, a ``send`` system call and a wake-up of
its own, which is most of what a round trip costs walletgate (docs/benchmarks.md).
:class:`AutoPipeline` queues every command issued in one turn and sends the lot as one
non-transactional pipeline on one connection: one send, one read loop, the answers
handed back to each caller. A lone request is sent at the end of the same turn, so it
waits for nothing (the idea of ioredis' ``enableAutoPipelining``).

Each command keeps its own semantics: a pipeline is not a transaction, and a script in
it is as atomic as it is alone. An error answer (``NOSCRIPT``, a script error) is raised
to its own caller; a connection failure to every caller of the batch.

A command nobody waits for (:meth:`AutoPipeline.defer`: the DEL that settles a
committed reservation) rides the next pipeline that is sent anyway, or, when nothing
else is issued, a pipeline of its own after :data:`DEFER_LINGER` seconds. Its failure
is logged, never raised (it is only ever a clean-up with a TTL behind it), and
:meth:`AutoPipeline.drain` sends what is still waiting before the process stops.

Only for a single Redis server: a cluster client splits pipelines by node itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

_log = logging.getLogger(__name__)

#: Commands per pipeline; more wait for the next one (sent concurrently).
MAX_BATCH = 256
#: How long a deferred command waits for a pipeline to ride before it goes alone.
DEFER_LINGER = 0.1

# A queued command and the future of its caller (None: deferred, nobody waits).
_Queued = tuple[tuple[Any, ...], "asyncio.Future[Any] | None"]


class AutoPipeline:
    """Sends the commands of one event-loop turn as one pipeline."""

    def __init__(self, redis: aioredis.Redis, *, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[_Queued] = []
        self._flush_scheduled = False
        self._linger: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        #: Pipelines sent so far (how much batching happened; for tests and metrics).
        self.batches_sent = 0
        #: Deferred commands whose pipeline failed or that Redis refused (logged too).
        self.deferred_failures = 0

    async def execute(self, *command: Any) -> Any:
        """Run one command (``"EVALSHA", sha, numkeys, *keys, *args``, …) and return its
        answer; raises what redis-py would raise for it alone."""
        return await self.submit(*command)

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        """Queue one command now, in this turn's pipeline, and return the future of its
        answer (what :meth:`execute` awaits)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def defer(self, *command: Any) -> None:
        """Queue one command that nobody waits for: it goes with the next pipeline sent,
        or alone after :data:`DEFER_LINGER` seconds if no other command comes first."""
        self._queue.append((command, None))
        if not self._flush_scheduled and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(DEFER_LINGER, self._flush)

    async def drain(self) -> None:
        """Send every queued command now (deferred ones included) and wait until every
        pipeline under way has been answered."""
        if self._queue:
            self._flush()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self._max_batch):
            task = asyncio.ensure_future(self._send(queue[start : start + self._max_batch]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Queued]) -> None:
        self.batches_sent += 1
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # every caller must hear of it, whatever it is
            for command, future in batch:
                if future is None:
                    self._deferred_failed(command, exc)
                elif not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (command, future), answer in zip(batch, answers, strict=True):
            if future is None:
                if isinstance(answer, Exception):
                    self._deferred_failed(command, answer)
                continue
            if future.done():
                continue  # the caller gave up waiting (cancelled)
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def _deferred_failed(self, command: tuple[Any, ...], exc: BaseException) -> None:
        self.deferred_failures += 1
        shown = " ".join(str(part) for part in command[:4])
        _log.warning("deferred Redis command failed (%s): %s: %s", shown, type(exc).__name__, exc)
