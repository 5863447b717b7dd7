"""The console's changes (POST, CSRF-checked by the routes): decide approvals, freeze
and unfreeze (after a confirmation page), plan and apply policies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from walletgate.admin.call import AdminContext
from walletgate.console.web import BASE, ConsoleError, Page, admin, render, see_other
from walletgate.service.freezes import set_owner_frozen
from walletgate.storage.console_sessions import ConsoleSession
from walletgate.storage.freezes import FreezeError

_DECISIONS = {"approve": "approveApproval", "reject": "rejectApproval", "cancel": "cancelApproval"}


async def decide(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Approve, reject or cancel an approval, if it is still as the person saw it.

    The form carries the status the row had on the page: when it moved since (another
    owner decided, or it expired), the action is refused with 409 instead of acting on a
    row the person did not see. The service refuses a decided row as well (it locks the
    row and checks its state), so two owners racing still decide once.
    """
    form = await request.post()
    action = request.match_info["action"]
    if action not in _DECISIONS:
        raise ConsoleError(404, f"no approval action {action!r}")
    try:
        approval_id = UUID(request.match_info["approval_id"])
    except ValueError:
        raise ConsoleError(404, "not an approval id") from None
    current = await admin(request, ctx, session, "getApproval", {"approval_id": approval_id})
    seen = str(form.get("seen_status", ""))
    if current["status"] != seen:
        raise ConsoleError(
            409,
            f"approval {approval_id} is {current['status']} now (the page showed {seen or '?'}):"
            " reload the inbox",
        )
    body: dict[str, Any] = {"reason": str(form.get("reason", "")).strip()}
    signature = str(form.get("signature", "")).strip()
    if action == "approve" and signature:
        body["signature"] = signature
        try:
            body["signature_expiry"] = int(str(form.get("signature_expiry", "")))
        except ValueError:
            raise ConsoleError(400, "the signature's expiry is missing") from None
    await admin(request, ctx, session, _DECISIONS[action], {"approval_id": approval_id}, body=body)
    return see_other(f"{BASE}/approvals")


def _target(form: Any) -> tuple[str, str | None]:
    scope = str(form.get("scope", ""))
    if scope not in ("all", "agent", "wallet", "owner"):
        raise ConsoleError(400, f"unknown freeze scope {scope!r}")
    target = str(form.get(f"{scope}_target", form.get("target", ""))).strip() or None
    return scope, None if scope == "all" else target


async def confirm_freeze(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """The confirmation step: what will be frozen or unfrozen, and one button to do it."""
    form = await request.post()
    scope, target = _target(form)
    verb = "unfreeze" if form.get("verb") == "unfreeze" else "freeze"
    reason = str(form.get("reason", "")).strip()
    if verb == "freeze" and not reason:
        raise ConsoleError(400, "say why you freeze it: the reason is recorded")
    context = {"scope": scope, "target": target, "verb": verb, "reason": reason}
    return render("confirm.html", {**context, "page": "freezes"}, session=session)


async def _switch_owner(session: ConsoleSession, ctx: AdminContext, owner: str, form: Any) -> None:
    """An owner's kill switch: each of its agents and wallets, in one transaction."""
    if session.key.owner_id is not None and owner != session.key.owner_id:
        raise ConsoleError(403, f"this key may only freeze owner {session.key.owner_id}")
    verb = form.get("verb")
    try:
        await set_owner_frozen(
            ctx.stores,
            owner,
            frozen=verb != "unfreeze",
            reason=str(form.get("reason", "")).strip() or ("console" if verb == "unfreeze" else ""),
            actor=session.key.actor,
            cache_ttl=ctx.settings.policy_cache_ttl,
        )
    except FreezeError as exc:
        raise ConsoleError(404 if "no owner" in str(exc) else 400, str(exc)) from None


async def do_freeze(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Freeze or unfreeze, once confirmed. An owner's switch freezes each of its agents
    and wallets at once (:func:`walletgate.service.freezes.set_owner_frozen`)."""
    form = await request.post()
    if form.get("confirmed") != "yes":
        raise ConsoleError(400, "confirm first")
    scope, target = _target(form)
    verb = "unfreeze" if form.get("verb") == "unfreeze" else "freeze"
    reason = str(form.get("reason", "")).strip()
    if scope == "owner":
        if target is None:
            raise ConsoleError(400, "scope owner needs the owner id")
        await _switch_owner(session, ctx, target, form)
        return see_other(f"{BASE}/freezes")
    body: dict[str, Any] = {"scope": scope, "reason": reason or "console"}
    if target is not None:
        body["target"] = target
    await admin(request, ctx, session, verb, body=body)
    return see_other(f"{BASE}/freezes")


async def plan(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """The plan (the diff) of a pasted or uploaded document, with a button to apply it."""
    form = await request.post()
    upload = form.get("upload")
    text = str(form.get("document", ""))
    if isinstance(upload, web.FileField) and upload.filename:
        text = upload.file.read().decode("utf-8", errors="replace")
    result = await admin(request, ctx, session, "planPolicies", body=text.encode())
    context = {"plan": result, "text": text, "page": "policies"}
    return render("plan.html", context, session=session)


async def apply(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Apply the planned document."""
    form = await request.post()
    result = await admin(
        request, ctx, session, "applyPolicies", body=str(form.get("document", "")).encode()
    )
    return render("applied.html", {"result": result, "page": "policies"}, session=session)


ACTIONS: dict[str, Page] = {
    "/approvals/{approval_id}/{action}": decide,
    "/freezes/confirm": confirm_freeze,
    "/freezes/do": do_freeze,
    "/policies/plan": plan,
    "/policies/apply": apply,
}
