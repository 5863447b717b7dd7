"""Real EVM request material for the adapter tests: signed transactions (eth-account),
ERC-20 calldata (eth-abi), permit typed data, and RLP surgery for malformed variants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eth_abi
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector

CHAIN_ID = 1337
PERMIT2 = "0x000000000022d473030f116ddee9f6b43ac78ba3"
TOKEN = "0x" + "70" * 20
SPENDER = "0x" + "5e" * 20
RECIPIENT = "0x" + "12" * 20

ALICE: LocalAccount = Account.from_key("0x" + "a1" * 32)
BOB: LocalAccount = Account.from_key("0x" + "b2" * 32)


def address_of(account: LocalAccount) -> str:
    """The canonical (lowercase) address of ``account``."""
    return str(account.address).lower()


def calldata(signature: str, *args: Any) -> str:
    """ABI-encoded calldata for ``signature`` (e.g. ``transfer(address,uint256)``)."""
    types = signature[signature.index("(") + 1 : -1].split(",")
    selector = function_signature_to_4byte_selector(signature)
    return "0x" + (selector + eth_abi.encode(types, list(args))).hex()


def sign_raw(tx: dict[str, Any], account: LocalAccount = ALICE) -> str:
    """``tx`` signed by ``account``, as the 0x-hex a client sends to eth_sendRawTransaction."""
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


def tx_hash(tx: dict[str, Any], account: LocalAccount = ALICE) -> str:
    """The hash eth-account gives the signed transaction."""
    return "0x" + bytes(account.sign_transaction(tx).hash).hex()


def fees_1559(**fields: Any) -> dict[str, Any]:
    """A minimal EIP-1559 transaction dict on :data:`CHAIN_ID`, overridden by ``fields``."""
    base: dict[str, Any] = {
        "chainId": CHAIN_ID,
        "nonce": 0,
        "gas": 100_000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "to": RECIPIENT,
        "value": 0,
        "data": b"",
    }
    return {**base, **fields}


def mutate_rlp(raw_hex: str, change: Callable[[list[Any]], Any]) -> str:
    """Decode the RLP payload of a raw transaction (after its type byte, if typed), let
    ``change`` edit the item lists in place or return a replacement, and re-encode."""
    raw = bytes.fromhex(raw_hex[2:])
    prefix, payload = (raw[:1], raw[1:]) if raw[0] < 0xC0 else (b"", raw)
    item = rlp.decode(payload)
    replaced = change(item)
    return "0x" + (prefix + bytes(rlp.encode(item if replaced is None else replaced))).hex()


def eip712_domain(
    name: str, contract: str, chain_id: int | None = CHAIN_ID
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A domain and its ``EIP712Domain`` type."""
    domain: dict[str, Any] = {"name": name, "version": "1"}
    fields = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}]
    if chain_id is not None:
        domain["chainId"] = chain_id
        fields.append({"name": "chainId", "type": "uint256"})
    domain["verifyingContract"] = contract
    fields.append({"name": "verifyingContract", "type": "address"})
    return domain, fields


def _members(declaration: str) -> list[dict[str, str]]:
    """EIP-712 type members written like a Solidity struct body: ``"address owner, ..."``."""
    members = []
    for member in declaration.split(","):
        kind, name = member.split()
        members.append({"name": name, "type": kind})
    return members


def _typed_data(
    domain: tuple[dict[str, Any], list[dict[str, str]]],
    primary: str,
    members: str,
    message: dict[str, Any],
    **other_types: list[dict[str, str]],
) -> dict[str, Any]:
    """A typed-data document: ``domain`` (values and type, as :func:`eip712_domain` gives
    them), the ``primary`` type with ``members`` (see :func:`_members`), and ``message``."""
    values, domain_type = domain
    return {
        "types": {"EIP712Domain": domain_type, primary: _members(members), **other_types},
        "primaryType": primary,
        "domain": values,
        "message": message,
    }


def permit(
    owner: str,
    value: Any,
    *,
    token: str = TOKEN,
    chain_id: int | None = CHAIN_ID,
    spender: str = SPENDER,
    name: str = "Token",
) -> dict[str, Any]:
    """EIP-2612 Permit typed data (``name`` is the token's EIP-712 domain name)."""
    message = {"owner": owner, "spender": spender, "value": value, "nonce": 0, "deadline": 2**40}
    members = "address owner, address spender, uint256 value, uint256 nonce, uint256 deadline"
    return _typed_data(eip712_domain(name, token, chain_id), "Permit", members, message)


