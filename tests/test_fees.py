"""Fee arithmetic and filling, pure: what a transaction can cost at most, per type, and
what the gateway fills in when a transaction leaves gas and fees to the backend."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.evm_builders import ALICE, CHAIN_ID, RECIPIENT, address_of
from walletgate.intents import DecodeError, NetworkFee
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import (
    BLOB_GAS_PER_BLOB,
    CallsFeeQuote,
    MissingFeeFields,
    calls_fees,
    check_blob_hashes,
    max_fee,
    network_fee,
)
from walletgate.proxy.fill import FeeQuote, default_fee_per_gas, filled_transaction

WALLET = address_of(ALICE)
GWEI = 10**9
QUOTE = FeeQuote(base_fee=10 * GWEI, priority_fee=2 * GWEI, gas_price=15 * GWEI)
BLOB_HASH = "0x01" + "ab" * 31


def test_max_fee_is_gas_times_fee_per_gas_plus_blob_gas() -> None:
    assert max_fee(21_000, 10**15) == 21 * 10**18  # the 21 ETH
    assert BLOB_GAS_PER_BLOB == 131072
    assert max_fee(100_000, 2 * GWEI, blob_count=2, max_fee_per_blob_gas=7) == (
        100_000 * 2 * GWEI + 2 * 131072 * 7
    )
    fee = network_fee(1, WALLET, gas=10, fee_per_gas=3, blob_count=1, max_fee_per_blob_gas=5)
    assert fee == NetworkFee(1, WALLET, 30 + 131072 * 5, 10, 3, 131072 * 5)


@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**256 - 1),
    st.integers(0, 6),
    st.integers(0, 2**256 - 1),
)
def test_the_fee_is_never_below_any_of_its_parts(
    gas: int, per_gas: int, blobs: int, per_blob_gas: int
) -> None:
    fee = network_fee(
        1, WALLET, gas=gas, fee_per_gas=per_gas, blob_count=blobs, max_fee_per_blob_gas=per_blob_gas
    )
    assert fee.amount == gas * per_gas + fee.blob_fee >= gas * per_gas
    assert fee.blob_fee == blobs * BLOB_GAS_PER_BLOB * per_blob_gas


def _object(**fields: Any) -> Any:
    return decode_call(
        "eth_sendTransaction", [{"from": WALLET, "to": RECIPIENT, **fields}], chain_id=CHAIN_ID
    )


@pytest.mark.parametrize(
    ("fields", "per_gas", "blob_fee"),
    [
        ({"gasPrice": hex(3 * GWEI)}, 3 * GWEI, 0),
        ({"type": "0x1", "gasPrice": hex(3 * GWEI)}, 3 * GWEI, 0),
        ({"maxFeePerGas": hex(5 * GWEI)}, 5 * GWEI, 0),
        ({"maxFeePerGas": hex(5 * GWEI), "maxPriorityFeePerGas": hex(GWEI)}, 5 * GWEI, 0),
        (
            {
                "maxFeePerGas": hex(5 * GWEI),
                "maxFeePerBlobGas": "0x7",
                "blobVersionedHashes": [BLOB_HASH, BLOB_HASH],
            },
            5 * GWEI,
            2 * 131072 * 7,
        ),
    ],
    ids=["legacy", "2930", "1559", "1559 with tip", "4844"],
)
def test_each_transaction_object_type_pays_its_fee(
    fields: dict[str, Any], per_gas: int, blob_fee: int
) -> None:
    fee = _object(gas=hex(50_000), **fields).intents[-1]
    assert fee == NetworkFee(
        CHAIN_ID, WALLET, 50_000 * per_gas + blob_fee, 50_000, per_gas, blob_fee
    )


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({}, "params[0].gas"),
        ({"gas": "0x5208"}, "params[0].maxFeePerGas"),
        ({"maxFeePerGas": "0x1"}, "params[0].gas"),
        ({"gas": "0x5208", "maxPriorityFeePerGas": "0x1"}, "params[0].maxFeePerGas"),
    ],
)
def test_an_object_that_leaves_gas_or_fees_to_the_backend_is_not_judged(
    fields: dict[str, Any], where: str
) -> None:
    with pytest.raises(MissingFeeFields) as caught:
        _object(**fields)
    assert caught.value.where == where
    assert caught.value.wallet == WALLET
    with pytest.raises(MissingFeeFields):
        decode_call("eth_signTransaction", [{"from": WALLET, **fields}], chain_id=CHAIN_ID)


def test_malformed_fields_are_refused_before_missing_fees_are_noticed() -> None:
    # MissingFeeFields means "well formed but incomplete": the gateway fills only those.
    with pytest.raises(DecodeError) as caught:
        _object(value="0x01")
    assert not isinstance(caught.value, MissingFeeFields)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"type": "0x0", "maxFeePerGas": "0x1"}, "pays gasPrice"),
        ({"type": "0x2", "gasPrice": "0x1"}, "pays maxFeePerGas"),
        (
            {"maxFeePerGas": "0x1", "blobVersionedHashes": [BLOB_HASH]},
            "needs maxFeePerBlobGas",
        ),
        (
            {
                "maxFeePerGas": "0x1",
                "maxFeePerBlobGas": "0x1",
                "blobVersionedHashes": ["0x02" + "ab" * 31],
            },
            "version byte 0x01",
        ),
    ],
)
def test_fee_fields_the_node_would_read_differently_are_refused(
    fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(DecodeError, match=fragment):
        _object(gas="0x5208", **fields)


def test_blob_hash_version_check() -> None:
    check_blob_hashes([b"\x01" + b"\x00" * 31], "x")
    with pytest.raises(DecodeError) as caught:
        check_blob_hashes([b"\x01" * 32, b"\x00" * 32], "x")
    assert caught.value.where == "x[1]"


def test_send_calls_fees_come_from_the_gateways_estimate() -> None:
    quote = CallsFeeQuote(gas=(21_000, 40_000), max_fee_per_gas=3 * GWEI)
    assert calls_fees(1, WALLET, quote, 2, "params[0]") == (
        NetworkFee(1, WALLET, 21_000 * 3 * GWEI, 21_000, 3 * GWEI),
        NetworkFee(1, WALLET, 40_000 * 3 * GWEI, 40_000, 3 * GWEI),
    )
    with pytest.raises(MissingFeeFields):
        calls_fees(1, WALLET, None, 2, "params[0]")


# -- filling --------------------------------------------------------------------------


def test_filling_uses_twice_the_base_fee_plus_the_tip() -> None:
    filled = filled_transaction({"from": WALLET}, gas=30_000, quote=QUOTE, ceiling=None)
    assert filled == {
        "from": WALLET,
        "gas": hex(30_000),
        "maxFeePerGas": hex(22 * GWEI),
        "maxPriorityFeePerGas": hex(2 * GWEI),
    }


def test_filling_keeps_what_the_request_gave() -> None:
    given_tip = {"from": WALLET, "gas": "0x5208", "maxPriorityFeePerGas": hex(5 * GWEI)}
    filled = filled_transaction(given_tip, gas=None, quote=QUOTE, ceiling=None)
    assert filled == {**given_tip, "maxFeePerGas": hex(25 * GWEI)}
    complete = {"from": WALLET, "gasPrice": "0x1"}
    assert filled_transaction(complete, gas=21_000, quote=QUOTE, ceiling=None) == {
        **complete,
        "gas": hex(21_000),
    }


def test_filling_is_legacy_for_legacy_types_and_chains_without_a_base_fee() -> None:
    legacy = filled_transaction({"type": "0x0"}, gas=21_000, quote=QUOTE, ceiling=None)
    assert legacy["gasPrice"] == hex(15 * GWEI) and "maxFeePerGas" not in legacy
    no_base = FeeQuote(None, GWEI, 4 * GWEI)
    assert filled_transaction({}, gas=1, quote=no_base, ceiling=None)["gasPrice"] == hex(4 * GWEI)


def test_filling_never_goes_above_the_fee_caps_ceiling() -> None:
    filled = filled_transaction({}, gas=21_000, quote=QUOTE, ceiling=7 * GWEI)
    assert filled["maxFeePerGas"] == hex(7 * GWEI)
    assert filled["maxPriorityFeePerGas"] == hex(2 * GWEI)
    tight = filled_transaction({}, gas=21_000, quote=QUOTE, ceiling=GWEI)
    assert (tight["maxFeePerGas"], tight["maxPriorityFeePerGas"]) == (hex(GWEI), hex(GWEI))
    legacy = filled_transaction({"type": "0x1"}, gas=21_000, quote=QUOTE, ceiling=GWEI)
    assert legacy["gasPrice"] == hex(GWEI)
    assert default_fee_per_gas(QUOTE, 3 * GWEI) == 3 * GWEI


@given(
    st.integers(0, 10**12),
    st.integers(0, 10**11),
    st.integers(1, 10**12),
    st.none() | st.integers(1, 10**12),
)
def test_a_filled_object_always_decodes_complete_and_within_the_ceiling(
    base: int, tip: int, gas_price: int, ceiling: int | None
) -> None:
    quote = FeeQuote(base, tip, gas_price)
    filled = filled_transaction(
        {"from": WALLET, "to": RECIPIENT}, gas=21_000, quote=quote, ceiling=ceiling
    )
    fee = decode_call("eth_sendTransaction", [filled], chain_id=CHAIN_ID).intents[-1]
    assert isinstance(fee, NetworkFee)
    assert fee.max_fee_per_gas == min(2 * base + tip, ceiling or 2 * base + tip)
    assert int(filled["maxPriorityFeePerGas"], 16) <= fee.max_fee_per_gas
