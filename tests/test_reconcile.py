"""``walletgate reconcile``: unknown outcomes settled by asking the backend.

The pure verdicts first, then real gateways in front of a backend that cuts the
connection after passing a transaction on (mined, outcome unknown), or before (never
mined), and a gateway killed while a spend is in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, StallingBackend
from tests.support.spender_fleet import (
    FEE_PER_GAS,
    GAS,
    WALLET,
    document,
    fresh_recipient,
    stalling_fleet_fixtures,
    transfer,
    worth,
)
from walletgate.storage.reconcile import Action, Candidate, ChainView, judge, same_transaction

KEY = "0x" + (3).to_bytes(32, "big").hex()  # WALLET's key
HASH = "0x" + "ab" * 32
OTHER_HASH = "0x" + "cd" * 32


def candidate(
    *,
    method: str = "eth_sendRawTransaction",
    tx_hash: str | None = HASH,
    nonce: int | None = 7,
    request_tx: dict[str, Any] | None = None,
) -> Candidate:
    return Candidate(
        id=uuid.uuid4(),
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
        status="unknown",
        method=method,
        backend="default",
        wallet=WALLET,
        nonce=nonce,
        tx_hash=tx_hash,
        request_tx=request_tx,
        claims=[],
    )


SENT = {"from": WALLET, "to": "0x" + "11" * 20, "value": "0x64", "nonce": "0x7"}
MINED = {"hash": OTHER_HASH, "to": "0x" + "11" * 20, "value": "0x64", "input": "0x"}


@pytest.mark.parametrize(
    ("case", "chain", "action", "why"),
    [
        (candidate(), ChainView(receipt={"blockNumber": "0x2a"}), Action.COMMIT, "block 42"),
        (candidate(), ChainView(in_mempool=True, account_nonce=7), Action.KEEP, "mempool"),
        (candidate(), ChainView(account_nonce=8), Action.REFUND, "nonce 7 was used"),
        (candidate(), ChainView(account_nonce=7), Action.KEEP, "could still be broadcast"),
        (
            candidate(method="eth_sendTransaction", tx_hash=None, nonce=None, request_tx=SENT),
            ChainView(),
            Action.KEEP,
            "no transaction hash and no nonce",
        ),
        (
            candidate(method="eth_sendTransaction", tx_hash=None, request_tx=SENT),
            ChainView(account_nonce=7),
            Action.KEEP,
            "still open",
        ),
        (
            candidate(method="eth_sendTransaction", tx_hash=None, request_tx=SENT),
            ChainView(account_nonce=8, same_nonce_tx=MINED),
            Action.COMMIT,
            f"mined as {OTHER_HASH}",
        ),
        (
            candidate(method="eth_sendTransaction", tx_hash=None, request_tx=SENT),
            ChainView(account_nonce=8, same_nonce_tx={**MINED, "value": "0x65"}),
            Action.REFUND,
            "used by another transaction",
        ),
        (
            candidate(method="eth_sendTransaction", tx_hash=None, request_tx=SENT),
            ChainView(account_nonce=8, searched_blocks=5000),
            Action.KEEP,
            "last 5000 blocks",
        ),
        (
            candidate(method="eth_signTransaction", tx_hash=None, request_tx=None),
            ChainView(account_nonce=8),
            Action.KEEP,
            "eth_signTransaction left no transaction hash",
        ),
    ],
)
def test_verdicts(case: Candidate, chain: ChainView, action: Action, why: str) -> None:
    verdict = judge(case, chain)
    assert verdict.action is action
    assert why in verdict.why
    if action is Action.COMMIT:
        assert verdict.tx_hash in (HASH, OTHER_HASH)


def test_the_same_transaction_is_recognised_whatever_the_spelling() -> None:
    request = {"to": to_checksum_address("0x" + "11" * 20), "value": "0x64", "data": "0xABCD"}
    assert same_transaction(request, {**MINED, "input": "0xabcd"})
    assert not same_transaction(request, {**MINED, "input": "0x"})
    assert not same_transaction({"value": "0x64"}, MINED)  # a creation is not a transfer


# -- end to end -------------------------------------------------------------------------------


stalling, fleet, forwarding = stalling_fleet_fixtures()


async def next_nonce(devnet: Devnet) -> int:
    return int(await devnet.rpc("eth_getTransactionCount", [WALLET, "pending"]), 16)


async def signed(devnet: Devnet, recipient: str, wei: int, nonce: int | None = None) -> str:
    fields = {
        "chainId": devnet.chain_id,
        "nonce": await next_nonce(devnet) if nonce is None else nonce,
        "maxFeePerGas": FEE_PER_GAS,  # counted like a fleet transfer: value + FEE
        "maxPriorityFeePerGas": 1,
        "gas": GAS,
        "to": to_checksum_address(recipient),
        "value": wei,
    }
    return "0x" + bytes(Account.sign_transaction(fields, KEY).raw_transaction).hex()


async def rows_for(fleet: Fleet, rule: str) -> list[Any]:
    """The allowed spends counted by cap ``rule``, oldest first."""
    return await fleet.rows(
        """SELECT id, status, tx_hash FROM transactions
            WHERE decision = 'allow' AND claims @> $1::jsonb ORDER BY created_at""",
        f'[{{"rule": "{rule}"}}]',
    )


async def reconcile(fleet: Fleet, *flags: str) -> str:
    """``walletgate reconcile``, in a thread: the backend it asks runs in this loop."""
    result = await asyncio.to_thread(fleet.cli, "reconcile", *flags)
    out: str = result.stdout
    return out


async def test_a_mined_transaction_whose_answer_was_lost_is_committed(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "cut-mined", worth(100, 2)))
    recipient = fresh_recipient()
    raw = await signed(devnet, recipient, 30)
    stalling.mode = "cut"
    reply = await fleet.rpc(0, "eth_sendRawTransaction", [raw])
    assert reply["error"]["data"]["reason"] == "backend_unknown"
    stalling.mode = "forward"
    ((row_id, status, tx_hash),) = await rows_for(fleet, "cut-mined")
    assert status == "unknown" and tx_hash is not None
    assert "would commit 1" in await reconcile(fleet, "--dry-run")
    assert [r["status"] for r in await rows_for(fleet, "cut-mined")] == ["unknown"]
    out = await reconcile(fleet)
    assert f"{row_id} eth_sendRawTransaction (unknown): commit: mined in block" in out
    assert [r["status"] for r in await rows_for(fleet, "cut-mined")] == ["committed"]
    over = await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 71))
    assert over["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 70))
    assert "0 to reconcile" in await reconcile(fleet)  # settled once


async def test_a_transaction_that_never_reached_the_chain_is_refunded_once_its_nonce_is_used(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "dropped", worth(100, 1)))
    recipient = fresh_recipient()
    nonce = await next_nonce(devnet)
    stalling.mode = "drop"
    reply = await fleet.rpc(0, "eth_sendRawTransaction", [await signed(devnet, recipient, 40)])
    assert reply["error"]["data"]["reason"] == "backend_unknown"
    stalling.mode = "forward"
    assert "error" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 61))
    out = await reconcile(fleet)
    assert "keep: unknown to the backend, but its nonce is still open" in out
    # The agent spends that nonce on something else: the dropped one can never be mined.
    other = await signed(devnet, fresh_recipient(), 1, nonce)
    await devnet.rpc("eth_sendRawTransaction", [other])
    out = await reconcile(fleet)
    assert f"refund: never mined, and nonce {nonce} was used by another transaction" in out
    assert [r["status"] for r in await rows_for(fleet, "dropped")] == ["refunded"]
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 100))
    assert await devnet.balance(recipient) == 100


async def test_a_send_with_a_nonce_is_found_in_the_blocks(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "by-nonce", worth(100, 2)))
    recipient = fresh_recipient()
    with_nonce = [{**transfer(recipient, 25)[0], "nonce": hex(await next_nonce(devnet))}]
    stalling.mode = "cut"
    await fleet.rpc(0, "eth_sendTransaction", with_nonce)
    await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 35))  # no nonce: no proof
    stalling.mode = "forward"
    out = await reconcile(fleet)
    assert "commit: mined as 0x" in out
    assert "keep: no transaction hash and no nonce in the request" in out
    rows = await rows_for(fleet, "by-nonce")
    assert [r["status"] for r in rows] == ["committed", "unknown"]
    receipt = await devnet.rpc("eth_getTransactionReceipt", [rows[0]["tx_hash"]])
    assert int(receipt["status"], 16) == 1
    assert await devnet.balance(recipient) == 60  # both were mined; one stays counted


async def test_a_spend_left_pending_by_a_killed_gateway_is_settled(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "orphan", worth(100, 1)))
    recipient = fresh_recipient()
    raw = await signed(devnet, recipient, 50)
    tx_hash = "0x" + keccak(hexstr=raw).hex()
    stalling.delay = 2.0
    in_flight = asyncio.ensure_future(fleet.rpc(1, "eth_sendRawTransaction", [raw]))
    for _ in range(100):
        if await rows_for(fleet, "orphan"):
            break
        await asyncio.sleep(0.05)
    fleet.processes[1].kill()  # mid-flight: the row is durable, its outcome never written
    with pytest.raises(aiohttp.ClientError):
        await in_flight
    for _ in range(100):  # the backend passes it on anyway, after its delay
        if await devnet.rpc("eth_getTransactionReceipt", [tx_hash]):
            break
        await asyncio.sleep(0.1)
    ((row_id, status, _),) = await rows_for(fleet, "orphan")
    assert status == "pending"
    assert str(row_id) not in await reconcile(fleet)  # too recent to be an orphan
    await asyncio.sleep(1.1)
    out = await reconcile(fleet, "--pending-older-than", "1s")
    assert f"{row_id} eth_sendRawTransaction (pending): commit: mined in block" in out
    assert [(r["status"], r["tx_hash"]) for r in await rows_for(fleet, "orphan")] == [
        ("committed", tx_hash)
    ]