def dai_permit(holder: str, allowed: Any) -> dict[str, Any]:
    """DAI-style Permit typed data."""
    message = {
        "holder": holder,
        "spender": SPENDER,
        "nonce": 0,
        "expiry": 2**40,
        "allowed": allowed,
    }
    members = "address holder, address spender, uint256 nonce, uint256 expiry, bool allowed"
    return _typed_data(eip712_domain("Dai Stablecoin", TOKEN), "Permit", members, message)


_PERMIT_DETAILS = _members("address token, uint160 amount, uint48 expiration, uint48 nonce")
_TOKEN_PERMISSIONS = _members("address token, uint256 amount")


def _permit2_domain(contract: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Permit2's domain: no version."""
    domain = {"name": "Permit2", "chainId": CHAIN_ID, "verifyingContract": contract}
    return domain, _members("string name, uint256 chainId, address verifyingContract")


def permit2_single(token: str, amount: int, *, contract: str = PERMIT2) -> dict[str, Any]:
    """Permit2 PermitSingle typed data."""
    details = {"token": token, "amount": amount, "expiration": 2**40, "nonce": 0}
    message = {"details": details, "spender": SPENDER, "sigDeadline": 2**40}
    members = "PermitDetails details, address spender, uint256 sigDeadline"
    return _typed_data(
        _permit2_domain(contract), "PermitSingle", members, message, PermitDetails=_PERMIT_DETAILS
    )


def permit2_batch(tokens: list[tuple[str, int]]) -> dict[str, Any]:
    """Permit2 PermitBatch typed data."""
    details = [
        {"token": token, "amount": amount, "expiration": 2**40, "nonce": 0}
        for token, amount in tokens
    ]
    message = {"details": details, "spender": SPENDER, "sigDeadline": 2**40}
    members = "PermitDetails[] details, address spender, uint256 sigDeadline"
    return _typed_data(
        _permit2_domain(PERMIT2), "PermitBatch", members, message, PermitDetails=_PERMIT_DETAILS
    )


def permit2_transfer(
    tokens: list[tuple[str, int]],
    *,
    batch: bool,
    witness: bool = False,
    witness_field: tuple[str, str] = ("witness", "Order"),
) -> dict[str, Any]:
    """Permit2 signature transfer typed data (single or batch, optionally with a witness).

    ``witness_field`` is the witness's (name, type): Permit2 takes the witness type string
    from the caller, so any name works; the type is the ``Order`` struct or an atomic one.
    """
    primary = (
        ("PermitBatch" if batch else "Permit") + ("Witness" if witness else "") + "TransferFrom"
    )
    permissions = "TokenPermissions[]" if batch else "TokenPermissions"
    members = f"{permissions} permitted, address spender, uint256 nonce, uint256 deadline"
    other_types = {"TokenPermissions": _TOKEN_PERMISSIONS}
    permitted: Any = [{"token": token, "amount": amount} for token, amount in tokens]
    message: dict[str, Any] = {
        "permitted": permitted if batch else permitted[0],
        "spender": SPENDER,
        "nonce": 7,
        "deadline": 2**40,
    }
    if witness:
        name, kind = witness_field
        members += f", {kind} {name}"
        if kind == "Order":
            other_types["Order"] = _members("uint256 minOut")
            message[name] = {"minOut": 5}
        else:
            message[name] = "0x" + "77" * 32 if kind == "bytes32" else 5
    return _typed_data(_permit2_domain(PERMIT2), primary, members, message, **other_types)


def transfer_authorization(
    source: str,
    value: Any,
    *,
    primary: str = "TransferWithAuthorization",
    to: str = RECIPIENT,
    token: str = TOKEN,
) -> dict[str, Any]:
    """EIP-3009 (USDC-style) typed data: ``value`` of ``token`` from ``source`` to ``to``."""
    message = {
        "from": source,
        "to": to,
        "value": value,
        "validAfter": 0,
        "validBefore": 2**40,
        "nonce": "0x" + "11" * 32,
    }
    members = (
        "address from, address to, uint256 value, uint256 validAfter, uint256 validBefore,"
        " bytes32 nonce"
    )
    return _typed_data(eip712_domain("USD Coin", token), primary, members, message)


def mail(contract: str = "0x" + "cc" * 20) -> dict[str, Any]:
    """An ordinary typed-data document (the EIP-712 example) that is not a permit."""
    message = {"from": RECIPIENT, "contents": "Hello, Bob!"}
    return _typed_data(
        eip712_domain("Ether Mail", contract), "Mail", "address from, string contents", message
    )
