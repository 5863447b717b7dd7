"""Settlement and failure end to end: real gateways, a backend that stalls, refuses or
cuts the connection in front of the real devnet, and a Redis that stops or dies.

- a client that disconnects mid-request does not stop its spend from being settled,
  exactly once (committed when the backend accepted, refunded when it refused);
- an unknown outcome keeps counting, also after Redis lost every counter;
- with Redis frozen or gone, spends are refused as unavailable and never forwarded.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.cluster import running_valkey
from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, StallingBackend
from tests.support.spender_fleet import (
    document,
    flush_redis,
    fresh_recipient,
    spender_fleet,
    stalling_fleet_fixtures,
    transfer,
    worth,
)

stalling, fleet, forwarding = stalling_fleet_fixtures()


async def abandon(fleet: Fleet, params: list[Any]) -> None:
    """Send a spend and hang up before the answer comes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        with pytest.raises(TimeoutError):
            await fleet.call(session, 0, "eth_sendTransaction", params)


async def settled_rows(fleet: Fleet, recipient: str, count: int = 1) -> list[Any]:
    """The audit rows of the ``count`` allowed spends to ``recipient``, once settled."""
    for _ in range(300):
        rows = await fleet.rows(
            """SELECT id, status, tx_hash FROM transactions
                WHERE request #>> '{params,0,to}' = $1 AND decision = 'allow'
                ORDER BY created_at""",
            recipient,
        )
        if len(rows) == count and all(row["status"] != "pending" for row in rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"the spends to {recipient} were never settled")


