"""eth_accounts and eth_requestAccounts answer the calling agent's own wallets.

The backend's own list would name every key it holds (other agents' wallets included),
so walletgate never forwards these calls; it answers them from the policy document, and
clients that look an account up before using it (ethers' ``getSigner(address)``, web3's
``eth.accounts``) work unchanged.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from tests.support.devnet import Devnet
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

NODE_CLIENT = Path(__file__).parent / "node" / "get_signer.mjs"
# examples/policies.yaml: the trader's wallet is devnet key 1, the payroll agent's are
# keys 2 and 3; key 6 is one of the trader's counterparties.
TRADER = Account.from_key((1).to_bytes(32, "big")).address.lower()
PAYROLL = [Account.from_key(n.to_bytes(32, "big")).address.lower() for n in (2, 3)]
COUNTERPARTY = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"


def agent_url(gateway: GatewayProcess, agent: str) -> str:
    return f"{gateway.url.rstrip('/')}/t/{gateway.tokens[agent]}/"


async def test_each_agent_sees_only_its_own_wallets(gateway: GatewayProcess) -> None:
    for method in ("eth_accounts", "eth_requestAccounts"):
        trader = await gateway.rpc(method, [])
        assert trader["result"] == [TRADER]
        payroll = await gateway.rpc(method, [], token=gateway.tokens["payroll"])
        assert sorted(payroll["result"]) == sorted(PAYROLL)


async def test_the_backends_account_list_is_never_forwarded(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    # The devnet holds ten keys; the agent sees one of them.
    assert len(await devnet.rpc("eth_accounts")) == 10
    w3 = AsyncWeb3(AsyncHTTPProvider(agent_url(gateway, "trader")))
    assert [a.lower() for a in await w3.eth.accounts] == [TRADER]
    coinbase = await gateway.rpc("eth_coinbase", [])
    assert coinbase["error"]["data"]["reason"] == "method_not_allowed"


async def test_parameters_are_refused_clearly(gateway: GatewayProcess) -> None:
    reply = await gateway.rpc("eth_accounts", ["0x" + "00" * 20])
    assert reply["error"]["code"] == -32602
    assert "no parameters" in reply["error"]["message"]


async def _ethers(*args: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "scripts/test.sh installs Node.js"
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_CLIENT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return answer


async def test_ethers_get_signer_sends_through_walletgate(
    gateway: GatewayProcess, devnet: Devnet
) -> None:
    before = await devnet.balance(COUNTERPARTY)
    answer = await _ethers(agent_url(gateway, "trader"), TRADER, COUNTERPARTY, str(10**15))
    assert "error" not in answer, answer
    assert answer["accounts"] == [TRADER]
    assert answer["signer"].lower() == TRADER
    receipt = await devnet.rpc("eth_getTransactionReceipt", [answer["hash"]])
    assert receipt is not None and int(receipt["status"], 16) == 1
    assert await devnet.balance(COUNTERPARTY) == before + 10**15


async def test_ethers_cannot_get_a_signer_for_another_agents_wallet(
    gateway: GatewayProcess,
) -> None:
    answer = await _ethers(agent_url(gateway, "trader"), PAYROLL[0], COUNTERPARTY, "1")
    assert "error" in answer
    assert (
        "invalid account" in answer["error"].lower() or "unknown account" in answer["error"].lower()
    ), answer
