"""Held spends end to end: two real gateways, the devnet, PostgreSQL and Redis.

- hold -> approve -> mined exactly once, two approvals racing, two gateways' workers;
- reject -> never mined, the reservation refunded (the counter checked);
- expiry while nobody watches (no read, no action: the gateways' sweep);
- delay -> mined after the delay across a restart of every gateway;
- a cancel in time -> never mined;
- a resent identical request never spends twice (pending state, then the tx hash);
- owner-signature approval: a missing, wrong-signer, expired or replayed signature is
  refused; the approver's own signature approves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, running_fleet
from tests.support.gateway import start_gateway, stop_processes, wait_healthy
from tests.support.spender_fleet import WALLET, flush_redis, fresh_recipient, transfer
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import CounterRefusal, Counters, claims_from_json, counter_of
from walletgate.storage.rebuild import PostgresClaimHistory, claims_from_row

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH = 10**18
APPROVAL = 6 * ETH // 10  # above "big": held for the owner, 10 minutes to decide
DELAYED = 3 * ETH // 10  # above "slow" only: released 3 s after it is held
EXPIRING = 12 * ETH // 10  # above "huge" too: expires 2 s after it is held
APPROVER_KEY = "0x" + (9).to_bytes(32, "big").hex()
OTHER_KEY = "0x" + (8).to_bytes(32, "big").hex()


def document(chain_id: int) -> str:
    return f"""version: 1
owners: [{{id: ops}}]
agents: [{{id: spender, owner: ops}}]
wallets:
  - {{id: hot, owner: ops, agent: spender, chain: {chain_id}, address: "{WALLET}"}}
assets:
  - {{id: eth, chain: {chain_id}, native: true, symbol: ETH, decimals: 18}}
policies:
  - id: budget
    wallet: hot
    rules:
      - {{id: daily, type: cumulative_cap, asset: eth, max: "20", window: 24h, scope: wallet}}
      - {{id: slow, type: tier, asset: eth, above: "0.2", action: delay, delay: 3s}}
      - id: big
        type: tier
        asset: eth
        above: "0.5"
        action: require_approval
        approval_timeout: 10m
      - id: huge
        type: tier
        asset: eth
        above: "1"
        action: require_approval
        approval_timeout: 2s
"""


@pytest_asyncio.fixture(scope="module")
async def fleet(
    postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[Fleet]:
    await flush_redis(redis_server_url)
    async with running_fleet(
        postgres_server_url=postgres_server_url,
        migrated_template=migrated_template,
        redis_url=redis_server_url,
        backend_url=devnet.url,
        chain_id=devnet.chain_id,
        document=document(devnet.chain_id),
        agent="spender",
        count=2,
    ) as running:
        yield running


async def hold(fleet: Fleet, recipient: str, wei: int, gateway: int = 0) -> dict[str, Any]:
    """Send a spend that a tier holds; returns the error's data."""
    reply = await fleet.rpc(gateway, "eth_sendTransaction", transfer(recipient, wei))
    assert "error" in reply, reply
    data: dict[str, Any] = reply["error"]["data"]
    assert data["decision"] == "hold" and data["status"] == "pending", reply
    assert reply["error"]["code"] == -32003
    return data


async def approval(fleet: Fleet, approval_id: str) -> asyncpg.Record:
    rows = await fleet.rows(
        """SELECT a.status, a.refunded_at, t.status AS tx_status, t.tx_hash, t.claims
             FROM approvals a JOIN transactions t ON t.id = a.transaction_id
            WHERE a.id = $1""",
        approval_id,
    )
    return rows[0]


async def until_status(fleet: Fleet, approval_id: str, *wanted: str) -> asyncpg.Record:
    """Poll until the approval reaches one of ``wanted`` (fails after 60 s)."""
    for _ in range(600):
        row = await approval(fleet, approval_id)
        if row["status"] in wanted:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"approval {approval_id} never became {wanted}: {row['status']}")


async def until_mined(devnet: Devnet, recipient: str, wei: int) -> None:
    for _ in range(600):
        if await devnet.balance(recipient) >= wei:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing reached {recipient}")


async def after(moment: str) -> None:
    """Wait until the ISO time ``moment`` has passed, plus a few sweeps."""
    await asyncio.sleep(max(0.0, datetime.fromisoformat(moment).timestamp() - time.time()))
    await asyncio.sleep(2.0)


def cli(fleet: Fleet, *args: str, check: bool = True) -> Any:
    return fleet.cli("approvals", *args, check=check)


def daily_claim(claims: Any) -> CounterClaim:
    return next(c for c in claims_from_json(claims_from_row(claims)) if c.rule == "daily")


def reserved(claims: Any) -> int:
    """What the hold's daily-cap claim adds to its counter (rounded up to its scale)."""
    counter = counter_of(daily_claim(claims))
    return counter.amount * counter.scale


