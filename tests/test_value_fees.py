"""Fees are spending, end to end: a real walletgate in front of the real devnet.

The issue's policy: 1 ETH per transaction, 2 ETH per 24 h, two destinations, and a fee
cap of 100 gwei per gas. A zero-value transaction offering 1,000,000 gwei per gas (21 ETH
of fees) used to be allowed and mined; now every shape of it is refused and the chain
shows nothing moved. A transaction that leaves gas and fees to the backend is filled by
walletgate, and what the wallet really lost is within what walletgate counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.devnet import Devnet
from tests.support.gateway import GatewayProcess, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH = 10**18
GWEI = 10**9
HUGE_FEE_PER_GAS = 1_000_000 * GWEI  # x 21000 gas = 21 ETH
WALLET_KEY = 4  # devnet key 4: this module's agent wallet
PAYROLL_KEY = 9
D1 = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"  # devnet key 6
D2 = "0xd41c057fd1c78805aac12b0a94a405c0461a6fbb"  # devnet key 7
#: A small property run against the devnet (each example mines a transaction).
DEVNET_PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def key(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def address(n: int) -> str:
    return str(Account.from_key(key(n)).address).lower()


WALLET = address(WALLET_KEY)

POLICIES = {
    "version": 1,
    "owners": [{"id": "acme"}],
    "agents": [{"id": "trader", "owner": "acme"}, {"id": "payroll", "owner": "acme"}],
    "wallets": [
        {"id": "hot", "owner": "acme", "agent": "trader", "chain": 1337, "address": WALLET},
        {
            "id": "pay",
            "owner": "acme",
            "agent": "payroll",
            "chain": 1337,
            "address": address(PAYROLL_KEY),
        },
    ],
    "assets": [
        {
            "id": "eth",
            "chain": 1337,
            "native": True,
            "symbol": "ETH",
            "decimals": 18,
            "price_usd": "3000",
            "price_as_of": "2026-01-01T00:00:00Z",
            "price_max_age": "3650d",
        }
    ],
    "policies": [
        {
            "id": "issue-10",
            "agent": "trader",
            "rules": [
                {"id": "per-tx", "type": "per_tx_cap", "asset": "eth", "max": "1"},
                {
                    "id": "daily",
                    "type": "cumulative_cap",
                    "asset": "eth",
                    "max": "2",
                    "window": "24h",
                    "scope": "wallet",
                },
                {"id": "dst", "type": "destination_allowlist", "addresses": [D1, D2]},
                {"id": "fees", "type": "fee_cap", "max_fee_per_gas_gwei": "100"},
            ],
        }
    ],
}


def _write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def gateway(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GatewayProcess]:
    path = _write(tmp_path_factory.mktemp("fees") / "policies.yaml", POLICIES)
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as process:
        yield process


async def _nonce(devnet: Devnet, who: str) -> int:
    return int(await devnet.rpc("eth_getTransactionCount", [who, "pending"]), 16)


async def raw_tx(devnet: Devnet, **fields: Any) -> str:
    """A transaction from the module's wallet, signed with its key."""
    tx = {
        "chainId": devnet.chain_id,
        "nonce": await _nonce(devnet, WALLET),
        "to": to_checksum_address(D1),
        "value": 0,
        "gas": 21_000,
        "data": b"",
        **fields,
    }
    return "0x" + bytes(Account.sign_transaction(tx, key(WALLET_KEY)).raw_transaction).hex()


async def counted_row(gw: GatewayProcess, tx_hash: str) -> dict[str, Any]:
    """The audit row of a forwarded transaction (its hash lands with the commit, which
    the gateway writes after answering: poll briefly)."""
    for _ in range(100):
        rows = await gw.rows(
            "SELECT decision, status, amounts, request FROM transactions WHERE tx_hash = $1",
            tx_hash,
        )
        if rows:
            row = dict(rows[0])
            row["amounts"] = json.loads(row["amounts"])
            row["request"] = json.loads(row["request"])
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no audit row for {tx_hash}")


