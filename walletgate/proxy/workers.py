"""``walletgate serve --workers N``: N gateway processes accepting on one port.

Each worker is a whole gateway (its own connection pools, caches, audit writer and
metrics) that binds the same address with ``SO_REUSEPORT``, so the kernel spreads
incoming connections across them. Nothing a decision depends on lives in a worker:
counters and caches are shared through PostgreSQL and Redis, exactly as with several
gateways on several machines (docs/operations.md).

The parent only supervises. It resolves the stores once (in embedded mode it starts and
migrates the data directory's servers and keeps them up, so the workers do not race to),
starts the workers, waits until every one of them listens, and stops them all on SIGINT
or SIGTERM. If a worker dies, the parent stops the others and exits non-zero: a gateway
running with fewer workers than configured would fail silently, while a process
manager (systemd, Docker) restarts a gateway that exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from walletgate.config.settings import Settings, SettingsError
from walletgate.errors import UserError
from walletgate.storage.migrations import apply_migrations
from walletgate.storage.runtime import server_urls

_log = logging.getLogger("walletgate")

#: How long a worker may take to listen (a large policy set takes a while to compile).
START_TIMEOUT = 600.0
#: How long workers get to finish in-flight requests after SIGTERM before SIGKILL.
STOP_TIMEOUT = 30.0

_READY = "ready"


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    # The worker says "ready" on it once listening, and stops when it closes.
    channel: Connection


def _orphaned(channel: Connection) -> None:
    asyncio.get_running_loop().remove_reader(channel.fileno())
    _log.warning("the supervising process is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(settings: Settings, index: int, channel: Connection) -> None:
    """Entry point of a worker process: serve until told to stop or orphaned."""
    # Imported here: the parent needs none of the request path.
    import uvloop

    from walletgate.proxy.backend import BackendError
    from walletgate.proxy.log_redaction import configure_logging
    from walletgate.proxy.server import serve

    # The same redacting set-up as a single process: workers see tokens too.
    configure_logging(logging.INFO, process_label=f"[worker {index}]")

    async def run() -> None:
        # A worker must not outlive its supervisor (killed with SIGKILL, say): it would
        # keep the port and serve with nobody to stop it. The supervisor never writes to
        # the channel, so it turns readable only when the supervisor's end is closed.
        loop = asyncio.get_running_loop()
        loop.add_reader(channel.fileno(), _orphaned, channel)
        await serve(settings, on_ready=lambda: channel.send(_READY))

    try:
        # The event loop of a single-process gateway (walletgate.cli: serve runs on uvloop).
        uvloop.run(run())
    except BackendError as exc:
        print(f"walletgate: refusing to start: {exc}", file=sys.stderr)
        sys.exit(1)
    except SettingsError as exc:
        print(f"walletgate: {exc}", file=sys.stderr)
        sys.exit(2)
    except UserError as exc:
        print(f"walletgate: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _start(settings: Settings, count: int) -> list[_Worker]:
    # spawn, not fork: a worker must not inherit the parent's event loop or sockets.
    context = multiprocessing.get_context("spawn")
    workers = []
    for index in range(count):
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_worker_main,
            args=(settings, index, child_end),
            name=f"walletgate-worker-{index}",
            daemon=False,
        )
        process.start()
        child_end.close()
        workers.append(_Worker(index, process, parent_end))
    return workers


def _wait_until_listening(workers: Sequence[_Worker], timeout: float) -> str | None:
    """Block until every worker listens; the reason when one died or took too long."""
    waiting = {w.channel: w for w in workers}
    deadline = time.monotonic() + timeout
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"{len(waiting)} worker(s) did not start listening within {timeout:.0f}s"
        by_sentinel = {w.process.sentinel: w for w in waiting.values()}
        for ready in wait([*waiting, *by_sentinel], remaining):
            if isinstance(ready, int):
                return _died_starting(by_sentinel[ready])
            assert isinstance(ready, Connection)
            worker = waiting.pop(ready)
            try:
                message = ready.recv()
            except EOFError:
                return _died_starting(worker)
            if message != _READY:
                return f"worker {worker.index} sent {message!r} instead of {_READY!r}"
    return None


def _died_starting(worker: _Worker) -> str:
    worker.process.join(STOP_TIMEOUT)
    return f"worker {worker.index} exited with {worker.process.exitcode} while starting"


def _stop(workers: Sequence[_Worker]) -> None:
    """SIGTERM every live worker, wait for them, SIGKILL the ones that hang."""
    for worker in workers:
        if worker.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, signal.SIGTERM)
    for worker in workers:
        worker.process.join(STOP_TIMEOUT)
        if worker.process.is_alive():
            _log.warning("worker %d did not stop in %.0fs; killing it", worker.index, STOP_TIMEOUT)
            worker.process.kill()
            worker.process.join()
        worker.channel.close()


def _first_exit(workers: Sequence[_Worker]) -> _Worker:
    """Block until some worker exits; return it."""
    by_sentinel = {w.process.sentinel: w for w in workers}
    ready = wait(list(by_sentinel))
    sentinel = ready[0]
    assert isinstance(sentinel, int)
    return by_sentinel[sentinel]


async def serve_workers(settings: Settings, count: int) -> int:
    """Run ``count`` gateway processes on ``settings.host:settings.port`` until SIGINT or
    SIGTERM; returns the exit code (non-zero when a worker failed)."""
    if count < 1:
        raise SettingsError(f"--workers must be at least 1, not {count}")
    if not settings.all_backends():
        raise SettingsError(
            "no backend configured: set WALLETGATE_BACKEND_URL and WALLETGATE_CHAIN_ID, "
            "use --backend-url/--chain-id, or 'backends' in the config file"
        )
    async with server_urls(settings) as urls:
        if urls.embedded:
            await apply_migrations(urls.database_url, connect_timeout=settings.database_timeout)
        # The workers connect to these URLs; in embedded mode this process keeps the
        # servers up for them, as one more user of the data directory.
        worker_settings = replace(
            settings, database_url=urls.database_url, redis_url=urls.redis_url
        )
        return await _supervise(worker_settings, count)


async def _supervise(settings: Settings, count: int) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    workers = _start(settings, count)
    exited: asyncio.Future[_Worker] | None = None
    try:
        problem = await asyncio.to_thread(_wait_until_listening, workers, START_TIMEOUT)
        if problem is not None:
            print(f"walletgate: {problem}; stopping", file=sys.stderr)
            return 1
        print(
            f"walletgate listening on http://{settings.host}:{settings.port}/ "
            f"with {count} workers (pids {', '.join(str(w.process.pid) for w in workers)})",
            flush=True,
        )
        exited = asyncio.ensure_future(asyncio.to_thread(_first_exit, workers))
        stop_requested = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({exited, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if stop_requested in done:
            return 0
        dead = exited.result()
        print(
            f"walletgate: worker {dead.index} exited with {dead.process.exitcode}; "
            "stopping the others",
            file=sys.stderr,
        )
        return 1
    finally:
        await asyncio.to_thread(_stop, workers)
        if exited is not None:
            await exited  # returns now: every worker has exited
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
