"""The HTTP surface: routes, agent authentication, body limits, JSON-RPC batches.

Routes:
- ``POST /`` and ``POST /rpc/{backend}``: JSON-RPC with ``Authorization: Bearer TOKEN``;
- ``POST /t/{token}`` and ``POST /t/{token}/rpc/{backend}``: the token in the path, for
  agent toolkits that accept only an RPC URL;
- ``GET /healthz`` (the process is up), ``GET /readyz`` (PostgreSQL, Redis and every
  backend answer), ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import HttpVersion11, web

from walletgate.intents import MethodClass
from walletgate.proxy import errors
from walletgate.proxy.answers import internal_error
from walletgate.proxy.backend import BackendClient
from walletgate.proxy.evm.methods import classify
from walletgate.proxy.gateway import Caller, Gateway, StateMoved
from walletgate.proxy.jsonrpc import Item, parse_body
from walletgate.proxy.passthrough import encode
from walletgate.proxy.pipeline import CallHandler
from walletgate.storage.cache import Snapshot, StateCache
from walletgate.storage.redis_client import REDIS_ERRORS
from walletgate.storage.redis_guard import CacheUnavailable
from walletgate.storage.tokens import TokenInfo

#: A client that presents this many bad tokens within the window is refused for a while,
#: so tokens cannot be guessed at speed.
AUTH_FAILURE_LIMIT = 20
AUTH_FAILURE_WINDOW = 60.0


@dataclass
class AuthThrottle:
    """Per-client count of recent authentication failures (in-process)."""

    failures: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        recent = self.failures.get(client)
        if not recent:
            return None
        while recent and now - recent[0] > AUTH_FAILURE_WINDOW:
            recent.popleft()
        if len(recent) >= AUTH_FAILURE_LIMIT:
            return AUTH_FAILURE_WINDOW - (now - recent[0])
        return None

    def failed(self, client: str, now: float) -> None:
        if len(self.failures) > 100_000:
            self.failures.clear()  # bounded memory under a flood of distinct clients
        self.failures.setdefault(client, deque()).append(now)


@dataclass
class AppState:
    gateway: Gateway
    state: StateCache
    backends: dict[str, BackendClient]
    pool: asyncpg.Pool
    throttle: AuthThrottle = field(default_factory=AuthThrottle)


_log = logging.getLogger(__name__)

STATE_KEY = web.AppKey("walletgate", AppState)
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)
READ_TIMEOUT_KEY = web.AppKey("request_read_timeout", float)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        # ids may be Decimal: they are echoed with their exact digits. A backend's answer
        # that already answers the agent's call goes out as its own bytes.
        body=encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _token_from(request: web.Request) -> str | None:
    path_token = request.match_info.get("token")
    if path_token:
        return path_token
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def handle_rpc(request: web.Request) -> web.Response:
    """Authenticate, parse and decide every call of one JSON-RPC HTTP request."""
    app_state = request.app[STATE_KEY]
    metrics = app_state.gateway.metrics
    started = time.perf_counter()
    try:
        return await _handle_rpc(request, app_state)
    finally:
        metrics.http_latency.labels(route="rpc").observe(time.perf_counter() - started)


async def _handle_rpc(request: web.Request, app_state: AppState) -> web.Response:
    metrics = app_state.gateway.metrics
    backend_name = request.match_info.get("backend", "default")
    backend = app_state.backends.get(backend_name)
    if backend is None:
        return _json(
            errors.error_object(None, errors.INVALID_REQUEST, f"unknown backend {backend_name!r}"),
            status=404,
        )
    if request.version < HttpVersion11 and "Transfer-Encoding" in request.headers:
        # RFC 9112 §6.1: such framing is faulty. aiohttp reads it as chunked; a proxy in
        # front may not, and the two would then disagree on where requests end.
        response = _json(
            errors.error_object(
                None, errors.INVALID_REQUEST, "Transfer-Encoding is not allowed in HTTP/1.0"
            ),
            status=400,
        )
        response.force_close()
        return response
    client = request.remote or "unknown"
    now = time.monotonic()
    wait = app_state.throttle.blocked(client, now)
    if wait is not None:
        metrics.auth_failures.labels(kind="throttled").inc()
        return _json(
            errors.error_object(None, errors.UNAUTHORIZED, "too many bad tokens; try again later"),
            status=429,
            headers={"Retry-After": str(max(1, int(wait)))},
        )
    token = _token_from(request)
    if token is None:
        metrics.auth_failures.labels(kind="missing").inc()
        return _json(
            errors.error_object(
                None,
                errors.UNAUTHORIZED,
                "missing agent token: send 'Authorization: Bearer TOKEN' or use /t/TOKEN/",
            ),
            status=401,
        )
    handler = await _handler(app_state, backend, token, client, now, from_memory=True)
    if isinstance(handler, web.Response):
        return handler
    read_timeout = request.app[READ_TIMEOUT_KEY]
    try:
        if request.content.is_eof():
            body = await request.read()  # already received: nothing to wait for
        else:
            # aiohttp has no body timeout of its own: without one, an authenticated
            # client that sends its body slowly holds the connection and this task forever.
            async with asyncio.timeout(read_timeout):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(
            errors.error_object(
                None,
                errors.INVALID_REQUEST,
                f"request body too large: the limit is {request.app[MAX_BODY_KEY]} bytes",
            ),
            status=413,
        )
    except TimeoutError:
        response = _json(
            errors.error_object(
                None,
                errors.INVALID_REQUEST,
                f"request body not received within {read_timeout:g} seconds; nothing was forwarded",
            ),
            status=408,
        )
        response.force_close()
        return response
    try:
        return await _answer(body, handler)
    except StateMoved:
        app_state.state.distrust()
    # A policy, token or freeze changed since this process last looked: nothing was
    # counted or forwarded yet. Authenticate and decide again on the new state.
    handler = await _handler(app_state, backend, token, client, now, from_memory=False)
    if isinstance(handler, web.Response):
        return handler
    return await _answer(body, handler)


async def _handler(
    app_state: AppState,
    backend: BackendClient,
    token: str,
    client: str,
    now: float,
    *,
    from_memory: bool,
) -> CallHandler | web.Response:
    """The handler of ``token``'s calls, or the response refusing them. With
    ``from_memory``, a caller this process already holds is taken from memory: on the
    state lease's word while it holds (no trip), else proven current in the handler's
    first Redis trip (or StateMoved is raised). Spends always prove it."""
    held = app_state.state.held(token) if from_memory else None
    if held is not None:
        (snapshot, info), reads_only, unproven = held, False, held[0].version
    else:
        authenticated = await _authenticate(app_state, token)
        if isinstance(authenticated, web.Response):
            return authenticated
        (snapshot, found, reads_only), unproven = authenticated, None
        if found is None:
            return _unauthorized(app_state, client, now)
        info = found
    caller = Caller(agent_id=info.agent_id, owner_id=info.owner_id, token_id=str(info.token_id))
    return CallHandler(
        app_state.gateway,
        backend,
        caller,
        snapshot.policies,
        reads_only=reads_only,
        unproven_version=unproven,
        lease=app_state.state.lease,
    )


def _unauthorized(app_state: AppState, client: str, now: float) -> web.Response:
    app_state.throttle.failed(client, now)
    app_state.gateway.metrics.auth_failures.labels(kind="invalid").inc()
    return _json(
        errors.error_object(None, errors.UNAUTHORIZED, "unknown or revoked agent token"),
        status=401,
    )


async def _authenticate(
    app_state: AppState, token: str
) -> tuple[Snapshot, TokenInfo | None, bool] | web.Response:
    """The current state and ``token``'s agent under it (``None``: unknown or revoked),
    proven current with Redis; and whether only reads may be served (the state could
    not be proven, and reads fail open). A 503 response when nothing can be decided."""
    try:
        snapshot = await app_state.state.snapshot()
        return snapshot, await app_state.state.authenticate(token, at=snapshot), False
    except (CacheUnavailable, *REDIS_ERRORS, asyncpg.PostgresError) as exc:
        # The operator needs the cause; the agent gets only its kind (no internals).
        _log.warning("refusing a request: credentials/policies unavailable: %s", exc)
        # reads_fail_open: an agent this process already knows may still read, on the
        # state it last saw; its spends are refused (CallHandler reads_only).
        remembered = (
            app_state.state.remembered(token) if app_state.gateway.reads_fail_open else None
        )
        if remembered is None:
            return _json(
                errors.error_object(
                    None,
                    errors.RESOURCE_UNAVAILABLE,
                    "walletgate cannot check credentials or policies right now; "
                    "nothing was forwarded",
                    {"decision": "deny", "reason": "unavailable", "detail": type(exc).__name__},
                ),
                status=503,
            )
        return remembered[0], remembered[1], True


async def _answer(body: bytes, handler: CallHandler) -> web.Response:
    parsed = parse_body(body)
    if parsed.error is not None:
        return _json(parsed.error)
    responses: list[Any] = []
    # Batch elements are decided in order, each passing every check on its own, so
    # nonces reach the backend in the order the agent sent them. A run of consecutive
    # reads is one unit: counted together and forwarded in one backend request.
    for run in _runs(parsed.items):
        if len(run) > 1:
            calls = [item.call for item in run if item.call is not None]
            try:
                responses += await handler.handle_reads([(c.id, c.method, c.params) for c in calls])
            except StateMoved:
                raise
            except Exception:
                responses += [internal_error(c.id, c.method) for c in calls]
            continue
        item = run[0]
        if item.error is not None:
            responses.append(item.error)
            continue
        assert item.call is not None
        try:
            response = await handler.handle(item.call.id, item.call.method, item.call.params)
        except StateMoved:
            raise
        except Exception:
            response = internal_error(item.call.id, item.call.method)
        if not item.call.is_notification:
            responses.append(response)
    if not parsed.is_batch:
        return _json(responses[0]) if responses else web.Response(status=204)
    return _json(responses) if responses else web.Response(status=204)


def _runs(items: Sequence[Item]) -> Iterator[list[Item]]:
    """The items one by one, except that consecutive read calls that expect an answer
    (not notifications) come together as one run."""
    run: list[Item] = []
    for item in items:
        if _is_answered_read(item):
            run.append(item)
            continue
        if run:
            yield run
            run = []
        yield [item]
    if run:
        yield run


def _is_answered_read(item: Item) -> bool:
    call = item.call
    return (
        call is not None and not call.is_notification and classify(call.method) is MethodClass.READ
    )


async def handle_healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return _json({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL, Redis and every backend answer."""
    app_state = request.app[STATE_KEY]
    checks: dict[str, str] = {}

    async def check(name: str, probe: Any) -> None:
        try:
            await asyncio.wait_for(probe, 2.0)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failed: {type(exc).__name__}"

    await check("postgresql", app_state.pool.fetchval("SELECT 1"))
    await check("redis", app_state.gateway.redis.ping())
    for name, backend in app_state.backends.items():
        await check(f"backend:{name}", backend.call("eth_chainId", []))
    ready = all(value == "ok" for value in checks.values())
    return _json(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    app_state = request.app[STATE_KEY]
    app_state.gateway.metrics.audit_backlog.set(app_state.gateway.audit.backlog)
    app_state.gateway.metrics.state_lease_valid.set(1 if app_state.state.lease.valid else 0)
    return web.Response(
        body=app_state.gateway.metrics.render(), content_type="text/plain", charset="utf-8"
    )


def build_app(
    app_state: AppState, *, max_body_bytes: int, request_read_timeout: float = 15.0
) -> web.Application:
    """The aiohttp application of one gateway process.

    A request body larger than ``max_body_bytes`` is refused with 413, one that takes
    longer than ``request_read_timeout`` seconds to arrive with 408.
    """
    app = web.Application(client_max_size=max_body_bytes)
    app[STATE_KEY] = app_state
    app[MAX_BODY_KEY] = max_body_bytes
    app[READ_TIMEOUT_KEY] = request_read_timeout
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_post("/", handle_rpc)
    app.router.add_post("/rpc/{backend}", handle_rpc)
    app.router.add_post("/t/{token}", handle_rpc)
    app.router.add_post("/t/{token}/", handle_rpc)
    app.router.add_post("/t/{token}/rpc/{backend}", handle_rpc)
    return app