async def assert_nothing_moved(devnet: Devnet, before: tuple[int, int]) -> None:
    """The wallet's balance and nonce are what they were: nothing was mined."""
    assert (await devnet.balance(WALLET), await _nonce(devnet, WALLET)) == before


async def _state(devnet: Devnet) -> tuple[int, int]:
    return await devnet.balance(WALLET), await _nonce(devnet, WALLET)


def _huge_1559() -> dict[str, Any]:
    return {
        "from": WALLET,
        "to": D1,
        "value": "0x0",
        "gas": "0x5208",
        "maxFeePerGas": hex(HUGE_FEE_PER_GAS),
        "maxPriorityFeePerGas": hex(HUGE_FEE_PER_GAS),
    }


@pytest.mark.parametrize(
    "shape", ["send 1559", "send legacy gasPrice", "sign 1559", "raw type 2", "raw type 0"]
)
async def test_a_zero_value_transaction_with_21_eth_of_fees_is_refused(
    gateway: GatewayProcess, devnet: Devnet, shape: str
) -> None:
    before = await _state(devnet)
    if shape == "send 1559":
        reply = await gateway.rpc("eth_sendTransaction", [_huge_1559()])
    elif shape == "send legacy gasPrice":
        legacy = {**_huge_1559(), "gasPrice": hex(HUGE_FEE_PER_GAS)}
        del legacy["maxFeePerGas"], legacy["maxPriorityFeePerGas"]
        reply = await gateway.rpc("eth_sendTransaction", [legacy])
    elif shape == "sign 1559":
        reply = await gateway.rpc("eth_signTransaction", [_huge_1559()])
    elif shape == "raw type 2":
        raw = await raw_tx(
            devnet, maxFeePerGas=HUGE_FEE_PER_GAS, maxPriorityFeePerGas=HUGE_FEE_PER_GAS
        )
        reply = await gateway.rpc("eth_sendRawTransaction", [raw])
    else:
        raw = await raw_tx(devnet, gasPrice=HUGE_FEE_PER_GAS)
        reply = await gateway.rpc("eth_sendRawTransaction", [raw])
    assert "error" in reply, reply
    data = reply["error"]["data"]
    assert (reply["error"]["code"], data["reason"]) == (-32005, "per_tx_cap_exceeded"), reply
    assert "21 ETH" in data["message"]
    await assert_nothing_moved(devnet, before)
    rows = await gateway.rows(
        "SELECT decision, amounts FROM transactions WHERE id = $1::uuid", data["transaction_id"]
    )
    assert rows[0]["decision"] == "deny"
    assert json.loads(rows[0]["amounts"]) == {"eth": str(21 * ETH)}


