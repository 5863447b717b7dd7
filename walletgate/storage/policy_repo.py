"""Owners, agents, wallets, assets and policies in PostgreSQL, as one policy document.

``load_document`` reads the tables back as a canonical document, ``plan`` diffs a
document against them, and ``apply`` makes them match it in one transaction: either
every change commits (with policy history and one state-version bump) or none does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from walletgate.config.diff import Plan, diff_documents
from walletgate.config.documents import SourceDocument, normalize_document
from walletgate.config.durations import format_duration, parse_duration
from walletgate.config.semantics import ENTITY_KINDS, SCOPE_KEYS
from walletgate.errors import UserError
from walletgate.notify.events import policy_events
from walletgate.notify.outbox import record_events
from walletgate.storage.state import bump_state_version
from walletgate.storage.webhook_repo import read_webhooks, with_webhooks, write_webhooks

#: Where errors in a stored document are said to be.
DATABASE_SOURCE = "<database>"
# Serialises concurrent applies: each plans against the state the previous one left.
_APPLY_LOCK_KEY = 0x77676170706C79  # "wgapply"

_SINGULAR = {"owners": "owner", "agents": "agent", "wallets": "wallet", "assets": "asset"}


class ApplyError(UserError):
    """The database refused a change the document asked for; nothing was changed."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What ``apply`` did. ``change_set`` and ``state_version`` are ``None`` for no-ops."""

    plan: Plan
    change_set: UUID | None = None
    state_version: int | None = None

    @property
    def changed(self) -> bool:
        return self.change_set is not None


async def load_document(conn: asyncpg.Connection) -> dict[str, Any]:
    """The current state as a canonical document (what ``export`` writes).

    Reads every table in one snapshot: inside the caller's transaction if there is one,
    otherwise in a read-only repeatable-read transaction of its own.
    """
    if conn.is_in_transaction():
        raw = await _read_tables(conn)
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            raw = await _read_tables(conn)
    return normalize_document(raw, DATABASE_SOURCE)


async def load_policy_versions(conn: asyncpg.Connection) -> dict[str, int]:
    """Each policy's row version (for ``compile_document(..., policy_versions=...)``)."""
    rows = await conn.fetch("SELECT id, version FROM policies")
    return {row["id"]: row["version"] for row in rows}


async def plan(conn: asyncpg.Connection, doc: Mapping[str, Any] | SourceDocument) -> Plan:
    """What ``apply`` would change. Raises ``DocumentInvalid`` if ``doc`` is not valid."""
    desired = normalize_document(doc)
    return diff_documents(await load_document(conn), desired)


async def apply(
    conn: asyncpg.Connection, doc: Mapping[str, Any] | SourceDocument, *, actor: str
) -> ApplyResult:
    """Make the database match ``doc`` in one transaction; entities not in ``doc`` go.

    Raises ``DocumentInvalid`` (before touching the database) if ``doc`` has any error,
    and :class:`ApplyError` if the database refuses a change (for example removing an
    agent that the audit log still refers to); either way nothing changes.
    """
    desired = normalize_document(doc)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPLY_LOCK_KEY)
        current = await load_document(conn)
        changes = diff_documents(current, desired)
        if changes.empty:
            return ApplyResult(changes)
        change_set = uuid4()
        try:
            await _Writer(conn, current, desired, changes, actor, change_set).write()
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ApplyError(f"the database refused the change: {exc.detail or exc}") from None
        state_version = await bump_state_version(conn)
        # Each owner whose part changed is told, in this transaction (its new webhooks,
        # written above, already receive it).
        events = policy_events(
            current,
            desired,
            changes,
            actor=actor,
            change_set=change_set,
            state_version=state_version,
        )
        await record_events(conn, events)
    return ApplyResult(changes, change_set, state_version)


# ---------------------------------------------------------------------------- reading


async def _read_tables(conn: asyncpg.Connection) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------- writing


def _jsonb(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class _Writer:
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
