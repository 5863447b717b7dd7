"""Fuzzing JSON-RPC bodies through a real ``walletgate serve`` (hypothesis).

Every body is also judged by the oracle of :mod:`tests.support.gateway_oracle` (the pure
parse, decode and evaluate steps over the same policies); the served answer and what
reached the recording backend must agree with it: refused calls are never forwarded,
allowed spends are forwarded as judged and audited, nothing is ever a 500.

Run ``pytest tests/test_fuzz_http.py --hypothesis-show-statistics`` to see the counts.
"""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from tests.support.evm_builders import calldata, permit
from tests.support.fuzzing import (
    fuzz_settings,
    huge_integers,
    json_scalars,
    json_values,
    mutations_of,
    text_mutations,
)
from tests.support.gateway_oracle import CHAIN_ID, served_like_the_oracle
from tests.support.recorded_gateway import (
    ALICE,
    ALICE_KEY,
    BOB,
    COUNTERPARTIES,
    STRANGER,
    RecordedGateway,
    private_key,
    recorded_gateway_fixture,
)

gw = recorded_gateway_fixture("fuzz-http")


# -- what is sent ----------------------------------------------------------------------------

TOKEN = "0xf2e246bb76df876cef8b38ae84130f4f55de395b"


def _raw_from_alice(**fields: Any) -> str:
    tx = {
        "chainId": CHAIN_ID,
        "nonce": 0,  # mined at most once; afterwards the devnet refuses it
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
        "gas": 100_000,
        "to": to_checksum_address(COUNTERPARTIES[1]),
        "value": 1,
        "data": b"",
        **fields,
    }
    return "0x" + bytes(Account.sign_transaction(tx, private_key(ALICE_KEY)).raw_transaction).hex()


#: Valid calls of every class: the starting points of mutation.
TEMPLATES: list[tuple[str, list[Any]]] = [
    ("eth_sendTransaction", [{"from": ALICE, "to": COUNTERPARTIES[0], "value": "0x1"}]),
    (
        "eth_sendTransaction",
        [
            {
                "from": ALICE,
                "to": TOKEN,
                "data": calldata("transfer(address,uint256)", COUNTERPARTIES[1], 5),
            }
        ],
    ),
    (
        "eth_sendTransaction",
        [{"from": ALICE, "to": TOKEN, "data": calldata("approve(address,uint256)", BOB, 10)}],
    ),
    (
        "eth_signTransaction",
        [{"from": ALICE, "to": COUNTERPARTIES[2], "value": "0x2", "gas": "0x5208"}],
    ),
    ("eth_sendRawTransaction", [_raw_from_alice()]),
    (
        "wallet_sendCalls",
        [
            {
                "version": "2.0.0",
                "chainId": "0x539",
                "from": ALICE,
                "atomicRequired": True,
                "calls": [{"to": COUNTERPARTIES[0], "value": "0x1"}],
            }
        ],
    ),
    ("personal_sign", ["0x68656c6c6f", ALICE]),
    ("eth_sign", [ALICE, "0x" + "ab" * 32]),
    ("eth_signTypedData_v4", [ALICE, json.dumps(permit(ALICE, 10, token=TOKEN))]),
    ("eth_getBalance", [ALICE, "latest"]),
    ("eth_call", [{"to": TOKEN, "data": calldata("balanceOf(address)", ALICE)}, "latest"]),
    ("eth_blockNumber", []),
    ("eth_chainId", []),
    ("admin_peers", []),
    ("personal_unlockAccount", [ALICE, "password", 10]),
    ("eth_accounts", []),
    ("debug_traceTransaction", ["0x" + "00" * 32]),
]

addresses = st.sampled_from([ALICE, BOB, STRANGER, *COUNTERPARTIES, TOKEN]) | st.sampled_from(
    [ALICE.upper().replace("0X", "0x"), to_checksum_address(BOB), "0x" + "00" * 20]
)
replacements = json_scalars | addresses | json_values
methods = st.sampled_from([m for m, _ in TEMPLATES]) | st.sampled_from(
    [
        "ETH_sendTransaction",
        "eth_sendTransaction ",
        "eth_sendtransaction",
        "eth_sendTransaction\u0000",
        "personal_sign\u200b",
        "eth_signTypedData_v5",
        "wallet_sendcalls",
        "",
    ]
)


ids = (
    st.integers(0, 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.none()
    | huge_integers
)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A request object: a template, mutated, with mutations of its envelope too."""
    method, params = draw(st.sampled_from(TEMPLATES))
    envelope: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": draw(ids),
        "method": method,
    }
    envelope["params"] = draw(st.just(params) | mutations_of(params, replacements))
    if draw(st.integers(0, 9)) == 0:
        envelope["method"] = draw(methods)
    if draw(st.integers(0, 9)) == 0:
        envelope = draw(mutations_of(envelope, replacements))
    return envelope


def _body(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


# -- the fuzz tests ------------------------------------------------------------------------


@fuzz_settings(100)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(gw: RecordedGateway, body: bytes) -> None:
    served_like_the_oracle(gw, body)


@fuzz_settings(100)
@given(json_values)
def test_arbitrary_json_documents(gw: RecordedGateway, document: Any) -> None:
    served_like_the_oracle(gw, _body(document))


@fuzz_settings(300)
@given(envelopes())
def test_mutated_requests(gw: RecordedGateway, envelope: dict[str, Any]) -> None:
    served_like_the_oracle(gw, _body(envelope))


@fuzz_settings(100)
@given(st.lists(envelopes() | json_values, min_size=1, max_size=6), st.data())
def test_mutated_batches(gw: RecordedGateway, batch: list[Any], data: st.DataObject) -> None:
    for element in batch:
        if isinstance(element, dict) and data.draw(st.booleans()):
            element.pop("id", None)  # a notification: judged all the same
    served_like_the_oracle(gw, _body(batch))


@fuzz_settings(200)
@given(st.sampled_from(TEMPLATES).flatmap(lambda t: text_mutations(json.dumps(_template(*t)))))
def test_mutated_text(gw: RecordedGateway, text: str) -> None:
    served_like_the_oracle(gw, text.encode("utf-8", "surrogatepass"))


def _template(method: str, params: list[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
