"""The console's pages (GET): approvals, spending, the audit log, freezes, policies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from walletgate.admin.call import AdminContext
from walletgate.console import present
from walletgate.console.chart import spend_charts
from walletgate.console.web import ConsoleError, Page, admin, render
from walletgate.storage.console_sessions import ConsoleSession

#: The days the spending page charts, today included.
CHART_DAYS = 14
#: How long an owner-signature approval's signature stays valid, from the page's load.
SIGNATURE_SECONDS = 600


async def _decoded(
    request: web.Request, ctx: AdminContext, session: ConsoleSession, item: dict[str, Any]
) -> dict[str, Any]:
    """An approval with what a person reads: amounts, USD, movement, policy and rule."""
    assets = (await ctx.policies()).assets
    native = next(
        (a for a in assets.values() if a.address is None and a.chain_id == item["chain_id"]),
        None,
    )
    tx = await admin(
        request, ctx, session, "getTransaction", {"transaction_id": item["transaction_id"]}
    )
    explanation = tx.get("explanation") or {}
    expires = datetime.fromisoformat(item["expires_at"]) if item.get("expires_at") else None
    release = datetime.fromisoformat(item["release_at"]) if item.get("release_at") else None
    now = datetime.now(UTC)
    return {
        **item,
        "amounts_shown": present.amounts(item.get("amounts"), assets),
        "usd": present.usd(item.get("usd_value")),
        "movement": present.movement(item.get("request"), native),
        "policy": explanation.get("policy"),
        "rule": explanation.get("rule"),
        "message": explanation.get("message"),
        "time_left": present.time_left(release if item["kind"] == "delay" else expires, now),
    }


async def approvals_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Pending holds and delays decoded, and the latest decided ones."""
    pending = await admin(request, ctx, session, "listApprovals", {"status": "pending"})
    recent = await admin(request, ctx, session, "listApprovals", {"limit": 20})
    rows = []
    for item in pending["items"]:
        full = await admin(request, ctx, session, "getApproval", {"approval_id": item["id"]})
        rows.append(await _decoded(request, ctx, session, full))
    decided = [i for i in recent["items"] if i["status"] != "pending"]
    return render(
        "approvals.html", {"rows": rows, "decided": decided, "page": "approvals"}, session=session
    )


