"""The group-committed audit writer against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

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


async def test_a_value_that_cannot_be_encoded_is_isolated_and_the_writer_survives(
    pool: asyncpg.Pool,
) -> None:
    writer = AuditWriter(pool, max_batch=64)
    await writer.start()
    good = [_record() for _ in range(3)]
    # json refuses ints past 4,300 digits, asyncpg a chain id past 64 bits: neither is a
    # database error, and neither may take the writer down with it.
    unencodable = [_record(request={"huge": 10**5000}), _record(chain_id=2**70)]
    results = await asyncio.gather(
        *(writer.insert(r) for r in [good[0], *unencodable, *good[1:]]), return_exceptions=True
    )
    assert [type(r) for r in results[1:3]] == [AuditUnavailable, AuditUnavailable]
    assert [results[0], *results[3:]] == [None] * 3
    await asyncio.wait_for(writer.insert(_record()), 10)  # still writing
    assert await pool.fetchval("SELECT count(*) FROM transactions") == 4
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


# The writer sends one set-based statement per table and group commit (INSERT … SELECT
# FROM unnest(…), UPDATE … FROM unnest(…)). The tests below watch the statements it sends,
# so that each behaviour is checked on a batch that really went as one statement.


@dataclass(eq=False)
class _Statements:
    """Every statement the pool's connections ran, in order, with its arguments."""

    log: list[tuple[str, tuple[Any, ...], bool]] = field(default_factory=list)

    def __call__(self, record: Any) -> None:
        self.log.append((record.query.strip(), record.args, record.exception is None))

    def starting(self, prefix: str) -> list[tuple[tuple[Any, ...], bool]]:
        """(arguments, succeeded) of the statements starting with ``prefix``."""
        return [(args, ok) for query, args, ok in self.log if query.startswith(prefix)]

    def transactions(self) -> list[list[str]]:
        """The writes of each transaction (BEGIN … COMMIT/ROLLBACK); asyncpg's own
        introspection of a statement's types (once per connection) is left out."""
        out: list[list[str]] = []
        current: list[str] | None = None
        for query, _, _ in self.log:
            word = query.split()[0].upper().rstrip(";")
            if word == "BEGIN":
                current = []
            elif word in ("COMMIT", "ROLLBACK"):
                assert current is not None
                out.append(current)
                current = None
            elif current is not None and word in ("INSERT", "UPDATE"):
                current.append(query)
        return out


@pytest_asyncio.fixture
async def watched(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, _Statements]]:
    statements = _Statements()

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(statements)

    async with asyncpg.create_pool(database_url, min_size=1, max_size=4, init=init) as pool:
        await pool.execute(
            """INSERT INTO owners (id) VALUES ('acme');
               INSERT INTO agents (id, owner_id) VALUES ('bot', 'acme');
               INSERT INTO wallets (id, owner_id, agent_id, address, chain_id)
               VALUES ('w1', 'acme', 'bot', '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', 1337)"""
        )
        statements.log.clear()
        yield pool, statements


_INSERT_PREFIX = "INSERT INTO transactions"
_UPDATE_PREFIX = "UPDATE transactions"


async def test_refused_rows_among_valid_ones_in_one_statement_are_isolated(
    watched: tuple[asyncpg.Pool, _Statements],
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool, max_batch=64)
    await writer.start()
    good = [_record(agent_id="bot", wallet_id="w1", owner_id="acme") for _ in range(6)]
    bad = [
        _record(agent_id="Not An Id"),  # the wg_id domain's CHECK, on an element of text[]
        _record(wallet_id="nowhere"),  # a well-formed id, but no such wallet: foreign key
        _record(status="bogus"),  # the status CHECK
        _record(usd_value=Decimal("-0.01")),  # CHECK (usd_value >= 0)
        _record(decision="deny"),  # status pending with decision deny: the table's CHECK
        _record(id=good[0].id),  # the same id twice in one batch: the primary key
    ]
    order = [row for pair in zip(good, bad, strict=True) for row in pair]
    results = await asyncio.gather(*(writer.insert(r) for r in order), return_exceptions=True)
    assert results[0::2] == [None] * 6
    assert all(isinstance(r, AuditUnavailable) for r in results[1::2])
    # The whole batch went as one statement and was refused; then row by row.
    attempts = statements.starting(_INSERT_PREFIX)
    assert len(attempts[0][0][0]) == len(order) and not attempts[0][1]
    assert len(attempts) == 1 + len(order)
    later = _record()
    await writer.insert(later)  # nothing stuck behind the refused rows
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM transactions")}
    assert ids == {r.id for r in good} | {later.id}
    await writer.close()


