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

Only for a single Redis server: a cluster client splits pipelines by node itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

#: Commands per pipeline; more wait for the next one (sent concurrently).
MAX_BATCH = 256


class AutoPipeline:
    """Sends the commands of one event-loop turn as one pipeline."""

    def __init__(self, redis: aioredis.Redis, *, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        #: Pipelines sent so far (how much batching happened; for tests and metrics).
        self.batches_sent = 0

    async def execute(self, *command: Any) -> Any:
        """Run one command (``"EVALSHA", sha, numkeys, *keys, *args``, …) and return its
        answer; raises what redis-py would raise for it alone."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self._max_batch):
            task = asyncio.ensure_future(self._send(queue[start : start + self._max_batch]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self.batches_sent += 1
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # every caller must hear of it, whatever it is
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue  # the caller gave up waiting (cancelled)
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
