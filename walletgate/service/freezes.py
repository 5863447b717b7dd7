"""The kill switch: freeze, unfreeze and list freezes (``walletgate freeze`` and the API).

The change is committed in PostgreSQL (with the state version bump), then announced
through the policy cache; from then on every gateway refuses the frozen spends on its
next request. The announcement is made even when nothing changed, so repeating the
action repairs a cache that an earlier failed announcement left stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from walletgate.service.announce import Announcement, announce
from walletgate.storage.freezes import (
    FreezeChange,
    FreezeError,
    freeze,
    list_freezes,
    unfreeze,
)
from walletgate.storage.runtime import Stores


@dataclass(frozen=True, slots=True)
class FreezeDone:
    """What a freeze or unfreeze changed, and whether the gateways were told."""

    scope: str
    target: str | None
    change: FreezeChange
    announcement: Announcement


async def freeze_target(
    stores: Stores, scope: str, target: str | None, *, reason: str, actor: str, cache_ttl: int
) -> FreezeDone:
    """Freeze an agent or wallet (``scope``/``target``) or everyone (``all``, ``None``).

    Raises ``FreezeError`` for an unknown target or a missing reason.
    """
    async with stores.pool.acquire() as conn:
        change = await freeze(conn, scope, target, reason=reason, actor=actor)
    return FreezeDone(scope, target, change, await announce(stores, cache_ttl=cache_ttl))


@dataclass(frozen=True, slots=True)
class OwnerFreezeDone:
    """What an owner's kill switch changed: one result per agent and wallet."""

    owner: str
    changes: tuple[tuple[str, str, FreezeChange], ...]  # (scope, target, change)
    announcement: Announcement


async def _owner_targets(conn: asyncpg.Connection, owner: str) -> list[tuple[str, str]]:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM owners WHERE id = $1)", owner):
        raise FreezeError(f"there is no owner {owner!r} to freeze")
    agents = await conn.fetch("SELECT id FROM agents WHERE owner_id = $1 ORDER BY id", owner)
    wallets = await conn.fetch("SELECT id FROM wallets WHERE owner_id = $1 ORDER BY id", owner)
    return [("agent", r["id"]) for r in agents] + [("wallet", r["id"]) for r in wallets]


async def set_owner_frozen(
    stores: Stores, owner: str, *, frozen: bool, reason: str, actor: str, cache_ttl: int
) -> OwnerFreezeDone:
    """An owner's kill switch: freeze (or lift) each of its agents and wallets in one
    PostgreSQL transaction, so no agent of the owner is left running by a half-done
    switch; then one announcement. Raises ``FreezeError`` for an unknown owner."""
    changes: list[tuple[str, str, FreezeChange]] = []
    async with stores.pool.acquire() as conn, conn.transaction():
        # The owner's row is locked: an agent added meanwhile waits for the switch.
        await conn.execute("SELECT 1 FROM owners WHERE id = $1 FOR UPDATE", owner)
        for scope, target in await _owner_targets(conn, owner):
            if frozen:
                change = await freeze(conn, scope, target, reason=reason, actor=actor)
            else:
                change = await unfreeze(conn, scope, target, actor=actor, reason=reason)
            changes.append((scope, target, change))
    return OwnerFreezeDone(owner, tuple(changes), await announce(stores, cache_ttl=cache_ttl))


async def unfreeze_target(
    stores: Stores, scope: str, target: str | None, *, reason: str, actor: str, cache_ttl: int
) -> FreezeDone:
    """Lift the freeze on ``scope``/``target``; nothing changes when it is not frozen."""
    async with stores.pool.acquire() as conn:
        change = await unfreeze(conn, scope, target, actor=actor, reason=reason)
    return FreezeDone(scope, target, change, await announce(stores, cache_ttl=cache_ttl))


async def list_freeze_log(stores: Stores, *, lifted: bool = False) -> list[asyncpg.Record]:
    """Freezes in force (``lifted``: the lifted ones too), newest first."""
    async with stores.pool.acquire() as conn:
        return await list_freezes(conn, lifted=lifted)
