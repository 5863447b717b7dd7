"""Seaport orders: what a signed ``OrderComponents`` (or ``BulkOrder`` of them) gives away.

A Seaport order is a standing offer: once signed, whoever fulfils it first receives the
offered items (for an open order anyone; for a restricted one whoever its zone lets
through, which walletgate cannot know). The consideration is what the fulfiller pays to
its recipients, not value leaving the wallet, and walletgate credits no income against
what leaves. So every offered item is value leaving the wallet towards :data:`ANYONE`,
an address every denylist contains and no allowlist may list:

- native (item type 0): a :class:`NativeTransfer` of the larger of startAmount and
  endAmount (the amount moves linearly between them over the order's life);
- ERC-20 (1): a :class:`TokenTransfer` of that amount;
- ERC-721 / ERC-1155 (2, 3): an :class:`NftTransfer` of that many of token
  ``identifierOrCriteria``;
- ERC-721 / ERC-1155 with criteria (4, 5): the fulfiller picks any token the criteria
  (a Merkle root, or 0 for any) admit, so it counts as the whole collection: an
  unlimited :class:`NftApproval` to anyone.

A ``BulkOrder`` signs a tree of orders at once (height 1 to 24); each leaf is judged.
An unknown item type is a DecodeError.
"""

from __future__ import annotations

import re

from walletgate.intents import (
    ANYONE,
    DecodeError,
    Intent,
    NativeTransfer,
    NftApproval,
    NftTransfer,
    TokenTransfer,
    TypedStruct,
    TypedValue,
)

_OFFER_ITEM = (
    "OfferItem(uint8 itemType,address token,uint256 identifierOrCriteria,uint256 startAmount,"
    "uint256 endAmount)"
)
_CONSIDERATION_ITEM = (
    "ConsiderationItem(uint8 itemType,address token,uint256 identifierOrCriteria,"
    "uint256 startAmount,uint256 endAmount,address recipient)"
)
_ORDER_COMPONENTS = (
    "OrderComponents(address offerer,address zone,OfferItem[] offer,"
    "ConsiderationItem[] consideration,uint8 orderType,uint256 startTime,uint256 endTime,"
    "bytes32 zoneHash,uint256 salt,bytes32 conduitKey,uint256 counter)"
)
#: The type string of a Seaport order (1.1 and later).
ORDER_TYPE = _ORDER_COMPONENTS + _CONSIDERATION_ITEM + _OFFER_ITEM
#: Seaport 1.0 (still deployed, and still filling orders) named the counter ``nonce``.
ORDER_TYPE_1_0 = ORDER_TYPE.replace("uint256 counter)", "uint256 nonce)")
#: The type string of a bulk order: a tree of 2**height orders, height 1 to 24.
BULK_ORDER_RE = re.compile(
    r"BulkOrder\(OrderComponents(?:\[2\]){1,24} tree\)"
    + re.escape(_CONSIDERATION_ITEM + _OFFER_ITEM + _ORDER_COMPONENTS)
)

_NATIVE, _ERC20, _ERC721, _ERC1155, _ERC721_CRITERIA, _ERC1155_CRITERIA = range(6)
_VIA = "seaport"


def seaport_intents(
    chain_id: int, wallet: str, message: TypedStruct, where: str
) -> tuple[Intent, ...]:
    """What an order (or every order of a bulk order) offers, leaving ``wallet``."""
    at = f"{where}.message"
    if message.type_name == "BulkOrder":
        leaves: list[tuple[TypedStruct, str]] = []
        _leaves(message.get("tree"), f"{at}.tree", leaves)
    else:
        leaves = [(message, at)]
    intents: list[Intent] = []
    for order, place in leaves:
        intents.extend(_order_intents(chain_id, wallet, order, place))
    return tuple(intents)


def _leaves(node: TypedValue, where: str, out: list[tuple[TypedStruct, str]]) -> None:
    if isinstance(node, TypedStruct):
        out.append((node, where))
        return
    assert isinstance(node, tuple)  # read by its type: OrderComponents[2]...[2]
    for index, child in enumerate(node):
        _leaves(child, f"{where}[{index}]", out)


def _order_intents(chain_id: int, wallet: str, order: TypedStruct, where: str) -> list[Intent]:
    offerer = order.get("offerer")
    offer = order.get("offer")
    assert isinstance(offerer, str) and isinstance(offer, tuple)
    intents: list[Intent] = []
    for index, item in enumerate(offer):
        assert isinstance(item, TypedStruct)
        intents.append(_offered(chain_id, wallet, offerer, item, f"{where}.offer[{index}]"))
    return intents


def _offered(chain_id: int, wallet: str, offerer: str, item: TypedStruct, where: str) -> Intent:
    kind, token = item.get("itemType"), item.get("token")
    identifier, start, end = (
        item.get("identifierOrCriteria"),
        item.get("startAmount"),
        item.get("endAmount"),
    )
    assert isinstance(kind, int) and isinstance(token, str)
    assert isinstance(identifier, int) and isinstance(start, int) and isinstance(end, int)
    amount = max(start, end)
    if kind == _NATIVE:
        return NativeTransfer(chain_id, wallet, ANYONE, amount)
    if kind == _ERC20:
        return TokenTransfer(chain_id, wallet, token, ANYONE, amount, source=offerer)
    if kind in (_ERC721, _ERC1155):
        return NftTransfer(
            chain_id, wallet, token, ANYONE, (identifier,), (amount,), source=offerer, via=_VIA
        )
    if kind in (_ERC721_CRITERIA, _ERC1155_CRITERIA):
        return NftApproval(chain_id, wallet, token, ANYONE, None, True, via=f"{_VIA} criteria")
    raise DecodeError(
        f"unknown Seaport item type {kind} (0 native, 1 ERC-20, 2 ERC-721, 3 ERC-1155, "
        "4 and 5 with criteria)",
        where=f"{where}.itemType",
    )
