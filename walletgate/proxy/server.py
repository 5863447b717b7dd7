"""``walletgate serve``: wire the stores, caches and backends into the HTTP app and run it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
from aiohttp import web
from aiohttp.log import access_logger
from redis.asyncio.cluster import RedisCluster

from walletgate.admin.server import start_admin
from walletgate.config.settings import Settings, SettingsError
from walletgate.limiter.quota import RequestQuota
from walletgate.notify.delivery import DeliveryConfig, WebhookWorker
from walletgate.proxy.app import AppState, build_app
from walletgate.proxy.backend import BackendClient, BackendError, new_session, redact_url
from walletgate.proxy.executor import ApprovalWorker
from walletgate.proxy.gateway import Gateway
from walletgate.proxy.heap import settle_heap
from walletgate.proxy.log_redaction import RedactingAccessLogger, configure_logging
from walletgate.proxy.metrics import new_metrics
from walletgate.storage.audit import AuditWriter
from walletgate.storage.cache import StateCache
from walletgate.storage.counters import Counters
from walletgate.storage.near_balances import NearBalances
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.redis_guard import CacheUnavailable
from walletgate.storage.runtime import Stores, open_stores

_log = logging.getLogger("walletgate")


@contextlib.asynccontextmanager
async def gateway_app(settings: Settings, stores: Stores) -> AsyncIterator[web.Application]:
    """Build the app on connected stores; checks every backend's chain id first."""
    backends_config = settings.all_backends()
    if not backends_config:
        raise SettingsError(
            "no backend configured: set WALLETGATE_BACKEND_URL and WALLETGATE_CHAIN_ID, "
            "use --backend-url/--chain-id, or 'backends' in the config file"
        )
    session = new_session(settings)
    audit = AuditWriter(stores.pool, max_batch=settings.audit_batch_max)
    webhooks = WebhookWorker(stores.pool, DeliveryConfig.from_settings(settings))
    approvals: ApprovalWorker | None = None
    counters: Counters | None = None
    state_tasks: list[asyncio.Task[None]] = []
    try:
        backends = {b.name: BackendClient(b, session) for b in backends_config}
        for client in backends.values():
            await client.check_chain_id()
        await audit.start()
        await webhooks.start()
        counters = Counters(stores.redis, PostgresClaimHistory(stores.pool))
        # Leased request-rate blocks need one server for all of an agent's counters.
        quota = (
            None if isinstance(stores.redis, RedisCluster) else RequestQuota(stores.redis, counters)
        )
        near = (
            NearBalances(settings.balance_near_cache_ms / 1000)
            if settings.balance_near_cache_ms > 0
            else None
        )
        gateway = Gateway(
            counters=counters,
            quota=quota,
            near=near,
            audit=audit,
            redis=stores.redis,
            metrics=new_metrics(),
            balance_ttl=settings.balance_cache_ttl,
            reads_fail_open=settings.reads_fail_open,
            pool=stores.pool,
        )
        state = StateCache(stores.redis, stores.pool, settings)
        state.near = near  # kept fresh by the drop announcements state.watch() hears
        renewals = gateway.metrics.state_lease_renewals
        state.on_renewal = lambda result: renewals.labels(result=result).inc()
        if quota is not None:
            # A new state may lower a limit: blocks leased under the old one are dropped.
            state.on_install.append(lambda _version: quota.clear())
        await _warm_state(state)
        # The state lease (reads trust memory while it holds) and the announcements
        # that let a change's wait end as soon as this process has the new state.
        state_tasks = [
            asyncio.create_task(state.keep_lease(), name="state lease"),
            asyncio.create_task(state.watch(), name="state announcements"),
        ]
        approvals = ApprovalWorker(
            stores.pool,
            gateway,
            backends,
            state,
            interval=settings.approval_poll_interval,
            lease_seconds=settings.approval_lease,
        )
        await approvals.start()
        app_state = AppState(gateway=gateway, state=state, backends=backends, pool=stores.pool)
        app = build_app(
            app_state,
            max_body_bytes=settings.max_body_bytes,
            request_read_timeout=settings.request_read_timeout,
        )
        # A process told to stop starts nothing more of its own (a delay released or an
        # approval decided while it drains its requests is left to the other gateways
        # or to its restart): on_shutdown runs before aiohttp waits for the requests.
        worker = approvals

        async def stop_own_forwards(_: web.Application) -> None:
            await worker.close()

        app.on_shutdown.append(stop_own_forwards)
        yield app
    finally:
        for task in state_tasks:
            task.cancel()
        await asyncio.gather(*state_tasks, return_exceptions=True)
        if approvals is not None:
            await approvals.close()
        await webhooks.close()
        if counters is not None:
            await counters.flush_deferred()  # settlements still riding the next pipeline
        await audit.close()
        await session.close()


