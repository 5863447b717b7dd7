"""The console's routes under ``/console/`` on the admin application.

GET pages need a session (else the sign-in page); every POST but the sign-in also needs
the session's CSRF token (else 403). Admin API refusals are shown as pages with the
admin API's status.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aiohttp import web

from walletgate.admin.call import AdminContext
from walletgate.console import actions, pages, signin, wallet_signin
from walletgate.console.web import (
    BASE,
    ConsoleError,
    Page,
    RequestHandler,
    check_csrf,
    current_session,
    error_page,
)

ContextKey = web.AppKey[AdminContext]


def _page(key: ContextKey, fn: Page) -> RequestHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.app[key]
        session = await current_session(request, ctx)
        if session is None:
            raise web.HTTPSeeOther(f"{BASE}/signin")
        try:
            return await fn(request, ctx, session)
        except ConsoleError as exc:
            return error_page(exc, session)

    return handler


def _action(key: ContextKey, fn: Page) -> RequestHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.app[key]
        session = await current_session(request, ctx)
        if session is None:
            return error_page(ConsoleError(403, "sign in first: there is no session"), None)
        try:
            check_csrf(session, await request.post())
            return await fn(request, ctx, session)
        except ConsoleError as exc:
            return error_page(exc, session)

    return handler


def add_console(app: web.Application, key: ContextKey) -> None:
    """Route the console's pages on the admin ``app`` (its context under ``key``)."""
    static = Path(str(files("walletgate.console") / "static"))
    router = app.router
    router.add_get(BASE, _redirect)
    router.add_get(f"{BASE}/", _redirect)
    router.add_static(f"{BASE}/static", static)
    router.add_get(f"{BASE}/signin", signin.form_handler(key))
    router.add_post(f"{BASE}/signin", signin.submit_handler(key))
    router.add_post(f"{BASE}/signin/challenge", wallet_signin.challenge_handler(key))
    router.add_post(f"{BASE}/signin/wallet", wallet_signin.wallet_handler(key))
    router.add_post(f"{BASE}/signout", _action(key, signin.sign_out))
    for path, fn in pages.PAGES.items():
        router.add_get(f"{BASE}{path}", _page(key, fn))
    for path, fn in actions.ACTIONS.items():
        router.add_post(f"{BASE}{path}", _action(key, fn))


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(f"{BASE}/approvals")
