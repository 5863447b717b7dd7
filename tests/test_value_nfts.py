"""End to end: NFTs are assets. An agent moves ERC-721 and ERC-1155 tokens through a real
walletgate in front of the devnet, with collections deployed from this repository's own
test contracts (contracts/test/TestNft721.sol, TestNft1155.sol).

The policy document is the example one plus two priced collections, a denylisted
address, count caps and an approval limit. Every refusal is checked on the chain:
nothing mined (the wallet's nonce is unchanged), owners, operators and balances as
before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

from tests.support.contracts import deploy
from tests.support.devnet import Devnet
from tests.support.gateway import EXAMPLE_POLICIES, GatewayProcess, running_gateway
from tests.test_gateway_e2e import COUNTERPARTY, STRANGER, TRADER_KEY, address, key

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPLOYER_KEY = 5
#: On the owner's denylist; never a devnet account, so nothing else sends it anything.
DENIED = "0x00000000000000000000000000000000dec1ded0"
BIG_ID = 2**200 + 7  # as an ERC-20 amount, far over any cap (and "unlimited" if approved)
TRADER = address(TRADER_KEY).lower()


@dataclass(frozen=True)
class Nfts:
    gateway: GatewayProcess
    punks: str  # ERC-721 on the document (erc721, 2 per transaction)
    items: str  # ERC-1155 on the document (erc1155, 5 per transaction, 6 per 24h)
    strays: str  # ERC-721 the document does not know


def _call(signature: str, *args: Any) -> str:
    types = signature[signature.index("(") + 1 : -1].split(",")
    selector = function_signature_to_4byte_selector(signature)
    return "0x" + (selector + encode(types, list(args))).hex()


async def _read(devnet: Devnet, contract: str, signature: str, result: str, *args: Any) -> Any:
    call = {"to": contract, "data": _call(signature, *args)}
    reply = await devnet.rpc("eth_call", [call, "latest"])
    (value,) = decode([result], bytes.fromhex(reply.removeprefix("0x")))
    return value


async def owner_of(devnet: Devnet, collection: str, token_id: int) -> str:
    owner = await _read(devnet, collection, "ownerOf(uint256)", "address", token_id)
    return str(owner).lower()


async def is_operator(devnet: Devnet, collection: str, operator: str) -> bool:
    signature = "isApprovedForAll(address,address)"
    return bool(await _read(devnet, collection, signature, "bool", TRADER, operator))


async def balance_1155(devnet: Devnet, items: str, holder: str, token_id: int) -> int:
    signature = "balanceOf(address,uint256)"
    return int(await _read(devnet, items, signature, "uint256", holder, token_id))


async def nonce(devnet: Devnet) -> int:
    return int(await devnet.rpc("eth_getTransactionCount", [TRADER, "latest"]), 16)


async def send(nfts: Nfts, contract: str, data: str) -> dict[str, Any]:
    return await nfts.gateway.rpc(
        "eth_sendTransaction", [{"from": TRADER, "to": contract, "data": data}]
    )


def reason_of(reply: dict[str, Any]) -> str:
    assert "error" in reply, f"expected a refusal, got {reply}"
    reason: str = reply["error"]["data"]["reason"]
    return reason


async def mined(devnet: Devnet, reply: dict[str, Any]) -> None:
    assert "result" in reply, reply
    receipt = await devnet.rpc("eth_getTransactionReceipt", [reply["result"]])
    assert int(receipt["status"], 16) == 1, receipt


def _policies(punks: str, items: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICIES.read_text())
    priced = {"price_as_of": "2026-11-01T00:00:00Z", "price_max_age": "3650d"}
    doc["assets"] += [
        {
            "id": "punks",
            "chain": 1337,
            "kind": "erc721",
            "address": punks,
            "symbol": "PUNKS",
            "price_usd": "50",
            **priced,
        },
        {
            "id": "items",
            "chain": 1337,
            "kind": "erc1155",
            "address": items,
            "symbol": "ITEMS",
            "price_usd": "1",
            **priced,
        },
    ]
    baseline = next(p for p in doc["policies"] if p["id"] == "acme-baseline")
    for rule in baseline["rules"]:
        if rule["id"] == "known-assets":
            rule["assets"] += ["punks", "items"]
        if rule["id"] == "sanctioned":
            rule["addresses"].append(DENIED)
    doc["policies"].append(
        {
            "id": "trader-nfts",
            "agent": "trader",
            "rules": [
                {"id": "punks-per-tx", "type": "per_tx_cap", "asset": "punks", "max": "2"},
                {"id": "items-per-tx", "type": "per_tx_cap", "asset": "items", "max": "5"},
                {
                    "id": "items-daily",
                    "type": "cumulative_cap",
                    "asset": "items",
                    "max": "6",
                    "window": "24h",
                    "scope": "wallet",
                },
                {
                    "id": "one-punk-at-a-time",
                    "type": "approval_limit",
                    "asset": "punks",
                    "max": "1",
                },
            ],
        }
    )
    return doc


def _write(path: Path, punks: str, items: str) -> Path:
    path.write_text(yaml.safe_dump(_policies(punks, items), sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def nfts(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Nfts]:
    deployer = key(DEPLOYER_KEY)
    punk_ids = [1, 2, 3, BIG_ID, BIG_ID + 1]
    punks = await deploy(
        devnet, "TestNft721", deployer, "Punks", "PUNKS", [TRADER] * len(punk_ids), punk_ids
    )
    items = await deploy(devnet, "TestNft1155", deployer, [TRADER] * 2, [1, 2], [10, 10])
    strays = await deploy(devnet, "TestNft721", deployer, "Strays", "STRAY", [TRADER], [1])
    path = _write(tmp_path_factory.mktemp("nft-policies") / "policies.yaml", punks, items)
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as gateway:
        yield Nfts(gateway, punks, items, strays)


async def test_a_safe_transfer_to_a_listed_address_is_mined(nfts: Nfts, devnet: Devnet) -> None:
    data = _call("safeTransferFrom(address,address,uint256)", TRADER, COUNTERPARTY, 1)
    await mined(devnet, await send(nfts, nfts.punks, data))
    assert await owner_of(devnet, nfts.punks, 1) == COUNTERPARTY
    rows = await nfts.gateway.rows(
        "SELECT decision, amounts FROM transactions WHERE decision = 'allow' AND amounts ? 'punks'"
    )
    assert [row["decision"] for row in rows] == ["allow"]


async def test_a_transfer_to_a_denylisted_address_is_refused(nfts: Nfts, devnet: Devnet) -> None:
    before = await nonce(devnet)
    for data in [
        _call("safeTransferFrom(address,address,uint256)", TRADER, DENIED, 2),
        _call("safeTransferFrom(address,address,uint256,bytes)", TRADER, DENIED, 2, b"gift"),
        _call("transferFrom(address,address,uint256)", TRADER, DENIED, 2),
    ]:
        assert reason_of(await send(nfts, nfts.punks, data)) == "destination_denied"
    assert await owner_of(devnet, nfts.punks, 2) == TRADER
    assert await nonce(devnet) == before


async def test_an_unlisted_operator_for_the_collection_is_refused(
    nfts: Nfts, devnet: Devnet
) -> None:
    before = await nonce(devnet)
    reply = await send(nfts, nfts.punks, _call("setApprovalForAll(address,bool)", STRANGER, True))
    assert reason_of(reply) in {"unlimited_approval", "destination_not_allowed"}
    assert not await is_operator(devnet, nfts.punks, STRANGER)
    reply = await send(nfts, nfts.items, _call("setApprovalForAll(address,bool)", STRANGER, True))
    assert reason_of(reply) in {"unlimited_approval", "destination_not_allowed"}
    assert not await is_operator(devnet, nfts.items, STRANGER)
    assert await nonce(devnet) == before


async def test_an_operator_needs_allow_unlimited_even_when_listed(
    nfts: Nfts, devnet: Devnet
) -> None:
    before = await nonce(devnet)
    data = _call("setApprovalForAll(address,bool)", COUNTERPARTY, True)
    reply = await send(nfts, nfts.punks, data)
    assert reason_of(reply) == "unlimited_approval"
    assert "setApprovalForAll" in reply["error"]["message"]
    assert not await is_operator(devnet, nfts.punks, COUNTERPARTY)
    assert await nonce(devnet) == before
    # Revoking grants nothing: it needs no bound and is mined.
    revoke = _call("setApprovalForAll(address,bool)", COUNTERPARTY, False)
    await mined(devnet, await send(nfts, nfts.punks, revoke))


async def test_count_caps_per_transaction_and_per_window(nfts: Nfts, devnet: Devnet) -> None:
    signature = "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)"
    balances = [await balance_1155(devnet, nfts.items, TRADER, i) for i in (1, 2)]
    before = await nonce(devnet)
    over = _call(signature, TRADER, COUNTERPARTY, [1, 2], [3, 3], b"")
    reply = await send(nfts, nfts.items, over)
    assert reason_of(reply) == "per_tx_cap_exceeded"
    assert reply["error"]["data"]["rule"] == "items-per-tx"
    assert [await balance_1155(devnet, nfts.items, TRADER, i) for i in (1, 2)] == balances
    assert await nonce(devnet) == before

    within = _call(signature, TRADER, COUNTERPARTY, [1, 2], [2, 2], b"")
    await mined(devnet, await send(nfts, nfts.items, within))
    after = [await balance_1155(devnet, nfts.items, TRADER, i) for i in (1, 2)]
    assert after == [balances[0] - 2, balances[1] - 2]

    before = await nonce(devnet)
    again = _call(signature, TRADER, COUNTERPARTY, [1, 2], [1, 2], b"")  # 4 + 3 > 6 a day
    reply = await send(nfts, nfts.items, again)
    assert reason_of(reply) == "cumulative_cap_exceeded"
    assert [await balance_1155(devnet, nfts.items, TRADER, i) for i in (1, 2)] == after
    assert await nonce(devnet) == before


async def test_an_unknown_collection_is_refused(nfts: Nfts, devnet: Devnet) -> None:
    before = await nonce(devnet)
    data = _call("safeTransferFrom(address,address,uint256)", TRADER, COUNTERPARTY, 1)
    assert reason_of(await send(nfts, nfts.strays, data)) == "unknown_asset"
    assert await owner_of(devnet, nfts.strays, 1) == TRADER
    operator = _call("setApprovalForAll(address,bool)", COUNTERPARTY, True)
    assert reason_of(await send(nfts, nfts.strays, operator)) == "unknown_asset"
    assert not await is_operator(devnet, nfts.strays, COUNTERPARTY)
    assert await nonce(devnet) == before


async def test_erc721_transfer_from_of_a_large_id_is_one_token(nfts: Nfts, devnet: Devnet) -> None:
    # transferFrom has the ERC-20 selector: read as ERC-20, 2**200 tokens would be far over
    # the cap of 2; as an NFT it is one token, within it.
    data = _call("transferFrom(address,address,uint256)", TRADER, COUNTERPARTY, BIG_ID)
    reply = await send(nfts, nfts.punks, data)
    await mined(devnet, reply)
    assert await owner_of(devnet, nfts.punks, BIG_ID) == COUNTERPARTY
    rows = await nfts.gateway.rows(
        "SELECT amounts->>'punks' AS punks FROM transactions WHERE tx_hash = $1", reply["result"]
    )
    assert [row["punks"] for row in rows] == ["1"]
    # approve(spender, id) is one token, not an unlimited ERC-20 approval.
    approve = _call("approve(address,uint256)", COUNTERPARTY, BIG_ID + 1)
    await mined(devnet, await send(nfts, nfts.punks, approve))
    approved = await _read(devnet, nfts.punks, "getApproved(uint256)", "address", BIG_ID + 1)
    assert str(approved).lower() == COUNTERPARTY
    before = await nonce(devnet)
    to_stranger = _call("approve(address,uint256)", STRANGER, 3)
    assert reason_of(await send(nfts, nfts.punks, to_stranger)) == "destination_not_allowed"
    assert await nonce(devnet) == before
