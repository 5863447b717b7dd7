"""Writing one plan (a diff of policy documents) to the policy tables, in an order
their foreign and unique keys accept, with each policy's history.

Called by :func:`walletgate.storage.policy_repo.apply` inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from walletgate.config.diff import Plan
from walletgate.config.durations import parse_duration
from walletgate.config.semantics import ENTITY_KINDS, SCOPE_KEYS
from walletgate.errors import UserError
from walletgate.storage.webhook_repo import write_webhooks

_SINGULAR = {"owners": "owner", "agents": "agent", "wallets": "wallet", "assets": "asset"}


class ApplyError(UserError):
    """The database refused a change the document asked for; nothing was changed."""


def _jsonb(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class PlanWriter:
    """Writes one plan, in an order that foreign and unique keys accept.

    Changed policies are deleted and re-inserted (keeping ``created_at``, bumping
    ``version``): a policy may move from a wallet being removed to a new wallet that
    takes over the old one's address, and no update order satisfies both keys then.
    Removed wallets and assets go before new ones take their addresses; removed agents
    and owners go last, once nothing in the new state refers to them.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        current: Mapping[str, Any],
        desired: Mapping[str, Any],
        changes: Plan,
        actor: str,
        change_set: UUID,
    ) -> None:
        self._conn = conn
        self._current = {kind: _by_id(current[kind]) for kind in ENTITY_KINDS}
        self._desired = {kind: _by_id(desired[kind]) for kind in ENTITY_KINDS}
        self._plan = changes
        self._actor = actor
        self._change_set = change_set

    def _upserts(self, kind: str) -> list[Mapping[str, Any]]:
        """Changed entities, in an order their unique keys allow, then added ones."""
        kind_plan = self._plan.kind(kind)
        changed = [change.id for change in kind_plan.changed]
        unique_key = _UNIQUE_KEYS.get(kind)
        if unique_key is not None:
            changed = self._unique_key_order(kind, changed, unique_key)
        return [self._desired[kind][entity_id] for entity_id in (*changed, *kind_plan.added)]

    def _unique_key_order(
        self, kind: str, ids: list[str], unique_key: Callable[[Mapping[str, Any]], object]
    ) -> list[str]:
        """Order changed entities so none takes a (chain, address) another still holds.

        Keys of removed entities are already free, and no added or unchanged entity
        wants a key in use (the document was validated), so only changed ones can block
        each other. A cycle (two wallets swapping addresses) has no order at all.
        """
        holder = {unique_key(self._current[kind][entity_id]): entity_id for entity_id in ids}
        pending: list[str] = list(ids)
        ordered: list[str] = []

        def blocked(entity_id: str) -> bool:
            other = holder.get(unique_key(self._desired[kind][entity_id]))
            return other is not None and other != entity_id and other in pending

        while pending:
            ready = [entity_id for entity_id in pending if not blocked(entity_id)]
            if not ready:
                raise ApplyError(
                    f"{kind} {', '.join(sorted(pending))} swap addresses among themselves; "
                    "apply in two steps (first move one of them to another address)"
                )
            ordered += ready
            pending = [entity_id for entity_id in pending if entity_id not in ready]
        return ordered

    async def write(self) -> None:
        """Write the whole plan; raises :class:`ApplyError` for a removal something
        still refers to, or changed entities that swap addresses among themselves."""
        replaced = await self._delete_policies()
        await self._delete("wallets")
        await self._delete("assets")
        await self._upsert_owners()
        await self._upsert_agents()
        await self._upsert_wallets()
        await self._upsert_assets()
        await self._insert_policies(replaced)
        await self._delete("agents")
        await self._delete("owners")

    async def _delete(self, kind: str) -> None:
        singular = _SINGULAR[kind]
        for entity_id in self._plan.kind(kind).removed:
            try:
                await self._conn.execute(f"DELETE FROM {kind} WHERE id = $1", entity_id)
            except asyncpg.ForeignKeyViolationError as exc:
                table = exc.table_name or "another table"
                why = (
                    "the audit log (transactions) refers to it, and the audit log is kept"
                    if table == "transactions"
                    else f"rows in {table} still refer to it"
                )
                raise ApplyError(
                    f"cannot remove {singular} {entity_id!r}: {why}; keep it in the document"
                ) from None

    async def _upsert_owners(self) -> None:
        await self._conn.executemany(
            """INSERT INTO owners (id, name) VALUES ($1, $2)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()""",
            [(o["id"], o["name"]) for o in self._upserts("owners")],
        )
        await write_webhooks(self._conn, self._upserts("owners"))

    async def _upsert_agents(self) -> None:
        await self._conn.executemany(
            """INSERT INTO agents (id, owner_id, description) VALUES ($1, $2, $3)
               ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
                   description = EXCLUDED.description, updated_at = now()""",
            [(a["id"], a["owner"], a["description"]) for a in self._upserts("agents")],
        )

    async def _upsert_wallets(self) -> None:
        await self._conn.executemany(
            """INSERT INTO wallets (id, owner_id, agent_id, address, chain_id, description)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
                   agent_id = EXCLUDED.agent_id, address = EXCLUDED.address,
                   chain_id = EXCLUDED.chain_id, description = EXCLUDED.description,
                   updated_at = now()""",
            [
                (w["id"], w["owner"], w.get("agent"), w["address"], w["chain"], w["description"])
                for w in self._upserts("wallets")
            ],
        )

    async def _upsert_assets(self) -> None:
        await self._conn.executemany(
            """INSERT INTO assets (id, chain_id, address, symbol, decimals, price_usd,
                   price_as_of, price_max_age, kind)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (id) DO UPDATE SET chain_id = EXCLUDED.chain_id,
                   address = EXCLUDED.address, symbol = EXCLUDED.symbol,
                   decimals = EXCLUDED.decimals, price_usd = EXCLUDED.price_usd,
                   price_as_of = EXCLUDED.price_as_of, price_max_age = EXCLUDED.price_max_age,
                   kind = EXCLUDED.kind,
                   updated_at = now()""",
            [_asset_row(a) for a in self._upserts("assets")],
        )

    async def _delete_policies(self) -> dict[str, asyncpg.Record]:
        """Delete removed and changed policies; return the changed ones' old rows."""
        policies = self._plan.kind("policies")
        changed = {change.id for change in policies.changed}
        rows = await self._conn.fetch(
            "DELETE FROM policies WHERE id = ANY($1::text[]) RETURNING id, version, created_at",
            [*policies.removed, *changed],
        )
        old_rows = {row["id"]: row for row in rows}
        await self._history(
            (entity_id, old_rows[entity_id]["version"], "delete") for entity_id in policies.removed
        )
        return {entity_id: old_rows[entity_id] for entity_id in changed}

    async def _insert_policies(self, replaced: Mapping[str, asyncpg.Record]) -> None:
        policies = self._plan.kind("policies")
        rows = []
        for policy in self._upserts("policies"):
            old = replaced.get(policy["id"])
            scope = {key: policy.get(key) for key in SCOPE_KEYS}
            rows.append(
                (
                    policy["id"],
                    scope["owner"],
                    scope["agent"],
                    scope["wallet"],
                    policy["description"],
                    policy["enabled"],
                    _jsonb(policy["rules"]),
                    old["version"] + 1 if old is not None else 1,
                    old["created_at"] if old is not None else None,
                    self._actor,
                )
            )
        await self._conn.executemany(
            """INSERT INTO policies (id, owner_id, agent_id, wallet_id, description, enabled,
                   rules, version, created_at, updated_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, coalesce($9, now()), $10)""",
            rows,
        )
        versions = {row[0]: row[7] for row in rows}
        await self._history(
            [(entity_id, versions[entity_id], "create") for entity_id in policies.added]
            + [(change.id, versions[change.id], "update") for change in policies.changed]
        )

    async def _history(self, entries: Iterable[tuple[str, int, str]]) -> None:
        rows = []
        for policy_id, version, action in entries:
            before = self._current["policies"].get(policy_id) if action != "create" else None
            after = self._desired["policies"].get(policy_id) if action != "delete" else None
            rows.append(
                (
                    self._change_set,
                    policy_id,
                    version,
                    action,
                    _jsonb(before) if before is not None else None,
                    _jsonb(after) if after is not None else None,
                    self._actor,
                )
            )
        await self._conn.executemany(
            """INSERT INTO policy_history (change_set, policy_id, version, action, before, after,
                   changed_by)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)""",
            rows,
        )


_UNIQUE_KEYS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "wallets": lambda wallet: (wallet["chain"], wallet["address"]),
    "assets": lambda asset: (asset["chain"], asset.get("address")),
}


def _by_id(entities: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {entity["id"]: entity for entity in entities}


def _asset_row(asset: Mapping[str, Any]) -> tuple[Any, ...]:
    price = asset.get("price_usd")
    as_of = asset.get("price_as_of")
    max_age = asset.get("price_max_age")
    return (
        asset["id"],
        asset["chain"],
        asset.get("address"),
        asset["symbol"],
        asset["decimals"],
        Decimal(price) if price is not None else None,
        datetime.fromisoformat(as_of) if as_of is not None else None,
        timedelta(seconds=parse_duration(max_age)) if max_age is not None else None,
        asset["kind"],
    )
