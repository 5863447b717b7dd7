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


def permit(
    owner: str, value: Any, *, token: str = TOKEN, chain_id: int | None = CHAIN_ID
) -> dict[str, Any]:
    """EIP-2612 Permit typed data."""
    domain, domain_type = eip712_domain("Token", token, chain_id)
    return {
        "types": {
            "EIP712Domain": domain_type,
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "owner": owner,
            "spender": SPENDER,
            "value": value,
            "nonce": 0,
            "deadline": 2**40,
        },
    }


def dai_permit(holder: str, allowed: Any) -> dict[str, Any]:
    """DAI-style Permit typed data."""
    domain, domain_type = eip712_domain("Dai Stablecoin", TOKEN)
    return {
        "types": {
            "EIP712Domain": domain_type,
            "Permit": [
                {"name": "holder", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "expiry", "type": "uint256"},
                {"name": "allowed", "type": "bool"},
            ],
        },
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "holder": holder,
            "spender": SPENDER,
            "nonce": 0,
            "expiry": 2**40,
            "allowed": allowed,
        },
    }


_PERMIT_DETAILS = [
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint160"},
    {"name": "expiration", "type": "uint48"},
    {"name": "nonce", "type": "uint48"},
]
_TOKEN_PERMISSIONS = [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}]


def _permit2_document(
    primary: str,
    fields: list[dict[str, str]],
    extra: dict[str, Any],
    message: dict[str, Any],
    contract: str,
) -> dict[str, Any]:
    domain = {"name": "Permit2", "chainId": CHAIN_ID, "verifyingContract": contract}
    domain_type = [
        {"name": "name", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ]
    return {
        "types": {"EIP712Domain": domain_type, primary: fields, **extra},
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


def permit2_single(token: str, amount: int, *, contract: str = PERMIT2) -> dict[str, Any]:
    """Permit2 PermitSingle typed data."""
    fields = [
        {"name": "details", "type": "PermitDetails"},
        {"name": "spender", "type": "address"},
        {"name": "sigDeadline", "type": "uint256"},
    ]
    details = {"token": token, "amount": amount, "expiration": 2**40, "nonce": 0}
    message = {"details": details, "spender": SPENDER, "sigDeadline": 2**40}
    return _permit2_document(
        "PermitSingle", fields, {"PermitDetails": _PERMIT_DETAILS}, message, contract
    )


def permit2_batch(tokens: list[tuple[str, int]]) -> dict[str, Any]:
    """Permit2 PermitBatch typed data."""
    fields = [
        {"name": "details", "type": "PermitDetails[]"},
        {"name": "spender", "type": "address"},
        {"name": "sigDeadline", "type": "uint256"},
    ]
    details = [
        {"token": token, "amount": amount, "expiration": 2**40, "nonce": 0}
        for token, amount in tokens
    ]
    message = {"details": details, "spender": SPENDER, "sigDeadline": 2**40}
    return _permit2_document(
        "PermitBatch", fields, {"PermitDetails": _PERMIT_DETAILS}, message, PERMIT2
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
    fields = [
        {"name": "permitted", "type": "TokenPermissions[]" if batch else "TokenPermissions"},
        {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
    extra: dict[str, Any] = {"TokenPermissions": _TOKEN_PERMISSIONS}
    permitted: Any = [{"token": token, "amount": amount} for token, amount in tokens]
    message: dict[str, Any] = {
        "permitted": permitted if batch else permitted[0],
        "spender": SPENDER,
        "nonce": 7,
        "deadline": 2**40,
    }
    if witness:
        name, kind = witness_field
        fields.append({"name": name, "type": kind})
        if kind == "Order":
            extra["Order"] = [{"name": "minOut", "type": "uint256"}]
            message[name] = {"minOut": 5}
        else:
            message[name] = "0x" + "77" * 32 if kind == "bytes32" else 5
    return _permit2_document(primary, fields, extra, message, PERMIT2)


def transfer_authorization(
    source: str,
    value: Any,
    *,
    primary: str = "TransferWithAuthorization",
    to: str = RECIPIENT,
    token: str = TOKEN,
) -> dict[str, Any]:
    """EIP-3009 (USDC-style) typed data: ``value`` of ``token`` from ``source`` to ``to``."""
    domain, domain_type = eip712_domain("USD Coin", token)
    return {
        "types": {
            "EIP712Domain": domain_type,
            primary: [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": primary,
        "domain": domain,
        "message": {
            "from": source,
            "to": to,
            "value": value,
            "validAfter": 0,
            "validBefore": 2**40,
            "nonce": "0x" + "11" * 32,
        },
    }


def mail(contract: str = "0x" + "cc" * 20) -> dict[str, Any]:
    """An ordinary typed-data document (the EIP-712 example) that is not a permit."""
    domain, domain_type = eip712_domain("Ether Mail", contract)
    return {
        "types": {
            "EIP712Domain": domain_type,
            "Mail": [
                {"name": "from", "type": "address"},
                {"name": "contents", "type": "string"},
            ],
        },
        "primaryType": "Mail",
        "domain": domain,
        "message": {"from": RECIPIENT, "contents": "Hello, Bob!"},
    }
