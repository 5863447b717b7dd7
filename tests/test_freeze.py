"""The kill switch: ``walletgate freeze`` / ``unfreeze`` for an agent, a wallet or all.

From the pure rule (a frozen agent or wallet is refused, with who and why), through
PostgreSQL (the freeze log, the state version bump) and the policy cache, to three
real gateways that all refuse the next request after ``walletgate freeze`` returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet
from tests.support.policy_world import NOW, eth_limit, native, policy, spend, world
from tests.support.spender_fleet import fresh_recipient, spender_fleet_fixture, transfer
from walletgate.config.settings import Settings
from walletgate.policies.decision import Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import Freeze, PerTxCap, PolicySet
from walletgate.storage.cache import StateCache, publish_state
from walletgate.storage.cache_entries import decode_state, encode_state
from walletgate.storage.cache_keys import POLICY_DOCUMENT_KEY
from walletgate.storage.freezes import FreezeError, freeze, list_freezes, unfreeze
from walletgate.storage.state import current_state_version

BOB = "0xd41c057fd1c78805aac12b0a94a405c0461a6fbb"
SINCE = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def frozen(*freezes: Freeze) -> PolicySet:
    allowing = policy("trader-limits", PerTxCap("eth-per-tx", eth_limit("1.5")))
    return dataclasses.replace(world(allowing), frozen=freezes)


def on(scope: str, target: str | None) -> Freeze:
    return Freeze(scope, target, "compromised key suspected", "alice", SINCE)


# -- the rule ----------------------------------------------------------------------------------


def test_an_unfrozen_world_allows_the_spend() -> None:
    assert evaluate(spend(native(BOB, 10**17)), frozen(), NOW).outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    "freeze",
    [on("agent", "trader"), on("wallet", "trader-hot"), on("all", None)],
    ids=["agent", "wallet", "all"],
)
def test_a_freeze_refuses_the_spend_and_says_who_and_why(freeze: Freeze) -> None:
    decision = evaluate(spend(native(BOB, 10**17)), frozen(freeze), NOW)
    assert decision.outcome is Outcome.DENY
    assert decision.reason is Reason.FROZEN
    assert decision.claims == ()
    assert "is frozen (by alice at 2026-11-26T09:30:00+00:00: compromised key" in decision.message


def test_freezes_of_others_do_not_apply() -> None:
    others = frozen(on("agent", "payroll"), on("wallet", "payroll-main"))
    assert evaluate(spend(native(BOB, 10**17)), others, NOW).outcome is Outcome.ALLOW


def test_the_broadest_freeze_speaks_whatever_their_order() -> None:
    freezes = [on("wallet", "trader-hot"), on("all", None), on("agent", "trader")]
    for order in (freezes, freezes[::-1]):
        found = frozen(*order).freeze_for("trader", "trader-hot")
        assert found is not None and found.scope == "all"
    assert frozen(on("wallet", "trader-hot"), on("agent", "trader")).freeze_for(
        "trader", "trader-hot"
    ) == on("agent", "trader")


# -- PostgreSQL and the cache ---------------------------------------------------------------------


@pytest_asyncio.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    await pool.execute(
        """INSERT INTO owners (id) VALUES ('acme');
           INSERT INTO agents (id, owner_id) VALUES ('trader', 'acme');
           INSERT INTO wallets (id, owner_id, agent_id, address, chain_id)
           VALUES ('hot', 'acme', 'trader', '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', 1)"""
    )
    async with pool.acquire() as connection:
        yield connection


async def test_a_freeze_is_logged_and_bumps_the_state_version(conn: asyncpg.Connection) -> None:
    before = await current_state_version(conn)
    change = await freeze(conn, "agent", "trader", reason=" key leaked ", actor="alice")
    assert change.changed and change.state_version == before + 1
    assert change.freeze is not None and change.freeze.reason == "key leaked"
    again = await freeze(conn, "agent", "trader", reason="twice", actor="bob")
    assert not again.changed and again.freeze == change.freeze
    assert await current_state_version(conn) == before + 1
    lifted = await unfreeze(conn, "agent", "trader", actor="carol", reason="rotated")
    assert lifted.changed and lifted.state_version == before + 2
    assert not (await unfreeze(conn, "agent", "trader", actor="carol")).changed
    (row,) = await list_freezes(conn, lifted=True)
    assert (row["frozen_by"], row["reason"]) == ("alice", "key leaked")
    assert (row["unfrozen_by"], row["unfreeze_reason"]) == ("carol", "rotated")
    assert await list_freezes(conn) == []


async def test_freeze_names_what_exists_and_says_why(conn: asyncpg.Connection) -> None:
    with pytest.raises(FreezeError, match="there is no agent 'ghost' to freeze"):
        await freeze(conn, "agent", "ghost", reason="x", actor="alice")
    with pytest.raises(FreezeError, match="there is no wallet 'trader' to freeze"):
        await freeze(conn, "wallet", "trader", reason="x", actor="alice")
    with pytest.raises(FreezeError, match="say why"):
        await freeze(conn, "all", None, reason="   ", actor="alice")
    assert await list_freezes(conn, lifted=True) == []


async def test_every_cache_sees_the_freeze_after_it_is_published(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    settings = Settings()
    cache = StateCache(redis, pool, settings)
    assert (await cache.snapshot()).policies.frozen == ()
    await freeze(conn, "wallet", "hot", reason="drained", actor="alice")
    await freeze(conn, "all", None, reason="incident", actor="alice")
    await publish_state(redis, pool)
    policies = (await cache.snapshot()).policies
    assert {(f.scope, f.target) for f in policies.frozen} == {("wallet", "hot"), ("all", None)}
    other = (await StateCache(redis, pool, settings).snapshot()).policies  # from Redis
    assert other.frozen == policies.frozen
    cached = decode_state(await redis.get(POLICY_DOCUMENT_KEY))
    assert cached is not None and cached.freezes == policies.frozen
    assert decode_state(encode_state(cached)) == cached


def test_a_cache_entry_without_freezes_is_a_miss() -> None:
    assert decode_state(b'{"version": 3, "document": {}, "policy_versions": {}}') is None
    garbage = b'{"version": 3, "document": {}, "policy_versions": {}, "freezes": [{"x": 1}]}'
    assert decode_state(garbage) is None


# -- three gateways --------------------------------------------------------------------------------


fleet = spender_fleet_fixture(rule="daily", extra_env={"WALLETGATE_ACTOR": "oncall"})


@pytest.mark.parametrize(
    ("flags", "what"),
    [(["--agent", "spender"], "agent 'spender'"), (["--wallet", "hot"], "wallet 'hot'"),
     (["--all"], "every agent and wallet")],
    ids=["agent", "wallet", "all"],
)  # fmt: skip
async def test_every_gateway_refuses_the_next_spend_after_freeze_returns(
    fleet: Fleet, devnet: Devnet, flags: list[str], what: str
) -> None:
    recipient = fresh_recipient()
    for gateway in range(3):  # every gateway has the state cached before the freeze
        assert "result" in await fleet.rpc(gateway, "eth_sendTransaction", transfer(recipient, 1))
    out = fleet.cli("freeze", *flags, "--reason", "agent looping on payments").stdout
    assert f"Froze {what}" in out
    for gateway in range(3):
        reply = await fleet.rpc(gateway, "eth_sendTransaction", transfer(recipient, 5))
        assert reply["error"]["code"] == -32003
        assert reply["error"]["data"]["reason"] == "frozen"
        assert "by oncall" in reply["error"]["message"]
        assert "agent looping on payments" in reply["error"]["message"]
    listing = fleet.cli("freeze", "--list").stdout
    assert what in listing and "oncall" in listing
    assert "already frozen" in fleet.cli("freeze", *flags, "--reason", "again").stdout
    assert "Unfroze" in fleet.cli("unfreeze", *flags, "--reason", "fixed").stdout
    for gateway in range(3):
        assert "result" in await fleet.rpc(gateway, "eth_sendTransaction", transfer(recipient, 2))
    assert await devnet.balance(recipient) == 3 + 6
    rows = await fleet.rows(
        "SELECT reason FROM transactions WHERE request #>> '{params,0,to}' = $1 AND status = "
        "'denied'",
        recipient,
    )
    assert [r["reason"] for r in rows] == ["frozen"] * 3


async def test_freeze_commands_explain_mistakes(fleet: Fleet) -> None:
    unknown = fleet.cli("freeze", "--agent", "ghost", "--reason", "x", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "walletgate: there is no agent 'ghost' to freeze"
    silent = fleet.cli("freeze", "--wallet", "hot", check=False)
    assert silent.returncode == 1 and "say why (--reason)" in silent.stderr
    assert "Traceback" not in unknown.stderr + silent.stderr
    assert "not frozen" in fleet.cli("unfreeze", "--wallet", "hot").stdout
    assert fleet.cli("freeze", "--agent", "x", "--all", check=False).returncode == 2
