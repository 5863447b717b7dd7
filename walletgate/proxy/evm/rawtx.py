"""eth_sendRawTransaction: signed transaction bytes become intents, with the signer.

Every type in use is decoded: legacy (with and without EIP-155), 2930, 1559, 4844 (the
canonical form and the network form that wraps blobs, commitments and proofs) and 7702.

The layouts are declared with pyrlp sedes and decoded in strict mode, which refuses
non-canonical RLP, trailing bytes, and integers with leading zeros. The signer is
recovered by eth-account (``Account.recover_transaction``) and each 7702 authority by
eth-keys; no elliptic-curve code lives here. Blob KZG proofs are not verified: they do
not change what the transaction does with money, and the node verifies them anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp
from eth_account import Account
from eth_utils import keccak
from rlp.exceptions import DeserializationError, RLPException
from rlp.sedes import Binary, CountableList, List, big_endian_int, binary

from walletgate.intents import DecodedRequest, DecodeError, Delegation, Intent
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.fees import check_blob_hashes, network_fee
from walletgate.proxy.evm.hexvalues import read_data
from walletgate.proxy.evm.signatures import (
    RECOVERY_ERRORS,
    check_authorization_count,
    check_signature_values,
    recover_authority,
)

#: EIP-2681: a nonce must stay below 2**64 - 1.
_MAX_NONCE = 2**64 - 2
_U64 = 64
_U256 = 256


class _StrictInteger:
    """pyrlp's integer sedes, refusing a list where an integer belongs: pyrlp reads an
    empty list as 0 (and raises TypeError for others), so a malformed transaction would
    be judged as one thing while its signature covers another."""

    def serialize(self, value: int) -> bytes:
        serial: bytes = big_endian_int.serialize(value)
        return serial

    def deserialize(self, serial: Any) -> int:
        if not isinstance(serial, bytes):
            raise DeserializationError("expected an integer, got a list", serial)
        value: int = big_endian_int.deserialize(serial)
        return value


_uint = _StrictInteger()
_to = Binary.fixed_length(20, allow_empty=True)
_address = Binary.fixed_length(20)
_word = Binary.fixed_length(32)
_access_list = CountableList(List([_address, CountableList(_word)], strict=True))
_authorization = List(
    [_uint, _address, _uint, _uint, _uint, _uint],
    strict=True,
)

_BLOB_BYTES = 4096 * 32
_KZG_BYTES = 48
_CELL_PROOFS_PER_BLOB = 128  # EIP-7594 network form


@dataclass(frozen=True, slots=True)
class _Layout:
    """One transaction type: its field names, sedes, and integer widths in bits."""

    name: str
    fields: tuple[tuple[str, Any], ...]

    @property
    def sedes(self) -> List:
        return List([sedes for _, sedes in self.fields], strict=True)

    def decode(self, item: Any, where: str) -> dict[str, Any]:
        try:
            values = self.sedes.deserialize(item)
        except RLPException as exc:
            raise DecodeError(f"malformed {self.name} transaction: {exc}", where=where) from None
        return dict(zip((name for name, _ in self.fields), values, strict=True))


_FEES_1559 = (("maxPriorityFeePerGas", _uint), ("maxFeePerGas", _uint))
_CALL = (
    ("gas", _uint),
    ("to", _to),
    ("value", _uint),
    ("data", binary),
)
_SIGNATURE = (("v", _uint), ("r", _uint), ("s", _uint))

_LEGACY = _Layout("legacy", (("nonce", _uint), ("gasPrice", _uint), *_CALL, *_SIGNATURE))
_TYPED = {
    1: _Layout(
        "EIP-2930",
        (
            ("chainId", _uint),
            ("nonce", _uint),
            ("gasPrice", _uint),
            *_CALL,
            ("accessList", _access_list),
            *_SIGNATURE,
        ),
    ),
    2: _Layout(
        "EIP-1559",
        (
            ("chainId", _uint),
            ("nonce", _uint),
            *_FEES_1559,
            *_CALL,
            ("accessList", _access_list),
            *_SIGNATURE,
        ),
    ),
    3: _Layout(
        "EIP-4844",
        (
            ("chainId", _uint),
            ("nonce", _uint),
            *_FEES_1559,
            *_CALL,
            ("accessList", _access_list),
            ("maxFeePerBlobGas", _uint),
            ("blobVersionedHashes", CountableList(_word)),
            *_SIGNATURE,
        ),
    ),
    4: _Layout(
        "EIP-7702",
        (
            ("chainId", _uint),
            ("nonce", _uint),
            *_FEES_1559,
            *_CALL,
            ("accessList", _access_list),
            ("authorizationList", CountableList(_authorization)),
            *_SIGNATURE,
        ),
    ),
}
_WIDTHS = {"nonce": _U64, "gas": _U64}


@dataclass(frozen=True, slots=True)
class RawTransaction:
    """A decoded, signature-checked raw transaction."""

    tx_type: int
    signer: str
    chain_id: int | None  # None only for a pre-EIP-155 legacy transaction
    nonce: int
    to: str | None
    value: int
    data: bytes
    tx_hash: str
    authorizations: tuple[tuple[Any, ...], ...] = ()
    gas: int = 0
    #: The legacy / 2930 ``gasPrice``, or the ``maxFeePerGas`` of the later types.
    fee_per_gas: int = 0
    blob_count: int = 0
    max_fee_per_blob_gas: int = 0


def _check_widths(fields: dict[str, Any], where: str) -> None:
    for name, value in fields.items():
        if isinstance(value, int) and name not in ("r", "s"):
            bits = _WIDTHS.get(name, _U256)
            if value.bit_length() > bits:
                raise DecodeError(f"{name} exceeds {bits} bits", where=where)
    if fields["nonce"] > _MAX_NONCE:
        raise DecodeError("nonce must be below 2**64 - 1 (EIP-2681)", where=where)


def _legacy_chain_and_parity(v: int, where: str) -> tuple[int | None, int]:
    if v in (27, 28):
        return None, v - 27
    if v >= 37:
        return (v - 35) // 2, (v - 35) % 2
    if v in (35, 36):
        # Chain id 0: eth-account hashes it as EIP-155 and py-evm as pre-EIP-155, so
        # the two recover different signers from the same bytes. It is no chain anyway.
        raise DecodeError(f"legacy signature v {v} names chain id 0 (EIP-155)", where=where)
    raise DecodeError(f"legacy signature v must be 27, 28 or 35+ (EIP-155), got {v}", where=where)


@dataclass(frozen=True, slots=True)
class _Sidecar:
    """Counts from a blob transaction's network wrapper."""

    blobs: int
    commitments: int
    proofs: int
    proofs_per_blob: int

    def check(self, versioned_hashes: int, where: str) -> None:
        if not (
            self.blobs == self.commitments == versioned_hashes
            and self.proofs == self.blobs * self.proofs_per_blob
        ):
            raise DecodeError("blob sidecar counts do not match the versioned hashes", where=where)


