"""End to end: wallet-scoped request rates and tiers that hold spends for the owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from tests.support.devnet import Devnet
from tests.support.gateway import EXAMPLE_POLICIES, GatewayProcess, running_gateway
from tests.test_gateway_e2e import COUNTERPARTY, ETH, TRADER_KEY, address

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def tiered_gateway(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GatewayProcess]:
    """The example policies plus: the payroll reserve wallet may take 2 requests an hour
    and the payroll agent 10, and any trader spend above 0.5 ETH waits for the owner's
    approval."""
    doc = yaml.safe_load(EXAMPLE_POLICIES.read_text())
    doc["policies"].append(
        {
            "id": "reserve-throttle",
            "wallet": "payroll-reserve",
            "rules": [
                {
                    "id": "two-requests-an-hour",
                    "type": "rate_limit",
                    "counts": "requests",
                    "max": 2,
                    "per": "1h",
                    "scope": "wallet",
                },
                {"id": "reserve-eth", "type": "per_tx_cap", "asset": "eth", "max": "1"},
            ],
        }
    )
    doc["policies"].append(
        {
            "id": "payroll-requests",
            "agent": "payroll",
            "rules": [
                {
                    "id": "ten-requests-an-hour",
                    "type": "rate_limit",
                    "counts": "requests",
                    "max": 10,
                    "per": "1h",
                    "scope": "agent",
                }
            ],
        }
    )
    trader = next(p for p in doc["policies"] if p["id"] == "trader-limits")
    trader["rules"].append(
        {
            "id": "big-spends",
            "type": "tier",
            "asset": "eth",
            "above": "0.5",
            "action": "require_approval",
        }
    )
    path = _write(tmp_path_factory.mktemp("policies") / "tiered.yaml", doc)
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as gateway:
        yield gateway


async def test_wallet_scoped_request_limit_counts_spends(tiered_gateway: GatewayProcess) -> None:
    reserve = "0x6813eb9362372eef6200f3b1dbc3f819671cba69"  # payroll-reserve (devnet key 3)
    token = tiered_gateway.tokens["payroll"]
    replies = [
        await tiered_gateway.rpc(
            "eth_sendTransaction",
            [{"from": reserve, "to": COUNTERPARTY, "value": hex(ETH // 1000)}],
            token=token,
        )
        for _ in range(3)
    ]
    outcomes = ["mined" if "result" in r else r["error"]["data"]["reason"] for r in replies]
    assert outcomes == ["mined", "mined", "rate_limited"], replies
    assert replies[2]["error"]["code"] == -32005
    assert replies[2]["error"]["data"]["rule"] == "two-requests-an-hour"
    assert replies[2]["error"]["data"]["retry_after"] > 0


async def test_tier_holds_a_big_spend_for_approval(
    tiered_gateway: GatewayProcess, devnet: Devnet
) -> None:
    block = await devnet.block_number()
    reply = await tiered_gateway.rpc(
        "eth_sendTransaction",
        [{"from": address(TRADER_KEY), "to": COUNTERPARTY, "value": hex(ETH)}],
    )
    data = reply["error"]["data"]
    assert data["decision"] == "hold" and data["reason"] == "approval_required", reply
    assert await devnet.block_number() == block, "a held spend is not forwarded"
    rows = await tiered_gateway.rows(
        "SELECT t.status, a.status AS approval, a.id::text AS approval_id"
        "  FROM transactions t JOIN approvals a ON a.transaction_id = t.id"
        " WHERE t.id = $1::uuid",
        data["transaction_id"],
    )
    assert [(r["status"], r["approval"], r["approval_id"]) for r in rows] == [
        ("held", "pending", data["approval_id"])
    ]
    small = await tiered_gateway.rpc(
        "eth_sendTransaction",
        [{"from": address(TRADER_KEY), "to": COUNTERPARTY, "value": hex(ETH // 10)}],
    )
    assert "result" in small, small


async def test_a_batch_of_reads_over_the_request_rate_is_refused_whole(
    tiered_gateway: GatewayProcess,
) -> None:
    # The payroll agent may make 10 requests an hour; the other test of this module
    # uses 3 of them. A run of reads is counted as one unit: 11 cannot all fit, so none
    # is forwarded or counted, and the ones that would have fitted still fit after.
    token = tiered_gateway.tokens["payroll"]
    reads = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []} for i in range(11)]
    _status, first = await tiered_gateway.post(reads[:4], token=token)
    assert [r["result"] for r in first] == ["0x539"] * 4
    status, refused = await tiered_gateway.post(reads, token=token)
    assert status == 200
    assert [r["id"] for r in refused] == list(range(11))
    assert {r["error"]["data"]["reason"] for r in refused} == {"rate_limited"}
    assert {r["error"]["data"]["rule"] for r in refused} == {"ten-requests-an-hour"}
    _status, after = await tiered_gateway.post(reads[:3], token=token)
    assert [r["result"] for r in after] == ["0x539"] * 3