async def counted(fleet: Fleet, claims: Any) -> int:
    """What the daily cap's counter holds now (a peek that never fits reports it)."""
    claim = daily_claim(claims)
    probe = dataclasses.replace(claim, amount=claim.limit + 1)
    redis = aioredis.Redis.from_url(fleet.env["WALLETGATE_REDIS_URL"])
    pool = await asyncpg.create_pool(fleet.database_url, min_size=1, max_size=2)
    try:
        refusal = await Counters(redis, PostgresClaimHistory(pool)).peek([probe], time.time())
    finally:
        await pool.close()
        await redis.aclose()
    assert isinstance(refusal, CounterRefusal)
    return refusal.already


async def test_two_racing_approvals_mine_the_spend_exactly_once(
    fleet: Fleet, devnet: Devnet
) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, APPROVAL)
    assert data["reason"] == "approval_required" and data["expires_at"], data
    assert (await approval(fleet, data["approval_id"]))["tx_status"] == "held"
    first, second = await asyncio.gather(
        asyncio.to_thread(cli, fleet, "approve", data["approval_id"], check=False),
        asyncio.to_thread(cli, fleet, "approve", data["approval_id"], check=False),
    )
    assert sorted([first.returncode, second.returncode]) == [0, 1], (first, second)
    loser = first if first.returncode else second
    assert (
        "is approved" in loser.stderr
        or "is executing" in loser.stderr
        or "is executed" in (loser.stderr)
    ), loser.stderr
    row = await until_status(fleet, data["approval_id"], "executed", "failed", "unknown")
    assert row["status"] == "executed", row
    await until_mined(devnet, recipient, APPROVAL)
    await asyncio.sleep(2.0)  # more sweeps of both gateways: nothing runs it again
    assert await devnet.balance(recipient) == APPROVAL
    view = await fleet.rpc(1, "walletgate_getApproval", [data["approval_id"]])
    assert view["result"]["status"] == "executed", view
    assert view["result"]["tx_hash"] == row["tx_hash"] and row["tx_hash"], view
    history = json.loads(cli(fleet, "show", data["approval_id"], "--json").stdout)["history"]
    assert [step["to_status"] for step in history] == [
        "pending",
        "approved",
        "executing",
        "executed",
    ], history
    # Each step the owner hears of is in the outbox, written with the step itself.
    events = await fleet.rows(
        "SELECT type FROM outbox_events WHERE payload->>'approval_id' = $1 ORDER BY created_at",
        data["approval_id"],
    )
    assert [e["type"] for e in events] == ["hold.created", "hold.approved", "hold.executed"]


async def test_a_rejected_spend_is_never_mined_and_its_amount_comes_back(
    fleet: Fleet, devnet: Devnet
) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, APPROVAL)
    row = await approval(fleet, data["approval_id"])
    held = await counted(fleet, row["claims"])
    cli(fleet, "reject", data["approval_id"], "--reason", "not this one")
    row = await approval(fleet, data["approval_id"])
    assert (row["status"], row["tx_status"]) == ("rejected", "refunded"), row
    assert row["refunded_at"] is not None
    # The reservation was given back, exactly (no other spend of this wallet meanwhile).
    assert await counted(fleet, row["claims"]) == held - reserved(row["claims"])
    approved = cli(fleet, "approve", data["approval_id"], check=False)
    assert approved.returncode == 1 and "rejected" in approved.stderr
    await asyncio.sleep(2.0)
    assert await devnet.balance(recipient) == 0


async def test_a_hold_nobody_looks_at_expires_and_is_refunded(fleet: Fleet, devnet: Devnet) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, EXPIRING)
    assert data["reason"] == "approval_required", data  # the owner's hold outranks the delay
    held = await counted(fleet, (await approval(fleet, data["approval_id"]))["claims"])
    # No read, no action: only the gateways' sweep moves it.
    row = await until_status(fleet, data["approval_id"], "expired")
    for _ in range(100):
        row = await approval(fleet, data["approval_id"])
        if row["refunded_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert (row["tx_status"], row["refunded_at"] is not None) == ("refunded", True), row
    assert await counted(fleet, row["claims"]) == held - reserved(row["claims"])
    late = cli(fleet, "approve", data["approval_id"], check=False)
    assert late.returncode == 1 and "expired" in late.stderr
    assert await devnet.balance(recipient) == 0


async def test_a_delayed_spend_runs_by_itself_across_a_restart(
    fleet: Fleet, devnet: Devnet
) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, DELAYED)
    assert data["reason"] == "delayed" and data["release_at"], data
    ports = [urlsplit(url).port for url in fleet.urls]
    stop_processes(*fleet.processes)
    await after(data["release_at"])  # released while no gateway runs
    assert await devnet.balance(recipient) == 0
    for index, port in enumerate(ports):
        assert port is not None
        fleet.processes[index] = start_gateway(fleet.env, port)
    for url, process in zip(fleet.urls, fleet.processes, strict=True):
        await wait_healthy(url, process)
    row = await until_status(fleet, data["approval_id"], "executed", "failed", "unknown")
    assert row["status"] == "executed", row
    await until_mined(devnet, recipient, DELAYED)
    await asyncio.sleep(2.0)
    assert await devnet.balance(recipient) == DELAYED