@pytest.mark.parametrize("together", [True, False], ids=["arrays", "one-row-statements"])
async def test_nulls_decimals_and_json_round_trip(
    watched: tuple[asyncpg.Pool, _Statements], together: bool
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool)
    await writer.start()
    full = _record(
        agent_id="bot",
        wallet_id="w1",
        owner_id="acme",
        backend="mainnet",
        request={"id": Decimal("1.50"), "params": [{"value": "0x1"}], "note": "a\x00b"},
        intents=[{"kind": "transfer", "amount": 10**30}],
        explanation={"rules": ["cap"], "ratio": float("inf")},
        amounts={"eth": 10**30, "usdc": 5},
        usd_value=Decimal("123456789012345678901234567890.000000000000000001"),
        claims=[{"scope": "wallet", "units": "7"}],
        timings={"decide_ms": 0.25},
    )
    bare = _record(chain_id=None, amounts={}, usd_value=None, intents=(), claims=())
    zero = _record(usd_value=Decimal("0"), chain_id=2**63 - 1)
    if together:
        await asyncio.gather(*(writer.insert(r) for r in (full, bare, zero)))
    else:
        for r in (full, bare, zero):
            await writer.insert(r)
    attempts = statements.starting(_INSERT_PREFIX)
    assert [isinstance(args[0], list) for args, _ in attempts] == (
        [True] if together else [False] * 3
    )
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            """SELECT id, agent_id, wallet_id, owner_id, chain_id, backend, request, intents,
                      explanation, amounts, usd_value, claims, timings, settled_at, tx_hash,
                      backend_error
                 FROM transactions"""
        )
    }
    got = rows[full.id]
    assert (got["agent_id"], got["wallet_id"], got["owner_id"]) == ("bot", "w1", "acme")
    assert (got["chain_id"], got["backend"]) == (1337, "mainnet")
    assert json.loads(got["request"]) == {
        "id": "1.50",
        "params": [{"value": "0x1"}],
        "note": "a\ufffdb",
    }
    assert json.loads(got["intents"]) == [{"kind": "transfer", "amount": 10**30}]
    assert json.loads(got["explanation"]) == {"rules": ["cap"], "ratio": "inf"}
    assert json.loads(got["amounts"]) == {"eth": str(10**30), "usdc": "5"}
    assert got["usd_value"] == Decimal("123456789012345678901234567890.000000000000000001")
    assert json.loads(got["claims"]) == [{"scope": "wallet", "units": "7"}]
    assert json.loads(got["timings"]) == {"decide_ms": 0.25}
    got = rows[bare.id]
    assert [got[k] for k in ("agent_id", "wallet_id", "owner_id", "chain_id", "usd_value")] == [
        None
    ] * 5
    assert [got[k] for k in ("settled_at", "tx_hash", "backend_error")] == [None] * 3
    assert (json.loads(got["amounts"]), json.loads(got["intents"])) == ({}, [])
    assert (json.loads(got["claims"]), got["backend"]) == ([], "default")
    assert rows[zero.id]["usd_value"] == Decimal("0")
    assert rows[zero.id]["chain_id"] == 2**63 - 1
    await writer.close()


async def test_held_spends_get_their_approval_rows_in_the_same_batch(
    watched: tuple[asyncpg.Pool, _Statements],
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool)
    await writer.start()
    held = [_record(decision="hold", status="held", approval_id=uuid.uuid4()) for _ in range(3)]
    others = [_record(decision="deny", status="denied", reason="cap") for _ in range(3)]
    await asyncio.gather(*(writer.insert(r) for r in [held[0], *others, *held[1:]]))
    [batch] = statements.transactions()  # one transaction: the rows, then their approvals
    assert [" ".join(q.split()[:3]) for q in batch] == [
        _INSERT_PREFIX,
        "INSERT INTO approvals",
        "INSERT INTO approval_transitions",  # each approval's first history row
    ]
    rows = await pool.fetch("SELECT id, transaction_id, status FROM approvals")
    assert {(r["id"], r["transaction_id"], r["status"]) for r in rows} == {
        (r.approval_id, r.id, "pending") for r in held
    }
    await writer.close()


