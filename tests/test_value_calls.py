"""End to end: money that a contract call forwards is judged where it goes.

A router that forwards ``msg.value`` to a recipient named in its calldata, and a
Multicall3-shaped aggregator (both this repository's own test contracts,
contracts/test/TestRouter.sol and TestMulticall.sol), run behind a real walletgate in
front of the devnet. The policy document is the example one plus a denylisted address, a
``contract_allowlist`` whose router methods mark their recipient argument and bound the
amount, and the aggregator's methods. Every refusal is checked on the chain: nothing
mined (the wallet's nonce is unchanged) and the balances as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from tests.support.contracts import deploy
from tests.support.devnet import Devnet
from tests.support.gateway import EXAMPLE_POLICIES, GatewayProcess, running_gateway
from tests.test_gateway_e2e import COUNTERPARTY, TRADER_KEY, address, key

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPLOYER_KEY = 4
ETH = 10**18
#: On the owner's denylist; no devnet account, so nothing else sends it anything.
DENIED = "0x00000000000000000000000000000000dec1ded1"
#: The most ``pay`` may forward (the ``lte`` condition on its amount), in wei.
PAY_LIMIT = ETH // 100
TRADER = address(TRADER_KEY).lower()
AGGREGATE3 = "aggregate3((address,bool,bytes)[])"
AGGREGATE3_VALUE = "aggregate3Value((address,bool,uint256,bytes)[])"


@dataclass(frozen=True)
class Calls:
    gateway: GatewayProcess
    router: str
    multicall: str


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1]
    # The argument types of the signatures used here: one tuple array, or flat types.
    arg_types = [types] if types.startswith("(") else types.split(",")
    return function_signature_to_4byte_selector(signature) + encode(arg_types, list(args))


def _policies(router: str, multicall: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICIES.read_text())
    for policy in doc["policies"]:
        for rule in policy["rules"]:
            if rule["id"] == "sanctioned":
                rule["addresses"].append(DENIED)
            if rule["id"] == "counterparties":
                rule["addresses"] += [router, multicall]
    doc["policies"].append(
        {
            "id": "trader-calls",
            "agent": "trader",
            "rules": [
                {
                    "id": "routers",
                    "type": "contract_allowlist",
                    "lists": {"payees": [COUNTERPARTY]},
                    "contracts": [
                        {
                            "address": router,
                            "methods": [
                                {
                                    "signature": "payTo(address recipient)",
                                    "recipients": ["recipient"],
                                    "max_value": "0.05",
                                },
                                {
                                    "signature": "pay(address,uint256)",
                                    "args": ["recipient", "amount"],
                                    "conditions": {
                                        "recipient": {"in_list": "payees"},
                                        "amount": {"lte": str(PAY_LIMIT)},
                                    },
                                    "recipients": ["recipient"],
                                },
                            ],
                        },
                        {"address": multicall, "methods": [AGGREGATE3, AGGREGATE3_VALUE]},
                    ],
                }
            ],
        }
    )
    return doc


def _write(directory: Path, doc: dict[str, Any]) -> Path:
    path = directory / "policies.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def calls(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Calls]:
    router = await deploy(devnet, "TestRouter", key(DEPLOYER_KEY))
    multicall = await deploy(devnet, "TestMulticall", key(DEPLOYER_KEY))
    path = _write(tmp_path_factory.mktemp("call-policies"), _policies(router, multicall))
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as gateway:
        yield Calls(gateway, router, multicall)


async def send(calls: Calls, to: str, data: bytes, value: int) -> dict[str, Any]:
    tx = {"from": TRADER, "to": to, "data": "0x" + data.hex(), "value": hex(value)}
    return await calls.gateway.rpc("eth_sendTransaction", [tx])


async def nonce(devnet: Devnet) -> int:
    return int(await devnet.rpc("eth_getTransactionCount", [TRADER, "latest"]), 16)


def reason_of(reply: dict[str, Any]) -> str:
    assert "error" in reply, f"expected a refusal, got {reply}"
    reason: str = reply["error"]["data"]["reason"]
    return reason


async def mined(devnet: Devnet, reply: dict[str, Any]) -> None:
    assert "result" in reply, reply
    receipt = await devnet.rpc("eth_getTransactionReceipt", [reply["result"]])
    assert int(receipt["status"], 16) == 1, receipt


async def refused_on_chain(
    calls: Calls, devnet: Devnet, to: str, data: bytes, value: int, reason: str
) -> dict[str, Any]:
    """Send, expect ``reason``, and check that nothing was mined and nobody was paid."""
    watched = (DENIED, COUNTERPARTY, calls.router, calls.multicall)
    before = [await devnet.balance(who) for who in watched], await nonce(devnet)
    reply = await send(calls, to, data, value)
    assert reason_of(reply) == reason, reply
    after = [await devnet.balance(who) for who in watched], await nonce(devnet)
    assert after == before
    return reply


async def test_router_payment_to_a_denylisted_recipient_is_refused(
    calls: Calls, devnet: Devnet
) -> None:
    data = calldata("payTo(address)", DENIED)
    reply = await refused_on_chain(
        calls, devnet, calls.router, data, ETH // 100, "destination_denied"
    )
    assert DENIED in reply["error"]["message"]
    assert await devnet.balance(DENIED) == 0


async def test_router_payment_to_an_allowed_recipient_is_mined(
    calls: Calls, devnet: Devnet
) -> None:
    before = await devnet.balance(COUNTERPARTY)
    await mined(
        devnet,
        await send(calls, calls.router, calldata("payTo(address)", COUNTERPARTY), ETH // 100),
    )
    assert await devnet.balance(COUNTERPARTY) == before + ETH // 100


async def test_value_over_the_method_max_value_is_refused(calls: Calls, devnet: Devnet) -> None:
    data = calldata("payTo(address)", COUNTERPARTY)
    reply = await refused_on_chain(
        calls, devnet, calls.router, data, ETH // 10, "contract_not_allowed"
    )
    assert "max_value" in reply["error"]["message"]


async def test_an_amount_over_the_condition_is_refused(calls: Calls, devnet: Devnet) -> None:
    data = calldata("pay(address,uint256)", COUNTERPARTY, 2 * PAY_LIMIT)
    reply = await refused_on_chain(
        calls, devnet, calls.router, data, 2 * PAY_LIMIT, "contract_not_allowed"
    )
    assert "args.amount" in reply["error"]["message"]
    # Within the condition, the same method is mined.
    before = await devnet.balance(COUNTERPARTY)
    ok = calldata("pay(address,uint256)", COUNTERPARTY, PAY_LIMIT)
    await mined(devnet, await send(calls, calls.router, ok, PAY_LIMIT))
    assert await devnet.balance(COUNTERPARTY) == before + PAY_LIMIT


async def test_aggregate3value_with_one_denylisted_inner_call_is_refused(
    calls: Calls, devnet: Devnet
) -> None:
    inner = [(COUNTERPARTY, False, ETH // 100, b""), (DENIED, False, ETH // 100, b"")]
    data = calldata(AGGREGATE3_VALUE, inner)
    await refused_on_chain(
        calls, devnet, calls.multicall, data, 2 * ETH // 100, "destination_denied"
    )
    # A payment through the router inside the aggregate is unwrapped and judged too.
    inner = [(calls.router, False, ETH // 100, calldata("payTo(address)", DENIED))]
    data = calldata(AGGREGATE3_VALUE, inner)
    await refused_on_chain(calls, devnet, calls.multicall, data, ETH // 100, "destination_denied")


async def test_aggregate3value_to_allowed_recipients_is_mined(calls: Calls, devnet: Devnet) -> None:
    before = await devnet.balance(COUNTERPARTY)
    inner = [
        (COUNTERPARTY, False, ETH // 100, b""),
        (calls.router, False, ETH // 100, calldata("payTo(address)", COUNTERPARTY)),
    ]
    reply = await send(calls, calls.multicall, calldata(AGGREGATE3_VALUE, inner), 2 * ETH // 100)
    await mined(devnet, reply)
    assert await devnet.balance(COUNTERPARTY) == before + 2 * ETH // 100


async def test_an_inner_call_to_an_unlisted_method_is_refused(calls: Calls, devnet: Devnet) -> None:
    for target, data in [
        (calls.router, bytes.fromhex("deadbeef")),
        (devnet.token_address, bytes.fromhex("12345678") + bytes(32)),
    ]:
        # allowFailure: the call would revert, and walletgate's gas estimate with it.
        wrapped = calldata(AGGREGATE3, [(target, True, data)])
        reply = await refused_on_chain(
            calls, devnet, calls.multicall, wrapped, 0, "contract_not_allowed"
        )
        assert "is not on the contract allowlist" in reply["error"]["message"]


async def test_an_undecodable_wrapper_is_refused(calls: Calls, devnet: Devnet) -> None:
    data = calldata(AGGREGATE3, [(COUNTERPARTY, False, b"")])[:-7]  # truncated
    before = await nonce(devnet)
    reply = await send(calls, calls.multicall, data, 0)
    assert "error" in reply and reply["error"]["code"] == -32602, reply
    assert await nonce(devnet) == before
