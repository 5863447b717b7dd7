"""The checks every fault scenario ends with, from witnesses that do not depend on
each other: the chain (devnet blocks), what reached the backend (its own record), the
audit log (PostgreSQL), the counters (Redis) and what each agent was told.

1. the chain matches the audit log: every mined transaction of the scenario's wallets
   has its row, allowed and still counting (``committed``, or ``unknown``/``pending``
   until reconciled); every ``committed`` row's transaction is mined; nothing refused
   or refunded is mined;
2. no spend went over a cap: per wallet, what the chain moved and what the live rows
   count both stay within the cap;
3. every call that reached the backend has an audit row of an allowed spend, and no
   call that walletgate refused as unavailable reached it;
4. the counters agree: Redis holds what the live rows add up to, plus the reservations
   it still holds for spends that never got a row (held spends reserve before their row
   is written: refused on the way, or killed in between; over-counting is the safe
   side), minus the rows of allowed spends whose gateway was killed after writing the
   row and before reserving (``pending``, no reservation record, never reached the
   backend: nothing to count in Redis, and a rebuild counts them, the safe side); and
   once the counter and its reservation records are lost, the counter rebuilt from
   PostgreSQL holds exactly the live rows (and the records of those still in flight, for
   reconcile to settle).

:class:`Tally` is what docs/reliability.md reports.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.support.devnet import Devnet
from tests.support.fault_backend import Received
from tests.support.fault_load import Sent, Spender
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import (
    CounterRefusal,
    Counters,
    claims_from_json,
    counter_of,
    group_of,
    record_key,
)
from walletgate.storage.rebuild import LIVE_STATUSES, PostgresClaimHistory
from walletgate.storage.redis_client import RedisClient


@dataclass(frozen=True)
class Mined:
    """A transaction the devnet mined from one of the scenario's wallets."""

    tx_hash: str
    sender: str
    to: str
    value: int
    succeeded: bool


@dataclass(frozen=True)
class Row:
    """The audit row of one raw transaction."""

    id: str
    status: str
    decision: str
    reason: str
    tx_hash: str | None
    raw: str
    claims: list[CounterClaim]


@dataclass
class Tally:
    """What one scenario did, for the report."""

    requests: int = 0  # that reached a gateway
    not_connected: int = 0  # the gateway was down: the request never left the agent
    succeeded: int = 0
    refused_unavailable: int = 0
    refused_cap: int = 0
    unknown: int = 0
    reached_backend: int = 0
    mined: int = 0
    overspend_wei: int = 0
    lost_audit_rows: int = 0
    crashes: int = 0  # 5xx answers other than 503 (the "unavailable" refusals)

    def line(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in dataclasses.asdict(self).items())


async def mined_since(devnet: Devnet, first_block: int, senders: Iterable[str]) -> list[Mined]:
    """Every transaction from ``senders`` in blocks ``first_block`` .. latest."""
    wanted = {sender.lower() for sender in senders}
    found = []
    latest = await devnet.block_number()
    for number in range(first_block, latest + 1):
        block = await devnet.rpc("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            if str(tx["from"]).lower() not in wanted:
                continue
            receipt = await devnet.rpc("eth_getTransactionReceipt", [tx["hash"]])
            found.append(
                Mined(
                    str(tx["hash"]).lower(),
                    str(tx["from"]).lower(),
                    str(tx["to"]).lower(),
                    int(tx["value"], 16),
                    int(receipt["status"], 16) == 1,
                )
            )
    return found


async def audit_rows(database_url: str, raws: Iterable[str]) -> dict[str, list[Row]]:
    """The audit rows of these raw transactions, by raw transaction."""
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            """SELECT id, status, decision, reason, tx_hash, claims,
                      lower(request #>> '{params,0}') AS raw
                 FROM transactions
                WHERE method = 'eth_sendRawTransaction'
                  AND lower(request #>> '{params,0}') = ANY($1::text[])""",
            sorted(set(raws)),
        )
    finally:
        await conn.close()
    rows: dict[str, list[Row]] = {}
    for record in records:
        stored = record["claims"]
        claims = claims_from_json(json.loads(stored) if isinstance(stored, str) else stored)
        rows.setdefault(record["raw"], []).append(
            Row(
                str(record["id"]),
                record["status"],
                record["decision"],
                record["reason"],
                record["tx_hash"],
                record["raw"],
                claims,
            )
        )
    return rows