def _split_blob_wrapper(item: Any, where: str) -> tuple[Any, _Sidecar | None]:
    """The transaction body of a type-3 payload and its sidecar counts, if it is the
    network form: ``[body, blobs, commitments, proofs]`` (EIP-4844) or
    ``[body, 1, blobs, commitments, cell_proofs]`` (EIP-7594)."""
    if not (isinstance(item, list) and item and isinstance(item[0], list)):
        return item, None
    if len(item) == 4:
        parts, proofs_per_blob = item[1:], 1
    elif len(item) == 5 and item[1] == b"\x01":
        parts, proofs_per_blob = item[2:], _CELL_PROOFS_PER_BLOB
    else:
        raise DecodeError("malformed blob transaction network wrapper", where=where)
    try:
        blobs = CountableList(Binary.fixed_length(_BLOB_BYTES)).deserialize(parts[0])
        commitments = CountableList(Binary.fixed_length(_KZG_BYTES)).deserialize(parts[1])
        proofs = CountableList(Binary.fixed_length(_KZG_BYTES)).deserialize(parts[2])
    except RLPException as exc:
        raise DecodeError(f"malformed blob sidecar: {exc}", where=where) from None
    return item[0], _Sidecar(len(blobs), len(commitments), len(proofs), proofs_per_blob)


def _recover_signer(signed: bytes, where: str) -> str:
    try:
        return str(Account.recover_transaction(signed)).lower()
    except (*RECOVERY_ERRORS, RLPException) as exc:
        raise DecodeError(f"signature does not recover: {exc}", where=where) from None


