"""Contracts only the tests deploy: their artifacts (``tests/contracts/``, compiled from
``contracts/test/`` by ``contracts/compile.sh``) and deployment to the devnet, straight
to the devnet (never through a gateway), signed with a funded devnet key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_account import Account

from tests.support.devnet import Devnet

ARTIFACTS = Path(__file__).parent.parent / "contracts"


def load_test_artifact(name: str) -> dict[str, Any]:
    """The compiled artifact of ``contracts/test/<name>.sol`` (abi, bytecode, source hash)."""
    artifact: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.json").read_text("utf-8"))
    return artifact


def _constructor_types(abi: list[dict[str, Any]]) -> list[str]:
    for entry in abi:
        if entry.get("type") == "constructor":
            return [item["type"] for item in entry["inputs"]]
    return []


async def send_signed(devnet: Devnet, private_key: str, tx: dict[str, Any]) -> dict[str, Any]:
    """Sign ``tx`` (nonce, gas price and chain filled in here) with ``private_key``, send it
    to the devnet directly and return its receipt (the devnet mines at once)."""
    sender = Account.from_key(private_key).address
    filled = {
        "chainId": devnet.chain_id,
        "nonce": int(await devnet.rpc("eth_getTransactionCount", [sender, "pending"]), 16),
        "gasPrice": int(await devnet.rpc("eth_gasPrice"), 16),
        "gas": 5_000_000,
        "value": 0,
        **tx,
    }
    signed = Account.sign_transaction(filled, private_key)
    tx_hash = await devnet.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    receipt: dict[str, Any] = await devnet.rpc("eth_getTransactionReceipt", [tx_hash])
    if receipt is None or int(receipt["status"], 16) != 1:
        raise RuntimeError(f"transaction {tx_hash} failed: {receipt}")
    return receipt


async def deploy(devnet: Devnet, name: str, private_key: str, *args: Any) -> str:
    """Deploy ``contracts/test/<name>.sol`` with constructor ``args``; returns its
    canonical (lowercase) address."""
    artifact = load_test_artifact(name)
    data = bytes.fromhex(artifact["bytecode"].removeprefix("0x"))
    types = _constructor_types(artifact["abi"])
    if types:
        data += encode(types, list(args))
    receipt = await send_signed(devnet, private_key, {"data": "0x" + data.hex()})
    address: str = receipt["contractAddress"]
    return address.lower()
