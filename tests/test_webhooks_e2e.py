"""Webhooks from real gateway processes: a notify-tier spend reaches the receiver signed,
and no event is lost when a gateway is SIGKILLed with deliveries in flight."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
import yaml

from tests.support.devnet import Devnet
from tests.support.gateway import (
    EXAMPLE_POLICIES,
    free_port,
    issue_token,
    start_gateway,
    stop_process,
    wait_healthy,
    walletgate_cli,
)
from tests.support.servers import scratch_database
from tests.support.webhook_receiver import Receiver, webhook_receiver
from walletgate.storage.freezes import freeze, unfreeze

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "whsec_e2e_" + "5" * 20
SECRET_ENV = "WALLETGATE_E2E_HOOK_SECRET"
TRADER = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"  # devnet key 1: trader-hot
COUNTERPARTY = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"
# Short timings so that retries and the lease of a killed gateway's claims pass quickly.
FAST = {
    "WALLETGATE_WEBHOOK_POLL_INTERVAL": "0.1",
    "WALLETGATE_WEBHOOK_TIMEOUT": "1",
    "WALLETGATE_WEBHOOK_BACKOFF_BASE": "0.2",
    "WALLETGATE_WEBHOOK_BACKOFF_MAX": "1",
}


def policy_file(tmp_path: Path, url: str) -> Path:
    """The example document, with acme's webhook and a notify tier above 0.01 ETH."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICIES.read_text())
    acme = next(owner for owner in doc["owners"] if owner["id"] == "acme")
    acme["webhooks"] = [{"id": "ops", "url": url, "secret_env": SECRET_ENV}]
    trader = next(policy for policy in doc["policies"] if policy["id"] == "trader-limits")
    trader["rules"].append(
        {"id": "tell-owner", "type": "tier", "asset": "eth", "above": "0.01", "action": "notify"}
    )
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def _start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = start_gateway(env, port)
    url = f"http://127.0.0.1:{port}/"
    await wait_healthy(url, process)
    return process, url


async def _spend(url: str, token: str) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_sendTransaction",
        "params": [{"from": TRADER, "to": COUNTERPARTY, "value": hex(10**17)}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        reply: dict[str, Any] = await response.json(content_type=None)
        return reply


async def _wait_type(receiver: Receiver, type_: str, count: int = 1) -> list[dict[str, Any]]:
    for _ in range(300):
        found = receiver.events(type_)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {type_} event arrived")


async def test_notify_spend_arrives_and_nothing_is_lost_across_sigkill(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path: Path,
) -> None:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    async with (
        webhook_receiver(SECRET.encode()) as receiver,
        scratch_database(postgres_server_url, "wg_hooks", migrated_template) as database_url,
    ):
        env = {
            "WALLETGATE_DATABASE_URL": database_url,
            "WALLETGATE_REDIS_URL": redis_server_url,
            "WALLETGATE_BACKEND_URL": devnet.url,
            "WALLETGATE_CHAIN_ID": str(devnet.chain_id),
            "WALLETGATE_ACTOR": "e2e-tests",
            SECRET_ENV: SECRET,
            **FAST,
        }
        walletgate_cli(["policies", "apply", str(policy_file(tmp_path, receiver.url))], env)
        token = issue_token("trader", env)
        process, url = await _start(env)
        conn = await asyncpg.connect(database_url)
        try:
            # A notify-tier spend: allowed, mined, and the owner is told (signed: the
            # receiver verifies every request's HMAC before it answers).
            reply = await _spend(url, token)
            assert "result" in reply, reply
            (event,) = await _wait_type(receiver, "spend.notify")
            # The outcome (its tx_hash) is group-committed after the answer, and the
            # event goes with the intent row before it: wait for the outcome to land.
            row = None
            for _ in range(200):
                row = await conn.fetchrow(
                    "SELECT id, decision FROM transactions WHERE tx_hash = $1", reply["result"]
                )
                if row is not None:
                    break
                await asyncio.sleep(0.05)
            assert row is not None and event["data"]["transaction_id"] == str(row["id"])
            # What the spend moves, the network fee included.
            assert int(event["data"]["amounts"]["eth"]) >= 10**17
            assert event["data"]["tiers"][0]["rule"] == "tell-owner"
            await _wait_type(receiver, "policy.applied")

            # Deliveries in flight when the gateway is killed: the receiver holds them
            # open, so each was POSTed and never recorded.
            receiver.hang = True
            receiver.arrived.clear()
            for n in range(4):
                await freeze(conn, "agent", "trader", reason=f"drill {n}", actor="e2e")
                await unfreeze(conn, "agent", "trader", actor="e2e")
            await asyncio.wait_for(receiver.arrived.wait(), 30)
            process.kill()  # SIGKILL: no cleanup, no recording
            process.wait(10)
            in_flight = {r.event_id for r in receiver.received if r.status == 0}
            assert in_flight
            pending = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            )
            assert pending >= 8
            receiver.hang = False
            process, url = await _start(env)
            expected = {
                str(r["event_id"])
                for r in await conn.fetch("SELECT event_id FROM webhook_deliveries")
            }
            await receiver.wait_for(expected, within=60)
            # The ones in flight at the kill were sent again, under the same event id.
            assert in_flight <= receiver.delivered_ids()
            assert len(receiver.events("freeze.created")) == 4
            assert len(receiver.events("freeze.lifted")) == 4
            for _ in range(100):
                left = await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"
                )
                if left == 0:
                    break
                await asyncio.sleep(0.1)
            assert left == 0
            listed = walletgate_cli(["webhooks", "list", "--status", "delivered"], env).stdout
            assert "freeze.created" in listed and "spend.notify" in listed
            # The CLI's test event and retry reach the receiver through the gateway.
            walletgate_cli(["webhooks", "test", "acme"], env)
            await _wait_type(receiver, "webhook.test")
            lines = walletgate_cli(["webhooks", "list", "--json", "--limit", "1"], env).stdout
            newest = json.loads(lines.splitlines()[0])
            sent = sum(1 for r in receiver.received if r.event_id == newest["event_id"])
            walletgate_cli(["webhooks", "retry", newest["id"]], env)
            for _ in range(300):
                if sum(1 for r in receiver.received if r.event_id == newest["event_id"]) > sent:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the retried delivery was not sent again")
        finally:
            await conn.close()
            stop_process(process)
