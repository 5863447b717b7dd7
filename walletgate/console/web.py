"""The console's plumbing: templates, sessions and CSRF, and calls into the admin API.

Every read and change goes through the admin API's own operation handlers, in process,
as the signed-in key: the console can do exactly what that key can over HTTP, with the
same owner scoping and the same errors. Sessions live in PostgreSQL
(:mod:`walletgate.storage.console_sessions`), so every gateway worker serves them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import jinja2
import orjson
from aiohttp import web

from walletgate.admin.auth import Caller
from walletgate.admin.call import AdminContext, Call, Handler
from walletgate.storage.console_sessions import ConsoleSession, find_session, open_session

SESSION_COOKIE = "wg_console"
PRE_COOKIE = "wg_console_pre"  # the sign-in form's double-submit token
BASE = "/console"

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("walletgate.console", "templates"),
    autoescape=True,
    # Optional fields an older row lacks render empty rather than failing the page.
    undefined=jinja2.Undefined,
)

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleError(Exception):
    """An admin API refusal, to be shown to the person with its status."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def render(
    name: str, context: dict[str, Any], *, status: int = 200, session: ConsoleSession | None = None
) -> web.Response:
    """The template ``name`` as an HTML answer, with the page chrome's values."""
    values = {"base": BASE, "session": session, "csrf": session.csrf_token if session else ""}
    values.update(context)
    body = _templates.get_template(name).render(values)
    return web.Response(status=status, text=body, content_type="text/html", headers=_HEADERS)


def see_other(path: str) -> web.Response:
    """A 303 to ``path`` (after a form: the browser GETs it)."""
    return web.Response(status=303, headers={"Location": path, **_HEADERS})


def error_page(exc: ConsoleError, session: ConsoleSession | None) -> web.Response:
    """The error page of an admin API refusal, with its status."""
    return render("error.html", {"error": exc}, status=exc.status, session=session)


async def current_session(request: web.Request, ctx: AdminContext) -> ConsoleSession | None:
    """The request's live session, or ``None``."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    return await find_session(ctx.stores.pool, secret) if secret else None


def set_session_cookie(response: web.Response, ctx: AdminContext, secret: str) -> None:
    """Give the browser its session: httpOnly, SameSite=Strict, Secure when configured."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=ctx.settings.console_session_minutes * 60,
        path=BASE,
        httponly=True,
        samesite="Strict",
        secure=ctx.settings.console_secure_cookies,
    )


async def sign_in(ctx: AdminContext, caller: Caller) -> str:
    """A new session for ``caller``'s key; the cookie value."""
    lifetime = timedelta(minutes=ctx.settings.console_session_minutes)
    return await open_session(ctx.stores.pool, caller.key, lifetime)


def check_csrf(session: ConsoleSession, form: Any) -> None:
    """Refuse (403) a change whose form does not carry the session's CSRF token."""
    sent = str(form.get("csrf_token", "")) if form is not None else ""
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise ConsoleError(403, "the form's CSRF token is missing or wrong: reload the page")


def _handlers() -> dict[str, Handler]:
    # Imported here: the admin app imports the console's routes.
    from walletgate.admin import (
        handlers_activity,
        handlers_approvals,
        handlers_directory,
        handlers_policies,
    )

    found: dict[str, Handler] = {}
    for module in (handlers_directory, handlers_policies, handlers_activity, handlers_approvals):
        found.update(module.HANDLERS)
    return found


async def admin(
    request: web.Request,
    ctx: AdminContext,
    session: ConsoleSession,
    operation: str,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """Run admin operation ``operation`` as the session's key; its JSON answer, or a
    :class:`ConsoleError` with the admin API's status and detail."""
    from walletgate.admin.app import problems_middleware

    handler = _handlers()[operation]
    call = Call(ctx, Caller(session.key), dict(params or {}), body)

    async def run(_: web.Request) -> web.StreamResponse:
        return await handler(call)

    response = await problems_middleware(request, run)
    assert isinstance(response, web.Response) and response.body is not None
    data = orjson.loads(bytes(response.body))  # type: ignore[arg-type]
    if response.status >= 400:
        raise ConsoleError(response.status, str(data.get("detail")), data.get("errors"))
    return data


#: An aiohttp request handler.
RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

Page = Callable[[web.Request, AdminContext, ConsoleSession], Awaitable[web.StreamResponse]]