async def _warm_state(state: StateCache) -> None:
    """Load and compile the policies before the port opens. Compiling is CPU work that
    blocks the event loop; done by the first requests of a burst, it held the Redis
    answers of the others past ``redis_timeout`` and refused them as unavailable. If
    the stores cannot answer now, the first request tries again (and fails closed)."""
    try:
        await state.snapshot()
    except CacheUnavailable as exc:
        _log.warning("could not load the policies before listening: %s", exc)


async def _warm_http(runner: web.AppRunner) -> None:
    """Answer one request on a private loopback port before the real one opens.

    A fresh process's first connection costs a few hundred milliseconds of one-time
    work in the HTTP stack; paid by the first request of a burst, it stalled the event
    loop while the Redis answers of the others waited, past ``redis_timeout``. The
    shared port cannot be used: with ``SO_REUSEPORT`` another worker may answer.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        site = web.SockSite(runner, sock)
        await site.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                await response.read()
        except aiohttp.ClientError as exc:  # only a warm-up: serving does not need it
            _log.warning("warm-up request failed: %s", exc)
        finally:
            await site.stop()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(
    settings: Settings,
    *,
    stores: Stores | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run one gateway process until SIGINT or SIGTERM (on ``stores`` if given);
    ``on_ready`` is called once it listens."""
    async with contextlib.AsyncExitStack() as stack:
        if stores is None:
            # warm: the Redis pool's first connections are open before the port is.
            stores = await stack.enter_async_context(open_stores(settings, warm=True))
        app = await stack.enter_async_context(gateway_app(settings, stores))
        runner = web.AppRunner(
            app,
            access_log_class=RedactingAccessLogger,
            access_log=access_logger if settings.access_log else None,
            handle_signals=False,
            # Also the time a new connection has to send its request headers: aiohttp
            # closes a connection still waiting for a whole request when it runs out.
            keepalive_timeout=settings.keepalive_timeout,
        )
        await runner.setup()
        await _warm_http(runner)
        settle_heap()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True)
        await site.start()
        for backend in settings.all_backends():
            _log.info(
                "backend %s: %s (chain %d)", backend.name, redact_url(backend.url), backend.chain_id
            )
        print(f"walletgate listening on http://{settings.host}:{settings.port}/", flush=True)
        admin = await start_admin(settings, stores)
        if admin is not None:
            stack.push_async_callback(admin.cleanup)
        if on_ready is not None:
            on_ready()
        try:
            await _wait_for_signal()
        finally:
            await runner.cleanup()


async def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler of ``walletgate serve``."""
    configure_logging(logging.INFO)
    settings = replace(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        backend_url=args.backend_url or settings.backend_url,
        chain_id=args.chain_id or settings.chain_id,
    )
    workers: int = args.workers
    if workers < 1:
        raise SettingsError(f"--workers must be at least 1, not {workers}")
    try:
        if args.demo:
            if workers != 1:
                raise SettingsError("--demo runs one gateway process; leave out --workers")
            from walletgate.proxy.demo import run_demo

            return await run_demo(settings, serve, devnet_port=args.devnet_port)
        if workers > 1:
            from walletgate.proxy.workers import serve_workers

            return await serve_workers(settings, workers)
        await serve(settings)
    except BackendError as exc:
        print(f"walletgate: refusing to start: {exc}", file=sys.stderr)
        return 1
    return 0
