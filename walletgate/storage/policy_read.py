"""The policy tables read back as a raw policy document: one entry per row, in the
document's field names (:func:`walletgate.storage.policy_repo.load_document`
normalizes it)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from walletgate.config.durations import format_duration
from walletgate.config.semantics import SCOPE_KEYS
from walletgate.storage.webhook_repo import read_webhooks, with_webhooks


async def read_tables(conn: asyncpg.Connection) -> dict[str, Any]:
    """Every table as a raw document (before ``normalize_document``), read in the
    caller's transaction."""
    owners = await conn.fetch("SELECT id, name FROM owners")
    webhooks = await read_webhooks(conn)
    agents = await conn.fetch("SELECT id, owner_id, description FROM agents")
    wallets = await conn.fetch(
        "SELECT id, owner_id, agent_id, chain_id, address, description FROM wallets"
    )
    assets = await conn.fetch(
        "SELECT id, chain_id, kind, address, symbol, decimals, price_usd, price_as_of,"
        " price_max_age"
        " FROM assets"
    )
    policies = await conn.fetch(
        "SELECT id, owner_id, agent_id, wallet_id, description, enabled, rules FROM policies"
    )
    return {
        "version": 1,
        "owners": [with_webhooks({"id": r["id"], "name": r["name"]}, webhooks) for r in owners],
        "agents": [
            {"id": r["id"], "owner": r["owner_id"], "description": r["description"]} for r in agents
        ],
        "wallets": [_wallet_from_row(r) for r in wallets],
        "assets": [_asset_from_row(r) for r in assets],
        "policies": [_policy_from_row(r) for r in policies],
    }


def _wallet_from_row(row: asyncpg.Record) -> dict[str, Any]:
    wallet = {
        "id": row["id"],
        "owner": row["owner_id"],
        "chain": row["chain_id"],
        "address": row["address"],
        "description": row["description"],
    }
    if row["agent_id"] is not None:
        wallet["agent"] = row["agent_id"]
    return wallet


def _asset_from_row(row: asyncpg.Record) -> dict[str, Any]:
    asset: dict[str, Any] = {
        "id": row["id"],
        "chain": row["chain_id"],
        "symbol": row["symbol"],
        "kind": row["kind"],
        "decimals": row["decimals"],
    }
    if row["address"] is None:
        asset["native"] = True
    else:
        asset["address"] = row["address"]
    price: Decimal | None = row["price_usd"]
    as_of: datetime | None = row["price_as_of"]
    max_age: timedelta | None = row["price_max_age"]
    if price is not None and as_of is not None:
        asset["price_usd"] = format(price, "f")
        asset["price_as_of"] = as_of.isoformat()
    if max_age is not None:
        asset["price_max_age"] = format_duration(int(max_age.total_seconds()))
    return asset


def _policy_from_row(row: asyncpg.Record) -> dict[str, Any]:
    rules = row["rules"]
    policy: dict[str, Any] = {
        "id": row["id"],
        "description": row["description"],
        "enabled": row["enabled"],
        "rules": json.loads(rules) if isinstance(rules, str) else rules,
    }
    for scope in SCOPE_KEYS:
        if row[f"{scope}_id"] is not None:
            policy[scope] = row[f"{scope}_id"]
    return policy
