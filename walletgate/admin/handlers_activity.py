"""Transactions (a page at a time; settling by hand) and the kill switch (freezes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from walletgate.admin.call import Call, Handler, announced, found, json_response
from walletgate.admin.handlers_directory import checked_agent, checked_wallet
from walletgate.admin.problems import Problem
from walletgate.service.freezes import FreezeDone, freeze_target, list_freeze_log, unfreeze_target
from walletgate.service.settlement import Outcome
from walletgate.service.transactions import (
    daily_spending,
    get_transaction,
    list_transaction_page,
    settle_transaction,
)
from walletgate.storage.audit_queries import TxFilter

DEFAULT_LIMIT = 50
#: A pending spend this old may be settled by hand (its gateway died), as the CLI's.
DEFAULT_PENDING_OLDER_THAN = 600


def _tx_json(row: dict[str, Any]) -> dict[str, Any]:
    # The audit row keeps base units as decimal strings already; numbers stay exact.
    return row


async def list_transactions_h(call: Call) -> web.StreamResponse:
    p = call.params
    if "\x00" in p.get("q", ""):
        raise Problem(400, "q: the search text may not hold a NUL character")
    flt = TxFilter(
        agent=p.get("agent"),
        wallet=p.get("wallet"),
        decision=p.get("decision"),
        status=p.get("status"),
        owner=call.caller.owner_filter(p.get("owner")),
        since=p.get("since"),
        until=p.get("until"),
        limit=p.get("limit", DEFAULT_LIMIT),
        search=p.get("q"),
    )
    page = await list_transaction_page(call.stores, flt, cursor=p.get("cursor"))
    return json_response(
        {"items": [_tx_json(row) for row in page.rows], "next_cursor": page.next_cursor}
    )


async def daily_spending_h(call: Call) -> web.StreamResponse:
    p = call.params
    days = p.get("days", 14)
    if p.get("wallet") is not None:
        await checked_wallet(call, p["wallet"])
    items = await daily_spending(
        call.stores,
        days=days,
        owner=call.caller.owner_filter(p.get("owner")),
        wallet=p.get("wallet"),
    )
    return json_response({"days": days, "items": items})


async def _checked_transaction(call: Call, tx_id: UUID) -> dict[str, Any]:
    row: dict[str, Any] = found(await get_transaction(call.stores, tx_id), f"transaction {tx_id}")
    call.caller.require_owner(row["owner_id"], f"transaction {tx_id}")
    return row


async def get_transaction_h(call: Call) -> web.StreamResponse:
    return json_response(_tx_json(await _checked_transaction(call, call.params["transaction_id"])))


async def settle_h(call: Call) -> web.StreamResponse:
    call.caller.require_operator("settling a spend by hand")
    tx_id: UUID = call.params["transaction_id"]
    await _checked_transaction(call, tx_id)
    body = call.body
    outcome = Outcome(body["outcome"])
    tx_hash = body.get("tx_hash")
    if tx_hash is not None and outcome is not Outcome.COMMITTED:
        raise Problem(400, "tx_hash goes with outcome committed")
    done = await settle_transaction(
        call.stores,
        str(tx_id),
        outcome,
        reason=body["reason"],
        actor=call.caller.actor,
        pending_older_than=timedelta(
            seconds=body.get("pending_older_than_seconds", DEFAULT_PENDING_OLDER_THAN)
        ),
        tx_hash=None if tx_hash is None else tx_hash.lower(),
    )
    return json_response(
        {
            "id": done.spend_id,
            "previous_status": done.previous_status,
            "outcome": str(done.outcome),
            "actor": done.actor,
            "reason": done.reason,
        }
    )


async def _reachable_targets(call: Call) -> tuple[set[str], set[str]]:
    """The agent and wallet ids an owner key reaches."""
    pool: asyncpg.Pool = call.stores.pool
    owner = call.caller.owner
    agents = {r["id"] for r in await pool.fetch("SELECT id FROM agents WHERE owner_id = $1", owner)}
    wallets = {
        r["id"] for r in await pool.fetch("SELECT id FROM wallets WHERE owner_id = $1", owner)
    }
    return agents, wallets


async def list_freezes_h(call: Call) -> web.StreamResponse:
    rows = [
        dict(row)
        for row in await list_freeze_log(call.stores, lifted=call.params.get("lifted", False))
    ]
    if call.caller.owner is not None:
        agents, wallets = await _reachable_targets(call)
        # An owner sees the freezes that stop its agents and wallets, everyone's included.
        reach = {"all": None, "agent": agents, "wallet": wallets}
        rows = [r for r in rows if r["scope"] == "all" or r["target"] in (reach[r["scope"]] or ())]
    return json_response({"items": rows})


async def _checked_target(call: Call, scope: str, target: str | None) -> None:
    """The freeze target exists (404) and is within the key's reach (403)."""
    if scope == "all":
        call.caller.require_operator("freezing or unfreezing everyone")
        if target is not None:
            raise Problem(400, "a freeze of everyone (scope all) names no target")
        return
    if target is None:
        raise Problem(400, f"scope {scope} needs a target: the {scope} id")
    if scope == "agent":
        await checked_agent(call, target)
    else:
        await checked_wallet(call, target)


def _freeze_json(done: FreezeDone) -> dict[str, Any]:
    data: dict[str, Any] = {
        "scope": done.scope,
        "target": done.target,
        "changed": done.change.changed,
        "state_version": done.change.state_version,
    }
    if done.change.freeze is not None:
        data["frozen_by"] = done.change.freeze.frozen_by
        data["frozen_at"] = done.change.freeze.frozen_at
        data["reason"] = done.change.freeze.reason
    return announced(data, done.announcement.error)


async def freeze_h(call: Call) -> web.StreamResponse:
    scope, target = call.body["scope"], call.body.get("target")
    await _checked_target(call, scope, target)
    done = await freeze_target(
        call.stores,
        scope,
        target,
        reason=call.body["reason"],
        actor=call.caller.actor,
        cache_ttl=call.cache_ttl,
    )
    return json_response(_freeze_json(done))


async def unfreeze_h(call: Call) -> web.StreamResponse:
    scope, target = call.body["scope"], call.body.get("target")
    await _checked_target(call, scope, target)
    done = await unfreeze_target(
        call.stores,
        scope,
        target,
        reason=call.body.get("reason", ""),
        actor=call.caller.actor,
        cache_ttl=call.cache_ttl,
    )
    return json_response(_freeze_json(done))


HANDLERS: dict[str, Handler] = {
    "listTransactions": list_transactions_h,
    "getDailySpending": daily_spending_h,
    "getTransaction": get_transaction_h,
    "settleTransaction": settle_h,
    "listFreezes": list_freezes_h,
    "freeze": freeze_h,
    "unfreeze": unfreeze_h,
}
