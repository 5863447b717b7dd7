"""Token calldata that moves or approves tokens under other names than ERC-20's four
(ERC-1363 callbacks, the older ``increaseApproval``, ERC-777) is judged as what it does, and
calldata with a token selector that is not in the one canonical encoding is refused."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st

from walletgate.intents import ContractCall, DecodeError, TokenApproval, TokenTransfer
from walletgate.proxy.evm.calls import call_intents

CHAIN_ID = 1337
WALLET = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20
RECIPIENT = "0x" + "33" * 20
SOURCE = "0x" + "44" * 20


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1].split(",")
    return function_signature_to_4byte_selector(signature) + encode(types, list(args))


def intents(data: bytes) -> tuple[Any, ...]:
    return call_intents(
        chain_id=CHAIN_ID, wallet=WALLET, to=TOKEN, value=0, data=data, nonce=None, where="tx"
    )


def transfer(amount: int, source: str = WALLET) -> TokenTransfer:
    return TokenTransfer(CHAIN_ID, WALLET, TOKEN, RECIPIENT, amount, source=source)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (calldata("transferAndCall(address,uint256)", RECIPIENT, 7), transfer(7)),
        (calldata("transferAndCall(address,uint256,bytes)", RECIPIENT, 8, b"hi"), transfer(8)),
        (
            calldata("transferFromAndCall(address,address,uint256)", SOURCE, RECIPIENT, 9),
            transfer(9, SOURCE),
        ),
        (
            calldata(
                "transferFromAndCall(address,address,uint256,bytes)", SOURCE, RECIPIENT, 10, b""
            ),
            transfer(10, SOURCE),
        ),
        (
            calldata("approveAndCall(address,uint256,bytes)", RECIPIENT, 2**255, b"\x01"),
            TokenApproval(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 2**255, True, "approveAndCall"),
        ),
        (
            calldata("approveAndCall(address,uint256)", RECIPIENT, 5),
            TokenApproval(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 5, False, "approveAndCall"),
        ),
        (
            calldata("increaseApproval(address,uint256)", RECIPIENT, 6),
            TokenApproval(CHAIN_ID, WALLET, TOKEN, RECIPIENT, 6, False, "increaseApproval"),
        ),
        (calldata("send(address,uint256,bytes)", RECIPIENT, 11, b"memo"), transfer(11)),
        (
            calldata(
                "operatorSend(address,address,uint256,bytes,bytes)",
                SOURCE,
                RECIPIENT,
                12,
                b"",
                b"x",
            ),
            transfer(12, SOURCE),
        ),
        (
            calldata("authorizeOperator(address)", RECIPIENT),
            TokenApproval(
                CHAIN_ID, WALLET, TOKEN, RECIPIENT, 2**256 - 1, True, "authorizeOperator"
            ),
        ),
    ],
)
def test_token_moving_methods_are_token_intents(data: bytes, expected: Any) -> None:
    assert intents(data) == (expected,)


@pytest.mark.parametrize(
    "data",
    [
        calldata("transfer(address,uint256)", RECIPIENT, 1) + b"\x00",  # trailing byte
        calldata("transfer(address,uint256)", RECIPIENT, 1)[:-1],  # short
        # a dirty high byte in the address word: eth-abi refuses it in strict mode
        calldata("transfer(address,uint256)", RECIPIENT, 1)[:4]
        + b"\x01"
        + calldata("transfer(address,uint256)", RECIPIENT, 1)[5:],
        # the bytes argument with 32 extra bytes after its padded data
        calldata("transferAndCall(address,uint256,bytes)", RECIPIENT, 1, b"x") + b"\x00" * 32,
    ],
)
def test_token_selectors_with_non_canonical_calldata_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError) as raised:
        intents(data)
    assert raised.value.where == "tx.data"


def test_a_moved_bytes_offset_is_refused() -> None:
    # The same arguments with the bytes placed one word later (offset 0x80, a gap word):
    # eth-abi reads it; the canonical encoding differs, so two decoders could disagree.
    canonical = calldata("transferAndCall(address,uint256,bytes)", RECIPIENT, 1, b"x")
    head, tail = canonical[4:100], canonical[100:]
    moved = canonical[:4] + head[:64] + (128).to_bytes(32, "big") + b"\x00" * 32 + tail
    with pytest.raises(DecodeError, match="canonical"):
        intents(moved)


@given(amount=st.integers(0, 2**256 - 1), payload=st.binary(max_size=100))
def test_transfer_and_call_moves_exactly_its_amount(amount: int, payload: bytes) -> None:
    data = calldata("transferAndCall(address,uint256,bytes)", RECIPIENT, amount, payload)
    assert intents(data) == (transfer(amount),)


def test_other_selectors_stay_contract_calls() -> None:
    data = calldata("burn(uint256)", 5)
    (call,) = intents(data)
    assert isinstance(call, ContractCall) and call.selector == "0x" + data[:4].hex()
