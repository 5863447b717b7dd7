"""Approvals (list, show, signing request; approve, reject, cancel) and webhook
deliveries (list, retry): formatting over :mod:`walletgate.service.approvals` and
:mod:`walletgate.service.webhooks`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from walletgate.admin.call import Call, Handler, json_response
from walletgate.admin.problems import Problem
from walletgate.service.approval_views import ApprovalFilter
from walletgate.service.approvals import (
    ApprovalNotFound,
    approve,
    cancel,
    get_approval,
    list_approvals,
    reject,
    signing_request,
)
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
    items = await list_approvals(call.stores, flt, owner_id=call.caller.owner)
    return json_response({"items": items})


async def _checked_approval(call: Call, approval_id: UUID) -> dict[str, Any]:
    """The approval, if it exists (404) and is within the key's reach (403: the service
    itself would only say "not found" for another owner's)."""
    try:
        item = await get_approval(call.stores, approval_id)
    except ApprovalNotFound as exc:
        raise Problem(404, str(exc)) from None
    call.caller.require_owner(item["owner_id"], f"approval {approval_id}")
    return item


async def get_approval_h(call: Call) -> web.StreamResponse:
    return json_response(await _checked_approval(call, call.params["approval_id"]))


async def signing_request_h(call: Call) -> web.StreamResponse:
    approval_id: UUID = call.params["approval_id"]
    await _checked_approval(call, approval_id)
    document = await signing_request(
        call.stores, approval_id, expiry=call.params["expiry"], owner_id=call.caller.owner
    )
    return json_response(document)


async def approve_h(call: Call) -> web.StreamResponse:
    approval_id: UUID = call.params["approval_id"]
    await _checked_approval(call, approval_id)
    body = call.body or {}
    await approve(
        call.stores,
        approval_id,
        actor=call.caller.actor,
        reason=body.get("reason", ""),
        signature=body.get("signature"),
        signature_expiry=body.get("signature_expiry"),
        owner_id=call.caller.owner,
    )
    return json_response(await _checked_approval(call, approval_id))


async def reject_h(call: Call) -> web.StreamResponse:
    approval_id: UUID = call.params["approval_id"]
    await _checked_approval(call, approval_id)
    reason = (call.body or {}).get("reason", "")
    await reject(
        call.stores, approval_id, actor=call.caller.actor, reason=reason, owner_id=call.caller.owner
    )
    return json_response(await _checked_approval(call, approval_id))


async def cancel_h(call: Call) -> web.StreamResponse:
    approval_id: UUID = call.params["approval_id"]
    await _checked_approval(call, approval_id)
    reason = (call.body or {}).get("reason", "")
    await cancel(
        call.stores, approval_id, actor=call.caller.actor, reason=reason, owner_id=call.caller.owner
    )
    return json_response(await _checked_approval(call, approval_id))


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
    "getApprovalSigningRequest": signing_request_h,
    "approveApproval": approve_h,
    "rejectApproval": reject_h,
    "cancelApproval": cancel_h,
    "listDeliveries": list_deliveries_h,
    "retryDelivery": retry_delivery_h,
}
