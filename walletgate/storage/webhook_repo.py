"""Owners' webhook endpoints in PostgreSQL (``owner_webhooks``), as the policy document's
``owners[].webhooks``: read back for ``export`` and written by ``policies apply``.

Only the name of the environment variable holding an endpoint's secret is stored; the
secret itself never reaches the database, the document or an export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg


async def read_webhooks(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Each owner's endpoints in canonical form, by owner id."""
    rows = await conn.fetch(
        "SELECT owner_id, id, url, secret_env, events FROM owner_webhooks ORDER BY owner_id, id"
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        hook: dict[str, Any] = {"id": row["id"], "url": row["url"], "secret_env": row["secret_env"]}
        if row["events"] is not None:
            hook["events"] = sorted(row["events"])
        out.setdefault(row["owner_id"], []).append(hook)
    return out


def with_webhooks(
    owner: dict[str, Any], webhooks: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """``owner`` with its ``webhooks`` key when it has endpoints (none: no key)."""
    hooks = webhooks.get(owner["id"])
    return {**owner, "webhooks": hooks} if hooks else owner


async def write_webhooks(conn: asyncpg.Connection, owners: Iterable[Mapping[str, Any]]) -> None:
    """Make the endpoints of ``owners`` (canonical owner entities) those they list."""
    owners = list(owners)
    if not owners:
        return
    await conn.execute(
        "DELETE FROM owner_webhooks WHERE owner_id = ANY ($1::text[])", [o["id"] for o in owners]
    )
    await conn.executemany(
        """INSERT INTO owner_webhooks (owner_id, id, url, secret_env, events)
           VALUES ($1, $2, $3, $4, $5::text[])""",
        [
            (owner["id"], hook["id"], hook["url"], hook["secret_env"], hook.get("events"))
            for owner in owners
            for hook in owner.get("webhooks", [])
        ],
    )