async def approvals_state(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Each recent approval's status (id -> status): the inbox polls it to mark a row
    another owner decided, and to offer new ones."""
    items = (await admin(request, ctx, session, "listApprovals", {"limit": 200}))["items"]
    body = orjson.dumps({"statuses": {i["id"]: i["status"] for i in items}})
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def approval_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """One approval: decoded, its history, and the typed data an approver signs."""
    approval_id = request.match_info["approval_id"]
    item = await admin(request, ctx, session, "getApproval", {"approval_id": _uuid(approval_id)})
    row = await _decoded(request, ctx, session, item)
    signing = None
    if item.get("approver") and item["status"] == "pending":
        expiry = int(datetime.now(UTC).timestamp()) + SIGNATURE_SECONDS
        document = await admin(
            request,
            ctx,
            session,
            "getApprovalSigningRequest",
            {"approval_id": _uuid(approval_id), "expiry": expiry},
        )
        signing = {"expiry": expiry, "json": orjson.dumps(document).decode()}
    return render(
        "approval.html", {"row": row, "signing": signing, "page": "approvals"}, session=session
    )


def _uuid(text: str) -> Any:
    from uuid import UUID

    try:
        return UUID(text)
    except ValueError:
        raise ConsoleError(404, f"{text!r} is not an approval id") from None


async def spending_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """Each owner's, agent's and wallet's caps: spent and left in the window, as bars."""
    assets = (await ctx.policies()).assets
    sections = []
    for kind, listing, operation, param in (
        ("owner", "listOwners", "getOwnerSpend", "owner_id"),
        ("agent", "listAgents", "getAgentSpend", "agent_id"),
        ("wallet", "listWallets", "getWalletSpend", "wallet_id"),
    ):
        for entity in (await admin(request, ctx, session, listing))["items"]:
            try:
                summary = await admin(request, ctx, session, operation, {param: entity["id"]})
            except ConsoleError as exc:
                if exc.status != 404:  # not yet in the policies in force
                    raise
                continue
            bars = [present.cap_bar(cap, assets) for cap in summary["caps"]]
            sections.append({"kind": kind, "id": entity["id"], "bars": bars})
    history = await admin(request, ctx, session, "getDailySpending", {"days": CHART_DAYS})
    charts = spend_charts(history["items"], assets, today=datetime.now(UTC).date(), days=CHART_DAYS)
    context = {"sections": sections, "charts": charts, "days": CHART_DAYS, "page": "spending"}
    return render("spending.html", context, session=session)


_AUDIT_FILTERS = ("agent", "wallet", "decision", "status", "owner", "q")


async def audit_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """The audit log, filtered, each decision with its explanation and backend result."""
    query = request.query
    params: dict[str, Any] = {k: query[k] for k in _AUDIT_FILTERS if query.get(k)}
    for key in ("since", "until"):
        if query.get(key):
            try:
                moment = datetime.fromisoformat(query[key])
            except ValueError:
                raise ConsoleError(400, f"{key}: not a date and time ({query[key]!r})") from None
            params[key] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if query.get("cursor"):
        params["cursor"] = query["cursor"]
    params["limit"] = 50
    if "q" in params:  # the search runs in the query, over every page
        params["q"] = params["q"].strip()[:200] or None
    page = await admin(request, ctx, session, "listTransactions", params)
    assets = (await ctx.policies()).assets
    rows = []
    for row in page["items"]:
        shown = present.amounts(row.get("amounts"), assets)
        explanation = row.get("explanation") or {}
        if isinstance(explanation, str):
            explanation = orjson.loads(explanation)
        usd = present.usd(row["usd_value"]) if row.get("usd_value") else None
        rows.append({**row, "amounts_shown": shown, "explanation": explanation, "usd": usd})
    filters = {k: query.get(k, "") for k in (*_AUDIT_FILTERS, "since", "until")}
    older = None
    if page["next_cursor"]:  # the next page keeps the filters
        kept = {k: v for k, v in filters.items() if v}
        older = urlencode({**kept, "cursor": page["next_cursor"]})
    return render(
        "audit.html",
        {"rows": rows, "filters": filters, "older": older, "page": "audit"},
        session=session,
    )


async def freezes_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """The kill switch: what is frozen, and forms to freeze or unfreeze (confirmed)."""
    freezes = (await admin(request, ctx, session, "listFreezes"))["items"]
    agents = (await admin(request, ctx, session, "listAgents"))["items"]
    wallets = (await admin(request, ctx, session, "listWallets"))["items"]
    context = {"freezes": freezes, "agents": agents, "wallets": wallets, "page": "freezes"}
    return render("freezes.html", context, session=session)


async def policies_page(
    request: web.Request, ctx: AdminContext, session: ConsoleSession
) -> web.StreamResponse:
    """The policy document in force, and a form to plan a new one."""
    if session.key.owner_id is not None:
        context: dict[str, Any] = {"document": None, "summary": None, "page": "policies"}
        return render("policies.html", context, session=session)
    exported = await admin(request, ctx, session, "exportPolicies")
    context = {"document": exported["yaml"], "summary": exported["summary"], "page": "policies"}
    return render("policies.html", context, session=session)


PAGES: dict[str, Page] = {
    "/approvals": approvals_page,
    "/approvals/state": approvals_state,
    "/approvals/{approval_id}": approval_page,
    "/spending": spending_page,
    "/audit": audit_page,
    "/freezes": freezes_page,
    "/policies": policies_page,
}
