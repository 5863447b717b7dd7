"""Signing in to the console with the owner's approver address (EIP-4361, "SIWE").

Where an owner registered an approver address (``walletgate approvals approver``), the
person holding that key may sign in without an admin key: the server issues a one-time
EIP-4361 message (this host, the address, a random nonce kept server-side, issued-at and
expiration), the page signs it (``personal_sign`` with a browser wallet, or the person
pastes a signature made elsewhere), and the server recovers the signer with eth-account.
The session opened acts for that owner only, as an owner-scoped key would. The nonce is
used once whatever the outcome; an expired one, another signer, or an address that is no
longer the owner's approver is refused.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import to_checksum_address

from walletgate.admin.call import AdminContext
from walletgate.console.signin import fresh_form, pre_token_ok
from walletgate.console.web import (
    BASE,
    PRE_COOKIE,
    RequestHandler,
    render,
    see_other,
    set_session_cookie,
)
from walletgate.service.approvals import get_approver
from walletgate.storage.console_sessions import (
    open_owner_session,
    save_challenge,
    take_challenge,
)

#: How long a challenge may wait for its signature.
CHALLENGE_LIFETIME = timedelta(minutes=5)
_MAX_OWNER_ID = 200


def siwe_message(
    *, domain: str, uri: str, address: str, owner: str, nonce: str, issued: datetime
) -> str:
    """The EIP-4361 message the approver signs to sign in for ``owner``."""
    expires = issued + CHALLENGE_LIFETIME

    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{to_checksum_address(address)}\n\n"
        f"Sign in to the walletgate owner console for owner {owner}.\n\n"
        f"URI: {uri}\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {stamp(issued)}\n"
        f"Expiration Time: {stamp(expires)}"
    )


def recovered_signer(message: str, signature: str) -> str | None:
    """The address (lowercase) whose ``personal_sign`` of ``message`` is ``signature``,
    or ``None`` when the signature is malformed."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        return None
    if len(raw) != 65:
        return None
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=raw)
    except (BadSignature, ValidationError, ValueError, TypeError):
        return None
    return str(signer).lower()


def challenge_handler(key: web.AppKey[AdminContext]) -> RequestHandler:
    """POST /console/signin/challenge: a message to sign for the owner's approver."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.app[key]
        form = await request.post()
        if not pre_token_ok(request, form):
            return fresh_form("The form expired: try again.", 403)
        owner = str(form.get("owner", "")).strip()[:_MAX_OWNER_ID]
        approver = await get_approver(ctx.stores, owner) if owner else None
        if approver is None:
            return fresh_form(f"Owner {owner!r} has no approver address to sign in with.", 401)
        nonce = secrets.token_hex(16)
        message = siwe_message(
            domain=request.host,
            uri=f"{request.scheme}://{request.host}{BASE}",
            address=approver,
            owner=owner,
            nonce=nonce,
            issued=datetime.now(UTC),
        )
        await save_challenge(ctx.stores.pool, nonce, owner, approver, message, CHALLENGE_LIFETIME)
        context = {
            "pre_token": str(form.get("pre_token")),
            "message": message,
            "nonce": nonce,
            "owner": owner,
            "address": to_checksum_address(approver),
        }
        return render("signin_wallet.html", context)

    return handler


def wallet_handler(key: web.AppKey[AdminContext]) -> RequestHandler:
    """POST /console/signin/wallet: check the signature and open the owner's session."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.app[key]
        form = await request.post()
        if not pre_token_ok(request, form):
            return fresh_form("The form expired: try again.", 403)
        challenge = await take_challenge(ctx.stores.pool, str(form.get("nonce", ""))[:64])
        if challenge is None:
            return fresh_form("That sign-in message was used already or is unknown.", 401)
        if not challenge.fresh:
            return fresh_form("That sign-in message expired: get a new one.", 401)
        signer = recovered_signer(challenge.message, str(form.get("signature", "")).strip())
        current = await get_approver(ctx.stores, challenge.owner_id)
        if signer is None or signer != challenge.address or current != challenge.address:
            return fresh_form(
                f"The signature is not by owner {challenge.owner_id}'s approver address.", 401
            )
        lifetime = timedelta(minutes=ctx.settings.console_session_minutes)
        secret = await open_owner_session(
            ctx.stores.pool, challenge.owner_id, challenge.address, lifetime
        )
        response = see_other(f"{BASE}/approvals")
        set_session_cookie(response, ctx, secret)
        response.del_cookie(PRE_COOKIE, path=BASE)
        return response

    return handler
