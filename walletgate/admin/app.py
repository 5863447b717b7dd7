"""The admin API's aiohttp application: routes made from the OpenAPI document.

Each operation of ``openapi.yaml`` is routed to the handler of the same operationId
(``HANDLERS``). Before a handler runs, the caller is authenticated (:mod:`.auth`) and
the parameters and body are checked against the document (:mod:`.spec`). Every error
leaves as a problem document (:mod:`.problems`): input and scope errors as 4xx, stores
that cannot answer as 503, and only a bug as 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web

from walletgate.admin import (
    handlers_activity,
    handlers_approvals,
    handlers_directory,
    handlers_policies,
)
from walletgate.admin.auth import authenticate
from walletgate.admin.call import AdminContext, Call, Handler
from walletgate.admin.problems import Problem, problem_response
from walletgate.admin.spec import Operation, document_json, operations, read_body, read_params
from walletgate.config.document_errors import DocumentInvalid
from walletgate.config.settings import Settings
from walletgate.console.routes import add_console
from walletgate.errors import UserError
from walletgate.service.approval_signatures import SignatureRefused
from walletgate.service.approvals import ApprovalConflict, ApprovalNotFound
from walletgate.service.settlement import SettlementError
from walletgate.storage.cache import CacheUnavailable, StateCache
from walletgate.storage.counters import CountersUnavailable
from walletgate.storage.policy_write import ApplyError
from walletgate.storage.runtime import Stores
from walletgate.storage.tokens import (
    AmbiguousToken,
    TokenAlreadyRevoked,
    UnknownAgent,
    UnknownToken,
)

_log = logging.getLogger("walletgate.admin")


CONTEXT_KEY = web.AppKey("admin_context", AdminContext)


def _handlers() -> dict[str, Handler]:
    found: dict[str, Handler] = {}
    for module in (handlers_directory, handlers_policies, handlers_activity, handlers_approvals):
        found.update(module.HANDLERS)
    return found


# Service errors by what they mean over HTTP; the first class that matches decides.
_STATUSES: tuple[tuple[type[UserError], int], ...] = (
    (UnknownAgent, 404),
    (UnknownToken, 404),
    (AmbiguousToken, 409),
    (TokenAlreadyRevoked, 409),
    (ApplyError, 409),
    (SettlementError, 409),
    (ApprovalNotFound, 404),
    (ApprovalConflict, 409),
    # A missing, wrong, expired or replayed owner signature: not authorized.
    (SignatureRefused, 403),
)


def _status_of(exc: UserError) -> int:
    """The status of a service error: from the table above, else its ``http_status``
    attribute (a service module may declare one), else 400."""
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status
    status = getattr(exc, "http_status", 400)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


def _endpoint(op: Operation, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CONTEXT_KEY]
        caller = await authenticate(request, ctx.stores)
        params = read_params(op, request)
        body = await read_body(op, request)
        return await handler(Call(ctx, caller, params, body))

    endpoint.__name__ = op.operation_id
    return endpoint


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=document_json(), content_type="application/json")


_UNAVAILABLE = (
    CacheUnavailable,
    CountersUnavailable,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


@web.middleware
async def problems_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every error into a problem document."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except DocumentInvalid as exc:
        errors = [
            {"path": e.path, "message": e.message, "line": e.line, "column": e.column}
            for e in exc.errors
        ]
        count = len(errors)
        detail = f"the policy document has {count} error{'s' if count != 1 else ''}"
        return problem_response(Problem(422, detail, errors=errors))
    except UserError as exc:
        return problem_response(Problem(_status_of(exc), str(exc)))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(Problem(exc.status, exc.reason, headers=_allow(exc)))
    except _UNAVAILABLE as exc:
        _log.warning("admin %s %s: stores unavailable: %s", request.method, request.path, exc)
        return problem_response(Problem(503, f"a store cannot answer now: {exc}"))
    except Exception:
        _log.exception("admin %s %s failed", request.method, request.path)
        return problem_response(Problem(500, "internal error (logged)"))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


async def _close_state(app: web.Application) -> None:
    await app[CONTEXT_KEY].state.aclose()


def build_admin_app(stores: Stores, settings: Settings) -> web.Application:
    """The admin application on connected ``stores``."""
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[problems_middleware]
    )
    app[CONTEXT_KEY] = AdminContext(
        stores, settings, StateCache(stores.redis, stores.pool, settings)
    )
    app.on_cleanup.append(_close_state)
    add_console(app, CONTEXT_KEY)
    handlers = _handlers()
    for op in operations():
        if op.public:
            app.router.add_get(op.path, _openapi)
            continue
        app.router.add_route(op.method.upper(), op.path, _endpoint(op, handlers[op.operation_id]))
    return app
