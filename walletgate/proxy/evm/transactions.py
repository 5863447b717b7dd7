"""eth_sendTransaction / eth_signTransaction: the JSON transaction object becomes intents.

Unknown fields are refused rather than ignored: the backend might give meaning to a
field walletgate does not judge. The fields are those of geth's ``TransactionArgs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from walletgate.intents import DecodedRequest, DecodeError, Delegation, Intent
from walletgate.proxy.evm.calls import call_intents
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.fees import check_blob_hashes, object_fee
from walletgate.proxy.evm.hexvalues import read_address, read_data, read_quantity
from walletgate.proxy.evm.signatures import check_authorization_count, recover_authority

#: Quantity fields and their width in bits.
_QUANTITIES = {
    "value": 256,
    "nonce": 64,
    "gas": 64,
    "gasPrice": 256,
    "maxFeePerGas": 256,
    "maxPriorityFeePerGas": 256,
    "maxFeePerBlobGas": 256,
    "chainId": 256,
    "type": 8,
}
_OTHER_FIELDS = frozenset(
    {
        "from",
        "to",
        "data",
        "input",
        "accessList",
        "authorizationList",
        "blobVersionedHashes",
        "blobs",
        "commitments",
        "proofs",
    }
)
_KNOWN_FIELDS = _OTHER_FIELDS | _QUANTITIES.keys()
_KNOWN_TYPES = range(5)  # legacy, 2930, 1559, 4844, 7702
#: Fields that make a transaction a blob (4844) transaction.
_BLOB_FIELDS = frozenset({"blobVersionedHashes", "blobs", "maxFeePerBlobGas"})
_AUTHORIZATION_FIELDS = frozenset({"chainId", "address", "nonce", "yParity", "r", "s"})


@dataclass(frozen=True, slots=True)
class _Fields:
    """The checked fields of a transaction object."""

    sender: str
    to: str | None
    data: bytes
    quantities: dict[str, int]
    blob_count: int = 0


def _read_list(value: object, where: str, item: Callable[[Any, str], object]) -> list[object]:
    if not isinstance(value, list):
        raise DecodeError("must be an array", where=where)
    return [item(element, f"{where}[{index}]") for index, element in enumerate(value)]


def _read_access_entry(entry: object, where: str) -> object:
    if not isinstance(entry, dict) or set(entry) != {"address", "storageKeys"}:
        raise DecodeError("access list entries are {address, storageKeys}", where=where)
    read_address(entry["address"], f"{where}.address")
    return _read_list(entry["storageKeys"], f"{where}.storageKeys", _read_word)


def _read_word(value: object, where: str) -> bytes:
    data = read_data(value, where)
    if len(data) != 32:
        raise DecodeError(f"must be 32 bytes, got {len(data)}", where=where)
    return data


def _read_data_field(tx: dict[str, Any], where: str) -> bytes:
    data = read_data(tx["data"], f"{where}.data") if "data" in tx else None
    calldata = read_data(tx["input"], f"{where}.input") if "input" in tx else None
    if data is not None and calldata is not None and data != calldata:
        # Nodes disagree on which one wins; judging one and sending the other is a bypass.
        raise DecodeError("data and input are both set and differ", where=f"{where}.input")
    return calldata if calldata is not None else (data or b"")


def _read_fields(tx: object, where: str) -> _Fields:
    if not isinstance(tx, dict):
        raise DecodeError("transaction must be an object", where=where)
    if not _KNOWN_FIELDS.issuperset(tx):  # the common case costs no set and no sort
        unknown = sorted(set(tx) - _KNOWN_FIELDS)
        raise DecodeError(f"unknown transaction field {unknown[0]!r}", where=where)
    if "from" not in tx:
        raise DecodeError("from is required", where=f"{where}.from")
    sender = read_address(tx["from"], f"{where}.from")
    to = None if tx.get("to") is None else read_address(tx["to"], f"{where}.to")
    quantities = {
        name: read_quantity(tx[name], f"{where}.{name}", bits=bits)
        for name, bits in _QUANTITIES.items()
        if name in tx
    }
    if "accessList" in tx:
        _read_list(tx["accessList"], f"{where}.accessList", _read_access_entry)
    blob_hashes: list[object] = []
    if "blobVersionedHashes" in tx:
        blob_where = f"{where}.blobVersionedHashes"
        blob_hashes = _read_list(tx["blobVersionedHashes"], blob_where, _read_word)
        check_blob_hashes([bytes(h) for h in blob_hashes if isinstance(h, bytes)], blob_where)
    for name in ("blobs", "commitments", "proofs"):
        if name in tx:
            _read_list(tx[name], f"{where}.{name}", read_data)
    return _Fields(sender, to, _read_data_field(tx, where), quantities, len(blob_hashes))


def _check_consistency(tx: dict[str, Any], fields: _Fields, where: str) -> None:
    """Refuse combinations a node would refuse, before anything is judged on them."""
    tx_type = fields.quantities.get("type")
    if tx_type is not None and tx_type not in _KNOWN_TYPES:
        raise DecodeError(f"unknown transaction type {tx_type}", where=f"{where}.type")
    if "gasPrice" in tx and ("maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx):
        raise DecodeError(
            "gasPrice cannot be combined with maxFeePerGas / maxPriorityFeePerGas",
            where=f"{where}.gasPrice",
        )
    # The fee judged must be the fee the node uses: a legacy or 2930 type pays gasPrice,
    # the later types pay maxFeePerGas.
    if tx_type in (0, 1) and ("maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx):
        raise DecodeError(
            f"type 0x{tx_type} pays gasPrice, not maxFeePerGas", where=f"{where}.maxFeePerGas"
        )
    if tx_type is not None and tx_type >= 2 and "gasPrice" in tx:
        raise DecodeError(
            f"type 0x{tx_type} pays maxFeePerGas, not gasPrice", where=f"{where}.gasPrice"
        )
    if "authorizationList" in tx:
        if tx_type is not None and tx_type != 4:
            raise DecodeError("authorizationList requires type 0x4", where=f"{where}.type")
        if fields.to is None:
            raise DecodeError(
                "a set-code (7702) transaction needs a to address", where=f"{where}.to"
            )
    elif tx_type == 4:
        raise DecodeError(
            "type 0x4 requires an authorizationList", where=f"{where}.authorizationList"
        )
    has_blobs = not _BLOB_FIELDS.isdisjoint(tx)
    if has_blobs and fields.to is None:
        raise DecodeError("a blob transaction needs a to address", where=f"{where}.to")


def _read_authorization(entry: object, where: str, *, chain_id: int) -> Delegation:
    if not isinstance(entry, dict):
        raise DecodeError("authorization must be an object", where=where)
    missing = sorted(_AUTHORIZATION_FIELDS - set(entry))
    if missing:
        # An unsigned tuple would be signed by whoever the backend picks: refuse it.
        raise DecodeError(f"authorization is missing {missing[0]!r}", where=where)
    unknown = sorted(set(entry) - _AUTHORIZATION_FIELDS)
    if unknown:
        raise DecodeError(f"unknown authorization field {unknown[0]!r}", where=where)
    authorization_chain = read_quantity(entry["chainId"], f"{where}.chainId")
    delegate = read_address(entry["address"], f"{where}.address")
    authority = recover_authority(
        chain_id=authorization_chain,
        delegate=delegate,
        nonce=read_quantity(entry["nonce"], f"{where}.nonce", bits=64),
        y_parity=read_quantity(entry["yParity"], f"{where}.yParity", bits=8),
        r=read_quantity(entry["r"], f"{where}.r"),
        s=read_quantity(entry["s"], f"{where}.s"),
        where=where,
    )
    return Delegation(chain_id, authority, delegate, authorization_chain)


def decode_transaction_object(context: CallContext, params: object) -> DecodedRequest:
    """Decode ``[tx]`` for eth_sendTransaction / eth_signTransaction.

    The request's ``chain_id`` is the declared ``chainId`` (``None`` if absent); intents
    use it, else the backend's chain. The last intent is the transaction's
    :class:`NetworkFee`; an object without ``gas`` or a fee per gas raises
    :class:`~walletgate.proxy.evm.fees.MissingFeeFields` once everything else is checked.
    """
    (tx,) = context.positional(params, 1)
    where = "params[0]"
    fields = _read_fields(tx, where)
    _check_consistency(tx, fields, where)
    declared_chain = fields.quantities.get("chainId")
    chain_id = context.intent_chain(declared_chain, f"{where}.chainId")
    nonce = fields.quantities.get("nonce")
    intents: list[Intent] = list(
        call_intents(
            chain_id=chain_id,
            wallet=fields.sender,
            to=fields.to,
            value=fields.quantities.get("value", 0),
            data=fields.data,
            nonce=nonce,
            where=where,
        )
    )
    if "authorizationList" in tx:
        authorizations = tx["authorizationList"]
        if not isinstance(authorizations, list):
            raise DecodeError("must be an array", where=f"{where}.authorizationList")
        check_authorization_count(len(authorizations), f"{where}.authorizationList")
        intents.extend(
            _read_authorization(entry, f"{where}.authorizationList[{index}]", chain_id=chain_id)
            for index, entry in enumerate(authorizations)
        )
    intents.append(
        object_fee(
            chain_id, fields.sender, fields.quantities, blob_count=fields.blob_count, where=where
        )
    )
    return context.request(
        wallet=fields.sender, chain_id=declared_chain, intents=tuple(intents), nonce=nonce
    )