async def test_a_delay_cancelled_in_time_never_runs(fleet: Fleet, devnet: Devnet) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, DELAYED)
    cli(fleet, "cancel", data["approval_id"], "--reason", "changed my mind")
    await after(data["release_at"])
    row = await approval(fleet, data["approval_id"])
    assert (row["status"], row["tx_status"]) == ("cancelled", "refunded"), row
    assert await devnet.balance(recipient) == 0


async def test_a_freeze_wins_over_an_approval(fleet: Fleet, devnet: Devnet) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, APPROVAL)
    fleet.cli("freeze", "--agent", "spender", "--reason", "incident")
    try:
        cli(fleet, "approve", data["approval_id"])
        row = await until_status(fleet, data["approval_id"], "cancelled", "executed")
    finally:
        fleet.cli("unfreeze", "--agent", "spender", "--reason", "over")
    assert (row["status"], row["tx_status"]) == ("cancelled", "refunded"), row
    await asyncio.sleep(2.0)
    assert await devnet.balance(recipient) == 0


async def test_a_resent_request_never_spends_twice(fleet: Fleet, devnet: Devnet) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, APPROVAL)
    again = await hold(fleet, recipient, APPROVAL, gateway=1)
    assert again["approval_id"] == data["approval_id"] and again["resent"], again
    cli(fleet, "approve", data["approval_id"])
    row = await until_status(fleet, data["approval_id"], "executed", "failed", "unknown")
    assert row["status"] == "executed", row
    for gateway in (0, 1):
        reply = await fleet.rpc(gateway, "eth_sendTransaction", transfer(recipient, APPROVAL))
        assert reply.get("result") == row["tx_hash"], reply
    await asyncio.sleep(2.0)
    assert await devnet.balance(recipient) == APPROVAL
    count = await fleet.rows(
        "SELECT count(*) AS n FROM transactions WHERE request #>> '{params,0,to}' = $1",
        recipient,
    )
    assert count[0]["n"] == 1


def signed(fleet: Fleet, approval_id: str, key: str, expiry: int) -> str:
    document = json.loads(cli(fleet, "typed-data", approval_id, "--expiry", str(expiry)).stdout)
    message = encode_typed_data(full_message=document)
    return "0x" + bytes(Account.sign_message(message, key).signature).hex()


async def test_an_owner_with_an_approver_key_approves_only_by_its_signature(
    fleet: Fleet, devnet: Devnet
) -> None:
    approver = str(Account.from_key(APPROVER_KEY).address)
    cli(fleet, "approver", "ops", approver)
    try:
        recipient = fresh_recipient()
        data = await hold(fleet, recipient, APPROVAL)
        approval_id = data["approval_id"]
        expiry = int(time.time()) + 600

        def approve(*extra: str) -> Any:
            return cli(fleet, "approve", approval_id, *extra, check=False)

        assert "pass --signature" in approve().stderr
        wrong = signed(fleet, approval_id, OTHER_KEY, expiry)
        refused = approve("--signature", wrong, "--expiry", str(expiry))
        assert refused.returncode == 1 and "not by the owner's approver" in refused.stderr
        stale = signed(fleet, approval_id, APPROVER_KEY, int(time.time()) - 1)
        refused = approve("--signature", stale, "--expiry", str(int(time.time()) - 1))
        assert refused.returncode == 1 and "expired" in refused.stderr
        good = signed(fleet, approval_id, APPROVER_KEY, expiry)
        # The right signature over another expiry than the one claimed: refused.
        assert approve("--signature", good, "--expiry", str(expiry + 1)).returncode == 1
        assert (await approval(fleet, approval_id))["status"] == "pending"
        approve("--signature", good, "--expiry", str(expiry)).check_returncode()
        row = await until_status(fleet, approval_id, "executed", "failed", "unknown")
        assert row["status"] == "executed", row
        await until_mined(devnet, recipient, APPROVAL)

        other = await hold(fleet, fresh_recipient(), APPROVAL)
        replayed = cli(
            fleet, "approve", other["approval_id"], "--signature", good, "--expiry", str(expiry),
            check=False,
        )  # fmt: skip
        assert replayed.returncode == 1 and "already used" in replayed.stderr
        assert (await approval(fleet, other["approval_id"]))["status"] == "pending"
        cli(fleet, "reject", other["approval_id"], "--reason", "test over")
    finally:
        cli(fleet, "approver", "ops", "--clear")
