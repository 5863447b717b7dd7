"""Owners, agents and wallets (read only) and their spend summaries."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from walletgate.admin.call import Call, Handler, found, json_response
from walletgate.admin.problems import Problem
from walletgate.service.directory import (
    get_agent,
    get_owner,
    get_wallet,
    list_agents,
    list_owners,
    list_wallets,
)
from walletgate.service.spend import CapUsage, agent_spend, owner_spend, wallet_spend


async def list_owners_h(call: Call) -> web.StreamResponse:
    items = await list_owners(call.stores, owner_id=call.caller.owner)
    return json_response({"items": items})


async def get_owner_h(call: Call) -> web.StreamResponse:
    owner_id = call.params["owner_id"]
    owner = found(await get_owner(call.stores, owner_id), f"owner {owner_id!r}")
    call.caller.require_owner(owner["id"], f"owner {owner_id!r}")
    return json_response(owner)


async def list_agents_h(call: Call) -> web.StreamResponse:
    owner = call.caller.owner_filter(call.params.get("owner"))
    return json_response({"items": await list_agents(call.stores, owner_id=owner)})


async def checked_agent(call: Call, agent_id: str) -> dict[str, Any]:
    """The agent, if it exists (404) and the caller may reach it (403)."""
    agent: dict[str, Any] = found(await get_agent(call.stores, agent_id), f"agent {agent_id!r}")
    call.caller.require_owner(agent["owner_id"], f"agent {agent_id!r}")
    return agent


async def checked_wallet(call: Call, wallet_id: str) -> dict[str, Any]:
    """The wallet, if it exists (404) and the caller may reach it (403)."""
    wallet: dict[str, Any] = found(
        await get_wallet(call.stores, wallet_id), f"wallet {wallet_id!r}"
    )
    call.caller.require_owner(wallet["owner_id"], f"wallet {wallet_id!r}")
    return wallet


async def get_agent_h(call: Call) -> web.StreamResponse:
    return json_response(await checked_agent(call, call.params["agent_id"]))


async def list_wallets_h(call: Call) -> web.StreamResponse:
    owner = call.caller.owner_filter(call.params.get("owner"))
    items = await list_wallets(call.stores, owner_id=owner, agent_id=call.params.get("agent"))
    return json_response({"items": items})


async def get_wallet_h(call: Call) -> web.StreamResponse:
    return json_response(await checked_wallet(call, call.params["wallet_id"]))


def _usage(item: CapUsage) -> dict[str, Any]:
    return {
        "policy": item.policy,
        "rule": item.rule,
        "type": item.type,
        "scope": item.scope,
        "entity": item.entity,
        "unit": item.unit,
        "window": item.window,
        "window_start": item.window_start,
        # Strings: base units of an asset go far past what JSON numbers carry exactly.
        "limit": str(item.limit),
        "spent": str(item.spent),
        "remaining": str(item.remaining),
    }


def _summary(kind: str, entity: str, version: int, caps: list[CapUsage]) -> web.Response:
    return json_response(
        {"kind": kind, "id": entity, "state_version": version, "caps": [_usage(c) for c in caps]}
    )


def _missing(kind: str, entity: str) -> Problem:
    # In the database but not yet in the policies in force (an apply racing this call).
    return Problem(404, f"{kind} {entity!r} is not in the policies in force")


async def wallet_spend_h(call: Call) -> web.StreamResponse:
    wallet_id = call.params["wallet_id"]
    await checked_wallet(call, wallet_id)
    snapshot = await call.ctx.state.snapshot()
    if wallet_id not in snapshot.policies.wallets:
        raise _missing("wallet", wallet_id)
    caps = await wallet_spend(call.stores, snapshot.policies, wallet_id)
    return _summary("wallet", wallet_id, snapshot.version, caps)


async def agent_spend_h(call: Call) -> web.StreamResponse:
    agent_id = call.params["agent_id"]
    await checked_agent(call, agent_id)
    snapshot = await call.ctx.state.snapshot()
    if agent_id not in snapshot.policies.agents:
        raise _missing("agent", agent_id)
    caps = await agent_spend(call.stores, snapshot.policies, agent_id)
    return _summary("agent", agent_id, snapshot.version, caps)


async def owner_spend_h(call: Call) -> web.StreamResponse:
    owner_id = call.params["owner_id"]
    found(await get_owner(call.stores, owner_id), f"owner {owner_id!r}")
    call.caller.require_owner(owner_id, f"owner {owner_id!r}")
    snapshot = await call.ctx.state.snapshot()
    if owner_id not in snapshot.policies.owners:
        raise _missing("owner", owner_id)
    caps = await owner_spend(call.stores, snapshot.policies, owner_id)
    return _summary("owner", owner_id, snapshot.version, caps)


HANDLERS: dict[str, Handler] = {
    "listOwners": list_owners_h,
    "getOwner": get_owner_h,
    "getOwnerSpend": owner_spend_h,
    "listAgents": list_agents_h,
    "getAgent": get_agent_h,
    "getAgentSpend": agent_spend_h,
    "listWallets": list_wallets_h,
    "getWallet": get_wallet_h,
    "getWalletSpend": wallet_spend_h,
}
