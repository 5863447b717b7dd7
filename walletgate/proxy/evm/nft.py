"""NFT calldata: ERC-721 and ERC-1155 transfers and operator approvals become intents.

Decoded here, by selector alone (the decoder does not know what the contract is):

- ERC-721 ``safeTransferFrom(address,address,uint256)`` and
  ``safeTransferFrom(address,address,uint256,bytes)``: one token, count 1;
- ERC-1155 ``safeTransferFrom(address,address,uint256,uint256,bytes)`` and
  ``safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)``: ids and amounts;
- ``setApprovalForAll(address,bool)`` (both standards): the operator may move every
  token of the collection (or, with ``false``, no longer may).

ERC-721 ``transferFrom(address,address,uint256)`` and ``approve(address,uint256)`` have
the ERC-20 selectors, so the ERC-20 decoder reads them; the evaluator reinterprets them
when the token is an ERC-721 collection (``policies.nfts``).

As with ERC-20 calls, calldata with one of these selectors must decode exactly or it is
a :class:`DecodeError`, never an unknown call. "Exactly" is stricter here, because
these take dynamic arguments: the arguments must be the canonical ABI encoding of what
they decode to (re-encoding gives the same bytes), so no trailing bytes, dirty padding,
odd offsets or overlapping arrays. Wallet libraries only produce canonical encodings;
anything else is refused rather than second-guessed. A batch whose id and amount lists
differ in length is refused too (the contract would revert; walletgate does not guess).

``via`` names the standard and the method (``erc721.safeTransferFrom``,
``erc1155.safeBatchTransferFrom``, ``setApprovalForAll``), so the evaluator can refuse a
call whose standard does not match the collection's kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from walletgate.abi import AbiFunction, NonCanonicalAbi, decode_canonical
from walletgate.intents import DecodeError, NftApproval, NftTransfer, canonical_address

NftIntent = NftTransfer | NftApproval

#: ``via`` values: the standard before the dot tells which collection kind they need.
VIA_ERC721_SAFE_TRANSFER = "erc721.safeTransferFrom"
VIA_ERC1155_SAFE_TRANSFER = "erc1155.safeTransferFrom"
VIA_ERC1155_BATCH_TRANSFER = "erc1155.safeBatchTransferFrom"
VIA_SET_APPROVAL_FOR_ALL = "setApprovalForAll"


@dataclass(frozen=True, slots=True)
class NftCallContext:
    """Where the call happens: the chain, the acting wallet and the collection contract."""

    chain_id: int
    wallet: str
    collection: str


def _transfer(
    context: NftCallContext,
    source: str,
    to: str,
    token_ids: tuple[int, ...],
    amounts: tuple[int, ...],
    via: str,
) -> NftTransfer:
    return NftTransfer(
        chain_id=context.chain_id,
        wallet=context.wallet,
        collection=context.collection,
        to=canonical_address(to),
        token_ids=token_ids,
        amounts=amounts,
        source=canonical_address(source),
        via=via,
    )


def _erc721_safe_transfer(context: NftCallContext, args: tuple[Any, ...]) -> NftIntent:
    source, to, token_id = args[:3]  # the 4-argument form adds receiver data
    return _transfer(context, source, to, (token_id,), (1,), VIA_ERC721_SAFE_TRANSFER)


def _erc1155_safe_transfer(context: NftCallContext, args: tuple[Any, ...]) -> NftIntent:
    source, to, token_id, amount, _data = args
    return _transfer(context, source, to, (token_id,), (amount,), VIA_ERC1155_SAFE_TRANSFER)


def _erc1155_batch_transfer(context: NftCallContext, args: tuple[Any, ...]) -> NftIntent:
    source, to, token_ids, amounts, _data = args
    if len(token_ids) != len(amounts):
        raise ValueError(f"{len(token_ids)} token ids but {len(amounts)} amounts")
    return _transfer(
        context, source, to, tuple(token_ids), tuple(amounts), VIA_ERC1155_BATCH_TRANSFER
    )


def _set_approval_for_all(context: NftCallContext, args: tuple[Any, ...]) -> NftIntent:
    operator, approved = args
    return NftApproval(
        chain_id=context.chain_id,
        wallet=context.wallet,
        collection=context.collection,
        operator=canonical_address(operator),
        token_id=None,
        approved=approved,
        via=VIA_SET_APPROVAL_FOR_ALL,
    )


#: The functions this module decodes, with their context and intent types.
_NftFunction = AbiFunction[NftCallContext, NftIntent]


_FUNCTIONS = (
    _NftFunction("safeTransferFrom", ("address", "address", "uint256"), _erc721_safe_transfer),
    _NftFunction(
        "safeTransferFrom", ("address", "address", "uint256", "bytes"), _erc721_safe_transfer
    ),
    _NftFunction(
        "safeTransferFrom",
        ("address", "address", "uint256", "uint256", "bytes"),
        _erc1155_safe_transfer,
    ),
    _NftFunction(
        "safeBatchTransferFrom",
        ("address", "address", "uint256[]", "uint256[]", "bytes"),
        _erc1155_batch_transfer,
    ),
    _NftFunction("setApprovalForAll", ("address", "bool"), _set_approval_for_all),
)
_BY_SELECTOR = {function.selector: function for function in _FUNCTIONS}
#: The selectors this module decodes (``0x`` + 8 hex digits), for documentation and tests.
NFT_SELECTORS = frozenset("0x" + selector.hex() for selector in _BY_SELECTOR)


def decode_nft_call(data: bytes, context: NftCallContext, where: str) -> NftIntent | None:
    """The NFT intent of ``data``, or ``None`` when its selector is not an NFT one.

    Raises :class:`DecodeError` when the selector matches but the arguments are not the
    exact, canonical encoding of a valid call (see the module docstring).
    """
    function = _BY_SELECTOR.get(data[:4]) if len(data) >= 4 else None
    if function is None:
        return None
    try:
        args = decode_canonical(function.arg_types, data[4:])
    except NonCanonicalAbi as exc:
        raise DecodeError(f"{function.signature} calldata: {exc}", where=where) from None
    try:
        return function.build(context, args)
    except ValueError as exc:
        raise DecodeError(f"{function.signature} calldata: {exc}", where=where) from None
