"""EIP-712 typed data: permits become approvals, transfer authorizations transfers, and
anything else a message signature.

Recognised by their exact type definitions (the on-chain contract checks the typehash,
so a permit with different fields or names would not verify):
- EIP-2612 ``Permit(owner, spender, value, nonce, deadline)``; the token is
  ``domain.verifyingContract``;
- DAI-style ``Permit(holder, spender, nonce, expiry, allowed)``: ``allowed`` means an
  unlimited allowance;
- EIP-3009 ``TransferWithAuthorization`` / ``ReceiveWithAuthorization(from, to, value,
  validAfter, validBefore, nonce)`` (USDC and others): the signature itself moves
  ``value`` of the token (``domain.verifyingContract``) from ``from`` to ``to``, so it
  is a token transfer;
- Uniswap Permit2 (``domain.verifyingContract`` is the Permit2 contract):
  ``PermitSingle``, ``PermitBatch``, ``PermitTransferFrom``, ``PermitBatchTransferFrom``
  and the witness variants; one approval per token. Typed data for the Permit2 contract
  that is none of these is refused, never judged as a plain message: Permit2 moves
  tokens and nothing else;
- NFT permits, Seaport orders, Safe transactions and ERC-7710 delegations
  (:mod:`~walletgate.proxy.evm.typed_shapes`).

Anything else is a :class:`MessageSignature` carrying its domain and message, for the
signing allowlist's typed-data entries to match. A recognised shape whose domain binds no
chain comes with such a signature too, marked with its standard (see
:func:`typed_data_intents`).

A document is first checked with eth-account's ``encode_typed_data``
(:mod:`~walletgate.proxy.evm.typed_document`), so only data that would actually be
signed is judged, and the permit fields are then read more strictly
than eth-account coerces them (no "1_000" or " 5" for a number, only true/false for a
bool): anything looser is a DecodeError, never a different number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from walletgate.intents import MAX_UINT256, DecodeError, Intent, MessageSignature, TokenTransfer
from walletgate.proxy.evm.context import CallContext
from walletgate.proxy.evm.erc20 import TokenCallContext, approval
from walletgate.proxy.evm.hexvalues import read_address, read_uint
from walletgate.proxy.evm.typed_document import TypedData, parse_typed_data
from walletgate.proxy.evm.typed_shapes import ShapeContext, recognise
from walletgate.proxy.evm.typed_values import message_struct, type_string

__all__ = ["PERMIT2_ADDRESS", "TypedData", "parse_typed_data", "typed_data_intents"]

PERMIT2_ADDRESS = "0x000000000022d473030f116ddee9f6b43ac78ba3"

Field = tuple[str, str]

_EIP2612_PERMIT: tuple[Field, ...] = (
    ("owner", "address"),
    ("spender", "address"),
    ("value", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
)
_DAI_PERMIT: tuple[Field, ...] = (
    ("holder", "address"),
    ("spender", "address"),
    ("nonce", "uint256"),
    ("expiry", "uint256"),
    ("allowed", "bool"),
)
_PERMIT_DETAILS: tuple[Field, ...] = (
    ("token", "address"),
    ("amount", "uint160"),
    ("expiration", "uint48"),
    ("nonce", "uint48"),
)
_TOKEN_PERMISSIONS: tuple[Field, ...] = (("token", "address"), ("amount", "uint256"))

#: EIP-3009: the field list is the same for both; only the primary type (and so the
#: typehash, and who may submit it) differs.
_EIP3009_AUTHORIZATION: tuple[Field, ...] = (
    ("from", "address"),
    ("to", "address"),
    ("value", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
)
_EIP3009_PRIMARY_TYPES = frozenset({"TransferWithAuthorization", "ReceiveWithAuthorization"})

#: Permit2 primary type -> (field holding the token permissions, its struct, the fields
#: that must come first). Witness variants add exactly one more field (see
#: :func:`_permit2_layout`).
_PERMIT2_LAYOUTS: dict[str, tuple[str, str, tuple[Field, ...]]] = {
    "PermitSingle": (
        "details",
        "PermitDetails",
        (("details", "PermitDetails"), ("spender", "address"), ("sigDeadline", "uint256")),
    ),
    "PermitBatch": (
        "details",
        "PermitDetails",
        (("details", "PermitDetails[]"), ("spender", "address"), ("sigDeadline", "uint256")),
    ),
    "PermitTransferFrom": (
        "permitted",
        "TokenPermissions",
        (
            ("permitted", "TokenPermissions"),
            ("spender", "address"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ),
    ),
    "PermitBatchTransferFrom": (
        "permitted",
        "TokenPermissions",
        (
            ("permitted", "TokenPermissions[]"),
            ("spender", "address"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ),
    ),
}
_PERMIT2_LAYOUTS["PermitWitnessTransferFrom"] = _PERMIT2_LAYOUTS["PermitTransferFrom"]
_PERMIT2_LAYOUTS["PermitBatchWitnessTransferFrom"] = _PERMIT2_LAYOUTS["PermitBatchTransferFrom"]
_PERMIT2_STRUCTS = {"PermitDetails": _PERMIT_DETAILS, "TokenPermissions": _TOKEN_PERMISSIONS}
_PERMIT2_WITNESS_TYPES = frozenset({"PermitWitnessTransferFrom", "PermitBatchWitnessTransferFrom"})


def _member(struct: object, name: str, where: str) -> Any:
    if not isinstance(struct, dict) or name not in struct:
        raise DecodeError(f"{name} is required", where=f"{where}.{name}")
    return struct[name]


@dataclass(frozen=True, slots=True)
class _Domain:
    chain_id: int | None
    verifying_contract: str | None
    name: str | None = None


def _read_domain(domain: dict[str, Any], where: str) -> _Domain:
    chain_id = None
    if domain.get("chainId") is not None:
        chain_id = read_uint(domain["chainId"], f"{where}.chainId")
    contract = None
    if domain.get("verifyingContract") is not None:
        contract = read_address(domain["verifyingContract"], f"{where}.verifyingContract")
    name = domain.get("name")
    if name is not None and not isinstance(name, str):
        raise DecodeError("name must be a string", where=f"{where}.name")
    return _Domain(chain_id, contract, name)


def _erc2612_intents(
    data: TypedData, signer: str, owner_field: str, context: TokenCallContext, where: str
) -> tuple[Intent, ...]:
    message, at = data.message, f"{where}.message"
    owner = read_address(_member(message, owner_field, at), f"{at}.{owner_field}")
    if owner != signer:
        raise DecodeError(
            f"permit {owner_field} {owner} is not the signing address {signer}",
            where=f"{at}.{owner_field}",
        )
    spender = read_address(_member(message, "spender", at), f"{at}.spender")
    if owner_field == "owner":
        amount = read_uint(_member(message, "value", at), f"{at}.value")
    else:
        allowed = _member(message, "allowed", at)
        if not isinstance(allowed, bool):
            raise DecodeError("allowed must be true or false", where=f"{at}.allowed")
        amount = MAX_UINT256 if allowed else 0
    return (approval(context, spender, amount, "permit"),)


def _permit2_layout(data: TypedData, where: str) -> tuple[str, str]:
    """(permissions field, its struct) of a canonical Permit2 document, else a DecodeError.

    Permit2 checks the typehash, so a document of any other shape would not verify; it
    is refused rather than judged as a plain message, because a signature for Permit2
    is never "just a message" and a shape walletgate cannot read might still move tokens.
    """
    at = f"{where}.types.{data.primary_type}"
    layout = _PERMIT2_LAYOUTS.get(data.primary_type)
    if layout is None:
        raise DecodeError(
            f"typed data for the Permit2 contract has primary type {data.primary_type!r}, "
            f"which is not a Permit2 permit walletgate can judge ({', '.join(_PERMIT2_LAYOUTS)})",
            where=f"{where}.primaryType",
        )
    field, struct, leading = layout
    fields = data.types[data.primary_type]
    if fields[: len(leading)] != leading:
        expected = ", ".join(f"{kind} {name}" for name, kind in leading)
        raise DecodeError(
            f"Permit2 {data.primary_type} must start with the fields ({expected})", where=at
        )
    # The witness variants hash a fixed stub followed by a type string the caller
    # supplies (``permitWitnessTransferFrom(..., witnessTypeString, ...)``), so the
    # witness field may have any name and any type; Permit2 hashes exactly one 32-byte
    # witness word, which is what one EIP-712 field of any type encodes to.
    allowed_extra = 1 if data.primary_type in _PERMIT2_WITNESS_TYPES else 0
    extra = len(fields) - len(leading)
    if extra != allowed_extra:
        raise DecodeError(
            f"Permit2 {data.primary_type} must have {len(leading) + allowed_extra} fields, "
            f"got {len(fields)}",
            where=at,
        )
    if data.types.get(struct) != _PERMIT2_STRUCTS[struct]:
        expected = ", ".join(f"{kind} {name}" for name, kind in _PERMIT2_STRUCTS[struct])
        raise DecodeError(
            f"Permit2 {struct} must be exactly ({expected})", where=f"{where}.types.{struct}"
        )
    return field, struct


def _permit2_intents(
    data: TypedData, field: str, struct: str, context: TokenCallContext, where: str
) -> tuple[Intent, ...]:
    at = f"{where}.message"
    spender = read_address(_member(data.message, "spender", at), f"{at}.spender")
    permissions = _member(data.message, field, at)
    entries = permissions if isinstance(permissions, list) else [permissions]
    entry_where = [
        f"{at}.{field}[{index}]" if isinstance(permissions, list) else f"{at}.{field}"
        for index in range(len(entries))
    ]
    amount_bits = 160 if struct == "PermitDetails" else 256
    intents: list[Intent] = []
    for entry, place in zip(entries, entry_where, strict=True):
        token = read_address(_member(entry, "token", place), f"{place}.token")
        amount = read_uint(_member(entry, "amount", place), f"{place}.amount", bits=amount_bits)
        token_context = TokenCallContext(context.chain_id, context.wallet, token)
        intents.append(approval(token_context, spender, amount, "permit2"))
    return tuple(intents)


def _eip3009_intents(
    data: TypedData, signer: str, context: TokenCallContext, where: str
) -> tuple[Intent, ...]:
    """The token transfer an EIP-3009 authorization makes: the token pays ``value`` from
    ``from`` to ``to`` when anyone (or, for ReceiveWithAuthorization, ``to``) submits it."""
    message, at = data.message, f"{where}.message"
    source = read_address(_member(message, "from", at), f"{at}.from")
    if source != signer:
        raise DecodeError(
            f"authorization from {source} is not the signing address {signer}",
            where=f"{at}.from",
        )
    to = read_address(_member(message, "to", at), f"{at}.to")
    amount = read_uint(_member(message, "value", at), f"{at}.value")
    return (TokenTransfer(context.chain_id, signer, context.token, to, amount, source=source),)


def _token_context(
    context: CallContext, domain: _Domain, signer: str, what: str, where: str
) -> TokenCallContext:
    if domain.verifying_contract is None:
        raise DecodeError(
            f"{what} needs domain.verifyingContract (the token)",
            where=f"{where}.domain.verifyingContract",
        )
    chain = context.intent_chain(domain.chain_id, f"{where}.domain.chainId")
    return TokenCallContext(chain, signer, domain.verifying_contract)


def typed_data_intents(
    context: CallContext, data: TypedData, signer: str, where: str
) -> tuple[int | None, tuple[Intent, ...]]:
    """The chain the signature binds (``domain.chainId``) and its intents: approvals for
    a recognised permit, a transfer for an EIP-3009 authorization, the intents of a
    shape of :mod:`~walletgate.proxy.evm.typed_shapes` (NFT permits, Seaport orders,
    Safe transactions), else one :class:`MessageSignature` (marked for an ERC-7710
    delegation). Typed data for the Permit2 contract that is not a recognised Permit2
    permit is a DecodeError.

    A recognised permit, authorization or order whose domain has no ``chainId`` is valid
    on every chain the contract lives on: its intents come with a
    :class:`MessageSignature` marked with the standard, which only a typed-data entry
    that allows a missing chain id admits."""
    domain = _read_domain(data.domain, f"{where}.domain")
    standard, intents = _standard_intents(context, data, domain, signer, where)
    if standard is None:
        return domain.chain_id, (_signature(context, data, domain, signer, None, where),)
    if domain.chain_id is None and not any(isinstance(i, MessageSignature) for i in intents):
        unbound = _signature(context, data, domain, signer, standard, where)
        return None, (*intents, unbound)
    return domain.chain_id, intents


def _standard_intents(
    context: CallContext, data: TypedData, domain: _Domain, signer: str, where: str
) -> tuple[str | None, tuple[Intent, ...]]:
    """(the recognised standard, its intents), or (``None``, ()) for any other document."""
    fields = data.types[data.primary_type]
    if domain.verifying_contract == PERMIT2_ADDRESS:
        permit2 = _permit2_layout(data, where)
        token_context = _token_context(context, domain, signer, "a permit", where)
        return "permit2", _permit2_intents(data, *permit2, token_context, where)
    if data.primary_type == "Permit" and fields in (_EIP2612_PERMIT, _DAI_PERMIT):
        owner_field = "owner" if fields == _EIP2612_PERMIT else "holder"
        token_context = _token_context(context, domain, signer, "a permit", where)
        standard = "eip2612-permit" if owner_field == "owner" else "dai-permit"
        return standard, _erc2612_intents(data, signer, owner_field, token_context, where)
    if data.primary_type in _EIP3009_PRIMARY_TYPES and fields == _EIP3009_AUTHORIZATION:
        what = f"an EIP-3009 {data.primary_type}"
        token_context = _token_context(context, domain, signer, what, where)
        return "eip3009-authorization", _eip3009_intents(data, signer, token_context, where)
    shape = recognise(data.types, data.primary_type)
    if shape is None:
        return None, ()
    standard, decoder = shape
    if decoder is None:  # it authorizes, moves nothing walletgate can count
        return standard, (_signature(context, data, domain, signer, standard, where),)
    shape_context = ShapeContext(
        context.intent_chain(domain.chain_id, f"{where}.domain.chainId"),
        signer,
        domain.verifying_contract,
        where,
    )
    message = message_struct(data.types, data.primary_type, data.message, where)
    return standard, decoder(shape_context, message)


def _signature(
    context: CallContext,
    data: TypedData,
    domain: _Domain,
    signer: str,
    standard: str | None,
    where: str,
) -> MessageSignature:
    """The document as a message signature, with its message for typed-data entries."""
    return MessageSignature(
        wallet=signer,
        method=context.method,
        primary_type=data.primary_type,
        verifying_contract=domain.verifying_contract,
        chain_id=domain.chain_id,
        domain_name=domain.name,
        message=message_struct(data.types, data.primary_type, data.message, where),
        standard=standard,
        encoded_type=type_string(data.types, data.primary_type),
    )
