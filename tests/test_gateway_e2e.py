"""End to end: an agent talks JSON-RPC to a real walletgate in front of the real devnet.

Every refusal is checked three ways: the JSON-RPC error the agent sees, the devnet state
(nothing mined), and the audit log (``walletgate tx list``).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from tests.support.devnet import Devnet
from tests.support.evm_builders import permit
from tests.support.gateway import GatewayProcess, free_port, walletgate_cli

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH = 10**18
WUSD = 10**6
# examples/policies.yaml: the trader's wallet is devnet key 1, payroll-main is key 2,
# and keys 6, 7 and 8 are the trader's allowed counterparties.
TRADER_KEY = 1
PAYROLL_KEY = 2
COUNTERPARTY = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"
STRANGER = "0x4cceba2d7d2b4fdce4304d3e09a1fea9fbeb1528"  # key 10: on no list


def key(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def address(n: int) -> str:
    return str(Account.from_key(key(n)).address)


def erc20_call(signature: str, *args: Any) -> str:
    types = signature[signature.index("(") + 1 : -1].split(",")
    return (
        "0x" + (function_signature_to_4byte_selector(signature) + encode(types, list(args))).hex()
    )


async def _nonce(gw: GatewayProcess, who: str) -> int:
    reply = await gw.rpc("eth_getTransactionCount", [who, "pending"])
    return int(reply["result"], 16)


async def _gas_price(gw: GatewayProcess) -> int:
    reply = await gw.rpc("eth_gasPrice", [])
    return int(reply["result"], 16) * 2


async def signed_raw(gw: GatewayProcess, signer: int, chain_id: int, **tx: Any) -> str:
    """A type-2 transaction signed with devnet key ``signer``."""
    if isinstance(tx.get("to"), str):
        tx["to"] = to_checksum_address(tx["to"])
    fields = {
        "chainId": chain_id,
        "nonce": await _nonce(gw, address(signer)),
        "maxFeePerGas": await _gas_price(gw),
        "maxPriorityFeePerGas": 1,
        "gas": 100_000,
        "value": 0,
        "data": b"",
        **tx,
    }
    signed = Account.sign_transaction(fields, key(signer))
    return "0x" + bytes(signed.raw_transaction).hex()


def refusal(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, f"expected a refusal, got {reply}"
    data: dict[str, Any] = reply["error"]["data"]
    return data


async def test_allowed_eth_transfer_is_mined(gateway: GatewayProcess, devnet: Devnet) -> None:
    before = await devnet.balance(COUNTERPARTY)
    reply = await gateway.rpc(
        "eth_sendTransaction",
        [{"from": address(TRADER_KEY), "to": COUNTERPARTY, "value": hex(ETH // 10)}],
    )
    assert "result" in reply, reply
    receipt = await devnet.rpc("eth_getTransactionReceipt", [reply["result"]])
    assert int(receipt["status"], 16) == 1
    assert await devnet.balance(COUNTERPARTY) == before + ETH // 10
    rows = await gateway.rows(
        "SELECT status, tx_hash, decision FROM transactions WHERE tx_hash = $1", reply["result"]
    )
    assert [(r["status"], r["decision"]) for r in rows] == [("committed", "allow")]


async def test_allowed_erc20_transfer_is_mined(gateway: GatewayProcess, devnet: Devnet) -> None:
    before = await devnet.token_balance(COUNTERPARTY)
    raw = await signed_raw(
        gateway,
        TRADER_KEY,
        devnet.chain_id,
        to=devnet.token_address,
        data=erc20_call("transfer(address,uint256)", COUNTERPARTY, 25 * WUSD),
    )
    reply = await gateway.rpc("eth_sendRawTransaction", [raw])
    assert "result" in reply, reply
    assert await devnet.token_balance(COUNTERPARTY) == before + 25 * WUSD


@pytest.mark.parametrize(
    ("case", "expected_code", "expected_reason"),
    [
        ("disallowed_destination", -32003, "destination_not_allowed"),
        ("over_cap_eth", -32005, "per_tx_cap_exceeded"),
        ("over_cap_erc20_at_value_0", -32005, "per_tx_cap_exceeded"),
        ("unlimited_approve", -32003, "unlimited_approval"),
        ("eth_sign", -32003, "signing_not_allowed"),
        ("other_chain_raw", -32003, "chain_mismatch"),
        ("other_agents_key_raw", -32003, "wallet_not_owned"),
        ("other_agents_wallet_from", -32003, "wallet_not_owned"),
    ],
)
async def test_refusals_are_not_mined(
    gateway: GatewayProcess, devnet: Devnet, case: str, expected_code: int, expected_reason: str
) -> None:
    trader = address(TRADER_KEY)
    calls: dict[str, tuple[str, list[Any]]] = {}
    if case == "disallowed_destination":
        calls[case] = (
            "eth_sendTransaction",
            [{"from": trader, "to": STRANGER, "value": hex(ETH // 100)}],
        )
    elif case == "over_cap_eth":
        calls[case] = (
            "eth_sendTransaction",
            [{"from": trader, "to": COUNTERPARTY, "value": hex(2 * ETH)}],
        )
    elif case == "over_cap_erc20_at_value_0":
        data = erc20_call("transfer(address,uint256)", COUNTERPARTY, 1001 * WUSD)
        calls[case] = (
            "eth_sendTransaction",
            [{"from": trader, "to": devnet.token_address, "value": "0x0", "data": data}],
        )
    elif case == "unlimited_approve":
        data = erc20_call("approve(address,uint256)", COUNTERPARTY, 2**256 - 1)
        calls[case] = (
            "eth_sendTransaction",
            [{"from": trader, "to": devnet.token_address, "data": data}],
        )
    elif case == "eth_sign":
        calls[case] = ("eth_sign", [trader, "0x" + "ab" * 32])
    elif case == "other_chain_raw":
        raw = await signed_raw(gateway, TRADER_KEY, 1, to=COUNTERPARTY, value=ETH // 100)
        calls[case] = ("eth_sendRawTransaction", [raw])
    elif case == "other_agents_key_raw":
        raw = await signed_raw(
            gateway, PAYROLL_KEY, devnet.chain_id, to=COUNTERPARTY, value=ETH // 100
        )
        calls[case] = ("eth_sendRawTransaction", [raw])
    elif case == "other_agents_wallet_from":
        calls[case] = (
            "eth_sendTransaction",
            [{"from": address(PAYROLL_KEY), "to": COUNTERPARTY, "value": hex(ETH // 100)}],
        )
    method, params = calls[case]
    block = await devnet.block_number()
    reply = await gateway.rpc(method, params)
    data = refusal(reply)
    assert reply["error"]["code"] == expected_code, reply
    assert data["reason"] == expected_reason, reply
    assert data["decision"] == "deny"
    assert data["transaction_id"]
    assert await devnet.block_number() == block, "a refused request must not be mined"
    rows = await gateway.rows(
        "SELECT decision, reason, status FROM transactions WHERE id = $1::uuid",
        data["transaction_id"],
    )
    assert [(r["decision"], r["reason"], r["status"]) for r in rows] == [
        ("deny", expected_reason, "denied")
    ]


async def test_permit_typed_data_is_refused(gateway: GatewayProcess, devnet: Devnet) -> None:
    trader = address(TRADER_KEY)
    typed = permit(
        trader,
        2**256 - 1,
        token=devnet.token_address,
        chain_id=devnet.chain_id,
        spender=COUNTERPARTY,
        name="Walletgate Test USD",
    )
    encode_typed_data(full_message=typed)  # the request is well formed: walletgate must judge it
    reply = await gateway.rpc("eth_signTypedData_v4", [trader, json.dumps(typed)])
    data = refusal(reply)
    assert data["reason"] == "unlimited_approval"


async def test_eip7702_delegation_is_refused(gateway: GatewayProcess, devnet: Devnet) -> None:
    trader = address(TRADER_KEY)
    nonce = await _nonce(gateway, trader)
    auth = Account.sign_authorization(
        {
            "chainId": devnet.chain_id,
            "address": to_checksum_address(COUNTERPARTY),
            "nonce": nonce + 1,
        },
        key(TRADER_KEY),
    )
    raw = await signed_raw(
        gateway, TRADER_KEY, devnet.chain_id, type=4, to=trader, authorizationList=[auth]
    )
    block = await devnet.block_number()
    data = refusal(await gateway.rpc("eth_sendRawTransaction", [raw]))
    assert data["reason"] == "delegation_not_allowed"
    assert await devnet.block_number() == block


async def test_batch_cannot_smuggle_a_refused_element(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    trader = address(TRADER_KEY)
    before_ok = await devnet.balance(COUNTERPARTY)
    before_bad = await devnet.balance(STRANGER)
    batch = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_sendTransaction",
            "params": [{"from": trader, "to": COUNTERPARTY, "value": hex(ETH // 50)}],
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "eth_sendTransaction",
            "params": [{"from": trader, "to": STRANGER, "value": hex(ETH // 50)}],
        },
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
    ]
    status, body = await gateway.post(batch)
    assert status == 200
    assert [item["id"] for item in body] == [1, 2, 3]
    assert "result" in body[0]
    assert body[1]["error"]["data"]["reason"] == "destination_not_allowed"
    assert "result" in body[2]
    assert await devnet.balance(COUNTERPARTY) == before_ok + ETH // 50
    assert await devnet.balance(STRANGER) == before_bad


async def test_unauthenticated_and_revoked_tokens(gateway: GatewayProcess) -> None:
    status, body = await gateway.post(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}, token="wg_nope"
    )
    assert status == 401 and body["error"]["code"] == -32000
    # the URL form works with a valid token
    status, body = await gateway.post(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        path=f"/t/{gateway.tokens['payroll']}/",
    )
    assert status == 200 and "result" in body


async def test_tx_list_shows_every_case_with_its_reason(gateway: GatewayProcess) -> None:
    out = walletgate_cli(
        ["tx", "list", "--agent", "trader", "--json", "--limit", "500"], gateway.env
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    reasons = {row["reason"] for row in rows}
    assert {
        "allowed",
        "destination_not_allowed",
        "per_tx_cap_exceeded",
        "signing_not_allowed",
        "chain_mismatch",
        "wallet_not_owned",
        "unlimited_approval",
        "delegation_not_allowed",
    } <= reasons
    denied = walletgate_cli(["tx", "list", "--decision", "deny", "--json"], gateway.env).stdout
    assert all(
        json.loads(line)["decision"] == "deny" for line in denied.splitlines() if line.strip()
    )


async def test_simulate_decides_like_the_gateway_without_side_effects(
    gateway: GatewayProcess, devnet: Devnet, tmp_path: Any
) -> None:
    trader = address(TRADER_KEY)
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_sendTransaction",
                    "params": [{"from": trader, "to": STRANGER, "value": hex(ETH // 100)}],
                },
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "eth_sendTransaction",
                    "params": [{"from": trader, "to": COUNTERPARTY, "value": hex(ETH // 100)}],
                },
            ]
        )
    )
    before = await gateway.rows("SELECT count(*) AS n FROM transactions")
    block = await devnet.block_number()
    result = walletgate_cli(
        ["simulate", str(request), "--agent", "trader"],
        {**gateway.env},
        check=False,
    )
    assert result.returncode == 3, result.stderr
    decisions = json.loads(result.stdout)
    assert [d["decision"] for d in decisions] == ["deny", "allow"]
    assert decisions[0]["reason"] == "destination_not_allowed"
    assert decisions[0]["policy"] == "trader-limits"
    after = await gateway.rows("SELECT count(*) AS n FROM transactions")
    assert after[0]["n"] == before[0]["n"], "simulate must not write the audit log"
    assert await devnet.block_number() == block


async def test_method_classes_and_malformed_input(gateway: GatewayProcess) -> None:
    reply = await gateway.rpc("admin_peers", [])
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["reason"] == "method_not_allowed"
    reply = await gateway.rpc(
        "eth_sendTransaction", [{"from": address(TRADER_KEY), "value": "0xzz"}]
    )
    assert reply["error"]["code"] == -32602
    assert "params[0].value" in reply["error"]["data"]["where"]
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {gateway.tokens['trader']}"}
        async with session.post(
            gateway.url, data=b'{"jsonrpc": "2.0", "id": 1,', headers=headers
        ) as r:
            body = await r.json(content_type=None)
            assert r.status == 200 and body["error"]["code"] == -32700
        async with session.post(
            gateway.url, data=b"[" + b"1," * 2_000_000 + b"1]", headers=headers
        ) as r:
            body = await r.json(content_type=None)
            assert r.status == 413 and body["error"]["code"] == -32600


async def test_balance_cache_serves_reads_and_is_dropped_by_a_spend(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    trader = address(TRADER_KEY)

    async def cache_hits() -> float:
        async with aiohttp.ClientSession() as session, session.get(gateway.url + "metrics") as r:
            text = await r.text()
        for line in text.splitlines():
            if line.startswith('walletgate_balance_cache_total{result="hit"}'):
                return float(line.split()[-1])
        return 0.0

    first = await gateway.rpc("eth_getBalance", [trader, "latest"])
    hits = await cache_hits()
    second = await gateway.rpc("eth_getBalance", [trader, "latest"])
    assert second["result"] == first["result"]
    assert await cache_hits() == hits + 1
    sent = await gateway.rpc(
        "eth_sendTransaction", [{"from": trader, "to": COUNTERPARTY, "value": hex(ETH // 100)}]
    )
    assert "result" in sent, sent
    third = await gateway.rpc("eth_getBalance", [trader, "latest"])
    assert await cache_hits() == hits + 1, "the spend must drop the cached balance"
    assert int(third["result"], 16) == await devnet.balance(trader)
    assert int(third["result"], 16) < int(first["result"], 16)


async def test_health_readiness_and_metrics(gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url + "healthz") as r:
            assert r.status == 200
        async with session.get(gateway.url + "readyz") as r:
            body = await r.json()
            assert r.status == 200, body
            assert set(body["checks"]) == {"postgresql", "redis", "backend:default"}
        async with session.get(gateway.url + "metrics") as r:
            text = await r.text()
    assert 'walletgate_decisions_total{decision="deny",reason="destination_not_allowed"}' in text
    assert "walletgate_spend_seconds_bucket" in text


async def test_serve_refuses_to_start_on_a_chain_id_mismatch(gateway: GatewayProcess) -> None:
    env = {**gateway.env, "WALLETGATE_CHAIN_ID": "1"}
    result = walletgate_cli(["serve", "--port", str(free_port())], env, check=False)
    assert result.returncode == 1
    assert "serves chain 1337, but walletgate is configured for chain 1" in result.stderr
    assert "Traceback" not in result.stderr


async def test_tx_list_filters_by_wallet_and_time(gateway: GatewayProcess) -> None:
    rows = walletgate_cli(
        ["tx", "list", "--wallet", "trader-hot", "--since", "1h", "--json"], gateway.env
    ).stdout.splitlines()
    assert rows and all(json.loads(line)["wallet_id"] == "trader-hot" for line in rows)
    future = walletgate_cli(
        ["tx", "list", "--since", "2999-01-01T00:00:00Z", "--json"], gateway.env
    ).stdout
    assert future.strip() == ""
    bad = walletgate_cli(["tx", "list", "--since", "yesterday"], gateway.env, check=False)
    assert bad.returncode == 2 and "cannot read time 'yesterday'" in bad.stderr