async def reservation_records(redis_url: str, tx_id: object) -> list[bytes | str]:
    """The reservation records of ``tx_id`` left once its settlement landed in Redis (a
    commit's DEL rides a later pipeline: it is waited for)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(100):
            found = list(await client.keys(f"*:res:{tx_id}"))
            if not found:
                break
            await asyncio.sleep(0.05)
        return found
    finally:
        await client.aclose()


async def test_a_client_that_hangs_up_does_not_stop_the_commit(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend, redis_server_url: str
) -> None:
    fleet.apply(document(devnet.chain_id, "hangup-commit", worth(10, 2)))
    recipient = fresh_recipient()
    stalling.delay = 1.5
    await abandon(fleet, transfer(recipient, 3))
    (row,) = await settled_rows(fleet, recipient)
    assert row["status"] == "committed"
    receipt = await devnet.rpc("eth_getTransactionReceipt", [row["tx_hash"]])
    assert int(receipt["status"], 16) == 1
    assert await reservation_records(redis_server_url, row["id"]) == []
    stalling.delay = 0.0
    over = await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 8))
    assert over["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 7))
    assert await devnet.balance(recipient) == 10


async def test_a_client_that_hangs_up_does_not_stop_the_refund(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend, redis_server_url: str
) -> None:
    fleet.apply(document(devnet.chain_id, "hangup-refund", worth(10, 1)))
    recipient = fresh_recipient()
    stalling.delay, stalling.mode = 1.5, "refuse"
    await abandon(fleet, transfer(recipient, 6))
    (row,) = await settled_rows(fleet, recipient)
    assert row["status"] == "refunded"
    assert await reservation_records(redis_server_url, row["id"]) == []
    stalling.delay, stalling.mode = 0.0, "forward"
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 10))
    assert await devnet.balance(recipient) == 10


async def test_unknown_outcomes_keep_counting_after_redis_loses_everything(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend, redis_server_url: str
) -> None:
    fleet.apply(document(devnet.chain_id, "unknown", worth(100, 3)))
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 60))
    stalling.mode = "cut"  # the devnet gets it, walletgate never hears back
    cut = await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 30))
    assert cut["error"]["code"] == -32002
    assert cut["error"]["data"]["reason"] == "backend_unknown"
    stalling.mode = "forward"
    rows = await settled_rows(fleet, recipient, 2)
    assert [row["status"] for row in rows] == ["committed", "unknown"]
    await flush_redis(redis_server_url)
    refused = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 20))
    assert refused["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", transfer(recipient, 10))
    assert await devnet.balance(recipient) == 100  # the unknown one was mined after all


# -- Redis stopped or gone --------------------------------------------------------------------


@asynccontextmanager
async def lonely_gateway(
    postgres_server_url: str, migrated_template: str, devnet: Devnet, **env: str
) -> AsyncIterator[tuple[Fleet, Any]]:
    """One gateway on a Redis of its own, which the test may freeze or kill."""
    with (
        tempfile.TemporaryDirectory(prefix="walletgate-lonely-") as directory,
        running_valkey(Path(directory)) as node,
    ):
        redis_url = f"redis://127.0.0.1:{node.port}/0"
        async with spender_fleet(
            postgres_server_url,
            migrated_template,
            redis_url,
            devnet,
            rule="lonely",
            cap_wei=worth(10**6, 10),
            count=1,
            extra_env=env,
        ) as running:
            try:
                yield running, node.process
            finally:
                node.process.send_signal(signal.SIGCONT)


async def test_spends_are_refused_and_not_forwarded_while_redis_is_frozen_or_gone(
    postgres_server_url: str, migrated_template: str, devnet: Devnet
) -> None:
    async with lonely_gateway(postgres_server_url, migrated_template, devnet) as lonely:
        await check_refused_while_redis_is_frozen_or_gone(*lonely, devnet)


async def check_refused_while_redis_is_frozen_or_gone(
    fleet: Fleet, valkey: Any, devnet: Devnet
) -> None:
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 1))
    valkey.send_signal(signal.SIGSTOP)  # slow: nothing answers within redis_timeout
    frozen = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 2))
    read = await _read_until_refused(fleet)
    valkey.send_signal(signal.SIGCONT)
    assert frozen["error"]["code"] == -32002
    assert frozen["error"]["data"]["reason"] == "unavailable"
    assert read["error"]["code"] == -32002  # reads_fail_open is off by default
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 4))
    valkey.kill()
    valkey.wait()
    gone = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 8))
    assert gone["error"]["code"] == -32002
    assert await devnet.balance(recipient) == 1 + 4


async def _read_until_refused(fleet: Fleet) -> dict[str, Any]:
    """Reads are answered from memory while the gateway's state lease holds (it cannot
    be renewed with Redis frozen), then refused: the first refused read's answer (the
    last answer if none was refused, which fails the caller's check)."""
    read: dict[str, Any] = {}
    for _ in range(60):  # the default lease lapses within 0.5 s; this allows 12 s
        read = await fleet.rpc(0, "eth_blockNumber", [])
        if "error" in read:
            return read
        await asyncio.sleep(0.2)
    return read


async def test_with_reads_fail_open_known_agents_still_read_but_never_spend(
    postgres_server_url: str, migrated_template: str, devnet: Devnet
) -> None:
    async with lonely_gateway(
        postgres_server_url, migrated_template, devnet, WALLETGATE_READS_FAIL_OPEN="1"
    ) as (fleet, valkey):
        recipient = fresh_recipient()
        assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 1))
        valkey.send_signal(signal.SIGSTOP)
        read = await fleet.rpc(0, "eth_getBalance", [recipient, "latest"])
        spend = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 2))
        async with (  # an agent this gateway has never seen
            aiohttp.ClientSession() as session,
            session.post(
                fleet.urls[0],
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                headers={"Authorization": "Bearer wg_" + "x" * 43},
            ) as response,
        ):
            stranger = (response.status, await response.json())
        valkey.send_signal(signal.SIGCONT)
        assert int(read["result"], 16) == 1
        assert spend["error"]["code"] == -32002
        assert spend["error"]["data"]["reason"] == "unavailable"
        assert stranger[0] == 503 and stranger[1]["error"]["code"] == -32002
        assert await devnet.balance(recipient) == 1
