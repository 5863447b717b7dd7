"""The kill switch in PostgreSQL: freeze and unfreeze an agent, a wallet or everyone.

A freeze is a row of ``freezes`` (migrations/0002_freezes.sql) saying who froze what,
why and when; unfreezing closes the row, it is never deleted. Both bump the state
version in the same transaction, so every gateway, which reads the version stamp on
each request, judges its next request with the change (the policy cache carries the
active freezes next to the policy document).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from walletgate.errors import UserError
from walletgate.notify.events import freeze_events
from walletgate.notify.outbox import owners_of_target, record_events
from walletgate.policies.model import Freeze
from walletgate.storage.state import bump_state_version

SCOPES = ("all", "agent", "wallet")
_MAX_REASON = 500


class FreezeError(UserError):
    """A freeze names something that does not exist, or gives no reason."""


@dataclass(frozen=True, slots=True)
class FreezeChange:
    """What a freeze or unfreeze did: the freeze, whether anything changed, the version."""

    freeze: Freeze | None
    changed: bool
    state_version: int | None


def freeze_to_json(freeze: Freeze) -> dict[str, Any]:
    """A freeze as the policy cache stores it."""
    return {
        "scope": freeze.scope,
        "target": freeze.target,
        "reason": freeze.reason,
        "frozen_by": freeze.frozen_by,
        "frozen_at": freeze.frozen_at.isoformat(),
    }


def freeze_from_json(item: Mapping[str, Any]) -> Freeze:
    """The inverse of :func:`freeze_to_json`; raises ValueError for anything malformed."""
    try:
        scope, target = item["scope"], item["target"]
        freeze = Freeze(
            scope=str(scope),
            target=None if target is None else str(target),
            reason=str(item["reason"]),
            frozen_by=str(item["frozen_by"]),
            frozen_at=datetime.fromisoformat(str(item["frozen_at"])),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed freeze {item!r}") from exc
    if freeze.scope not in SCOPES or (freeze.scope == "all") != (freeze.target is None):
        raise ValueError(f"malformed freeze {item!r}")
    return freeze


def _from_row(row: asyncpg.Record) -> Freeze:
    return Freeze(row["scope"], row["target"], row["reason"], row["frozen_by"], row["frozen_at"])


async def load_active_freezes(conn: asyncpg.Connection) -> tuple[Freeze, ...]:
    """Every freeze in force, oldest first."""
    rows = await conn.fetch(
        """SELECT scope, target, reason, frozen_by, frozen_at FROM freezes
            WHERE unfrozen_at IS NULL ORDER BY frozen_at, id"""
    )
    return tuple(_from_row(row) for row in rows)


async def list_freezes(conn: asyncpg.Connection, *, lifted: bool = False) -> list[asyncpg.Record]:
    """Freezes in force (and, with ``lifted``, the lifted ones too), newest first."""
    where = "" if lifted else "WHERE unfrozen_at IS NULL"
    return list(
        await conn.fetch(
            f"""SELECT scope, target, reason, frozen_by, frozen_at,
                       unfrozen_by, unfrozen_at, unfreeze_reason
                  FROM freezes {where} ORDER BY frozen_at DESC, id DESC"""
        )
    )


async def _check_target(conn: asyncpg.Connection, scope: str, target: str | None) -> None:
    if scope not in SCOPES:
        raise FreezeError(f"cannot freeze {scope!r}: expected one of {', '.join(SCOPES)}")
    if (scope == "all") != (target is None):
        raise FreezeError("name an agent or a wallet, or freeze everything (--all)")
    if scope == "all":
        return
    table = "agents" if scope == "agent" else "wallets"
    if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)", target):
        raise FreezeError(f"there is no {scope} {target!r} to freeze")


def _checked_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise FreezeError("say why (--reason): the freeze log keeps it")
    if len(text) > _MAX_REASON:
        raise FreezeError(f"the reason is longer than {_MAX_REASON} characters")
    return text


async def freeze(
    conn: asyncpg.Connection, scope: str, target: str | None, *, reason: str, actor: str
) -> FreezeChange:
    """Freeze ``target`` (an agent or wallet id; None with scope ``all``).

    Already frozen: nothing changes, and the freeze in force is returned.
    """
    text = _checked_reason(reason)
    async with conn.transaction():
        await _check_target(conn, scope, target)
        row = await conn.fetchrow(
            """INSERT INTO freezes (scope, target, reason, frozen_by) VALUES ($1, $2, $3, $4)
               ON CONFLICT (scope, coalesce(target, '')) WHERE unfrozen_at IS NULL DO NOTHING
               RETURNING scope, target, reason, frozen_by, frozen_at""",
            scope,
            target,
            text,
            actor,
        )
        if row is None:
            existing = await _active(conn, scope, target)
            return FreezeChange(existing, False, None)
        version = await bump_state_version(conn)
        owners = await owners_of_target(conn, scope, target)
        await record_events(
            conn, freeze_events("freeze.created", _from_row(row), owners, actor=actor)
        )
    return FreezeChange(_from_row(row), True, version)


async def unfreeze(
    conn: asyncpg.Connection,
    scope: str,
    target: str | None,
    *,
    actor: str,
    reason: str = "",
) -> FreezeChange:
    """Lift the freeze on ``target``; nothing changes when it is not frozen."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE freezes SET unfrozen_at = greatest(now(), frozen_at), unfrozen_by = $3,
                                  unfreeze_reason = nullif($4, '')
                WHERE scope = $1 AND target IS NOT DISTINCT FROM $2 AND unfrozen_at IS NULL
            RETURNING scope, target, reason, frozen_by, frozen_at""",
            scope,
            target,
            actor,
            reason.strip(),
        )
        if row is None:
            return FreezeChange(None, False, None)
        version = await bump_state_version(conn)
        owners = await owners_of_target(conn, scope, target)
        lifted = freeze_events(
            "freeze.lifted", _from_row(row), owners, actor=actor, reason=reason.strip()
        )
        await record_events(conn, lifted)
    return FreezeChange(_from_row(row), True, version)


async def _active(conn: asyncpg.Connection, scope: str, target: str | None) -> Freeze | None:
    row = await conn.fetchrow(
        """SELECT scope, target, reason, frozen_by, frozen_at FROM freezes
            WHERE scope = $1 AND target IS NOT DISTINCT FROM $2 AND unfrozen_at IS NULL""",
        scope,
        target,
    )
    return None if row is None else _from_row(row)


def freezes_from_json(items: Any) -> tuple[Freeze, ...]:
    """Freezes read back from the policy cache; raises ValueError for anything malformed."""
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise ValueError(f"malformed freezes {items!r}")
    return tuple(freeze_from_json(item) for item in items)
