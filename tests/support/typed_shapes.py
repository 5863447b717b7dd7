"""Typed-data documents of the standard shapes walletgate decodes: ERC-4494 NFT permits,
PermitForAll, Safe ``SafeTx``, Seaport orders (single and bulk) and ERC-7710 delegations.

Each document's types come from the standard's type string, the one its contract hashes
into its typehash (see ``walletgate.proxy.evm.typed_shapes``), so a test can also alter
a type and check that the document is then no longer recognised.
"""

from __future__ import annotations

from typing import Any

from walletgate.config.typed_data import parse_types
from walletgate.proxy.evm.seaport import ORDER_TYPE
from walletgate.proxy.evm.typed_shapes import (
    DELEGATION,
    ERC4494_PERMIT,
    PERMIT_FOR_ALL,
    SAFE_TX,
)

CHAIN_ID = 1337
ZERO = "0x" + "00" * 20
SEAPORT = "0x0000000000000068f116a894984e2db1123eb395"
DELEGATION_MANAGER = "0xdb9b1e94b5b69df7e401ddbede43491141047db3"
NATIVE, ERC20, ERC721, ERC1155, ERC721_CRITERIA, ERC1155_CRITERIA = range(6)


def document(
    type_text: str,
    primary: str,
    message: dict[str, Any],
    *,
    contract: str | None,
    chain_id: int | None = CHAIN_ID,
    name: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """A typed-data document whose types are ``type_text`` (a canonical type string)."""
    types = parse_types(type_text, primary)
    domain: dict[str, Any] = {}
    domain_type = []
    for key, kind, value in (
        ("name", "string", name),
        ("version", "string", version),
        ("chainId", "uint256", chain_id),
        ("verifyingContract", "address", contract),
    ):
        if value is not None:
            domain[key] = value
            domain_type.append({"name": key, "type": kind})
    return {
        "types": {
            "EIP712Domain": domain_type,
            **{
                type_name: [{"name": field, "type": kind} for field, kind in fields]
                for type_name, fields in types.items()
            },
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }


def nft_permit(
    collection: str, spender: str, token_id: int, *, chain_id: int | None = CHAIN_ID
) -> dict[str, Any]:
    """An ERC-4494 permit: ``spender`` may move token ``token_id`` of ``collection``."""
    message = {"spender": spender, "tokenId": token_id, "nonce": 0, "deadline": 2**40}
    return document(
        ERC4494_PERMIT,
        "Permit",
        message,
        contract=collection,
        chain_id=chain_id,
        name="Walletgate Test NFT",
        version="1",
    )


def permit_for_all(collection: str, operator: str, approved: bool = True) -> dict[str, Any]:
    """A signed setApprovalForAll (Uniswap v4 positions' PermitForAll)."""
    message = {"operator": operator, "approved": approved, "nonce": 0, "deadline": 2**40}
    return document(PERMIT_FOR_ALL, "PermitForAll", message, contract=collection, name="Positions")


def safe_tx(
    safe: str,
    to: str,
    *,
    value: int = 0,
    data: str = "0x",
    operation: int = 0,
    safe_tx_gas: int = 0,
    base_gas: int = 0,
    gas_price: int = 0,
    gas_token: str = ZERO,
    refund_receiver: str = ZERO,
    chain_id: int | None = CHAIN_ID,
) -> dict[str, Any]:
    """A Safe transaction; ``chain_id`` None gives the pre-1.3 domain (contract only)."""
    message = {
        "to": to,
        "value": value,
        "data": data,
        "operation": operation,
        "safeTxGas": safe_tx_gas,
        "baseGas": base_gas,
        "gasPrice": gas_price,
        "gasToken": gas_token,
        "refundReceiver": refund_receiver,
        "nonce": 0,
    }
    return document(SAFE_TX, "SafeTx", message, contract=safe, chain_id=chain_id)


def item(
    kind: int, token: str, identifier: int, amount: int, end: int | None = None
) -> dict[str, Any]:
    """A Seaport offer item (``end`` defaults to ``amount``)."""
    return {
        "itemType": kind,
        "token": token,
        "identifierOrCriteria": identifier,
        "startAmount": amount,
        "endAmount": amount if end is None else end,
    }


def order_components(
    offerer: str, offer: list[dict[str, Any]], consideration: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The OrderComponents message of a full open order."""
    return {
        "offerer": offerer,
        "zone": ZERO,
        "offer": offer,
        "consideration": consideration or [],
        "orderType": 0,
        "startTime": 0,
        "endTime": 2**40,
        "zoneHash": "0x" + "00" * 32,
        "salt": 7,
        "conduitKey": "0x" + "00" * 32,
        "counter": 0,
    }


def seaport_order(
    offerer: str,
    offer: list[dict[str, Any]],
    consideration: list[dict[str, Any]] | None = None,
    *,
    chain_id: int | None = CHAIN_ID,
) -> dict[str, Any]:
    """A signed Seaport order offering ``offer``."""
    return document(
        ORDER_TYPE,
        "OrderComponents",
        order_components(offerer, offer, consideration),
        contract=SEAPORT,
        chain_id=chain_id,
        name="Seaport",
        version="1.6",
    )


def seaport_bulk_order(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """A BulkOrder of height 1 (two OrderComponents messages)."""
    assert len(orders) == 2
    order_type = ORDER_TYPE[: ORDER_TYPE.index(")") + 1]
    rest = ORDER_TYPE[len(order_type) :]
    bulk = f"BulkOrder(OrderComponents[2] tree){rest}{order_type}"
    return document(
        bulk,
        "BulkOrder",
        {"tree": orders},
        contract=SEAPORT,
        name="Seaport",
        version="1.6",
    )


def delegation(delegate: str, delegator: str) -> dict[str, Any]:
    """An ERC-7710 delegation (MetaMask delegation framework) with one caveat."""
    message = {
        "delegate": delegate,
        "delegator": delegator,
        "authority": "0x" + "ff" * 32,
        "caveats": [{"enforcer": "0x" + "e1" * 20, "terms": "0x1234"}],
        "salt": 1,
    }
    return document(
        DELEGATION,
        "Delegation",
        message,
        contract=DELEGATION_MANAGER,
        name="DelegationManager",
        version="1",
    )
