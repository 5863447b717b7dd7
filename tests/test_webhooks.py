"""Webhooks: endpoints in the policy document, the outbox written in the transaction of
each change, and the delivery worker (signatures, retries, backoff, failure, retry).

Real PostgreSQL and a real HTTP receiver on loopback; the gateway-process tests (a
notify-tier spend, a SIGKILL mid-delivery) are in tests/test_webhooks_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

from tests.support.webhook_receiver import Receiver, webhook_receiver
from walletgate.config.documents import export_document, parse_document, validate_document
from walletgate.config.schema_check import policy_schema
from walletgate.notify.delivery import DeliveryConfig, WebhookWorker, backoff_delay
from walletgate.notify.outbox import EVENT_TYPES, TEST_EVENT, record_event
from walletgate.notify.signing import SignatureError, signature_header, verify
from walletgate.service.webhooks import (
    WebhookError,
    list_deliveries,
    retry_delivery,
    send_test_event,
)
from walletgate.storage.audit import AuditRecord, AuditWriter
from walletgate.storage.freezes import freeze, unfreeze
from walletgate.storage.policy_repo import apply, load_document
from walletgate.storage.policy_write import ApplyError

ASYNC = pytest.mark.asyncio(loop_scope="session")

SECRET = b"whsec_test_0123456789"
SECRET_ENV = "WALLETGATE_TEST_HOOK_SECRET"
FAST = DeliveryConfig(poll_interval=0.05, timeout=2.0, max_attempts=3, backoff_base=0.05,
                      backoff_max=0.2)  # fmt: skip


def document(url: str, **hook: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "owners": [
            {
                "id": "acme",
                "webhooks": [{"id": "ops", "url": url, "secret_env": SECRET_ENV, **hook}],
            },
            {"id": "globex"},
        ],
        "agents": [{"id": "trader", "owner": "acme"}, {"id": "bot", "owner": "globex"}],
        "wallets": [
            {
                "id": "trader-hot",
                "owner": "acme",
                "agent": "trader",
                "chain": 1337,
                "address": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
            }
        ],
    }


@pytest_asyncio.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    async with webhook_receiver(SECRET) as found:
        yield found


@pytest_asyncio.fixture
async def applied(pool: asyncpg.Pool, receiver: Receiver) -> asyncpg.Pool:
    async with pool.acquire() as conn:
        await apply(conn, document(receiver.url), actor="tests")
    return pool


async def events(pool: asyncpg.Pool, type_: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            """SELECT e.id, e.owner_id, e.payload, count(d.id) AS deliveries
                 FROM outbox_events e LEFT JOIN webhook_deliveries d ON d.event_id = e.id
                WHERE e.type = $1 GROUP BY e.id ORDER BY e.created_at, e.owner_id""",
            type_,
        )
    )


# -------------------------------------------------------------------- the document


def test_the_schema_lists_every_event_type() -> None:
    webhook = policy_schema()["$defs"]["webhook"]
    assert webhook["properties"]["events"]["items"]["enum"] == [
        t for t in EVENT_TYPES if t != TEST_EVENT
    ]


def test_webhook_errors_name_file_line_and_path() -> None:
    text = """version: 1
owners:
  - id: acme
    webhooks:
      - id: ops
        url: "https://user:pw@hooks.example.com/x"
        secret_env: OPS_SECRET
      - id: ops
        url: "https://hooks.example.com/y"
        secret_env: "whsec_not-a-name!"
        events: [spend.notify, nonsense]
