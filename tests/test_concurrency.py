"""The concurrency proof: caps hold across gateway processes, on one Redis and on a
3-node Redis Cluster, and after Redis loses everything.

Three ``walletgate serve`` processes share one PostgreSQL and one Redis, in front of the
devnet. Each scenario fires its requests all at once, spread over the three gateways,
then checks three witnesses that do not depend on each other: the answers the agent
got, the chain (what the recipient received, which transactions were mined), and the
audit log. Each scenario pays a fresh recipient and has its own cap rule, so scenarios
do not share counters.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet
from tests.support.spender_fleet import (
    FEE,
    document,
    flush_redis,
    fresh_recipient,
    spender_fleet_fixture,
    transfer,
    worth,
)
from walletgate.storage.counters import scale_exponent

PARALLEL = 200
#: The proof is about atomicity, not timeouts: on a loaded CI machine 200 requests at
#: once can keep a gateway from reading Redis's answers within the default 0.5 s, and a
#: spend would then be refused as unavailable (fail closed, tested elsewhere).
PROOF_ENV = {"WALLETGATE_REDIS_TIMEOUT": "5"}


@dataclass
class Outcome:
    """What one scenario's requests did, seen three ways."""

    cap: int  # the policy's cap: values and fees (FEE per transfer) count against it
    amounts: list[int]
    replies: list[dict[str, Any]]
    committed: list[int]  # amounts the audit log shows committed
    refused: list[int]  # amounts the audit log shows refused for the cap
    received: int  # what the recipient's balance on the chain grew by
    mined: int  # committed transactions with a successful receipt

    @property
    def overspend(self) -> int:
        """What the committed transfers could cost beyond the cap, fees included."""
        return max(0, sum(self.committed) + len(self.committed) * FEE - self.cap)


async def fire(fleet: Fleet, amounts: list[int], recipient: str) -> list[dict[str, Any]]:
    """Send every transfer at once, round-robin over the fleet's gateways."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return list(
            await asyncio.gather(
                *(
                    fleet.call(session, i, "eth_sendTransaction", transfer(recipient, amount))
                    for i, amount in enumerate(amounts)
                )
            )
        )


async def run_scenario(
    fleet: Fleet, devnet: Devnet, rule: str, cap: int, amounts: list[int]
) -> Outcome:
    fleet.apply(document(devnet.chain_id, rule, cap))
    recipient = fresh_recipient()
    replies = await fire(fleet, amounts, recipient)
    for _ in range(100):
        rows = await fleet.rows(
            """SELECT status, decision, reason, tx_hash, request #>> '{params,0,value}' AS value,
                      explanation ->> 'message' AS message, backend_error
                 FROM transactions WHERE request #>> '{params,0,to}' = $1""",
            recipient,
        )
        # Outcomes are written after the answers (queued): wait for the last of them.
        if all(row["status"] != "pending" for row in rows):
            break
        await asyncio.sleep(0.1)
    assert len(rows) == len(amounts), "every request is in the audit log"
    committed = [int(r["value"], 16) for r in rows if r["status"] == "committed"]
    refused = [
        int(r["value"], 16)
        for r in rows
        if r["decision"] == "deny" and r["reason"] == "cumulative_cap_exceeded"
    ]
    others = [
        dict(r)
        for r in rows
        if r["status"] != "committed" and r["reason"] != "cumulative_cap_exceeded"
    ]
    assert not others, f"neither forwarded nor refused for the cap: {others}"
    mined = 0
    for row in rows:
        if row["status"] == "committed":
            receipt = await devnet.rpc("eth_getTransactionReceipt", [row["tx_hash"]])
            mined += int(receipt["status"], 16) == 1
    received = await devnet.balance(recipient)
    return Outcome(cap, amounts, replies, committed, refused, received, mined)


