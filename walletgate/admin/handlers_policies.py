"""Policies (plan, apply, export: operator keys) and agent tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from walletgate.admin.call import Call, Handler, announced, found, json_response
from walletgate.admin.handlers_directory import checked_agent
from walletgate.config.documents import export_document, summarize
from walletgate.config.sources import checked_source
from walletgate.service.policies import (
    apply_policies,
    export_policies,
    plan_policies,
    plan_to_json,
)
from walletgate.service.tokens import (
    issue_agent_token,
    list_agent_tokens,
    revoke_agent_token,
    token_owner,
)
from walletgate.storage.tokens import TokenRecord

_BODY = "<request body>"


async def plan_h(call: Call) -> web.StreamResponse:
    call.caller.require_operator("planning policies")
    source = checked_source(call.body, _BODY)
    async with call.stores.pool.acquire() as conn:
        changes = await plan_policies(conn, source)
    return json_response(plan_to_json(changes))


async def apply_h(call: Call) -> web.StreamResponse:
    call.caller.require_operator("applying policies")
    source = checked_source(call.body, _BODY)
    applied = await apply_policies(
        call.stores, source, actor=call.caller.actor, cache_ttl=call.cache_ttl
    )
    result = applied.result
    data: dict[str, Any] = {
        "plan": plan_to_json(result.plan),
        "changed": result.changed,
        "change_set": result.change_set,
        "state_version": result.state_version,
    }
    return json_response(announced(data, applied.announcement.error))


async def export_h(call: Call) -> web.StreamResponse:
    call.caller.require_operator("exporting policies")
    async with call.stores.pool.acquire() as conn:
        document = await export_policies(conn)
    return json_response({"yaml": export_document(document), "summary": summarize(document)})


def token_json(record: TokenRecord) -> dict[str, Any]:
    """A token as the API shows it: never the secret."""
    return {
        "id": record.token_id,
        "agent_id": record.agent_id,
        "prefix": record.prefix,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "last_used_at": record.last_used_at,
        "revoked_at": record.revoked_at,
        "revoked_by": record.revoked_by,
        "active": record.active,
    }


async def list_tokens_h(call: Call) -> web.StreamResponse:
    agent_id = call.params.get("agent")
    if agent_id is not None:
        await checked_agent(call, agent_id)
    records = await list_agent_tokens(call.stores, agent_id)
    owner = call.caller.owner
    if owner is not None and agent_id is None:
        mine = {
            row["id"]
            for row in await call.stores.pool.fetch(
                "SELECT id FROM agents WHERE owner_id = $1", owner
            )
        }
        records = [r for r in records if r.agent_id in mine]
    return json_response({"items": [token_json(r) for r in records]})


async def issue_token_h(call: Call) -> web.StreamResponse:
    agent_id = call.body["agent"]
    await checked_agent(call, agent_id)
    issued = await issue_agent_token(call.stores, agent_id, actor=call.caller.actor)
    data = {
        "id": issued.token_id,
        "agent_id": issued.agent_id,
        "prefix": issued.prefix,
        "created_at": issued.created_at,
        "token": issued.token,
    }
    return json_response(data, status=201)


async def revoke_token_h(call: Call) -> web.StreamResponse:
    token_id: UUID = call.params["token_id"]
    owner = found(await token_owner(call.stores, str(token_id)), f"token {token_id}")
    call.caller.require_owner(owner, f"token {token_id}")
    revoked = await revoke_agent_token(
        call.stores, str(token_id), actor=call.caller.actor, cache_ttl=call.cache_ttl
    )
    data = {"token": token_json(revoked.record), "state_version": revoked.state_version}
    return json_response(announced(data, revoked.announcement.error))


HANDLERS: dict[str, Handler] = {
    "planPolicies": plan_h,
    "applyPolicies": apply_h,
    "exportPolicies": export_h,
    "listTokens": list_tokens_h,
    "issueToken": issue_token_h,
    "revokeToken": revoke_token_h,
}
