"""The order of an allowed spend end to end: audit row, then reservation, then forward.

Real gateways, the real devnet, a Redis of the test's own and PostgreSQL:

- a spend refused by a cap after its row was written ends as the refusal row it always
  was (``deny`` / ``denied`` / ``cumulative_cap_exceeded``, no claims);
- a committed spend's reservation records go with a later pipeline (deferred), and the
  wallet's cached balance is dropped before the agent hears of the spend;
- a gateway killed between writing the row and reserving (its ADMIT never reached Redis:
  a one-way partition in front of Redis holds it) forwards nothing and under-counts
  nothing: Redis counts what was forwarded, a counter rebuilt from PostgreSQL counts the
  pending row too (the safe side), and ``walletgate reconcile`` refunds the row once its
  nonce is used by another transaction, after which both agree on what was forwarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from eth_account import Account
from eth_utils import to_checksum_address

from tests.support.cluster import ValkeyNode, running_valkey
from tests.support.devnet import Devnet
from tests.support.fleet import Fleet
from tests.support.gateway import start_gateway, wait_healthy
from tests.support.spender_fleet import (
    FEE,
    FEE_PER_GAS,
    GAS,
    WALLET,
    document,
    fresh_recipient,
    spender_fleet,
    transfer,
    worth,
)
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import (
    CounterRefusal,
    Counters,
    claims_from_json,
    counter_of,
    group_of,
    record_key,
)
from walletgate.storage.rebuild import PostgresClaimHistory

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY = "0x" + (3).to_bytes(32, "big").hex()  # the fleet wallet's devnet key


class Partition:
    """A TCP relay in front of Redis that can stop passing on what clients send (a
    one-way partition): what it holds never reaches Redis once the connection is cut.

    It runs in a thread of its own: the tests run blocking ``walletgate`` commands (and
    gateways) that must reach Redis through it while the test's own loop waits.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._open = asyncio.Event()
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> Partition:
        self._thread.start()
        self._call(self._start()).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hold(self) -> None:
        """From now on, nothing clients send reaches Redis (it waits here)."""
        self._call(self._hold()).result(timeout=10)

    def cut(self) -> None:
        """Drop every connection and whatever it held; new connections pass again."""
        self._call(self._cut()).result(timeout=10)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()

    async def _hold(self) -> None:
        self._open.clear()

    async def _cut(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for client, upstream in list(self._links):
            client.close()
            upstream.close()
        self._links.clear()
        self._open.set()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self._target)
        self._links.add((client_w, up_w))

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool
        ) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    if gated:
                        await self._open.wait()
                    writer.write(data)
                    await writer.drain()
            writer.close()

        tasks = [
            asyncio.ensure_future(pump(client_r, up_w, True)),
            asyncio.ensure_future(pump(up_r, client_w, False)),
        ]
        self._tasks.update(tasks)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        self._tasks.difference_update(tasks)
        self._links.discard((client_w, up_w))


@dataclasses.dataclass
class World:
    fleet: Fleet
    valkey: ValkeyNode
    partition: Partition
    devnet: Devnet

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.valkey.port}/0"


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str, migrated_template: str, devnet: Devnet
) -> AsyncIterator[World]:
    with (
        tempfile.TemporaryDirectory(prefix="walletgate-order-") as directory,
        running_valkey(Path(directory)) as valkey,
        Partition(valkey.port) as partition,
    ):
        async with spender_fleet(
            postgres_server_url,
            migrated_template,
            partition.url,
            devnet,
            rule="order",
            cap_wei=worth(10**6, 10),
            count=1,
            # Long enough that the gateway is surely killed while it waits for Redis.
            extra_env={"WALLETGATE_REDIS_TIMEOUT": "30"},
        ) as fleet:
            yield World(fleet, valkey, partition, devnet)


async def rows_to(world: World, recipient: str) -> list[Any]:
    return await world.fleet.rows(
        """SELECT id, status, decision, reason, claims, explanation, settled_at
             FROM transactions WHERE request #>> '{params,0,to}' = $1 ORDER BY created_at""",
        recipient,
    )


async def counted(redis_url: str, database_url: str, claim: CounterClaim) -> int:
    """What the counter of ``claim`` holds (rebuilt from PostgreSQL if it is missing)."""
    redis = aioredis.Redis.from_url(redis_url)
    pool = await _pool(database_url)
    try:
        over = dataclasses.replace(claim, amount=claim.limit + 1)
        refusal = await Counters(redis, PostgresClaimHistory(pool)).peek(
            [over], datetime.now(UTC).timestamp()
        )
        assert isinstance(refusal, CounterRefusal)
        return refusal.already
    finally:
        await pool.close()
        await redis.aclose()


async def _pool(database_url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(database_url, min_size=1, max_size=2)


def claim_of(row: Any) -> CounterClaim:
    stored = row["claims"]
    (claim,) = claims_from_json(json.loads(stored) if isinstance(stored, str) else stored)
    return claim


async def test_a_cap_refusal_after_the_row_ends_as_the_refusal_row(world: World) -> None:
    fleet, devnet = world.fleet, world.devnet
    fleet.apply(document(devnet.chain_id, "order-cap", worth(10, 1)))
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 6))
    over = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 5))
    data = over["error"]["data"]
    assert over["error"]["code"] == -32005 and data["reason"] == "cumulative_cap_exceeded"
    allowed, refused = await rows_to(world, recipient)
    assert str(refused["id"]) == data["transaction_id"]
    # Exactly what a refusal row has always looked like: written once its outcome is known.
    assert (refused["decision"], refused["reason"], refused["status"]) == (
        "deny",
        "cumulative_cap_exceeded",
        "denied",
    )
    assert json.loads(refused["claims"]) == [] and refused["settled_at"] is None
    explanation = json.loads(refused["explanation"])
    assert explanation["reason"] == "cumulative_cap_exceeded"
    assert explanation["decision"] == "deny"
    assert allowed["decision"] == "allow" and allowed["status"] in ("pending", "committed")
    assert await devnet.balance(recipient) == 6


