"""Fuzzing raw transaction bytes (hypothesis): non-canonical RLP, leading zeros, oversize
integers, trailing bytes, odd types and signatures, for every transaction type.

Properties:

- an encoding no correct signer produces (non-canonical RLP: a byte wrapped in a string
  header, a long-form header for a short item, a length with leading zeros; an integer
  with leading zeros or wider than its field; bytes after the transaction) is refused
  with a DecodeError. Such bytes are the same transaction under another hash, or a
  different one to a lenient reader: either way, not something to judge;
- anything walletgate accepts is read exactly as the node reads it: py-evm (the
  devnet's EVM, Prague rules) decodes the same signer, recipient, value, data, nonce,
  chain id and hash;
- through a real gateway, mutated transactions signed with alice's key are answered as
  the oracle of :mod:`tests.support.gateway_oracle` says, and refused ones never reach
  the backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_keys.constants import SECPK1_N
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from tests.support.evm_oracle import assert_read_as_the_node_reads
from tests.support.fuzzing import fuzz_settings
from tests.support.gateway_oracle import served_like_the_oracle
from tests.support.recorded_gateway import (
    ALICE_KEY,
    RecordedGateway,
    private_key,
    recorded_gateway_fixture,
)
from walletgate.intents import DecodeError
from walletgate.proxy.evm.rawtx import parse_raw_transaction

gw = recorded_gateway_fixture("fuzz-rawtx")

Item = bytes | list["Item"]
Path = tuple[int, ...]

#: Positions of the integer fields in each type's RLP list (legacy is type 0).
INTEGER_FIELDS: dict[int, tuple[int, ...]] = {
    0: (0, 1, 2, 4, 6, 7, 8),
    1: (0, 1, 2, 3, 5, 8, 9, 10),
    2: (0, 1, 2, 3, 4, 6, 9, 10, 11),
    3: (0, 1, 2, 3, 4, 6, 9, 11, 12, 13),
    4: (0, 1, 2, 3, 4, 6, 10, 11, 12),
}
#: Width in bits of the integer fields that are not 256 bits wide (nonce, gas).
NARROW_FIELDS: dict[int, dict[int, int]] = {
    0: {0: 64, 2: 64},
    **{t: {1: 64, 3 if t == 1 else 4: 64} for t in (1, 2, 3, 4)},
}


# -- valid transactions ------------------------------------------------------------------------

keys = st.integers(min_value=1, max_value=SECPK1_N - 1).map(
    lambda k: "0x" + k.to_bytes(32, "big").hex()
)
recipients = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
amounts = st.integers(0, 2**256 - 1)
nonces = st.integers(0, 2**64 - 2)


@st.composite
def signed_transactions(draw: st.DrawFn, key: str | None = None) -> tuple[int, bytes]:
    """(type, signed bytes) of a valid transaction of any type."""
    tx_type = draw(st.sampled_from([0, 0, 1, 2, 3, 4]))
    tx: dict[str, Any] = {
        "nonce": draw(nonces),
        "gas": draw(st.integers(21_000, 2**63)),
        "to": draw(recipients),
        "value": draw(amounts),
        "data": draw(st.binary(max_size=70)),
    }
    pre_eip155 = tx_type == 0 and draw(st.booleans())
    if not pre_eip155:
        tx["chainId"] = draw(st.sampled_from([1337, 1]) | st.integers(1, 2**64))
    if tx_type in (0, 1):
        tx["gasPrice"] = draw(st.integers(0, 2**128))
        if tx_type == 1:
            tx["accessList"] = []
    else:
        tx["maxFeePerGas"] = draw(st.integers(0, 2**128))
        tx["maxPriorityFeePerGas"] = draw(st.integers(0, 2**64))
    if tx_type == 3:
        tx["maxFeePerBlobGas"] = draw(st.integers(0, 2**64))
        tx["blobVersionedHashes"] = ["0x01" + draw(st.binary(min_size=31, max_size=31)).hex()]
    signer = key or draw(keys)
    if tx_type == 4:
        authorization = Account.sign_authorization(
            {"chainId": tx.get("chainId", 1), "address": draw(recipients), "nonce": 0}, signer
        )
        tx["authorizationList"] = [authorization]
    return tx_type, bytes(Account.sign_transaction(tx, signer).raw_transaction)


# -- hostile encodings ----------------------------------------------------------------------


def _length(n: int, *, leading_zero: bool = False) -> bytes:
    size = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    return b"\x00" + size if leading_zero else size


def _header(size: int, short: int, long_base: int, *, long: bool, zero: bool) -> bytes:
    if size < 56 and not long and not zero:
        return bytes([short + size])
    length = _length(size, leading_zero=zero)
    return bytes([long_base + len(length)]) + length


def encode(item: Item, style: dict[Path, str], path: Path = ()) -> bytes:
    """RLP with the nodes at ``style``'s paths encoded in a non-canonical way:
    ``wrapped`` (a single byte below 0x80 given a string header), ``long`` (a long-form
    header for a short item), ``zero-length`` (a long-form length with a leading zero)."""
    how = style.get(path)
    if isinstance(item, bytes):
        if how is None:
            return bytes(rlp.encode(item))
        if how == "wrapped":
            return b"\x81" + item
        payload, short, long_base = item, 0x80, 0xB7
    else:
        payload = b"".join(encode(child, style, (*path, i)) for i, child in enumerate(item))
        short, long_base = 0xC0, 0xF7
    header = _header(len(payload), short, long_base, long=how == "long", zero=how == "zero-length")
    return header + payload


def _payload_size(item: Item) -> int:
    return len(item) if isinstance(item, bytes) else sum(len(encode(c, {})) for c in item)


def _paths(item: Item, path: Path = ()) -> list[Path]:
    out = [path]
    if isinstance(item, list):
        for index, child in enumerate(item):
            out.extend(_paths(child, (*path, index)))
    return out


def _get(item: Item, path: Path) -> Item:
    for step in path:
        assert isinstance(item, list)
        item = item[step]
    return item


def _set(item: Item, path: Path, value: Item) -> Item:
    if not path:
        return value
    assert isinstance(item, list)
    copy = list(item)
    copy[path[0]] = _set(copy[path[0]], path[1:], value)
    return copy


@dataclass(frozen=True)
class Split:
    """A raw transaction as its type prefix and decoded RLP item."""

    prefix: bytes
    item: Item
    tx_type: int

    @classmethod
    def of(cls, tx_type: int, raw: bytes) -> Split:
        prefix, payload = (raw[:1], raw[1:]) if tx_type else (b"", raw)
        return cls(prefix, rlp.decode(payload), tx_type)

    def join(self, item: Item | None = None, style: dict[Path, str] | None = None) -> bytes:
        return self.prefix + encode(self.item if item is None else item, style or {})


@st.composite
def non_canonical(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid transaction encoded in a way no correct signer produces."""
    tx_type, raw = draw(signed_transactions())
    split = Split.of(tx_type, raw)
    kind = draw(
        st.sampled_from(
            ["leading zero", "oversize", "wrapped byte", "long form", "zero length", "trailing"]
        )
    )
    if kind == "trailing":
        return kind, raw + draw(st.binary(min_size=1, max_size=8))
    if kind in ("leading zero", "oversize"):
        position = draw(st.sampled_from(INTEGER_FIELDS[tx_type]))
        value = int.from_bytes(_get(split.item, (position,)), "big")  # type: ignore[arg-type]
        if kind == "leading zero":
            encoded = b"\x00" * draw(st.integers(1, 3)) + _get(split.item, (position,))  # type: ignore[operator]
        else:
            bits = NARROW_FIELDS[tx_type].get(position, 256)
            wide = (1 << bits) + value + draw(st.integers(0, 2**64))
            encoded = wide.to_bytes((wide.bit_length() + 7) // 8, "big")
        return kind, split.join(_set(split.item, (position,), encoded))
    every = _paths(split.item)
    if kind == "wrapped byte":
        candidates = [p for p in every if _is_low_byte(_get(split.item, p))]
    elif kind == "long form":
        candidates = [p for p in every if _payload_size(_get(split.item, p)) < 56]
    else:
        candidates = every
    if not candidates:  # no single low byte in this transaction: use a long form instead
        kind = "long form"
        candidates = [p for p in every if _payload_size(_get(split.item, p)) < 56]
    path = draw(st.sampled_from(candidates))
    style = {"wrapped byte": "wrapped", "long form": "long", "zero length": "zero-length"}[kind]
    return kind, split.join(style={path: style})


def _is_low_byte(value: Item) -> bool:
    return isinstance(value, bytes) and len(value) == 1 and value[0] < 0x80


@st.composite
def odd_transactions(draw: st.DrawFn, key: str | None = None) -> bytes:
    """A valid transaction with canonically encoded but odd content: a field changed,
    removed or added, another type byte, strange signature values, or a flipped byte."""
    tx_type, raw = draw(signed_transactions(key))
    split = Split.of(tx_type, raw)
    kind = draw(
        st.sampled_from(["field", "list", "remove", "add", "type", "signature", "high s", "flip"])
    )
    assert isinstance(split.item, list)
    if kind == "field":
        position = draw(st.integers(0, len(split.item) - 1))
        value = draw(st.binary(max_size=40) | st.integers(0, 2**300).map(_minimal))
        return split.join(_set(split.item, (position,), value))
    if kind == "list":  # a list where a string or an integer belongs
        position = draw(st.integers(0, len(split.item) - 1))
        as_list: list[Item] = [*draw(st.lists(st.binary(max_size=4)))]
        return split.join(_set(split.item, (position,), as_list))
    if kind == "remove":
        position = draw(st.integers(0, len(split.item) - 1))
        return split.join(split.item[:position] + split.item[position + 1 :])
    if kind == "add":
        return split.join([*split.item, draw(st.binary(max_size=8))])
    if kind == "type":
        return bytes([draw(st.integers(0, 0xBF))]) + raw[1 if tx_type else 0 :]
    if kind in ("signature", "high s"):
        v, r, s = split.item[-3:]
        if kind == "high s":
            s = _minimal(SECPK1_N - int.from_bytes(s, "big"))  # type: ignore[arg-type]
            v = _minimal(int.from_bytes(v, "big") ^ 1)  # type: ignore[arg-type]
        else:
            v = _minimal(draw(st.sampled_from([0, 1, 2, 26, 27, 28, 29, 34, 35, 36, 2**64])))
        return split.join([*split.item[:-3], v, r, s])
    flipped = bytearray(raw)
    position = draw(st.integers(0, len(raw) - 1))
    flipped[position] ^= draw(st.integers(1, 255))
    return bytes(flipped)


def _minimal(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


# -- the fuzz tests ------------------------------------------------------------------------


@fuzz_settings(300)
@given(signed_transactions())
def test_valid_transactions_are_read_as_the_node_reads_them(signed: tuple[int, bytes]) -> None:
    _tx_type, raw = signed
    tx = parse_raw_transaction(raw, "params[0]")
    assert_read_as_the_node_reads(raw, tx)


@fuzz_settings(600)
@given(non_canonical())
def test_non_canonical_encodings_are_refused(case: tuple[str, bytes]) -> None:
    kind, raw = case
    try:
        parse_raw_transaction(raw, "params[0]")
    except DecodeError as exc:
        assert exc.where == "params[0]" and exc.message
    else:
        raise AssertionError(f"{kind}: accepted {raw.hex()}")


@fuzz_settings(600)
@given(odd_transactions())
def test_odd_transactions_are_refused_or_read_as_the_node_reads_them(raw: bytes) -> None:
    try:
        tx = parse_raw_transaction(raw, "params[0]")
    except DecodeError as exc:
        assert exc.where.startswith("params[0]") and exc.message
        return
    assert_read_as_the_node_reads(raw, tx)


alice_transactions = st.one_of(
    non_canonical().map(lambda case: case[1]),
    odd_transactions(private_key(ALICE_KEY)),
    signed_transactions(private_key(ALICE_KEY)).map(lambda signed: signed[1]),
)


@fuzz_settings(60)
@given(alice_transactions)
def test_hostile_raw_transactions_through_the_gateway(gw: RecordedGateway, raw: bytes) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_sendRawTransaction",
        "params": ["0x" + raw.hex()],
    }
    served_like_the_oracle(gw, json.dumps(body).encode())


def test_legacy_chain_id_zero_is_refused() -> None:
    """Found by the differential test: for v = 35/36 (EIP-155 chain id 0) eth-account and
    py-evm hash different payloads and recover different signers from the same bytes."""
    tx = {"nonce": 0, "gasPrice": 1, "gas": 21_000, "to": "0x" + "11" * 20, "value": 1}
    raw = bytes(Account.sign_transaction(tx, private_key(ALICE_KEY)).raw_transaction)
    item = rlp.decode(raw)
    for v in (35, 36):
        mutated = bytes(rlp.encode([*item[:-3], _minimal(v), *item[-2:]]))
        try:
            parse_raw_transaction(mutated, "params[0]")
        except DecodeError as exc:
            assert "chain id 0" in exc.message
        else:
            raise AssertionError(f"v={v} was accepted")


@pytest.mark.parametrize("tx_type", [0, 3])
@pytest.mark.parametrize("as_list", [[b"\x01", b""], []])
def test_a_list_where_an_integer_belongs_is_refused(tx_type: int, as_list: list[bytes]) -> None:
    """Found by atheris and the differential test: pyrlp's integer sedes raised TypeError
    for a list (a 500) and read an empty list as 0, so a legacy transaction whose nonce
    was ``[]`` was judged with another signer than the node recovers."""
    tx: dict[str, Any] = {
        "nonce": 0,
        "gas": 21_000,
        "to": to_checksum_address("0x" + "12" * 20),
        "value": 1,
        "chainId": 1337,
    }
    if tx_type == 0:
        tx["gasPrice"] = 1
    else:
        tx.update(maxFeePerGas=2, maxPriorityFeePerGas=1, maxFeePerBlobGas=1)
        tx["blobVersionedHashes"] = ["0x01" + "00" * 31]
    signed = Account.sign_transaction(tx, private_key(ALICE_KEY))
    split = Split.of(tx_type, bytes(signed.raw_transaction))
    for position in INTEGER_FIELDS[tx_type]:
        raw = split.join(_set(split.item, (position,), list(as_list)))
        try:
            parse_raw_transaction(raw, "params[0]")
        except DecodeError as exc:
            assert exc.where == "params[0]"
        else:
            raise AssertionError(f"a list at {position} was accepted")
