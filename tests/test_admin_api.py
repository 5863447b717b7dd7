"""The admin HTTP API against real PostgreSQL and Redis: every resource, the scopes of
owner keys, revoked keys, problem documents for bad input and cursor pagination."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
import yaml
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from tests.support.admin_world import (
    Keys,
    document_text,
    insert_transaction,
    set_up_world,
    two_owner_document,
)
from walletgate.admin.app import build_admin_app
from walletgate.admin.spec import document, schema_validator
from walletgate.config.settings import Settings
from walletgate.service.admin_keys import revoke_key
from walletgate.storage.runtime import Stores, open_stores

PROBLEM = "application/problem+json"


@dataclass
class Admin:
    client: TestClient[Any, Any]
    stores: Stores
    keys: Keys

    async def call(
        self, method: str, path: str, key: str | None, **kwargs: Any
    ) -> tuple[int, Any, ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        response = await self.client.request(method, path, headers=headers, **kwargs)
        body = await response.json(content_type=None)
        if response.status >= 400:
            assert response.content_type == PROBLEM, body
            assert body["status"] == response.status and body["title"], body
        return response.status, body, response


@pytest_asyncio.fixture
async def admin(database_url: str, redis_url: str) -> AsyncIterator[Admin]:
    settings = Settings(database_url=database_url, redis_url=redis_url, policy_cache_ttl=60)
    async with open_stores(settings) as stores:
        keys = await set_up_world(stores)
        async with TestClient(TestServer(build_admin_app(stores, settings))) as client:
            yield Admin(client, stores, keys)


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def test_the_document_is_served_without_a_key(admin: Admin) -> None:
    status, body, _ = await admin.call("GET", "/openapi.json", None)
    assert status == 200
    assert body == document() and body["openapi"] == "3.1.0"


async def test_no_key_an_unknown_key_and_a_revoked_key_get_401(admin: Admin) -> None:
    for key in (None, "wga_" + "x" * 43, "wg_" + "x" * 43):
        status, body, response = await admin.call("GET", "/owners", key)
        assert status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await admin.call("GET", "/owners", admin.keys.acme))[0] == 200
    await revoke_key(admin.stores, admin.keys.acme_prefix, actor="test")
    status, body, _ = await admin.call("GET", "/owners", admin.keys.acme)
    assert status == 401 and "revoked" in body["detail"]


async def test_owners_agents_and_wallets_are_filtered_for_owner_keys(admin: Admin) -> None:
    op, acme = admin.keys.operator, admin.keys.acme
    assert ids((await admin.call("GET", "/owners", op))[1]) == ["acme", "globex"]
    assert ids((await admin.call("GET", "/owners", acme))[1]) == ["acme"]
    assert ids((await admin.call("GET", "/agents", acme))[1]) == ["payroll", "trader"]
    assert "bot" in ids((await admin.call("GET", "/agents", op))[1])
    wallets = (await admin.call("GET", "/wallets?agent=trader", acme))[1]
    assert ids(wallets) == ["trader-hot"]
    assert (await admin.call("GET", "/wallets/bot-main", op))[1]["owner_id"] == "globex"
    for path in ("/owners/globex", "/agents/bot", "/wallets/bot-main", "/agents?owner=globex"):
        status, body, _ = await admin.call("GET", path, acme)
        assert status == 403, (path, body)
    assert (await admin.call("GET", "/agents/nobody", op))[0] == 404


async def test_policies_plan_apply_and_export_record_the_key(admin: Admin) -> None:
    op = admin.keys.operator
    text = document_text()
    headers = {"Content-Type": "application/yaml"}
    status, plan, _ = await admin.call("POST", "/policies/plan", op, data=text, headers=headers)
    assert status == 200 and plan["empty"] is True
    changed = text.replace("Pays contractors once a day.", "Pays contractors twice a day.")
    status, plan, _ = await admin.call("POST", "/policies/plan", op, data=changed, headers=headers)
    assert plan["counts"] == {"added": 0, "changed": 1, "removed": 0}
    status, applied, _ = await admin.call(
        "POST", "/policies/apply", op, data=changed, headers=headers
    )
    assert status == 200 and applied["changed"] and applied["announced"], applied
    status, exported, _ = await admin.call("GET", "/policies/export", op)
    assert "Pays contractors twice a day." in exported["yaml"]
    assert yaml.safe_load(exported["yaml"])["agents"][1]["id"] == "payroll"
    # An owner key may not touch policies, which span every owner.
    for method, path in (("POST", "/policies/apply"), ("GET", "/policies/export")):
        status, _, _ = await admin.call(method, path, admin.keys.acme, data=text, headers=headers)
        assert status == 403


async def test_an_applied_change_is_recorded_with_the_key(admin: Admin) -> None:
    headers = {"Content-Type": "application/yaml"}
    data = two_owner_document()
    limits = next(p for p in data["policies"] if p["id"] == "trader-limits")
    limits["rules"][0]["max"] = "1.25"
    changed = document_text(data)
    status, applied, _ = await admin.call(
        "POST", "/policies/apply", admin.keys.operator, data=changed, headers=headers
    )
    assert status == 200 and applied["changed"]
    by = await admin.stores.pool.fetchval(
        "SELECT changed_by FROM policy_history WHERE policy_id = 'trader-limits'"
        " ORDER BY id DESC LIMIT 1"
    )
    operator = [k for k in await admin.stores.pool.fetch("SELECT prefix, scope FROM admin_keys")]
    prefix = next(k["prefix"] for k in operator if k["scope"] == "operator")
    assert by == f"admin-key:{prefix}"


async def test_an_invalid_document_gets_a_located_422(admin: Admin) -> None:
    bad = document_text().replace("window: 24h", "window: 24 hours", 1)
    status, body, _ = await admin.call(
        "POST",
        "/policies/apply",
        admin.keys.operator,
        data=bad,
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 422 and body["errors"], body
    assert body["errors"][0]["line"] > 1 and "window" in body["errors"][0]["path"]
    status, body, _ = await admin.call(
        "POST",
        "/policies/plan",
        admin.keys.operator,
        data=b"\xff\xfe",
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 422 and "UTF-8" in body["errors"][0]["message"]
    status, _, _ = await admin.call(
        "POST",
        "/policies/plan",
        admin.keys.operator,
        data=b"version: 1",
        headers={"Content-Type": "image/png"},
    )
    assert status == 415


async def test_tokens_issue_list_revoke_within_the_owner(admin: Admin) -> None:
    acme = admin.keys.acme
    status, issued, _ = await admin.call("POST", "/tokens", acme, json={"agent": "trader"})
    assert status == 201 and issued["token"].startswith("wg_")
    status, _, _ = await admin.call("POST", "/tokens", acme, json={"agent": "bot"})
    assert status == 403
    status, bot, _ = await admin.call("POST", "/tokens", admin.keys.operator, json={"agent": "bot"})
    assert status == 201
    status, listed, _ = await admin.call("GET", "/tokens", acme)
    assert [t["id"] for t in listed["items"]] == [issued["id"]]
    assert listed["items"][0]["created_by"].startswith("admin-key:wga_")
    assert "token" not in listed["items"][0]
    assert (await admin.call("POST", f"/tokens/{bot['id']}/revoke", acme))[0] == 403
    status, revoked, _ = await admin.call("POST", f"/tokens/{issued['id']}/revoke", acme)
    assert status == 200 and revoked["token"]["active"] is False and revoked["announced"]
    assert revoked["token"]["revoked_by"].startswith("admin-key:wga_")
    assert (await admin.call("POST", f"/tokens/{issued['id']}/revoke", acme))[0] == 409
    assert (await admin.call("POST", f"/tokens/{uuid.uuid4()}/revoke", acme))[0] == 404
    assert (await admin.call("POST", "/tokens", acme, json={"agent": "ghost"}))[0] == 404


async def test_transactions_page_through_every_row_once_and_filter(admin: Admin) -> None:
    pool = admin.stores.pool
    base = datetime(2026, 11, 1, tzinfo=UTC)
    mine = []
    for i in range(7):
        # Two rows share each instant, so the cursor must break ties by id.
        at = base + timedelta(minutes=i // 2)
        mine.append(await insert_transaction(pool, "trader-hot", created_at=at))
    theirs = await insert_transaction(pool, "bot-main", created_at=base)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await admin.call("GET", f"/transactions{query}", admin.keys.acme)
        assert status == 200 and len(page["items"]) <= 2
        seen += [row["id"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(t) for t in mine) and len(seen) == 7
    assert len(set(seen)) == 7
    # Newest first.
    everything = (await admin.call("GET", "/transactions?limit=100", admin.keys.operator))[1]
    created = [row["created_at"] for row in everything["items"]]
    assert created == sorted(created, reverse=True) and len(created) == 8
    since = (base + timedelta(minutes=2)).isoformat()
    recent = (
        await admin.call("GET", "/transactions", admin.keys.operator, params={"since": since})
    )[1]
    assert len(recent["items"]) == 3
    assert (await admin.call("GET", f"/transactions/{theirs}", admin.keys.acme))[0] == 403
    assert (await admin.call("GET", f"/transactions/{theirs}", admin.keys.globex))[0] == 200
    assert (await admin.call("GET", "/transactions?owner=globex", admin.keys.acme))[0] == 403
    for bad in ("cursor=nonsense", "limit=0", "limit=x", "since=yesterday", "colour=red"):
        status, body, _ = await admin.call("GET", f"/transactions?{bad}", admin.keys.operator)
        assert status == 400, (bad, body)


async def test_transactions_search_in_the_query(admin: Admin) -> None:
    pool = admin.stores.pool
    found = await insert_transaction(pool, "trader-hot")
    await pool.execute(
        "UPDATE transactions SET tx_hash = $2, reason = 'over the 100% cap' WHERE id = $1",
        found,
        "0x" + "ab" * 32,
    )
    others = [await insert_transaction(pool, "trader-hot") for _ in range(3)]
    theirs = await insert_transaction(pool, "bot-main")
    await pool.execute(
        "UPDATE transactions SET tx_hash = $2 WHERE id = $1", theirs, "0x" + "ab" * 32
    )
    for q in ("0X" + "AB" * 32, "100%", str(found)[:13]):
        status, page, _ = await admin.call("GET", "/transactions", admin.keys.acme, params={"q": q})
        assert status == 200 and [r["id"] for r in page["items"]] == [str(found)], (q, page)
    # "%" and "_" are literal, not patterns; an owner key finds only its own rows.
    status, page, _ = await admin.call("GET", "/transactions", admin.keys.acme, params={"q": "%_%"})
    assert status == 200 and page["items"] == []
    status, page, _ = await admin.call(
        "GET", "/transactions", admin.keys.operator, params={"q": "ab" * 32}
    )
    assert sorted(r["id"] for r in page["items"]) == sorted([str(found), str(theirs)])
    assert str(others[0]) not in {r["id"] for r in page["items"]}


async def test_daily_spending_sums_base_units_exactly(admin: Admin) -> None:
    pool = admin.stores.pool
    big = str(10**30 + 1)  # beyond a float's precision
    for amounts, row_status in (
        ({"eth": big}, "committed"),
        ({"eth": "2"}, "unknown"),
        ({"eth": "5"}, "refunded"),
    ):
        await insert_transaction(pool, "trader-hot", amounts=amounts, status=row_status)
    await insert_transaction(pool, "bot-main", amounts={"eth": "7"})
    status, body, _ = await admin.call(
        "GET", "/spending/daily", admin.keys.acme, params={"days": "3"}
    )
    assert status == 200, body
    today = [i for i in body["items"] if i["day"] == datetime.now(UTC).date().isoformat()]
    assert [(i["wallet"], i["asset"], i["spent"]) for i in today] == [
        ("trader-hot", "eth", str(10**30 + 3))
    ]
    assert (await admin.call("GET", "/spending/daily?owner=globex", admin.keys.acme))[0] == 403
    assert (await admin.call("GET", "/spending/daily?wallet=bot-main", admin.keys.acme))[0] == 403
    assert (await admin.call("GET", "/spending/daily?days=91", admin.keys.acme))[0] == 400


async def test_spend_summaries_show_limit_spent_and_left(admin: Admin) -> None:
    claim = {
        "key": "wallet:trader-hot:trader-limits:eth-daily:eth",
        "amount": str(2 * 10**18),
        "limit": str(5 * 10**18),
        "unit": "eth",
        "policy": "trader-limits",
        "rule": "eth-daily",
        "window_seconds": 86400,
        "calendar": None,
        "timezone": "UTC",
    }
    # Redis was flushed: the counter is missing and is rebuilt from this audit row.
    await insert_transaction(admin.stores.pool, "trader-hot", claims=[claim])
    status, summary, _ = await admin.call("GET", "/wallets/trader-hot/spend", admin.keys.acme)
    assert status == 200, summary
    caps = {(c["policy"], c["rule"]): c for c in summary["caps"]}
    daily = caps[("trader-limits", "eth-daily")]
    assert (daily["limit"], daily["spent"], daily["remaining"]) == (
        str(5 * 10**18),
        str(2 * 10**18),
        str(3 * 10**18),
    )
    assert daily["scope"] == "wallet" and daily["entity"] == "trader-hot"
    assert caps[("acme-baseline", "owner-daily-usd")]["unit"] == "micro_usd"
    assert caps[("trader-limits", "spends")]["type"] == "rate_limit"
    # Asking again reads the same counter (nothing was added by looking).
    again = (await admin.call("GET", "/wallets/trader-hot/spend", admin.keys.acme))[1]
    assert again["caps"] == summary["caps"]
    agent = (await admin.call("GET", "/agents/trader/spend", admin.keys.acme))[1]
    assert {c["scope"] for c in agent["caps"]} == {"agent"}
    owner = (await admin.call("GET", "/owners/acme/spend", admin.keys.acme))[1]
    assert [c["rule"] for c in owner["caps"]] == ["owner-daily-usd"]
    for path in ("/wallets/bot-main/spend", "/agents/bot/spend", "/owners/globex/spend"):
        assert (await admin.call("GET", path, admin.keys.acme))[0] == 403


async def test_freeze_and_unfreeze_within_reach(admin: Admin) -> None:
    acme, op = admin.keys.acme, admin.keys.operator
    body = {"scope": "agent", "target": "trader", "reason": "key leaked"}
    status, done, _ = await admin.call("POST", "/freezes", acme, json=body)
    assert status == 200 and done["changed"] and done["frozen_by"].startswith("admin-key:")
    status, _, _ = await admin.call("POST", "/freezes", op, json={**body, "target": "bot"})
    assert status == 200
    listed = (await admin.call("GET", "/freezes", acme))[1]
    assert [(f["scope"], f["target"]) for f in listed["items"]] == [("agent", "trader")]
    assert len((await admin.call("GET", "/freezes", op))[1]["items"]) == 2
    assert (await admin.call("POST", "/freezes", acme, json={**body, "target": "bot"}))[0] == 403
    everyone = {"scope": "all", "reason": "incident"}
    assert (await admin.call("POST", "/freezes", acme, json=everyone))[0] == 403
    assert (await admin.call("POST", "/freezes", op, json={"scope": "agent", "reason": "x"}))[
        0
    ] == 400
    status, lifted, _ = await admin.call(
        "POST", "/freezes/lift", acme, json={"scope": "agent", "target": "trader"}
    )
    assert status == 200 and lifted["changed"]
    row = await admin.stores.pool.fetchrow("SELECT * FROM freezes WHERE target = 'trader'")
    assert row["unfrozen_by"].startswith("admin-key:wga_")


async def test_settling_a_spend_by_hand_is_for_operators(admin: Admin) -> None:
    tx = await insert_transaction(admin.stores.pool, "trader-hot", status="unknown")
    body = {"outcome": "refunded", "reason": "never broadcast"}
    assert (await admin.call("POST", f"/transactions/{tx}/settle", admin.keys.acme, json=body))[
        0
    ] == 403
    status, done, _ = await admin.call(
        "POST", f"/transactions/{tx}/settle", admin.keys.operator, json=body
    )
    assert status == 200 and done["previous_status"] == "unknown", done
    assert await admin.stores.pool.fetchval("SELECT status FROM transactions WHERE id=$1", tx) == (
        "refunded"
    )
    again = await admin.call("POST", f"/transactions/{tx}/settle", admin.keys.operator, json=body)
    assert again[0] == 409


async def _held(admin: Admin, wallet: str) -> uuid.UUID:
    tx = await insert_transaction(admin.stores.pool, wallet, decision="hold", status="held")
    approval: uuid.UUID = await admin.stores.pool.fetchval(
        "INSERT INTO approvals (transaction_id, expires_at)"
        " VALUES ($1, now() + interval '1 hour') RETURNING id",
        tx,
    )
    return approval


async def test_approvals_are_listed_shown_and_decided_within_the_owner(admin: Admin) -> None:
    mine, theirs = await _held(admin, "trader-hot"), await _held(admin, "bot-main")
    listed = (await admin.call("GET", "/approvals", admin.keys.acme))[1]
    assert ids(listed) == [str(mine)]
    assert len(ids((await admin.call("GET", "/approvals", admin.keys.operator))[1])) == 2
    status, shown, _ = await admin.call("GET", f"/approvals/{mine}", admin.keys.acme)
    assert status == 200 and shown["wallet_id"] == "trader-hot"
    approval = schema_validator("Approval")
    for item in (shown, *listed["items"]):
        assert not list(approval.iter_errors(item)), item
    assert (await admin.call("GET", f"/approvals/{theirs}", admin.keys.acme))[0] == 403
    for verb in ("approve", "reject", "cancel"):
        path = f"/approvals/{theirs}/{verb}"
        assert (await admin.call("POST", path, admin.keys.acme, json={}))[0] == 403
    status, cancelled, _ = await admin.call(
        "POST", f"/approvals/{mine}/cancel", admin.keys.acme, json={"reason": "changed my mind"}
    )
    assert status == 200 and cancelled["status"] == "cancelled", cancelled
    assert cancelled["decided_by"] == f"admin-key:{admin.keys.acme_prefix}"
    assert not list(approval.iter_errors(cancelled))
    status, body, _ = await admin.call("POST", f"/approvals/{mine}/approve", admin.keys.acme)
    assert status == 409, body
    missing = f"/approvals/{uuid.uuid4()}/reject"
    assert (await admin.call("POST", missing, admin.keys.operator))[0] == 404


async def test_webhook_deliveries_are_listed_and_retried(admin: Admin) -> None:
    status, listed, _ = await admin.call("GET", "/webhooks/deliveries", admin.keys.acme)
    assert status == 200 and listed == {"items": [], "next_cursor": None}
    missing = f"/webhooks/deliveries/{uuid.uuid4()}/retry"
    assert (await admin.call("POST", missing, admin.keys.operator))[0] == 404
    assert (await admin.call("GET", "/webhooks/deliveries?owner=globex", admin.keys.acme))[0] == 403


async def test_bad_input_gets_problem_documents_never_a_500(admin: Admin) -> None:
    op = admin.keys.operator
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        (
            "POST",
            "/tokens",
            {"data": "{not json", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("POST", "/tokens", {"json": {"agent": "trader", "extra": 1}}, 400),
        ("POST", "/tokens", {"json": {"agent": "NOT AN ID"}}, 400),
        ("POST", "/tokens", {"data": "agent=trader"}, 415),
        ("POST", "/tokens", {}, 400),
        ("POST", "/freezes", {"json": {"scope": "planet", "reason": "x"}}, 400),
        ("GET", "/transactions/not-a-uuid", {}, 400),
        ("GET", "/agents/UPPER", {}, 400),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/owners", {}, 405),
        (
            "POST",
            "/policies/plan",
            {"data": b"x" * 2_000_000, "headers": {"Content-Type": "application/yaml"}},
            413,
        ),
    ]
    for method, path, kwargs, expected in cases:
        status, body, _ = await admin.call(method, path, op, **kwargs)
        assert status == expected, (method, path, body)
        assert body["detail"], body
