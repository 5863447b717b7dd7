"""Policy documents: plan, apply and export (the actions behind ``walletgate policies``
and the admin API's ``/policies``).

A document arrives already parsed (:mod:`walletgate.config.sources` turns bytes into
one and validates it); these functions only talk to the stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from walletgate.config.diff import Plan
from walletgate.config.documents import SourceDocument
from walletgate.service.announce import Announcement, announce
from walletgate.storage.policy_repo import ApplyResult, apply, load_document, plan
from walletgate.storage.runtime import Stores


@dataclass(frozen=True, slots=True)
class PolicyApplied:
    """What applying a document did, and whether the gateways were told."""

    result: ApplyResult
    announcement: Announcement


async def plan_policies(conn: asyncpg.Connection, source: SourceDocument) -> Plan:
    """What applying ``source`` would add, change and remove (nothing is written)."""
    return await plan(conn, source)


async def apply_policies(
    stores: Stores, source: SourceDocument, *, actor: str, cache_ttl: int
) -> PolicyApplied:
    """Apply ``source`` in one transaction as ``actor``, then refresh every gateway.

    Raises ``DocumentInvalid`` or ``ApplyError`` (nothing changed then).
    """
    async with stores.pool.acquire() as conn:
        result = await apply(conn, source, actor=actor)
    # Also after a no-op: it repairs a cache a failed earlier publish left stale.
    return PolicyApplied(result, await announce(stores, cache_ttl=cache_ttl))


async def export_policies(conn: asyncpg.Connection) -> dict[str, Any]:
    """The current state as a canonical policy document."""
    return await load_document(conn)


def plan_to_json(changes: Plan) -> dict[str, Any]:
    """A plan as plain data: per kind, the ids added and removed and the changed fields."""
    added, changed, removed = changes.counts()
    return {
        "empty": changes.empty,
        "counts": {"added": added, "changed": changed, "removed": removed},
        "kinds": [
            {
                "kind": kind.kind,
                "added": list(kind.added),
                "changed": [
                    {
                        "id": entity.id,
                        "fields": [
                            {"path": f.path, "before": f.before, "after": f.after}
                            for f in entity.fields
                        ],
                    }
                    for entity in kind.changed
                ],
                "removed": list(kind.removed),
            }
            for kind in changes.kinds
        ],
        "text": changes.render(),
    }
