"""Owners, agents and wallets as stored (read only: ``policies apply`` changes them).

Every list takes an optional ``owner_id``: with it, only that owner's objects (what an
owner-scoped admin key may see).
"""

from __future__ import annotations

from typing import Any

from walletgate.storage.runtime import Stores

_OWNER = "SELECT id, name, created_at, updated_at FROM owners"
_AGENT = "SELECT id, owner_id, description, created_at, updated_at FROM agents"
_WALLET = (
    "SELECT id, owner_id, agent_id, address, chain_id, description, created_at, updated_at"
    " FROM wallets"
)


async def _rows(stores: Stores, sql: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in await stores.pool.fetch(sql, *args)]


async def list_owners(stores: Stores, *, owner_id: str | None = None) -> list[dict[str, Any]]:
    """Owners by id (only ``owner_id`` when given)."""
    return await _rows(stores, f"{_OWNER} WHERE $1::text IS NULL OR id = $1 ORDER BY id", owner_id)


async def list_agents(stores: Stores, *, owner_id: str | None = None) -> list[dict[str, Any]]:
    """Agents by id (of ``owner_id`` when given)."""
    return await _rows(
        stores, f"{_AGENT} WHERE $1::text IS NULL OR owner_id = $1 ORDER BY id", owner_id
    )


async def list_wallets(
    stores: Stores, *, owner_id: str | None = None, agent_id: str | None = None
) -> list[dict[str, Any]]:
    """Wallets by id (of ``owner_id`` and of ``agent_id`` when given)."""
    return await _rows(
        stores,
        f"""{_WALLET} WHERE ($1::text IS NULL OR owner_id = $1)
                       AND ($2::text IS NULL OR agent_id = $2) ORDER BY id""",
        owner_id,
        agent_id,
    )


async def _one(stores: Stores, sql: str, entity_id: str) -> dict[str, Any] | None:
    row = await stores.pool.fetchrow(f"{sql} WHERE id = $1", entity_id)
    return None if row is None else dict(row)


async def get_owner(stores: Stores, owner_id: str) -> dict[str, Any] | None:
    """One owner, or ``None``."""
    return await _one(stores, _OWNER, owner_id)


async def get_agent(stores: Stores, agent_id: str) -> dict[str, Any] | None:
    """One agent, or ``None``."""
    return await _one(stores, _AGENT, agent_id)


async def get_wallet(stores: Stores, wallet_id: str) -> dict[str, Any] | None:
    """One wallet, or ``None``."""
    return await _one(stores, _WALLET, wallet_id)