async def test_the_commit_is_deferred_and_lands_and_the_balance_is_fresh(world: World) -> None:
    fleet, devnet = world.fleet, world.devnet
    fleet.apply(document(devnet.chain_id, "order-commit", worth(10**6, 4)))
    before = await fleet.rpc(0, "eth_getBalance", [WALLET, "latest"])
    cached = await fleet.rpc(0, "eth_getBalance", [WALLET, "latest"])
    assert cached["result"] == before["result"]  # the second one may come from the cache
    recipient = fresh_recipient()
    sent = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 1000))
    assert "result" in sent, sent
    # Asked right after the answer: never the balance from before the spend.
    after = await fleet.rpc(0, "eth_getBalance", [WALLET, "latest"])
    assert int(after["result"], 16) < int(before["result"], 16)
    (row,) = await rows_to(world, recipient)
    redis = aioredis.Redis.from_url(world.redis_url)
    try:
        record = record_key(group_of(claim_of(row)), str(row["id"]))
        for _ in range(200):  # the deferred DEL rides a later pipeline, or goes alone
            if not await redis.exists(record):
                break
            await asyncio.sleep(0.05)
        assert not await redis.exists(record)
    finally:
        await redis.aclose()
    # The amount stays counted: committed means counted.
    assert await counted(world.redis_url, fleet.database_url, claim_of(row)) == 1000 + FEE


async def test_a_gateway_killed_between_the_row_and_the_reservation(world: World) -> None:
    fleet, devnet, partition = world.fleet, world.devnet, world.partition
    fleet.apply(document(devnet.chain_id, "order-crash", worth(10**6, 4)))
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 100))
    nonce = int(await devnet.rpc("eth_getTransactionCount", [WALLET, "pending"]), 16)
    params = transfer(recipient, 200)
    params[0]["nonce"] = hex(nonce)

    partition.hold()  # the gateway's next Redis trip (the spend's ADMIT) goes nowhere
    in_flight = asyncio.ensure_future(fleet.rpc(0, "eth_sendTransaction", params))
    for _ in range(400):
        if len(await rows_to(world, recipient)) == 2:
            break
        await asyncio.sleep(0.01)
    process = fleet.processes[0]
    process.send_signal(signal.SIGKILL)  # the row is durable; the reservation never made
    process.wait()
    partition.cut()
    with pytest.raises(aiohttp.ClientError):
        await in_flight

    first, second = await rows_to(world, recipient)
    assert (second["decision"], second["status"]) == ("allow", "pending")
    claim = claim_of(second)
    # Nothing was forwarded ...
    assert int(await devnet.rpc("eth_getTransactionCount", [WALLET, "pending"]), 16) == nonce
    assert await devnet.balance(recipient) == 100
    # ... and nothing is under-counted: Redis counts what was forwarded ...
    one, two = 100 + FEE, 200 + FEE
    assert await counted(world.redis_url, fleet.database_url, claim) == one
    # ... and a counter rebuilt from PostgreSQL counts the pending row as well.
    redis = aioredis.Redis.from_url(world.redis_url)
    try:
        await redis.delete(counter_of(claim).key)
        assert await counted(world.redis_url, fleet.database_url, claim) == one + two
    finally:
        await redis.aclose()

    # The gateway comes back; reconcile keeps the row while its nonce is open ...
    port = int(fleet.urls[0].rsplit(":", 1)[1].strip("/"))
    fleet.processes[0] = start_gateway(fleet.env, port)
    await wait_healthy(fleet.urls[0], fleet.processes[0])
    await asyncio.sleep(1.1)
    out = await asyncio.to_thread(fleet.cli, "reconcile", "--pending-older-than", "1s")
    assert f"{second['id']} eth_sendTransaction (pending): keep" in out.stdout, out.stdout
    # ... and refunds it once another transaction used that nonce.
    other = fresh_recipient()
    raw = Account.sign_transaction(
        {
            "chainId": devnet.chain_id,
            "nonce": nonce,
            "maxFeePerGas": FEE_PER_GAS,
            "maxPriorityFeePerGas": 1,
            "gas": GAS,
            "to": to_checksum_address(other),
            "value": 1,
        },
        KEY,
    )
    await devnet.rpc("eth_sendRawTransaction", ["0x" + bytes(raw.raw_transaction).hex()])
    out = await asyncio.to_thread(fleet.cli, "reconcile", "--pending-older-than", "1s")
    assert f"{second['id']} eth_sendTransaction (pending): refund" in out.stdout, out.stdout
    _, settled = await rows_to(world, recipient)
    assert settled["status"] == "refunded"
    # Redis and a fresh rebuild agree again: only what was forwarded counts.
    assert await counted(world.redis_url, fleet.database_url, claim) == one
    redis = aioredis.Redis.from_url(world.redis_url)
    try:
        await redis.delete(counter_of(claim).key, record_key(group_of(claim), str(second["id"])))
        assert await counted(world.redis_url, fleet.database_url, claim) == one
    finally:
        await redis.aclose()
    assert first["status"] in ("pending", "committed")
    assert await devnet.balance(recipient) == 100