"""
    errors = [str(e) for e in validate_document(parse_document(text, "p.yaml"))]
    assert any("p.yaml:10:" in e and "owners[0].webhooks[1].secret_env" in e for e in errors), (
        errors
    )
    assert any("owners[0].webhooks[1].events[1]" in e for e in errors), errors
    text = text.replace('"whsec_not-a-name!"', "OPS_SECRET").replace(", nonsense", "")
    errors = [str(e) for e in validate_document(parse_document(text, "p.yaml"))]
    assert any(
        "p.yaml:6:" in e and "owners[0].webhooks[0].url" in e and "credentials" in e for e in errors
    ), errors
    assert any("p.yaml:8:" in e and "duplicate webhook id 'ops'" in e for e in errors), errors


@ASYNC
async def test_webhooks_round_trip_through_apply_and_export(
    applied: asyncpg.Pool, receiver: Receiver
) -> None:
    async with applied.acquire() as conn:
        doc = await load_document(conn)
        owners = {o["id"]: o for o in doc["owners"]}
        assert owners["acme"]["webhooks"] == [
            {"id": "ops", "url": receiver.url, "secret_env": SECRET_ENV}
        ]
        assert "webhooks" not in owners["globex"]
        exported = export_document(doc)
        assert f"secret_env: {SECRET_ENV}" in exported and SECRET.decode() not in exported
        # The same document again changes nothing; a filter is a change of the owner.
        assert not (await apply(conn, document(receiver.url), actor="tests")).changed
        narrowed = document(receiver.url, events=["freeze.lifted", "freeze.created"])
        result = await apply(conn, narrowed, actor="tests")
        assert [c.id for c in result.plan.kind("owners").changed] == ["acme"]
        hooks = (await load_document(conn))["owners"][0]["webhooks"]
        assert hooks[0]["events"] == ["freeze.created", "freeze.lifted"]


# ---------------------------------------------------------- one transaction per event


@ASYNC
async def test_policy_apply_writes_its_events_in_its_transaction(
    applied: asyncpg.Pool, receiver: Receiver
) -> None:
    first = await events(applied, "policy.applied")
    # Both owners changed; acme's new endpoint already receives the event about it.
    assert [(e["owner_id"], e["deliveries"]) for e in first] == [("acme", 1), ("globex", 0)]
    payload = json.loads(first[0]["payload"])
    assert payload["actor"] == "tests"
    assert {"kind": "wallets", "id": "trader-hot", "action": "added"} in payload["changes"]
    # A refused apply (an agent the audit log refers to cannot go) writes no event.
    await applied.execute(
        """INSERT INTO transactions (id, agent_id, owner_id, method, request, decision,
               reason, status) VALUES ($1, 'bot', 'globex', 'eth_sendTransaction', '{}',
               'deny', 'denied', 'denied')""",
        uuid4(),
    )
    doc = document(receiver.url)
    doc["agents"] = doc["agents"][:1]
    async with applied.acquire() as conn:
        with pytest.raises(ApplyError):
            await apply(conn, doc, actor="tests")
    assert len(await events(applied, "policy.applied")) == 2


@ASYNC
async def test_freeze_and_unfreeze_write_their_events_in_their_transaction(
    applied: asyncpg.Pool,
) -> None:
    async with applied.acquire() as conn:
        # Rolled back with the change around it: no freeze, no event.
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await freeze(conn, "agent", "trader", reason="drill", actor="ops")
                raise RuntimeError("roll back")
        assert await events(applied, "freeze.created") == []
        await freeze(conn, "agent", "trader", reason="incident", actor="ops")
        await freeze(conn, "agent", "trader", reason="again", actor="ops")  # no change
        await unfreeze(conn, "agent", "trader", actor="ops", reason="fixed")
        await freeze(conn, "all", None, reason="everything", actor="ops")
    created = await events(applied, "freeze.created")
    assert [(e["owner_id"], e["deliveries"]) for e in created] == [
        ("acme", 1),
        ("acme", 1),
        ("globex", 0),
    ]
    assert json.loads(created[0]["payload"])["target"] == "trader"
    (lifted,) = await events(applied, "freeze.lifted")
    assert json.loads(lifted["payload"])["unfreeze_reason"] == "fixed"
    # Pages of deliveries follow each other without gaps or repeats (events of one
    # transaction share their created_at: the id breaks the tie).
    everything = await list_deliveries(applied, owner="acme")
    first = await list_deliveries(applied, owner="acme", limit=2)
    rest = await list_deliveries(applied, owner="acme", after=(first[-1].created_at, first[-1].id))
    assert len(everything) == 4 and [d.id for d in first + rest] == [d.id for d in everything]
    with pytest.raises(RuntimeError, match="inside the transaction"):
        async with applied.acquire() as conn:
            await record_event(conn, "acme", "hold.created", {})


def _audit_row(*, agent: str, owner: str, notify: bool) -> AuditRecord:
    return AuditRecord(
        id=uuid4(),
        created_at=datetime.now(UTC),
        method="eth_sendTransaction",
        request={"method": "eth_sendTransaction"},
        decision="allow",
        reason="allowed",
        status="pending",
        agent_id=agent,
        owner_id=owner,
        chain_id=1337,
        amounts={"eth": 10**17},
        explanation={
            "message": "allowed; the owner is notified",
            "notify": notify,
            "findings": [{"policy": "p", "rule": "big", "rule_type": "tier", "message": "m"}],
        },
        notify=notify,
    )


@ASYNC
async def test_a_notify_spend_writes_its_event_with_its_audit_row(applied: asyncpg.Pool) -> None:
    writer = AuditWriter(applied)
    await writer.start()
    try:
        notified = _audit_row(agent="trader", owner="acme", notify=True)
        await writer.insert(notified)
        await writer.insert(_audit_row(agent="trader", owner="acme", notify=False))
        # A row the database refuses (no such agent) takes its event down with it.
        with pytest.raises(Exception, match="audit"):
            await writer.insert(_audit_row(agent="ghost", owner="acme", notify=True))
    finally:
        await writer.close()
    (event,) = await events(applied, "spend.notify")
    payload = json.loads(event["payload"])
    assert payload["transaction_id"] == str(notified.id)
    assert payload["amounts"] == {"eth": str(10**17)}
    assert payload["tiers"] == [{"policy": "p", "rule": "big", "message": "m"}]
    assert event["deliveries"] == 1


# ------------------------------------------------------------------------- delivery


def test_signatures_verify_and_tampering_fails() -> None:
    body = b'{"id":"1"}'
    header = signature_header(SECRET, 1_700_000_000, body)
    assert verify(SECRET, header, body, now=1_700_000_100) == 1_700_000_000
    for secret, sent, now in (
        (b"other", body, 1_700_000_000),
        (SECRET, body + b" ", 1_700_000_000),
        (SECRET, body, 1_700_001_000),
    ):
        with pytest.raises(SignatureError):
            verify(secret, header, sent, now=now)


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert backoff_delay(1, 10, 3600, rand=lambda: 0.0) == 5
    assert backoff_delay(3, 10, 3600, rand=lambda: 1.0) == 40
    assert backoff_delay(30, 10, 3600, rand=lambda: 1.0) == 3600
    assert backoff_delay(30, 10, 3600, rand=lambda: 0.0) == 1800


async def _drain(worker: WebhookWorker, pool: asyncpg.Pool, rounds: int = 200) -> None:
    """Run the worker until nothing is pending (each round waits out the backoff)."""
    for _ in range(rounds):
        await worker.run_once()
        if not await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending")


@ASYNC
async def test_deliveries_are_signed_retried_after_500_and_then_delivered(
    applied: asyncpg.Pool, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    worker = WebhookWorker(applied, FAST)
    await worker.start()  # the background loop and run_once share the SKIP LOCKED claim
    try:
        await _drain(worker, applied)
    finally:
        await worker.close()
    event = (await events(applied, "policy.applied"))[0]  # acme's: globex has no endpoint
    assert receiver.delivered_ids() == {str(event["id"])}
    statuses = [r.status for r in receiver.received]
    assert statuses == [500, 500, 200]
    # Every attempt carried the same event id and a body the signature covers.
    assert {r.event_id for r in receiver.received} == {str(event["id"])}
    body = receiver.received[-1].body
    assert body["type"] == "policy.applied" and body["owner"] == "acme"
    assert set(body) == {"id", "type", "created_at", "owner", "data"}
    (delivery,) = await list_deliveries(applied, owner="acme")
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)


@ASYNC
async def test_a_delivery_fails_after_max_attempts_and_can_be_retried(
    applied: asyncpg.Pool, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.fail_first = 100
    worker = WebhookWorker(applied, FAST)
    await worker.start()
    try:
        await _drain(worker, applied)
        (failed,) = await list_deliveries(applied, status="failed")
        assert failed.attempts == FAST.max_attempts and failed.last_status == 500
        assert len(receiver.received) == FAST.max_attempts
        receiver.fail_first = 0
        retried = await retry_delivery(applied, failed.id, actor="ops")
        assert (retried.status, retried.attempts) == ("pending", 0)
        await _drain(worker, applied)
        assert (await list_deliveries(applied, status="delivered"))[0].id == failed.id
        # Without its secret a gateway does not send at all: the error says which.
        monkeypatch.delenv(SECRET_ENV)
        (test_delivery,) = await send_test_event(applied, "acme", actor="ops")
        await _drain(worker, applied)
        (failed_test,) = await list_deliveries(applied, status="failed")
        assert failed_test.id == test_delivery.id
        assert SECRET_ENV in (failed_test.last_error or "")
    finally:
        await worker.close()
    assert retried.event_id == failed.event_id
    with pytest.raises(WebhookError):
        await retry_delivery(applied, uuid4(), actor="ops")
    with pytest.raises(WebhookError):
        await send_test_event(applied, "nobody", actor="ops")
    rows = await applied.fetch("SELECT retried_by FROM webhook_deliveries WHERE id = $1", failed.id)
    assert rows[0]["retried_by"] == "ops"