def assert_exact_unit_outcome(outcome: Outcome) -> None:
    """200 spends of 1 wei against a cap worth 50 of them: exactly 50 forwarded and mined."""
    answered = [r for r in outcome.replies if "result" in r]
    limited = [r for r in outcome.replies if r.get("error", {}).get("code") == -32005]
    assert len(answered) == 50 and len(limited) == 150
    assert all(r["error"]["data"]["reason"] == "cumulative_cap_exceeded" for r in limited)
    assert all(r["error"]["data"]["retry_after"] > 0 for r in limited)
    assert len(outcome.committed) == 50 and len(outcome.refused) == 150
    assert outcome.received == 50 and outcome.mined == 50
    assert outcome.overspend == 0


def assert_random_outcome(outcome: Outcome) -> None:
    """Never over the cap; never refused unless over it (or within the rounding)."""
    assert outcome.overspend == 0, f"overspent by {outcome.overspend} wei"
    total = sum(outcome.committed)
    assert outcome.received == total
    assert outcome.mined == len(outcome.committed)
    assert sum("result" in r for r in outcome.replies) == len(outcome.committed)
    scale = 10 ** scale_exponent(outcome.cap)
    margin = (len(outcome.committed) + 2) * scale
    fees = (len(outcome.committed) + 1) * FEE  # each committed one's fee, and its own
    for amount in outcome.refused:
        # Totals only grew, so when this was refused there was at most this much room.
        assert total + fees + amount > outcome.cap - margin, "refused although it fitted"


#: Room for exactly 50 spends of 1 wei and their fees: half a fee more, since counters
#: of caps this large are scaled (rounded against the spender), and a 51st needs a whole one.
UNIT_CAP = worth(50, 50) + FEE // 2


def random_amounts(seed: int) -> tuple[int, list[int]]:
    chooser = random.Random(seed)
    cap = chooser.randrange(10**20, 10**23)  # scaled counters: these caps exceed 2**50
    return cap, [chooser.randrange(1, cap // 8) for _ in range(PARALLEL)]


# -- one Redis -------------------------------------------------------------------------------


fleet = spender_fleet_fixture(extra_env=PROOF_ENV)


async def test_200_parallel_spends_of_1_against_a_cap_of_50(fleet: Fleet, devnet: Devnet) -> None:
    outcome = await run_scenario(fleet, devnet, "unit", UNIT_CAP, [1] * PARALLEL)
    assert_exact_unit_outcome(outcome)


@pytest.mark.parametrize("seed", [11, 22, 33, 44])
async def test_random_amounts_never_overspend(fleet: Fleet, devnet: Devnet, seed: int) -> None:
    cap, amounts = random_amounts(seed)
    outcome = await run_scenario(fleet, devnet, f"random-{seed}", cap, amounts)
    print(
        f"seed {seed}: cap {cap} wei, {len(outcome.committed)} committed "
        f"({sum(outcome.committed)} wei), {len(outcome.refused)} refused, "
        f"overspend {outcome.overspend}"
    )
    assert_random_outcome(outcome)


async def test_after_flushall_the_rebuilt_counter_still_refuses(
    fleet: Fleet, devnet: Devnet, redis_server_url: str
) -> None:
    fleet.apply(document(devnet.chain_id, "rebuild", worth(100, 10)))
    recipient = fresh_recipient()
    for i in range(9):
        assert "result" in await fleet.rpc(i, "eth_sendTransaction", transfer(recipient, 10))
    await flush_redis(redis_server_url)
    refused = await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 20))
    assert refused["error"]["code"] == -32005
    assert refused["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert "result" in await fleet.rpc(2, "eth_sendTransaction", transfer(recipient, 10))
    assert "error" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 1))
    assert await devnet.balance(recipient) == 100


async def test_a_lowered_cap_applies_to_the_next_request_on_another_process(
    fleet: Fleet, devnet: Devnet
) -> None:
    fleet.apply(document(devnet.chain_id, "lowered", worth(100, 3)))
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 40))
    fleet.apply(document(devnet.chain_id, "lowered", worth(50, 2)))
    refused = await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 20))
    assert refused["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert refused["error"]["data"]["findings"][0]["limit"] == f"{worth(50, 2)} eth"
    assert "result" in await fleet.rpc(2, "eth_sendTransaction", transfer(recipient, 10))
    assert await devnet.balance(recipient) == 50