@dataclass(frozen=True)
class Witnesses:
    """Everything a scenario left behind, read once it is over."""

    sent: list[Sent]
    received: list[Received]
    mined: list[Mined]
    rows: dict[str, list[Row]]
    outside: frozenset[str] = frozenset()  # tx hashes the test sent past walletgate

    @classmethod
    async def read(
        cls,
        devnet: Devnet,
        database_url: str,
        sent: Sequence[Sent],
        received: Sequence[Received],
        first_block: int,
        spenders: Sequence[Spender],
        outside: Iterable[str] = (),
    ) -> Witnesses:
        raws = [s.raw for s in sent] + [r.raw for r in received if r.raw]
        return cls(
            list(sent),
            list(received),
            await mined_since(devnet, first_block, (s.address for s in spenders)),
            await audit_rows(database_url, raws),
            frozenset(h.lower() for h in outside),
        )

    def row(self, raw: str) -> Row | None:
        rows = self.rows.get(raw, [])
        return rows[0] if rows else None


def check_ledger(witnesses: Witnesses, cap: int, *, settled: bool) -> Tally:
    """Checks 1 to 3 of the module docstring; returns the tally, or fails the test
    naming every discrepancy. ``settled``: reconciliation ran, so every mined
    transaction's row must say ``committed``."""
    tally = _count(witnesses)
    problems = [
        *_chain_matches_log(witnesses, tally, settled=settled),
        *_within_caps(witnesses, tally, cap),
        *_forwarded_were_logged(witnesses, tally),
    ]
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(f"{len(problems)} discrepancies ({tally.line()}):\n  {shown}")
    return tally


def _count(witnesses: Witnesses) -> Tally:
    sent = witnesses.sent
    hashes = {s.tx_hash for s in sent}
    not_connected = sum(not s.reached_gateway for s in sent)
    return Tally(
        requests=len(sent) - not_connected,
        not_connected=not_connected,
        succeeded=sum(s.succeeded for s in sent),
        refused_unavailable=sum(s.unavailable for s in sent),
        refused_cap=sum(s.reason == "cumulative_cap_exceeded" for s in sent),
        unknown=sum(s.outcome_unknown for s in sent),
        reached_backend=len(witnesses.received),
        mined=sum(m.tx_hash in hashes for m in witnesses.mined),
    )


def _chain_matches_log(witnesses: Witnesses, tally: Tally, *, settled: bool) -> list[str]:
    """Check 1, and what the agents were told agrees with the chain."""
    problems = [
        f"{len(rows)} audit rows for one transaction: {[r.id for r in rows]}"
        for rows in witnesses.rows.values()
        if len(rows) > 1
    ]
    sent_by_hash = {s.tx_hash: s for s in witnesses.sent}
    for mined in witnesses.mined:
        sent = sent_by_hash.get(mined.tx_hash)
        if sent is None:
            if mined.tx_hash not in witnesses.outside:
                problems.append(f"mined {mined.tx_hash}, which no agent sent")
            continue
        row = witnesses.row(sent.raw)
        if row is None:
            tally.lost_audit_rows += 1
            problems.append(f"mined {mined.tx_hash} has no audit row")
        elif row.decision != "allow" or row.status not in LIVE_STATUSES:
            problems.append(f"mined {mined.tx_hash}, but its row {row.id} says {row.status}")
        elif settled and row.status != "committed":
            problems.append(f"mined {mined.tx_hash}, still {row.status} after reconcile")
        if not mined.succeeded:
            problems.append(f"mined {mined.tx_hash} failed on chain")
    mined_hashes = {m.tx_hash for m in witnesses.mined}
    for sent in witnesses.sent:
        row = witnesses.row(sent.raw)
        is_mined = sent.tx_hash in mined_hashes
        if row is not None and row.status == "committed" and not is_mined:
            problems.append(f"row {row.id} says committed, but {sent.tx_hash} is not mined")
        if row is not None and row.status not in LIVE_STATUSES and is_mined:
            problems.append(f"row {row.id} says {row.status}, but {sent.tx_hash} is mined")
        if sent.succeeded and not is_mined:
            problems.append(f"the agent was told {sent.tx_hash} was sent; it is not mined")
        if sent.status is not None and sent.status >= 500 and sent.status != 503:
            tally.crashes += 1
            problems.append(f"HTTP {sent.status} for {sent.tx_hash}: {sent.failure}")
    return problems