async def test_a_fee_per_gas_over_the_fee_cap_is_refused(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    before = await _state(devnet)
    # 200 gwei x 21000 gas is 0.0042 ETH, far within the caps; the fee cap says 100 gwei.
    tx = {**_huge_1559(), "maxFeePerGas": hex(200 * GWEI), "maxPriorityFeePerGas": "0x1"}
    reply = await gateway.rpc("eth_sendTransaction", [tx])
    data = reply["error"]["data"]
    assert data["reason"] == "fee_cap_exceeded", reply
    assert "200 gwei per gas" in data["message"]
    raw = await raw_tx(devnet, maxFeePerGas=200 * GWEI, maxPriorityFeePerGas=1)
    reply = await gateway.rpc("eth_sendRawTransaction", [raw])
    assert reply["error"]["data"]["reason"] == "fee_cap_exceeded", reply
    await assert_nothing_moved(devnet, before)


async def lost_and_counted(
    gateway: GatewayProcess, devnet: Devnet, method: str, params: list[Any]
) -> tuple[int, int, dict[str, Any], dict[str, Any]] | None:
    """Send one spend; for an allowed one, what the wallet lost (value plus the fee
    the chain charged), what walletgate counted, its audit row and its receipt. ``None``
    (with the chain checked unchanged) when it is refused."""
    before = await _state(devnet)
    reply = await gateway.rpc(method, params)
    if "error" in reply:
        assert reply["error"]["data"]["decision"] == "deny", reply
        await assert_nothing_moved(devnet, before)
        return None
    tx_hash = reply["result"]
    receipt = await devnet.rpc("eth_getTransactionReceipt", [tx_hash])
    assert int(receipt["status"], 16) == 1, receipt
    lost = before[0] - await devnet.balance(WALLET)
    row = await counted_row(gateway, tx_hash)
    assert row["decision"] == "allow"
    return lost, int(row["amounts"].get("eth", "0")), row, receipt


async def test_missing_gas_and_fees_are_filled_and_counted(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    value = ETH // 100
    sent = {"from": WALLET, "to": D2, "value": hex(value)}
    result = await lost_and_counted(gateway, devnet, "eth_sendTransaction", [sent])
    assert result is not None, "a small transfer to a listed destination is allowed"
    lost, counted, row, receipt = result
    fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert lost == value + fee
    assert fee > 0 and lost <= counted
    # What was judged, logged and forwarded is the filled transaction.
    (filled,) = row["request"]["params"]
    assert {"gas", "maxFeePerGas", "maxPriorityFeePerGas"} <= filled.keys()
    mined = await devnet.rpc("eth_getTransactionByHash", [receipt["transactionHash"]])
    assert int(mined["gas"], 16) == int(filled["gas"], 16)
    assert int(mined["maxFeePerGas"], 16) == int(filled["maxFeePerGas"], 16) <= 100 * GWEI
    assert counted == value + int(filled["gas"], 16) * int(filled["maxFeePerGas"], 16)


async def test_a_spend_whose_gas_cannot_be_estimated_is_refused_not_forwarded(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    before = await _state(devnet)
    # More ETH than the wallet holds: the backend cannot estimate it, and walletgate
    # refuses rather than forwarding it without gas or fees.
    too_much = hex(before[0] + ETH)
    reply = await gateway.rpc(
        "eth_sendTransaction", [{"from": WALLET, "to": D1, "value": too_much}]
    )
    assert reply["error"]["data"]["reason"] == "unavailable", reply
    assert reply["error"]["code"] == -32002
    await assert_nothing_moved(devnet, before)


@st.composite
def spends(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A transaction of a random shape: a transaction object with some of gas and fee
    fields left out, or a signed raw transaction of type 0 or 2."""
    value = draw(st.integers(0, ETH // 50))
    gas = draw(st.integers(21_000, 60_000))
    per_gas = draw(st.integers(GWEI, 150 * GWEI))  # some over the 100 gwei fee cap
    shape = draw(st.sampled_from(["object", "raw0", "raw2"]))
    fields: dict[str, Any] = {"value": value, "gas": gas, "per_gas": per_gas, "shape": shape}
    if shape == "object":
        fields["give_gas"] = draw(st.booleans())
        fields["give_fee"] = draw(st.booleans())
    return shape, fields


@DEVNET_PROPERTY
@given(spends())
async def test_no_allowed_spend_loses_more_than_was_counted(
    gateway: GatewayProcess, devnet: Devnet, example: tuple[str, dict[str, Any]]
) -> None:
    shape, f = example
    params: list[Any]
    if shape == "object":
        tx: dict[str, Any] = {"from": WALLET, "to": D1, "value": hex(f["value"])}
        if f["give_gas"]:
            tx["gas"] = hex(f["gas"])
        if f["give_fee"]:
            tx["maxFeePerGas"] = hex(f["per_gas"])
            tx["maxPriorityFeePerGas"] = "0x1"
        method, params = "eth_sendTransaction", [tx]
    else:
        fees = (
            {"gasPrice": f["per_gas"]}
            if shape == "raw0"
            else {"maxFeePerGas": f["per_gas"], "maxPriorityFeePerGas": 1}
        )
        raw = await raw_tx(devnet, value=f["value"], gas=f["gas"], **fees)
        method, params = "eth_sendRawTransaction", [raw]
    result = await lost_and_counted(gateway, devnet, method, params)
    event(f"{shape}: {'refused' if result is None else 'allowed'}")
    if result is not None:
        lost, counted, _row, _receipt = result
        assert 0 < lost <= counted, (lost, counted, example)
