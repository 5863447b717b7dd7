"""Policy documents against a real PostgreSQL: load, plan, apply (one transaction), export."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings

from tests.support.policy_documents import documents
from walletgate.config.documents import (
    DocumentInvalid,
    export_document,
    normalize_document,
    parse_document,
)
from walletgate.config.settings import Settings
from walletgate.service.policy_commands import run_apply, run_export, run_plan
from walletgate.storage.cache_keys import STATE_VERSION_KEY
from walletgate.storage.policy_repo import apply, load_document, plan
from walletgate.storage.policy_write import ApplyError
from walletgate.storage.state import current_state_version

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FILE = ROOT / "examples" / "policies.yaml"
EMPTY: dict[str, Any] = {"version": 1}


def example() -> dict[str, Any]:
    """A fresh, mutable copy of examples/policies.yaml as plain data."""
    data: dict[str, Any] = parse_document(EXAMPLE_FILE.read_text(encoding="utf-8")).data
    return copy.deepcopy(data)


def policy(doc: dict[str, Any], policy_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in doc["policies"] if p["id"] == policy_id)
    return found


async def snapshot(conn: asyncpg.Connection) -> tuple[Any, ...]:
    """Everything apply may touch, to prove a failed apply touched nothing."""
    history = await conn.fetch("SELECT * FROM policy_history ORDER BY id")
    rows = await conn.fetch("SELECT id, version, created_at, updated_at FROM policies ORDER BY id")
    return (
        await load_document(conn),
        await current_state_version(conn),
        [dict(row) for row in history],
        [dict(row) for row in rows],
    )


async def history(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT change_set, policy_id, version, action, before, after, changed_by"
        " FROM policy_history ORDER BY id"
    )
    out = []
    for row in rows:
        entry = dict(row)
        for key in ("before", "after"):
            entry[key] = json.loads(entry[key]) if entry[key] is not None else None
        out.append(entry)
    return out


# ------------------------------------------------------------------ apply and load


async def test_apply_stores_the_document_and_load_reads_it_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await current_state_version(conn)
        result = await apply(conn, example(), actor="alice")

        assert result.changed and result.change_set is not None
        assert result.plan.kind("policies").added == (
            "acme-baseline", "payroll-limits", "trader-limits"
        )  # fmt: skip
        assert result.state_version == before + 1 == await current_state_version(conn)
        assert await load_document(conn) == normalize_document(example())
        stored = await conn.fetchval("SELECT rules FROM policies WHERE id = 'trader-limits'")
        # Amounts stay in asset units, as written, so export can reproduce them.
        assert json.loads(stored)[0] == {
            "id": "eth-per-tx", "type": "per_tx_cap", "asset": "eth", "max": "1.5"
        }  # fmt: skip


async def test_applying_the_same_document_again_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply(conn, example(), actor="alice")
        state = await snapshot(conn)

        result = await apply(conn, example(), actor="bob")

        assert not result.changed and result.plan.empty
        assert (result.change_set, result.state_version) == (None, None)
        assert await snapshot(conn) == state


async def test_an_empty_document_removes_everything(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply(conn, example(), actor="alice")
        result = await apply(conn, EMPTY, actor="alice")

        assert result.plan.kind("owners").removed == ("acme",)
        assert result.plan.kind("agents").removed == ("payroll", "trader")
        assert await load_document(conn) == normalize_document(EMPTY)
        for table in ("owners", "agents", "wallets", "assets", "policies"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


# ------------------------------------------------------------------ plan


async def test_plan_shows_additions_changes_and_removals_without_changing_anything(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert (await plan(conn, example())).counts() == (12, 0, 0)
        await apply(conn, example(), actor="alice")
        doc = example()
        doc["agents"].append({"id": "auditor", "owner": "acme"})
        policy(doc, "trader-limits")["rules"][0]["max"] = "2"
        doc["policies"] = [p for p in doc["policies"] if p["id"] != "payroll-limits"]
        state = await snapshot(conn)

        changes = await plan(conn, doc)

        assert await snapshot(conn) == state
        assert changes.kind("agents").added == ("auditor",)
        assert changes.kind("policies").removed == ("payroll-limits",)
        [changed] = changes.kind("policies").changed
        assert changed.id == "trader-limits"
        assert [(f.path, f.before, f.after) for f in changed.fields] == [
            ("rules[eth-per-tx].max", "1.5", "2")
        ]
        assert changes.render().splitlines() == [
            "agents:",
            "  + auditor",
            "policies:",
            "  ~ trader-limits",
            '      rules[eth-per-tx].max: "1.5" -> "2"',
            "  - payroll-limits",
            "Plan: 1 to add, 1 to change, 1 to remove.",
        ]


async def test_plan_refuses_an_invalid_document(pool: asyncpg.Pool) -> None:
    doc = example()
    doc["wallets"][0]["agent"] = "nobody"
    async with pool.acquire() as conn:
        with pytest.raises(DocumentInvalid) as raised:
            await plan(conn, doc)
    assert [e.path for e in raised.value.errors] == ["wallets[0].agent"]


# ------------------------------------------------------------------ history and versions


async def test_policy_history_records_who_changed_what_from_what_to_what(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        first = await apply(conn, example(), actor="alice")
        created = await history(conn)
        assert [(h["policy_id"], h["action"], h["version"]) for h in created] == [
            ("acme-baseline", "create", 1),
            ("payroll-limits", "create", 1),
            ("trader-limits", "create", 1),
        ]
        assert {h["change_set"] for h in created} == {first.change_set}
        assert {h["changed_by"] for h in created} == {"alice"}
        assert created[2]["before"] is None
        assert created[2]["after"] == policy(normalize_document(example()), "trader-limits")
        created_at = await conn.fetchval(
            "SELECT created_at FROM policies WHERE id = 'trader-limits'"
        )

        doc = example()
        policy(doc, "trader-limits")["enabled"] = False
        doc["policies"] = [p for p in doc["policies"] if p["id"] != "payroll-limits"]
        second = await apply(conn, doc, actor="bob")

        later = (await history(conn))[3:]
        assert [(h["policy_id"], h["action"], h["version"]) for h in later] == [
            ("payroll-limits", "delete", 1),
            ("trader-limits", "update", 2),
        ]
        assert {h["change_set"] for h in later} == {second.change_set} != {first.change_set}
        assert later[0]["after"] is None
        assert later[0]["before"] == policy(normalize_document(example()), "payroll-limits")
        assert (later[1]["before"]["enabled"], later[1]["after"]["enabled"]) == (True, False)
        row = await conn.fetchrow(
            "SELECT version, created_at, updated_by, enabled FROM policies"
            " WHERE id = 'trader-limits'"
        )
        assert dict(row) == {
            "version": 2, "created_at": created_at, "updated_by": "bob", "enabled": False
        }  # fmt: skip
        unchanged = await conn.fetchval("SELECT version FROM policies WHERE id = 'acme-baseline'")
        assert unchanged == 1


async def test_each_changing_apply_bumps_the_state_version_exactly_once(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        start = await current_state_version(conn)
        await apply(conn, example(), actor="alice")
        doc = example()
        doc["owners"][0]["name"] = "Acme Holdings"
        await apply(conn, doc, actor="alice")
        await apply(conn, doc, actor="alice")
        assert await current_state_version(conn) == start + 2


# ------------------------------------------------------------------ failures change nothing


async def test_a_document_with_an_error_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply(conn, example(), actor="alice")
        state = await snapshot(conn)
        doc = example()
        doc["owners"].append({"id": "globex"})
        policy(doc, "trader-limits")["rules"][0]["max"] = "0.0000000000000000001"

        with pytest.raises(DocumentInvalid) as raised:
            await apply(conn, doc, actor="mallory")

        assert [e.path for e in raised.value.errors] == ["policies[1].rules[0].max"]
        assert await snapshot(conn) == state


async def test_a_database_refusal_halfway_rolls_the_whole_apply_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply(conn, example(), actor="alice")
        # The audit log refers to the trader: removing it must fail, and it is removed
        # only after owners, wallets, assets and policies have already been written.
        await conn.execute(
            """INSERT INTO transactions (id, agent_id, method, request, decision, reason, status)
               VALUES ($1, 'trader', 'eth_sendTransaction', '{}', 'deny', 'per_tx_cap_exceeded',
                       'denied')""",
            uuid.uuid4(),
        )
        state = await snapshot(conn)
        doc = example()
        doc["owners"].append({"id": "globex", "name": "Globex"})
        doc["agents"] = [a for a in doc["agents"] if a["id"] != "trader"]
        doc["wallets"] = [w for w in doc["wallets"] if w["id"] != "trader-hot"]
        doc["policies"] = [p for p in doc["policies"] if p["id"] != "trader-limits"]
        policy(doc, "payroll-limits")["rules"][0]["max"] = "3000"

        with pytest.raises(ApplyError) as raised:
            await apply(conn, doc, actor="alice")

        assert str(raised.value) == (
            "cannot remove agent 'trader': the audit log (transactions) refers to it, and the "
            "audit log is kept; keep it in the document"
        )
        assert await snapshot(conn) == state
        assert not conn.is_in_transaction()


async def test_wallets_swapping_addresses_are_refused_clearly(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply(conn, example(), actor="alice")
        state = await snapshot(conn)
        doc = example()
        first, second = doc["wallets"][1], doc["wallets"][2]
        first["address"], second["address"] = second["address"], first["address"]

        with pytest.raises(ApplyError, match="payroll-main, payroll-reserve swap addresses"):
            await apply(conn, doc, actor="alice")

        assert await snapshot(conn) == state


# ------------------------------------------------------------------ orderings that must work


async def test_renaming_a_wallet_moves_its_policy_and_address_in_one_apply(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        doc = example()
        doc["policies"].append({"id": "hot-only", "wallet": "trader-hot", "rules": [
            {"id": "chains", "type": "chain_allowlist", "chains": [1337]}]})  # fmt: skip
        await apply(conn, doc, actor="alice")

        # trader-hot becomes trader-main (same address); the policy follows it.
        doc["wallets"][0]["id"] = "trader-main"
        policy(doc, "hot-only")["wallet"] = "trader-main"
        result = await apply(conn, doc, actor="alice")

        assert result.plan.kind("wallets").added == ("trader-main",)
        assert result.plan.kind("wallets").removed == ("trader-hot",)
        assert await load_document(conn) == normalize_document(doc)
        assert await conn.fetchval("SELECT version FROM policies WHERE id = 'hot-only'") == 2


async def test_an_address_can_pass_from_a_changed_wallet_to_a_new_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        doc = example()
        await apply(conn, doc, actor="alice")
        old_address = doc["wallets"][0]["address"]
        doc["wallets"][0]["address"] = "0x1111111111111111111111111111111111111111"
        doc["wallets"].append(
            {"id": "trader-cold", "owner": "acme", "chain": 1337, "address": old_address}
        )
        await apply(conn, doc, actor="alice")
        assert await load_document(conn) == normalize_document(doc)


async def test_concurrent_applies_of_one_document_are_serialised(pool: asyncpg.Pool) -> None:
    async def apply_once() -> bool:
        async with pool.acquire() as conn:
            return (await apply(conn, example(), actor="alice")).changed

    outcomes = await asyncio.gather(apply_once(), apply_once())

    assert sorted(outcomes) == [False, True]


# ------------------------------------------------------------------ round trips


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=documents())
async def test_generated_documents_survive_apply_export_apply(
    pool: asyncpg.Pool, doc: dict[str, Any]
) -> None:
    async with pool.acquire() as conn:
        await apply(conn, EMPTY, actor="test")  # each example starts from nothing
        await apply(conn, doc, actor="test")
        exported = export_document(await load_document(conn), "policies.schema.json")

        again = await apply(conn, parse_document(exported, "export.yaml"), actor="test")

        assert not again.changed, again.plan.render()
        assert (await plan(conn, doc)).empty
        assert await load_document(conn) == normalize_document(doc)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=documents(), second=documents())
async def test_any_document_can_replace_any_other(
    pool: asyncpg.Pool, first: dict[str, Any], second: dict[str, Any]
) -> None:
    async with pool.acquire() as conn:
        await apply(conn, EMPTY, actor="test")
        await apply(conn, first, actor="test")
        try:
            await apply(conn, second, actor="test")
        except ApplyError as exc:
            # The one transition with no order: changed wallets/assets swapping addresses.
            assert "swap addresses" in str(exc)
            assert await load_document(conn) == normalize_document(first)
            return
        assert await load_document(conn) == normalize_document(second)


# ------------------------------------------------------------------ the commands


def store_settings(database_url: str, redis_url: str) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, actor="carol")


async def test_apply_command_commits_publishes_and_export_round_trips(
    database_url: str,
    redis_url: str,
    redis: aioredis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = store_settings(database_url, redis_url)

    assert await run_plan(argparse.Namespace(file=str(EXAMPLE_FILE)), config) == 0
    assert capsys.readouterr().out.endswith("Plan: 12 to add, 0 to change, 0 to remove.\n")

    assert await run_apply(argparse.Namespace(file=str(EXAMPLE_FILE)), config) == 0
    out = capsys.readouterr().out
    assert "Applied change set" in out
    connection = await asyncpg.connect(database_url)
    try:
        version = await current_state_version(connection)
        changed_by = await connection.fetchval("SELECT DISTINCT changed_by FROM policy_history")
    finally:
        await connection.close()
    assert changed_by == "carol"
    assert await redis.get(STATE_VERSION_KEY) == str(version).encode()  # gateways were told

    exported = tmp_path / "exported" / "policies.yaml"
    exported.parent.mkdir()
    assert await run_export(argparse.Namespace(output=str(exported)), config) == 0
    first_line = exported.read_text(encoding="utf-8").splitlines()[0]
    schema_ref = first_line.removeprefix("# yaml-language-server: $schema=")
    assert (exported.parent / schema_ref).resolve() == (
        ROOT / "walletgate" / "config" / "schemas" / "policies.schema.json"
    )

    assert await run_apply(argparse.Namespace(file=str(exported)), config) == 0
    assert capsys.readouterr().out.startswith("No changes")


async def test_apply_command_prints_every_error_and_touches_nothing(
    database_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = store_settings(database_url, redis_url)
    bad = ROOT / "examples" / "invalid" / "unknown-asset-in-rule.yaml"

    assert await run_apply(argparse.Namespace(file=str(bad)), config) == 1

    err = capsys.readouterr().err.splitlines()
    assert err == [f"{bad}:32:9: policies[0].rules[0].asset: unknown asset 'usdc' (known: eth, "
                   "wusd)", "1 error"]  # fmt: skip
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM owners") == 0
    finally:
        await connection.close()
