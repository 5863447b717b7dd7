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
from walletgate.storage.freezes import FreezeChange, freeze, list_freezes, unfreeze
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