def parse_raw_transaction(raw: bytes, where: str) -> RawTransaction:
    """Decode and signature-check signed transaction bytes (see the module docstring)."""
    if not raw:
        raise DecodeError("raw transaction is empty", where=where)
    first = raw[0]
    try:
        if first >= 0xC0:
            tx_type, layout, item = 0, _LEGACY, rlp.decode(raw, strict=True)
        elif first in _TYPED:
            tx_type, layout = first, _TYPED[first]
            item = rlp.decode(raw[1:], strict=True)
        elif first <= 0x7F:
            raise DecodeError(f"unknown transaction type 0x{first:02x}", where=where)
        else:
            raise DecodeError(
                "not a transaction: expected an RLP list or a typed envelope", where=where
            )
    except RLPException as exc:
        raise DecodeError(f"malformed RLP: {exc}", where=where) from None
    signed = raw
    sidecar = None
    if tx_type == 3:
        item, sidecar = _split_blob_wrapper(item, where)
        if sidecar is not None:
            # The hash and signature cover the transaction body, not the sidecar.
            signed = b"\x03" + rlp.encode(item)
    fields = layout.decode(item, where)
    _check_widths(fields, where)
    if tx_type == 3:
        if not fields["blobVersionedHashes"]:
            raise DecodeError("a blob transaction needs at least one blob hash", where=where)
        check_blob_hashes(fields["blobVersionedHashes"], f"{where}.blobVersionedHashes")
        if sidecar is not None:
            sidecar.check(len(fields["blobVersionedHashes"]), where)
    if tx_type == 0:
        chain_id, y_parity = _legacy_chain_and_parity(fields["v"], where)
    else:
        chain_id, y_parity = fields["chainId"], fields["v"]
    check_signature_values(y_parity, fields["r"], fields["s"], where)
    to = "0x" + fields["to"].hex() if fields["to"] else None
    if tx_type in (3, 4) and to is None:
        raise DecodeError(f"a type-{tx_type} transaction cannot create a contract", where=where)
    authorizations = tuple(fields.get("authorizationList", ()))
    if tx_type == 4:
        check_authorization_count(len(authorizations), where)
    for index, entry in enumerate(authorizations):
        _check_authorization(entry, f"{where}.authorizationList[{index}]")
    return RawTransaction(
        tx_type=tx_type,
        signer=_recover_signer(signed, where),
        chain_id=chain_id,
        nonce=fields["nonce"],
        to=to,
        value=fields["value"],
        data=fields["data"],
        tx_hash="0x" + keccak(signed).hex(),
        authorizations=authorizations,
        gas=fields["gas"],
        fee_per_gas=fields["gasPrice"] if tx_type in (0, 1) else fields["maxFeePerGas"],
        blob_count=len(fields.get("blobVersionedHashes", ())),
        max_fee_per_blob_gas=fields.get("maxFeePerBlobGas", 0),
    )


def _check_authorization(entry: tuple[Any, ...], where: str) -> None:
    """Refuse a malformed authorization before anything else reads it."""
    authorization_chain, _, nonce, y_parity, r, s = entry
    for name, value, bits in (("chainId", authorization_chain, _U256), ("nonce", nonce, _U64)):
        if value.bit_length() > bits:
            raise DecodeError(f"authorization {name} exceeds {bits} bits", where=where)
    check_signature_values(y_parity, r, s, where)


def _delegation(entry: tuple[Any, ...], chain_id: int, where: str) -> Delegation:
    authorization_chain, delegate_bytes, nonce, y_parity, r, s = entry
    delegate = "0x" + delegate_bytes.hex()
    authority = recover_authority(
        chain_id=authorization_chain,
        delegate=delegate,
        nonce=nonce,
        y_parity=y_parity,
        r=r,
        s=s,
        where=where,
    )
    return Delegation(chain_id, authority, delegate, authorization_chain)


def decode_raw_transaction(context: CallContext, params: object) -> DecodedRequest:
    """Decode ``[rawTx]`` for eth_sendRawTransaction.

    The request's ``chain_id`` is the signed chain id (``None`` for a pre-EIP-155 legacy
    transaction, whose intents then use the backend's chain); ``wallet`` is the signer.
    Each 7702 authorization becomes a :class:`Delegation` whose wallet is the recovered
    authority, the account whose code would change. The last intent is the signed
    transaction's :class:`NetworkFee`.
    """
    (raw_hex,) = context.positional(params, 1)
    where = "params[0]"
    tx = parse_raw_transaction(read_data(raw_hex, where), where)
    chain_id = context.intent_chain(tx.chain_id, where)
    intents: list[Intent] = list(
        call_intents(
            chain_id=chain_id,
            wallet=tx.signer,
            to=tx.to,
            value=tx.value,
            data=tx.data,
            nonce=tx.nonce,
            where=where,
        )
    )
    intents.extend(
        _delegation(entry, chain_id, f"{where}.authorizationList[{index}]")
        for index, entry in enumerate(tx.authorizations)
    )
    intents.append(
        network_fee(
            chain_id,
            tx.signer,
            gas=tx.gas,
            fee_per_gas=tx.fee_per_gas,
            blob_count=tx.blob_count,
            max_fee_per_blob_gas=tx.max_fee_per_blob_gas,
        )
    )
    return context.request(
        wallet=tx.signer,
        chain_id=tx.chain_id,
        intents=tuple(intents),
        tx_hash=tx.tx_hash,
        nonce=tx.nonce,
    )
