"""Write the seed corpora of the harnesses: valid inputs of every kind to start from.

``python fuzz/seeds.py [DIRECTORY]`` writes ``DIRECTORY/<harness>/seed-N`` (default
``fuzz/corpus``). Seeds are generated, not committed, so they follow the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness import ROOT

from tests.support.evm_builders import (
    ALICE,
    RECIPIENT,
    address_of,
    calldata,
    dai_permit,
    fees_1559,
    mail,
    permit,
    permit2_batch,
    permit2_single,
    permit2_transfer,
    sign_raw,
)

TOKEN = "0x" + "70" * 20
TRANSFER = "transfer(address,uint256)"


def _calls() -> list[tuple[str, list[object]]]:
    trader = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    counterparty = "0xe57bfe9f44b819898f47bf37e5af72a0783e1141"
    return [
        ("eth_sendTransaction", [{"from": trader, "to": counterparty, "value": "0x1"}]),
        (
            "eth_sendTransaction",
            [{"from": trader, "to": TOKEN, "data": calldata(TRANSFER, counterparty, 5)}],
        ),
        ("eth_sendRawTransaction", [sign_raw(fees_1559())]),
        ("personal_sign", ["0x68656c6c6f", trader]),
        ("eth_signTypedData_v4", [trader, json.dumps(permit(trader, 10))]),
        (
            "wallet_sendCalls",
            [
                {
                    "version": "2.0.0",
                    "chainId": "0x539",
                    "from": trader,
                    "calls": [{"to": counterparty, "value": "0x1"}],
                }
            ],
        ),
        ("eth_getBalance", [trader, "latest"]),
        ("admin_peers", []),
    ]


def _raw_transactions() -> list[bytes]:
    legacy = {"nonce": 1, "gasPrice": 1, "gas": 21_000, "to": RECIPIENT, "value": 1}
    return [
        bytes.fromhex(sign_raw(tx)[2:])
        for tx in (
            legacy,
            {**legacy, "chainId": 1337},
            {**legacy, "chainId": 1337, "type": 1, "accessList": []},
            fees_1559(),
            fees_1559(maxFeePerBlobGas=1, blobVersionedHashes=["0x01" + "00" * 31]),
        )
    ]


def seeds() -> dict[str, list[bytes]]:
    """Seed inputs per harness."""
    owner = address_of(ALICE)
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
        for i, (method, params) in enumerate(_calls())
    ]
    bodies = [json.dumps(call).encode() for call in batch]
    typed = [
        permit(owner, 10**18),
        dai_permit(owner, True),
        permit2_single(TOKEN, 5),
        permit2_batch([(TOKEN, 1), (RECIPIENT, 2)]),
        permit2_transfer([(TOKEN, 7)], batch=False, witness=True),
        mail(),
    ]
    examples = ROOT / "examples"
    policies = [examples / "policies.yaml", *sorted((examples / "invalid").glob("*.yaml"))]
    return {
        "jsonrpc_body": [*bodies, json.dumps(batch).encode()],
        "raw_transaction": _raw_transactions(),
        "typed_data": [json.dumps(document).encode() for document in typed],
        "policy_yaml": [path.read_bytes() for path in policies],
    }


def write_seeds(directory: Path) -> None:
    for harness, inputs in seeds().items():
        target = directory / harness
        target.mkdir(parents=True, exist_ok=True)
        for index, data in enumerate(inputs):
            (target / f"seed-{index}").write_bytes(data)


if __name__ == "__main__":
    write_seeds(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus")
