"""The group-committed audit writer against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from walletgate.storage.audit import AuditOutcome, AuditRecord, AuditUnavailable, AuditWriter

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _record(**overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "created_at": datetime.now(UTC),
        "method": "eth_sendTransaction",
        "request": {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": []},
        "decision": "allow",
        "reason": "allowed",
        "status": "pending",
        "chain_id": 1337,
        "amounts": {"eth": 10**24},
    }
    fields.update(overrides)
    return AuditRecord(**fields)  # type: ignore[arg-type]


async def test_concurrent_inserts_share_batches_and_are_durable(pool: asyncpg.Pool) -> None:
    writer = AuditWriter(pool, max_batch=64)
    await writer.start()
    records = [_record() for _ in range(200)]
    await asyncio.gather(*(writer.insert(r) for r in records))
    # insert() returned: every row is committed, with its amount exact
    rows = await pool.fetch("SELECT id, amounts->>'eth' AS eth FROM transactions")
    assert {r["id"] for r in rows} == {r.id for r in records}
    assert {r["eth"] for r in rows} == {str(10**24)}
    await writer.close()


async def test_a_row_the_database_refuses_does_not_spoil_its_batch(pool: asyncpg.Pool) -> None:
    writer = AuditWriter(pool, max_batch=64)
    await writer.start()
    good = [_record() for _ in range(5)]
    bad = _record(chain_id=0)  # violates CHECK (chain_id > 0)
    results = await asyncio.gather(
        *(writer.insert(r) for r in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert isinstance(results[2], AuditUnavailable)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 5
    later = _record()
    await writer.insert(later)  # the writer is not stuck on the refused row
    count = await pool.fetchval("SELECT count(*) FROM transactions")
    assert count == 6
    await writer.close()


async def test_a_malformed_outcome_still_settles_the_row(pool: asyncpg.Pool) -> None:
    writer = AuditWriter(pool)
    await writer.start()
    record = _record()
    await writer.insert(record)
    writer.update(AuditOutcome(record.id, "committed", datetime.now(UTC), tx_hash="0x" + "zz" * 32))
    second = _record()
    await writer.insert(second)
    writer.update(
        AuditOutcome(second.id, "refunded", datetime.now(UTC), backend_error={"message": "x\x00y"})
    )
    await writer.close()  # flushes the queued outcomes
    rows = {
        r["id"]: (r["status"], r["tx_hash"])
        for r in await pool.fetch("SELECT id, status, tx_hash FROM transactions")
    }
    assert rows[record.id] == ("committed", None)
    assert rows[second.id][0] == "refunded"
