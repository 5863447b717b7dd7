"""Wrapper calls (walletgate.proxy.evm.wrappers) and their intents (calls.call_intents):
every Multicall3-style aggregate and Safe multiSend shape, malformed payloads, nesting,
and how the native value is counted."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st

from walletgate.intents import ContractCall, DecodeError, NativeTransfer, TokenTransfer
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.wrappers import MAX_DEPTH, WRAPPER_SELECTORS, InnerCall, unwrap

CHAIN = 1337
WALLET = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
WRAPPER = "0x" + "cc" * 20
A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)") + encode(
    ["address", "uint256"], [B, 7]
)


def call(signature: str, types: list[str], args: list[Any]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, args)


def multisend_payload(*entries: tuple[int, str, int, bytes]) -> bytes:
    packed = b""
    for operation, to, value, data in entries:
        packed += bytes([operation]) + bytes.fromhex(to[2:]) + value.to_bytes(32, "big")
        packed += len(data).to_bytes(32, "big") + data
    return packed


def multisend(*entries: tuple[int, str, int, bytes]) -> bytes:
    return call("multiSend(bytes)", ["bytes"], [multisend_payload(*entries)])


def intents_of(data: bytes, value: int = 0, to: str = WRAPPER) -> tuple[Any, ...]:
    return call_intents(
        chain_id=CHAIN, wallet=WALLET, to=to, value=value, data=data, nonce=None, where="params[0]"
    )


PAIRS = [(A, b""), (B, TRANSFER)]
EXPECTED = (InnerCall(A, 0, b""), InnerCall(B, 0, TRANSFER))


@pytest.mark.parametrize(
    "data",
    [
        call("aggregate((address,bytes)[])", ["(address,bytes)[]"], [PAIRS]),
        call("blockAndAggregate((address,bytes)[])", ["(address,bytes)[]"], [PAIRS]),
        call("tryAggregate(bool,(address,bytes)[])", ["bool", "(address,bytes)[]"], [True, PAIRS]),
        call(
            "tryBlockAndAggregate(bool,(address,bytes)[])",
            ["bool", "(address,bytes)[]"],
            [False, PAIRS],
        ),
        call(
            "aggregate3((address,bool,bytes)[])",
            ["(address,bool,bytes)[]"],
            [[(A, False, b""), (B, True, TRANSFER)]],
        ),
        call(
            "aggregate3Value((address,bool,uint256,bytes)[])",
            ["(address,bool,uint256,bytes)[]"],
            [[(A, False, 0, b""), (B, True, 0, TRANSFER)]],
        ),
        multisend((0, A, 0, b""), (0, B, 0, TRANSFER)),
    ],
)
def test_every_wrapper_shape_unwraps(data: bytes) -> None:
    assert "0x" + data[:4].hex() in WRAPPER_SELECTORS
    assert unwrap(data, "params[0].data", WRAPPER) == EXPECTED


def test_aggregate3value_and_multisend_carry_values() -> None:
    data = call(
        "aggregate3Value((address,bool,uint256,bytes)[])",
        ["(address,bool,uint256,bytes)[]"],
        [[(A, False, 5, b""), (B, False, 6, b"\x01\x02")]],
    )
    assert unwrap(data, "", WRAPPER) == (InnerCall(A, 5, b""), InnerCall(B, 6, b"\x01\x02"))
    data = multisend((0, A, 5, b""), (0, B, 2**255, b"\x01"))
    assert unwrap(data, "", WRAPPER) == (InnerCall(A, 5, b""), InnerCall(B, 2**255, b"\x01"))


def test_other_calldata_is_not_a_wrapper() -> None:
    assert unwrap(TRANSFER, "", WRAPPER) is None
    assert unwrap(b"\x25\x2d", "", WRAPPER) is None


AGGREGATE3 = call(
    "aggregate3((address,bool,bytes)[])", ["(address,bool,bytes)[]"], [[(A, False, b"")]]
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (AGGREGATE3[:-1], "does not decode"),
        (AGGREGATE3 + b"\x00" * 32, "not the canonical ABI encoding"),
        (multisend((1, A, 0, b"")), "delegatecall"),
        (multisend((2, A, 0, b"")), "unknown operation 2"),
        (multisend(), "no transactions"),
        (
            call("multiSend(bytes)", ["bytes"], [multisend_payload((0, A, 0, b"\x01\x02"))[:-1]]),
            "runs past the payload",
        ),
        (
            call("multiSend(bytes)", ["bytes"], [multisend_payload((0, A, 0, b""))[:-3]]),
            "truncated",
        ),
        (
            call("multiSend(bytes)", ["bytes"], [multisend_payload((0, A, 0, b"")) + b"\x00"]),
            "truncated",
        ),
    ],
)
def test_malformed_wrappers_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        intents_of(data)
    assert message in caught.value.message
    assert caught.value.where.startswith("params[0].data")


def test_inner_calls_are_judged_like_top_level_calls() -> None:
    data = call(
        "aggregate3Value((address,bool,uint256,bytes)[])",
        ["(address,bool,uint256,bytes)[]"],
        [[(A, False, 5, b""), (B, False, 0, TRANSFER), (A, False, 1, b"\xde\xad\xbe\xef")]],
    )
    assert intents_of(data, value=6) == (
        ContractCall(CHAIN, WALLET, WRAPPER, "0x174dea71", len(data), data, 6),
        NativeTransfer(CHAIN, WALLET, A, 5),
        TokenTransfer(CHAIN, WALLET, B, B, 7, source=WALLET),
        NativeTransfer(CHAIN, WALLET, A, 1),
        ContractCall(CHAIN, WALLET, A, "0xdeadbeef", 4, b"\xde\xad\xbe\xef", 1),
    )


def test_value_the_inner_calls_do_not_account_for_stays_with_the_wrapper() -> None:
    data = multisend((0, A, 5, b""))
    assert NativeTransfer(CHAIN, WALLET, WRAPPER, 7) in intents_of(data, value=12)
    assert not any(
        isinstance(i, NativeTransfer) and i.to == WRAPPER for i in intents_of(data, value=5)
    )


@given(
    st.integers(0, 10**21),
    st.lists(st.integers(0, 10**21), min_size=1, max_size=5),
)
def test_native_counted_is_never_less_than_what_can_leave(outer: int, inner: list[int]) -> None:
    data = multisend(*((0, A, value, b"") for value in inner))
    counted = sum(i.amount for i in intents_of(data, value=outer) if isinstance(i, NativeTransfer))
    assert counted == max(outer, sum(inner))


def test_nested_wrappers_unwrap_up_to_the_depth_bound() -> None:
    data = multisend((0, A, 3, b""))
    for _ in range(MAX_DEPTH - 1):
        data = multisend((0, WRAPPER, 0, data))
    intents = intents_of(data)
    assert NativeTransfer(CHAIN, WALLET, A, 3) in intents
    with pytest.raises(DecodeError) as caught:
        intents_of(multisend((0, WRAPPER, 0, data)))
    assert "nested" in caught.value.message
    assert ".calls[0].data" in caught.value.where
