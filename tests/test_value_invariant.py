"""The value model's invariant, end to end: for every spend walletgate lets through, what
the wallet actually lost on the chain (value plus the fee charged, tokens, NFTs) and
what it authorized (token allowances) is within what walletgate counted for it; for
every spend it refuses, nothing on the chain changed.

Hypothesis generates requests of every value-moving shape (native transfers with and
without gas and fee fields, ERC-20 transfers and approvals, ERC-721 and ERC-1155
transfers) to listed and unlisted recipients, and a real walletgate in front of the
devnet judges them under caps in every asset. The chain is read before and after each
request; the audit row of an allowed one gives what was counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from eth_abi import decode, encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.contracts import deploy
from tests.support.devnet import Devnet
from tests.support.gateway import GatewayProcess, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH = 10**18
GWEI = 10**9
WUSD = 10**6
WALLET_KEY = 8  # devnet key 8: no other module sends from it
DEPLOYER_KEY = 5
D1 = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"  # devnet key 6
D2 = "0xd41c057fd1c78805aac12b0a94a405c0461a6fbb"  # devnet key 7
STRANGER = "0x4cceba2d7d2b4fdce4304d3e09a1fea9fbeb1528"  # devnet key 10: on no list
SPENDER = D2
NFT_IDS = range(1, 13)
#: Each example mines at most one transaction; a small run keeps CI fast.
DEVNET_PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def key(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


WALLET = str(Account.from_key(key(WALLET_KEY)).address).lower()


def call(signature: str, *args: Any) -> str:
    types = signature[signature.index("(") + 1 : -1].split(",")
    return (
        "0x" + (function_signature_to_4byte_selector(signature) + encode(types, list(args))).hex()
    )


@dataclass(frozen=True)
class World:
    gateway: GatewayProcess
    devnet: Devnet
    token: str
    punks: str  # ERC-721, ids 1..12 held by the wallet
    items: str  # ERC-1155, ids 1 and 2, 40 of each held by the wallet


def _policies(token: str, punks: str, items: str) -> dict[str, Any]:
    priced = {"price_as_of": "2026-01-01T00:00:00Z", "price_max_age": "3650d"}
    return {
        "version": 1,
        "owners": [{"id": "acme"}],
        # The gateway fixture issues tokens for "trader" and "payroll".
        "agents": [{"id": "trader", "owner": "acme"}, {"id": "payroll", "owner": "acme"}],
        "wallets": [
            {"id": "hot", "owner": "acme", "agent": "trader", "chain": 1337, "address": WALLET}
        ],
        "assets": [
            {
                "id": "eth",
                "chain": 1337,
                "native": True,
                "symbol": "ETH",
                "decimals": 18,
                "price_usd": "3000",
                **priced,
            },
            {
                "id": "wusd",
                "chain": 1337,
                "address": token,
                "symbol": "WUSD",
                "decimals": 6,
                "price_usd": "1",
                **priced,
            },
            {
                "id": "punks",
                "chain": 1337,
                "kind": "erc721",
                "address": punks,
                "symbol": "PUNKS",
                "price_usd": "40",
                **priced,
            },
            {
                "id": "items",
                "chain": 1337,
                "kind": "erc1155",
                "address": items,
                "symbol": "ITEMS",
                "price_usd": "2",
                **priced,
            },
        ],
        "policies": [
            {
                "id": "trader-limits",
                "agent": "trader",
                "rules": [
                    {"id": "eth-tx", "type": "per_tx_cap", "asset": "eth", "max": "0.05"},
                    {"id": "wusd-tx", "type": "per_tx_cap", "asset": "wusd", "max": "100"},
                    {"id": "punks-tx", "type": "per_tx_cap", "asset": "punks", "max": "1"},
                    {"id": "items-tx", "type": "per_tx_cap", "asset": "items", "max": "5"},
                    {"id": "usd-tx", "type": "per_tx_cap", "usd": "150"},
                    {
                        "id": "eth-day",
                        "type": "cumulative_cap",
                        "asset": "eth",
                        "max": "2",
                        "window": "24h",
                        "scope": "wallet",
                    },
                    {"id": "approvals", "type": "approval_limit", "asset": "wusd", "max": "60"},
                    {"id": "fees", "type": "fee_cap", "max_fee_per_gas_gwei": "100"},
                    {"id": "where", "type": "destination_allowlist", "addresses": [D1, D2]},
                ],
            }
        ],
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str,
    migrated_template: str,
    redis_server_url: str,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    deployer = key(DEPLOYER_KEY)
    punks = await deploy(
        devnet, "TestNft721", deployer, "Punks", "PUNKS", [WALLET] * len(NFT_IDS), list(NFT_IDS)
    )
    items = await deploy(devnet, "TestNft1155", deployer, [WALLET, WALLET], [1, 2], [40, 40])
    document = _policies(devnet.token_address.lower(), punks, items)
    path = _write(tmp_path_factory.mktemp("invariant") / "policies.yaml", document)
    async with running_gateway(
        postgres_server_url, migrated_template, redis_server_url, devnet, path
    ) as gateway:
        yield World(gateway, devnet, devnet.token_address.lower(), punks, items)


async def _read(devnet: Devnet, contract: str, signature: str, *args: Any) -> int:
    reply = await devnet.rpc(
        "eth_call", [{"to": contract, "data": call(signature, *args)}, "latest"]
    )
    (value,) = decode(["uint256"], bytes.fromhex(reply.removeprefix("0x")))
    return int(value)


async def holdings(w: World) -> dict[str, int]:
    """What the wallet holds and has authorized, in each asset's base units."""
    devnet = w.devnet
    return {
        "eth": await devnet.balance(WALLET),
        "wusd": await _read(devnet, w.token, "balanceOf(address)", WALLET),
        "wusd_allowance": await _read(
            devnet, w.token, "allowance(address,address)", WALLET, SPENDER
        ),
        "punks": await _read(devnet, w.punks, "balanceOf(address)", WALLET),
        "items": sum(
            [await _read(devnet, w.items, "balanceOf(address,uint256)", WALLET, i) for i in (1, 2)]
        ),
        "nonce": int(await devnet.rpc("eth_getTransactionCount", [WALLET, "latest"]), 16),
    }


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A value-moving transaction object from the wallet, of a random shape."""
    to = draw(st.sampled_from([D1, D2, STRANGER]))
    kind = draw(st.sampled_from(["eth", "erc20", "approve", "erc721", "erc1155"]))
    tx: dict[str, Any] = {"from": WALLET}
    if kind == "eth":
        tx |= {"to": to, "value": hex(draw(st.integers(0, ETH // 10)))}
    elif kind == "erc20":
        amount = draw(st.integers(0, 150 * WUSD))
        tx |= {"to": "token", "data": ("transfer(address,uint256)", to, amount)}
    elif kind == "approve":
        amount = draw(st.integers(0, 100 * WUSD) | st.just(2**256 - 1))
        tx |= {"to": "token", "data": ("approve(address,uint256)", to, amount)}
    elif kind == "erc721":
        token_id = draw(st.sampled_from(list(NFT_IDS)))
        tx |= {
            "to": "punks",
            "data": ("safeTransferFrom(address,address,uint256)", WALLET, to, token_id),
        }
    else:
        token_id, amount = draw(st.sampled_from([1, 2])), draw(st.integers(0, 8))
        signature = "safeTransferFrom(address,address,uint256,uint256,bytes)"
        tx |= {"to": "items", "data": (signature, WALLET, to, token_id, amount, b"")}
    if draw(st.booleans()):
        tx["gas"] = hex(draw(st.integers(60_000, 200_000)))
    if draw(st.booleans()):
        tx["maxFeePerGas"] = hex(draw(st.integers(GWEI, 150 * GWEI)))
        tx["maxPriorityFeePerGas"] = "0x1"
    return tx


def _resolve(w: World, drawn: dict[str, Any]) -> dict[str, Any]:
    tx = dict(drawn)
    contracts = {"token": w.token, "punks": w.punks, "items": w.items}
    tx["to"] = contracts.get(tx["to"], tx["to"])
    if "data" in tx:
        tx["data"] = call(*tx["data"])
    return tx


async def _counted(gw: GatewayProcess, tx_hash: str) -> dict[str, int]:
    for _ in range(100):
        rows = await gw.rows("SELECT amounts FROM transactions WHERE tx_hash = $1", tx_hash)
        if rows:
            return {asset: int(units) for asset, units in json.loads(rows[0]["amounts"]).items()}
        await asyncio.sleep(0.05)
    raise AssertionError(f"no audit row for {tx_hash}")


@DEVNET_PROPERTY
@given(drawn=requests())
async def test_nothing_allowed_costs_or_authorizes_more_than_was_counted(
    world: World, drawn: dict[str, Any]
) -> None:
    w = world
    before = await holdings(w)
    tx = _resolve(w, drawn)
    reply = await w.gateway.rpc("eth_sendTransaction", [tx])
    if "error" in reply:
        event(f"refused: {reply['error'].get('data', {}).get('reason')}")
        assert await holdings(w) == before, (reply, tx)
        return
    event("allowed")
    receipt = await w.devnet.rpc("eth_getTransactionReceipt", [reply["result"]])
    after = await holdings(w)
    counted = await _counted(w.gateway, reply["result"])
    for asset in ("eth", "wusd", "punks", "items"):
        lost = before[asset] - after[asset]
        assert lost <= counted.get(asset, 0), (asset, lost, counted, tx, receipt["status"])
    # An approval authorizes: the allowance it set is exposure walletgate counted.
    granted = after["wusd_allowance"] - before["wusd_allowance"]
    assert granted <= counted.get("wusd", 0), (granted, counted, tx)
