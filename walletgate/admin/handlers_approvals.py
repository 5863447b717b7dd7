"""Approvals (list, show; approve, reject, cancel) and webhook deliveries (list, retry).

Deciding an approval is :mod:`walletgate.service.approvals`'s work. Until that module
offers ``approve_approval``, ``reject_approval`` and ``cancel_approval`` (each called as
``f(stores, approval_id, actor=..., note=..., signature=..., signature_expires_at=...)``
and returning the approval's id), the three routes answer 501 problem documents.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from aiohttp import web

from walletgate.admin.call import Call, Handler, found, json_response
from walletgate.admin.problems import Problem
from walletgate.service.approval_views import ApprovalFilter, get_approval, list_approvals
from walletgate.service.transactions import decode_cursor, encode_cursor
from walletgate.service.webhooks import (
    WebhookError,
    get_delivery,
    list_deliveries,
    retry_delivery,
)

DEFAULT_LIMIT = 50
#: The most deliveries the service lists at once.
MAX_DELIVERIES = 1000


async def list_approvals_h(call: Call) -> web.StreamResponse:
    p = call.params
    flt = ApprovalFilter(
        status=p.get("status"),
        agent=p.get("agent"),
        wallet=p.get("wallet"),
        owner=call.caller.owner_filter(p.get("owner")),
        limit=p.get("limit", DEFAULT_LIMIT),
    )
    return json_response({"items": await list_approvals(call.stores, flt)})


async def _checked_approval(call: Call, approval_id: UUID) -> dict[str, Any]:
    item: dict[str, Any] = found(
        await get_approval(call.stores, approval_id), f"approval {approval_id}"
    )
    call.caller.require_owner(item["owner_id"], f"approval {approval_id}")
    return item


async def get_approval_h(call: Call) -> web.StreamResponse:
    return json_response(await _checked_approval(call, call.params["approval_id"]))


def _action(name: str) -> Callable[..., Awaitable[Any]] | None:
    """``walletgate.service.approvals.<name>``, or ``None`` while it does not exist."""
    try:
        module = importlib.import_module("walletgate.service.approvals")
    except ModuleNotFoundError:
        return None
    action = getattr(module, name, None)
    return action if callable(action) else None


def _decision(verb: str) -> Handler:
    name = f"{verb}_approval"

    async def decide(call: Call) -> web.StreamResponse:
        approval_id: UUID = call.params["approval_id"]
        await _checked_approval(call, approval_id)
        action = _action(name)
        if action is None:
            raise Problem(501, f"this walletgate cannot {verb} approvals over the API yet")
        body = call.body or {}
        await action(
            call.stores,
            approval_id,
            actor=call.caller.actor,
            note=body.get("note", ""),
            signature=body.get("signature"),
            signature_expires_at=body.get("signature_expires_at"),
        )
        return json_response(await _checked_approval(call, approval_id))

    decide.__name__ = f"{verb}_h"
    return decide


async def list_deliveries_h(call: Call) -> web.StreamResponse:
    p = call.params
    limit = p.get("limit", DEFAULT_LIMIT)
    cursor = p.get("cursor")
    # One more than asked tells whether another page follows (as for transactions).
    items = await list_deliveries(
        call.stores.pool,
        status=p.get("status"),
        owner=call.caller.owner_filter(p.get("owner")),
        after=None if cursor is None else decode_cursor(cursor),
        limit=min(limit + 1, MAX_DELIVERIES),
    )
    next_cursor = None
    # At the service's maximum a full page may be followed by an empty one.
    if len(items) > limit or len(items) == limit == MAX_DELIVERIES:
        items = items[:limit]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return json_response({"items": [d.to_json() for d in items], "next_cursor": next_cursor})


async def retry_delivery_h(call: Call) -> web.StreamResponse:
    delivery_id: UUID = call.params["delivery_id"]
    try:
        delivery = await get_delivery(call.stores.pool, delivery_id)
    except WebhookError as exc:
        raise Problem(404, str(exc)) from None
    call.caller.require_owner(delivery.owner, f"webhook delivery {delivery_id}")
    retried = await retry_delivery(call.stores.pool, delivery_id, actor=call.caller.actor)
    return json_response(retried.to_json())


HANDLERS: dict[str, Handler] = {
    "listApprovals": list_approvals_h,
    "getApproval": get_approval_h,
    "approveApproval": _decision("approve"),
    "rejectApproval": _decision("reject"),
    "cancelApproval": _decision("cancel"),
    "listDeliveries": list_deliveries_h,
    "retryDelivery": retry_delivery_h,
}
