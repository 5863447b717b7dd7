"""End to end: typed data is judged by what it signs, through a real walletgate in front
of the devnet (which signs typed data for its unlocked accounts, as geth and anvil do).

The policy document is the example one (whose trader may sign ``eth_signTypedData_v4``
documents of one typed_data entry: mail from a correspondent, for one contract on this
chain), plus an NFT collection the trader owns (this repository's
contracts/test/TestNft721.sol) and a cap of one of its tokens per request. Before typed
data was judged by what it signs, that method on the allowlist let the backend sign all
of the documents below.

Each refusal is checked three ways: the JSON-RPC error, the audit row, and the chain
(nothing mined: the trader's nonce, the token's owner and approval, balances unchanged).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.support.contracts import deploy
from tests.support.devnet import Devnet
from tests.support.evm_builders import mail, permit
from tests.support.gateway import EXAMPLE_POLICIES, GatewayProcess, running_gateway
from tests.support.typed_shapes import (
    ERC721,
    delegation,
    item,
    nft_permit,
    safe_tx,
    seaport_order,
)
from tests.test_gateway_e2e import COUNTERPARTY, STRANGER, TRADER_KEY, address, key
from tests.test_value_nfts import nonce, owner_of

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPLOYER_KEY = 5
TRADER = address(TRADER_KEY).lower()
DENIED = "0x000000000000000000000000000000000000dead"  # the example's owner-wide denylist
MAIL_CONTRACT = "0x" + "cc" * 20
FRIEND = COUNTERPARTY  # on the example's list of correspondents
SAFE = "0x" + "5a" * 20  # the trader's Safe (no code is needed to sign for it)
ETH = 10**18


@dataclass(frozen=True)
class World:
    gateway: GatewayProcess
    punks: str  # an ERC-721 the trader owns tokens 1 and 2 of


def _policies(punks: str, chain_id: int) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICIES.read_text())
    doc["assets"].append(
        {"id": "punks", "chain": chain_id, "kind": "erc721", "address": punks, "symbol": "PUNK"}
    )
    baseline = next(p for p in doc["policies"] if p["id"] == "acme-baseline")
    for rule in baseline["rules"]:
        if rule["id"] == "known-assets":
            rule["assets"].append("punks")
    doc["policies"].append(
        {
            "id": "trader-nfts",
            "agent": "trader",
            "rules": [{"id": "punks-per-tx", "type": "per_tx_cap", "asset": "punks", "max": "1"}],
        }
    )
    return doc


def _write(directory: Path, punks: str, chain_id: int) -> Path:
    path = directory / "policies.yaml"
    path.write_text(yaml.safe_dump(_policies(punks, chain_id), sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    punks = await deploy(
        devnet, "TestNft721", key(DEPLOYER_KEY), "Punks", "PUNK", [TRADER, TRADER], [1, 2]
    )
    path = _write(tmp_path_factory.mktemp("typed-data-policies"), punks, devnet.chain_id)
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as gateway:
        yield World(gateway, punks)


async def approved_for(devnet: Devnet, collection: str, token_id: int) -> str:
    from tests.test_value_nfts import _read

    return str(await _read(devnet, collection, "getApproved(uint256)", "address", token_id)).lower()


async def sign(world: World, document: dict[str, Any]) -> dict[str, Any]:
    encode_typed_data(full_message=document)  # well formed: walletgate must judge it
    return await world.gateway.rpc("eth_signTypedData_v4", [TRADER, json.dumps(document)])


async def refused(world: World, devnet: Devnet, document: dict[str, Any], reason: str) -> str:
    """Sign ``document`` through walletgate: it must be refused for ``reason``, audited as
    denied, and leave the chain as it was. Returns the refusal message."""
    before = (
        await nonce(devnet),
        await owner_of(devnet, world.punks, 1),
        await approved_for(devnet, world.punks, 1),
        await devnet.balance(TRADER),
        await devnet.block_number(),
    )
    reply = await sign(world, document)
    assert "error" in reply, f"expected a refusal, got {reply}"
    data = reply["error"]["data"]
    assert (data["decision"], data["reason"]) == ("deny", reason), reply
    rows = await world.gateway.rows(
        "SELECT decision, reason, status FROM transactions WHERE id = $1::uuid",
        data["transaction_id"],
    )
    assert [(r["decision"], r["reason"], r["status"]) for r in rows] == [("deny", reason, "denied")]
    after = (
        await nonce(devnet),
        await owner_of(devnet, world.punks, 1),
        await approved_for(devnet, world.punks, 1),
        await devnet.balance(TRADER),
        await devnet.block_number(),
    )
    assert after == before
    assert before[1] == TRADER
    message: str = reply["error"]["message"]
    return message


async def test_a_seaport_order_giving_an_nft_away_is_refused(world: World, devnet: Devnet) -> None:
    # Token 1 offered, nothing asked: whoever fulfils the order takes it.
    order = seaport_order(TRADER, [item(ERC721, world.punks, 1, 1)], chain_id=devnet.chain_id)
    message = await refused(world, devnet, order, "destination_denied")
    assert "anyone" in message


async def test_an_erc4494_permit_is_an_nft_approval(world: World, devnet: Devnet) -> None:
    document = nft_permit(world.punks, STRANGER, 1, chain_id=devnet.chain_id)
    message = await refused(world, devnet, document, "destination_not_allowed")
    assert STRANGER in message


async def test_a_safe_transaction_to_a_denylisted_address_is_refused(
    world: World, devnet: Devnet
) -> None:
    document = safe_tx(SAFE, DENIED, value=ETH // 100, chain_id=devnet.chain_id)
    message = await refused(world, devnet, document, "destination_denied")
    assert DENIED in message


async def test_a_safe_delegatecall_is_refused(world: World, devnet: Devnet) -> None:
    document = safe_tx(SAFE, COUNTERPARTY, data="0xdeadbeef", operation=1, chain_id=devnet.chain_id)
    message = await refused(world, devnet, document, "malformed")
    assert "delegatecall" in message


async def test_an_erc7710_delegation_is_refused(world: World, devnet: Devnet) -> None:
    document = delegation(STRANGER, TRADER)
    document["domain"]["chainId"] = devnet.chain_id
    message = await refused(world, devnet, document, "signing_not_allowed")
    assert "erc7710-delegation" in message


async def test_a_permit_without_a_chain_id_is_refused(world: World, devnet: Devnet) -> None:
    # Within every cap and to an allowed spender, but valid on every chain.
    document = permit(
        TRADER,
        10**6,
        token=devnet.token_address,
        chain_id=None,
        spender=COUNTERPARTY,
        name="Walletgate Test USD",
    )
    message = await refused(world, devnet, document, "signing_not_allowed")
    assert "no chainId" in message


async def test_mail_from_a_stranger_is_refused(world: World, devnet: Devnet) -> None:
    document = _mail(devnet)
    document["message"]["from"] = STRANGER
    message = await refused(world, devnet, document, "signing_not_allowed")
    assert "message.from" in message


async def test_an_allowlisted_document_is_signed(world: World, devnet: Devnet) -> None:
    document = _mail(devnet)
    reply = await sign(world, document)
    assert "result" in reply, reply
    signer = Account.recover_message(
        encode_typed_data(full_message=document), signature=reply["result"]
    )
    assert signer.lower() == TRADER
    rows = await world.gateway.rows(
        "SELECT decision, status FROM transactions WHERE method = 'eth_signTypedData_v4' "
        "AND decision = 'allow'"
    )
    assert len(rows) == 1


def _mail(devnet: Devnet) -> dict[str, Any]:
    document = mail(MAIL_CONTRACT)
    document["domain"]["chainId"] = devnet.chain_id
    document["message"]["from"] = FRIEND
    return document