async def test_outcomes_in_one_batch_land_in_queue_order_per_row(
    watched: tuple[asyncpg.Pool, _Statements],
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool)
    await writer.start()
    first, second = _record(timings={"decide_ms": 0.5}), _record(timings={"decide_ms": 0.7})
    await asyncio.gather(writer.insert(first), writer.insert(second))
    statements.log.clear()
    first_hash, second_hash = "0x" + "ab" * 32, "0x" + "cd" * 32
    # Queued without yielding: the writer takes all of them in one batch.
    writer.update(
        AuditOutcome(
            first.id,
            "unknown",
            datetime.now(UTC),
            tx_hash=first_hash.upper().replace("0X", "0x"),
            backend_error={"message": "timeout"},
            timings={"backend_ms": 2.0},
        )
    )
    writer.update(
        AuditOutcome(second.id, "committed", datetime.now(UTC), tx_hash=second_hash, timings={})
    )
    writer.update(AuditOutcome(uuid.uuid4(), "committed", datetime.now(UTC)))  # no such row
    settled = datetime.now(UTC)
    writer.update(
        AuditOutcome(first.id, "committed", settled, tx_hash=first_hash, timings={"late_ms": 3.0})
    )
    await writer.close()
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, status, tx_hash, backend_error, timings, settled_at FROM transactions"
        )
    }
    got = rows[first.id]
    assert (got["status"], got["tx_hash"], got["backend_error"]) == ("committed", first_hash, None)
    assert got["settled_at"] == settled
    assert json.loads(got["timings"]) == {"decide_ms": 0.5, "backend_ms": 2.0, "late_ms": 3.0}
    got = rows[second.id]
    assert (got["status"], got["tx_hash"]) == ("committed", second_hash)
    assert json.loads(got["timings"]) == {"decide_ms": 0.7}
    # One transaction: a statement for the first outcome of each row (three, as arrays),
    # one for the second (one row: the plain statement).
    updates = statements.starting(_UPDATE_PREFIX)
    assert [len(a[0]) if isinstance(a[0], list) else a[0] for a, _ in updates] == [3, first.id]
    assert len(statements.transactions()) == 1


async def test_a_refused_outcome_among_valid_ones_leaves_only_its_row_pending(
    watched: tuple[asyncpg.Pool, _Statements],
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool)
    await writer.start()
    records = [_record() for _ in range(3)]
    await asyncio.gather(*(writer.insert(r) for r in records))
    statements.log.clear()
    now = datetime.now(UTC)
    writer.update(AuditOutcome(records[0].id, "committed", now))
    writer.update(AuditOutcome(records[1].id, "denied", now))  # refused by the table's CHECK
    writer.update(AuditOutcome(records[2].id, "refunded", now, backend_error={"code": -3}))
    await writer.close()
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM transactions")}
    assert [rows[r.id]["status"] for r in records] == ["committed", "pending", "refunded"]
    # Written one at a time (the plain statement): NULL stays NULL, a value is kept.
    assert rows[records[0].id]["backend_error"] is None
    assert json.loads(rows[records[2].id]["backend_error"]) == {"code": -3}
    attempts = statements.starting(_UPDATE_PREFIX)
    assert len(attempts[0][0][0]) == 3 and not attempts[0][1]


async def test_a_group_commit_is_at_most_three_statements(
    watched: tuple[asyncpg.Pool, _Statements],
) -> None:
    pool, statements = watched
    writer = AuditWriter(pool, max_batch=256)
    await writer.start()

    async def spend(index: int) -> None:
        held = index % 10 == 0
        record = _record(
            decision="hold" if held else "allow",
            status="held" if held else "pending",
            approval_id=uuid.uuid4() if held else None,
        )
        await writer.insert(record)
        if not held:
            writer.update(AuditOutcome(record.id, "committed", datetime.now(UTC)))

    await asyncio.gather(*(spend(i) for i in range(200)))
    await writer.close()
    transactions = statements.transactions()
    assert transactions and all(1 <= len(t) <= 3 for t in transactions)
    assert len(transactions) < 20  # 200 rows and 180 outcomes went in a few batches
    count = await pool.fetchval("SELECT count(*) FROM transactions WHERE status <> 'pending'")
    assert count == 200
