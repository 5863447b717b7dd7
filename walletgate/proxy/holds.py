"""What the agent sees of held spends: the hold's answer, resends, ``walletgate_getApproval``.

A spend a ``delay`` or ``require_approval`` tier holds is answered at once with a
JSON-RPC error (code -32003, reason ``approval_required`` or ``delayed``) carrying the
approval id and when it expires (and, for a delay, when it is released). walletgate
forwards the stored request itself later (:mod:`walletgate.proxy.executor`). The agent
learns the outcome with ``walletgate_getApproval`` (its own approvals only), or by
resending the identical request: within the approval's life, the same fingerprint is
answered with the approval's state or the executed result, never a second hold and
never a second spend.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.policies.decision import Decision, Reason
from walletgate.policies.model import PolicySet, Tier
from walletgate.proxy import errors
from walletgate.storage.approvals import (
    DEFAULT_TIMEOUT_SECONDS,
    HoldInfo,
    agent_view,
    find_resent,
    read,
)
from walletgate.storage.audit import AuditRecord

_log = logging.getLogger(__name__)

#: walletgate's own JSON-RPC method: the state of one of the caller's approvals.
GET_APPROVAL = "walletgate_getApproval"

Response = dict[str, Any]

# Whether a policy set has any tier that holds: only then can a spend have a hold to
# find by its fingerprint, so other sets skip the lookup (kept per set, by identity).
_may_hold: dict[int, tuple[PolicySet, bool]] = {}


def may_hold(policies: PolicySet) -> bool:
    """True when some enabled tier of ``policies`` delays or holds spends."""
    known = _may_hold.get(id(policies))
    if known is not None and known[0] is policies:
        return known[1]
    found = any(
        isinstance(rule, Tier) and rule.action != "notify"
        for policy in policies.policies
        if policy.enabled
        for rule in policy.rules
    )
    if len(_may_hold) > 16:
        _may_hold.clear()
    _may_hold[id(policies)] = (policies, found)
    return found


def hold_info(decision: Decision, now: datetime, print_: str) -> HoldInfo:
    """The approvals row's facts for a held ``decision`` made at ``now``.

    A delay expires ``approval_timeout`` after its release (if no gateway ran for that
    long, it is not sent late); an owner approval ``approval_timeout`` after the hold.
    """
    timeout = timedelta(seconds=decision.hold_timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    if decision.hold_delay_seconds is not None:
        release_at = now + timedelta(seconds=decision.hold_delay_seconds)
        return HoldInfo("delay", release_at + timeout, release_at, print_)
    return HoldInfo("approval", now + timeout, None, print_)


def hold_response(call_id: Any, decision: Decision, record: AuditRecord) -> Response:
    """The answer to a spend just held: an error naming its approval."""
    hold = record.hold
    assert hold is not None and record.approval_id is not None
    data = decision.to_json()
    data.update(
        transaction_id=str(record.id),
        approval_id=str(record.approval_id),
        status="pending",
        reason="delayed" if hold.kind == "delay" else str(Reason.APPROVAL_REQUIRED),
        expires_at=hold.expires_at.isoformat(),
    )
    if hold.release_at is not None:
        data["release_at"] = hold.release_at.isoformat()
    message = (
        f"delayed until {hold.release_at.isoformat()}: {decision.message}"
        if hold.release_at is not None
        else f"{decision.message} (approval {record.approval_id}, expires "
        f"{hold.expires_at.isoformat()})"
    )
    return errors.error_object(call_id, errors.TRANSACTION_REJECTED, message, data)


def state_response(call_id: Any, item: Mapping[str, Any]) -> Response:
    """A resent held request's answer: the executed result, or the approval's state."""
    view = agent_view(item)
    if view["status"] == "executed" and "result" in view and view["result"] is not None:
        return {"jsonrpc": "2.0", "id": call_id, "result": view["result"]}
    message = f"this request is already held: approval {view['approval_id']} is {view['status']}"
    data = {"decision": "hold", **view, "resent": True}
    return errors.error_object(call_id, errors.TRANSACTION_REJECTED, message, data)


async def resent(
    pool: asyncpg.Pool | None, agent_id: str, print_: str
) -> Mapping[str, Any] | Exception | None:
    """The live approval a resend of fingerprint ``print_`` belongs to; the database
    error when it cannot be looked up (the caller refuses the request then)."""
    if pool is None:
        return None
    try:
        return await find_resent(pool, agent_id, print_)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        _log.warning("cannot look up resent requests: %s", exc)
        return exc


async def get_approval(
    pool: asyncpg.Pool | None, call_id: Any, agent_id: str, params: Any
) -> Response:
    """``walletgate_getApproval(["<approval id>"])``: one of the caller's approvals."""
    if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
        return errors.error_object(
            call_id, errors.INVALID_PARAMS, f"{GET_APPROVAL} takes one parameter: an approval id"
        )
    try:
        approval_id = UUID(params[0])
    except ValueError:
        return errors.error_object(call_id, errors.INVALID_PARAMS, "not an approval id (a UUID)")
    if pool is None:
        return errors.error_object(call_id, errors.RESOURCE_UNAVAILABLE, "approvals unavailable")
    try:
        item = await read(pool, approval_id)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        _log.warning("cannot read approval %s: %s", approval_id, exc)
        return errors.error_object(
            call_id, errors.RESOURCE_UNAVAILABLE, "approvals cannot be read right now"
        )
    # Another agent's approval is answered like a missing one: ids reveal nothing.
    if item is None or item["agent_id"] != agent_id:
        return errors.error_object(call_id, errors.INVALID_PARAMS, f"no approval {approval_id}")
    return {"jsonrpc": "2.0", "id": call_id, "result": agent_view(item)}
