"""Signing in to the console with an admin key, and out.

The sign-in form is protected by a double-submit token (a cookie and a hidden field
that must match); the session that follows carries its own CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from aiohttp import web

from walletgate.admin.auth import Caller
from walletgate.admin.call import AdminContext
from walletgate.console.web import (
    BASE,
    PRE_COOKIE,
    SESSION_COOKIE,
    RequestHandler,
    render,
    see_other,
    set_session_cookie,
    sign_in,
)
from walletgate.storage.admin_keys import authenticate_admin_key
from walletgate.storage.console_sessions import ConsoleSession, close_session


def _form(token: str, message: str = "", status: int = 200) -> web.Response:
    response = render("signin.html", {"pre_token": token, "message": message}, status=status)
    response.set_cookie(PRE_COOKIE, token, path=BASE, httponly=True, samesite="Strict")
    return response


def fresh_form(message: str = "", status: int = 200) -> web.Response:
    """The sign-in page with a new double-submit token (and ``message``, if any)."""
    return _form(secrets.token_urlsafe(24), message, status)


def pre_token_ok(request: web.Request, form: Any) -> bool:
    """Whether a sign-in form carries the double-submit token of its cookie."""
    cookie = request.cookies.get(PRE_COOKIE, "")
    sent = str(form.get("pre_token", ""))
    return bool(cookie) and hmac.compare_digest(cookie, sent)


def form_handler(key: web.AppKey[AdminContext]) -> RequestHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _form(secrets.token_urlsafe(24))

    return handler


def submit_handler(key: web.AppKey[AdminContext]) -> RequestHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.app[key]
        form = await request.post()
        if not pre_token_ok(request, form):
            return fresh_form("The form expired: try again.", 403)
        record = await authenticate_admin_key(ctx.stores.pool, str(form.get("admin_key", "")))
        if record is None:
            return _form(secrets.token_urlsafe(24), "Unknown or revoked admin key.", 401)
        secret = await sign_in(ctx, Caller(record))
        response = see_other(f"{BASE}/approvals")
        set_session_cookie(response, ctx, secret)
        response.del_cookie(PRE_COOKIE, path=BASE)
        return response

    return handler


async def sign_out(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """End the session and forget its cookie."""
    await close_session(ctx.stores.pool, request.cookies.get(SESSION_COOKIE, ""))
    response = see_other(f"{BASE}/signin")
    response.del_cookie(SESSION_COOKIE, path=BASE)
    return response