def _within_caps(witnesses: Witnesses, tally: Tally, cap: int) -> list[str]:
    """Check 2: per wallet, what the chain moved and what the live rows count."""
    sent_by_hash = {s.tx_hash: s for s in witnesses.sent}
    moved: dict[str, int] = {}
    for mined in witnesses.mined:
        if mined.tx_hash in sent_by_hash:
            moved[mined.sender] = moved.get(mined.sender, 0) + mined.value
    counted: dict[str, int] = {}
    for sent in witnesses.sent:
        row = witnesses.row(sent.raw)
        if row is not None and row.status in LIVE_STATUSES:
            counted[sent.wallet] = counted.get(sent.wallet, 0) + sent.counted
    problems = []
    for wallet in set(moved) | set(counted):
        over = max(moved.get(wallet, 0), counted.get(wallet, 0)) - cap
        tally.overspend_wei = max(tally.overspend_wei, over)
        if over > 0:
            problems.append(
                f"wallet {wallet} went {over} wei over its cap of {cap}: the chain moved "
                f"{moved.get(wallet, 0)}, its live audit rows count {counted.get(wallet, 0)}"
            )
    return problems


def _forwarded_were_logged(witnesses: Witnesses, tally: Tally) -> list[str]:
    """Check 3."""
    problems = []
    for received in witnesses.received:
        row = witnesses.row(received.raw or "")
        if row is None or row.decision != "allow":
            tally.lost_audit_rows += 1
            problems.append(
                f"{received.call.get('method')} reached the backend without an "
                f"audit row of an allowed spend: {row}"
            )
    reached = {r.raw for r in witnesses.received}
    problems += [
        f"{s.tx_hash} was refused as unavailable, yet reached the backend"
        for s in witnesses.sent
        if s.unavailable and s.raw in reached
    ]
    return problems


def wallet_claims(witnesses: Witnesses, rule: str) -> dict[str, CounterClaim]:
    """For each wallet, a claim on its ``rule`` counter too large to ever fit: peeking
    with it reports what the counter holds."""
    claims: dict[str, CounterClaim] = {}
    for sent in witnesses.sent:
        row = witnesses.row(sent.raw)
        for claim in row.claims if row is not None else ():
            if claim.rule == rule:
                claims[sent.wallet] = dataclasses.replace(claim, amount=claim.limit + 1)
    return claims


async def counted(counters: Counters, claim: CounterClaim) -> int:
    """What the counter of ``claim`` holds now (rebuilt from PostgreSQL if missing)."""
    refusal = await counters.peek([claim], datetime.now(UTC).timestamp())
    assert isinstance(refusal, CounterRefusal), "a claim over the limit always refuses"
    return refusal.already


async def check_counters(
    witnesses: Witnesses, rule: str, redis: RedisClient, pool: asyncpg.Pool
) -> None:
    """Check 4 of the module docstring, for every wallet that spent."""
    counters = Counters(redis, PostgresClaimHistory(pool))
    sent_by_raw = {s.raw: s for s in witnesses.sent}
    live = {
        rows[0].id: sent_by_raw[raw]
        for raw, rows in witnesses.rows.items()
        if rows[0].status in LIVE_STATUSES and raw in sent_by_raw
    }
    pending = {rows[0].id for rows in witnesses.rows.values() if rows[0].status == "pending"}
    reached = {r.raw for r in witnesses.received}
    problems = []
    for wallet, claim in wallet_claims(witnesses, rule).items():
        key = counter_of(claim).key
        live_total = sum(sent.counted for sent in live.values() if sent.wallet == wallet)
        orphans = 0
        reserved: set[str] = set()
        records = [r async for r in redis.scan_iter(match=record_key(group_of(claim), "*"))]
        for record in records:
            reservation = _text(record).rpartition(":res:")[2]
            entry = await redis.hget(record, key)
            if entry is not None:
                reserved.add(reservation)
            if entry is not None and reservation not in live:
                orphans += int(_text(entry).split()[1])
        unreserved = sum(
            sent.counted
            for row_id, sent in live.items()
            if sent.wallet == wallet
            and row_id in pending
            and row_id not in reserved
            and sent.raw not in reached
        )
        held = await counted(counters, claim)
        if held != live_total - unreserved + orphans:
            problems.append(
                f"{wallet}: Redis counts {held}, the live rows {live_total} (of which "
                f"{unreserved} never reserved) and reservations without a live row {orphans}"
            )
        # Lose the counter and its reservation records, as a Redis restart would.
        await redis.delete(key, *records)
        rebuilt = await counted(counters, claim)
        if rebuilt != live_total:
            problems.append(f"{wallet}: rebuilt from PostgreSQL {rebuilt}, live rows {live_total}")
    assert not problems, "counters disagree:\n  " + "\n  ".join(problems)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
