"""An approved spend whose gateway dies between forwarding and recording: it becomes
``unknown`` (never forwarded a second time by the other gateway) and is settled by hand
like any unknown spend, after which the agent learns the outcome."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, StallingBackend, running_fleet
from tests.support.spender_fleet import flush_redis, fresh_recipient
from tests.test_approvals_e2e import APPROVAL, approval, document, hold, until_status

pytestmark = pytest.mark.asyncio(loop_scope="session")


class CountingBackend(StallingBackend):
    """A :class:`StallingBackend` that counts the spending calls it receives."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.spends = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = await request.json()
        if isinstance(call, dict) and str(call.get("method", "")).startswith("eth_send"):
            self.spends += 1
        return await super()._handle(request)


@pytest_asyncio.fixture(scope="module")
async def backend(devnet: Devnet) -> AsyncIterator[CountingBackend]:
    async with CountingBackend(devnet.url) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def fleet(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    backend: CountingBackend,
) -> AsyncIterator[Fleet]:
    await flush_redis(redis_server_url)
    async with running_fleet(
        postgres_server_url=postgres_server_url,
        migrated_template=migrated_template,
        redis_url=redis_server_url,
        backend_url=backend.url,
        chain_id=devnet.chain_id,
        document=document(devnet.chain_id),
        agent="spender",
        count=2,
        extra_env={"WALLETGATE_APPROVAL_LEASE": "3"},
    ) as running:
        yield running


async def test_a_gateway_dying_mid_forward_leaves_an_unknown_spend_sent_once(
    fleet: Fleet, devnet: Devnet, backend: CountingBackend
) -> None:
    recipient = fresh_recipient()
    data = await hold(fleet, recipient, APPROVAL)
    # The backend holds the spend, then drops it: it never reaches the chain.
    backend.delay, backend.mode = 10.0, "drop"
    fleet.cli("approvals", "approve", data["approval_id"])
    await until_status(fleet, data["approval_id"], "executing")
    claimer = (
        await fleet.rows(
            "SELECT actor FROM approval_transitions WHERE approval_id = $1"
            " AND to_status = 'executing'",
            data["approval_id"],
        )
    )[0]["actor"]
    pid = int(claimer.rsplit(":", 1)[1])
    for _ in range(100):  # the forward is under way at the backend
        if backend.spends:
            break
        await asyncio.sleep(0.1)
    assert backend.spends == 1
    assert pid in [process.pid for process in fleet.processes], claimer
    os.kill(pid, signal.SIGKILL)
    # The other gateway's sweep finds the abandoned claim once its lease ran out.
    row = await until_status(fleet, data["approval_id"], "unknown")
    assert row["tx_status"] == "unknown", row
    await asyncio.sleep(2.0)  # more sweeps: nobody forwards it again
    assert backend.spends == 1
    view = await fleet.rpc(0 if fleet.processes[0].pid != pid else 1, "walletgate_getApproval",
                           [data["approval_id"]])  # fmt: skip
    assert view["result"]["status"] == "unknown", view
    tx_id = str((await fleet.rows(
        "SELECT transaction_id FROM approvals WHERE id = $1", data["approval_id"]
    ))[0]["transaction_id"])  # fmt: skip
    fleet.cli("tx", "settle", tx_id, "--refunded", "--reason", "the backend never sent it")
    view = await fleet.rpc(0 if fleet.processes[0].pid != pid else 1, "walletgate_getApproval",
                           [data["approval_id"]])  # fmt: skip
    assert view["result"]["status"] == "failed", view
    assert (await approval(fleet, data["approval_id"]))["tx_status"] == "refunded"
    assert await devnet.balance(recipient) == 0
