"""NFTs in the evaluator: what an intent means once its asset's kind is known.

The decoders read calldata by selector alone. Two ERC-721 methods share the ERC-20
selectors: ``transferFrom(address,address,uint256)`` and ``approve(address,uint256)``
(and some early collections have ``transfer(address,uint256)``). Only the policy set
knows which contracts are collections, so :func:`with_nft_semantics` rewrites them here,
before anything is judged: a :class:`TokenTransfer` of an ERC-721 collection moves
token ``#amount`` (count 1), and an ``approve`` lets the spender move that one token,
not an "unlimited" amount because the token id is large.

Where the standard of an intent and the kind of its asset disagree (an ERC-1155 batch
transfer on an ERC-721 collection, ``setApprovalForAll`` or an NFT transfer on an
ERC-20 token, a ``permit``, ``increaseAllowance`` or ERC-20 call on an NFT collection),
walletgate cannot know what the contract will do: :func:`kind_conflict` says why, and
coverage refuses the request (``unknown_asset``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from walletgate.intents import (
    Intent,
    NftApproval,
    NftTransfer,
    TokenApproval,
    TokenTransfer,
)
from walletgate.policies.model import ApprovalLimit, Asset, AssetKind, PolicySet, Rule
from walletgate.policies.request import SpendRequest

#: ``via`` of ERC-721 calls that carry ERC-20 selectors, once reinterpreted.
VIA_ERC721_TRANSFER = "erc721.transferFrom"
VIA_ERC721_APPROVE = "erc721.approve"
_ZERO_ADDRESS = "0x" + "00" * 20
#: The standards a ``via`` may name before its dot (``erc1155.safeBatchTransferFrom``).
_STANDARDS = {str(kind): kind for kind in (AssetKind.ERC721, AssetKind.ERC1155)}


def with_nft_semantics(request: SpendRequest, policies: PolicySet) -> SpendRequest:
    """``request`` with the ERC-20-shaped calls on ERC-721 collections rewritten as NFT
    intents (see the module docstring); the request itself when there are none."""
    intents = request.decoded.intents
    rewritten = tuple(_reinterpret(intent, request.chain_id, policies) for intent in intents)
    if all(new is old for new, old in zip(rewritten, intents, strict=True)):
        return request
    decoded = dataclasses.replace(request.decoded, intents=rewritten)
    return dataclasses.replace(request, decoded=decoded)


def _reinterpret(intent: Intent, chain_id: int, policies: PolicySet) -> Intent:
    if not isinstance(intent, TokenTransfer | TokenApproval):
        return intent
    asset = policies.asset_by_address(chain_id, intent.token)
    if asset is None or asset.kind is not AssetKind.ERC721:
        return intent
    if isinstance(intent, TokenTransfer):
        return NftTransfer(
            chain_id=intent.chain_id,
            wallet=intent.wallet,
            collection=intent.token,
            to=intent.to,
            token_ids=(intent.amount,),
            amounts=(1,),
            source=intent.source,
            via=VIA_ERC721_TRANSFER,
        )
    if intent.via != "approve":
        return intent  # permit, permit2, increaseAllowance: no ERC-721 meaning (a conflict)
    return NftApproval(
        chain_id=intent.chain_id,
        wallet=intent.wallet,
        collection=intent.token,
        operator=intent.spender,
        token_id=intent.amount,
        # approve(0x0, id) clears the token's approval: it grants nothing.
        approved=intent.spender != _ZERO_ADDRESS,
        via=VIA_ERC721_APPROVE,
    )


def kind_conflict(intent: Intent, asset: Asset) -> str | None:
    """Why ``intent`` does not fit ``asset``'s kind, or ``None`` when it does."""
    if isinstance(intent, NftTransfer | NftApproval):
        if not asset.nft:
            return (
                f"{intent.via} treats {asset.symbol} ({intent.collection}) as an NFT "
                f"collection, but it is a known {asset.kind} asset"
            )
        standard = _STANDARDS.get(intent.via.partition(".")[0])
        if standard is not None and standard is not asset.kind:
            return (
                f"{intent.via} is an {standard} method, but {asset.symbol} "
                f"({intent.collection}) is an {asset.kind} collection"
            )
        return None
    if isinstance(intent, TokenTransfer | TokenApproval) and asset.nft:
        what = "transfer" if isinstance(intent, TokenTransfer) else f"{intent.via} approval"
        return (
            f"an ERC-20 {what} on {asset.symbol} ({intent.token}), which is an "
            f"{asset.kind} collection: walletgate cannot tell what it would move"
        )
    return None


def is_revocation(intent: Intent) -> bool:
    """True for an NFT approval that takes a permission away (it grants nothing)."""
    return isinstance(intent, NftApproval) and not intent.approved


def describe_nft(intent: NftTransfer | NftApproval, asset: Asset, wallet_address: str) -> str:
    """An NFT movement for humans: ``"transfer of token #5 of PUNKS to 0x…"``."""
    symbol = asset.symbol
    if isinstance(intent, NftApproval):
        if not intent.approved:
            which = "every token" if intent.token_id is None else f"token #{intent.token_id}"
            return f"revocation of operator {intent.operator} for {which} of {symbol}"
        if intent.token_id is None:
            return f"approval of every {symbol} token (setApprovalForAll) to {intent.operator}"
        return f"approval of token #{intent.token_id} of {symbol} to {intent.operator}"
    tokens = _tokens(intent)
    source = f" from {intent.source}" if intent.source != wallet_address else ""
    return f"transfer of {tokens} of {symbol}{source} to {intent.to}"


def _tokens(intent: NftTransfer) -> str:
    parts = [
        f"token #{token_id}" if count == 1 else f"{count} x token #{token_id}"
        for token_id, count in zip(intent.token_ids, intent.amounts, strict=False)
    ]
    if not parts:
        return "no tokens"
    shown = ", ".join(parts[:5])
    if len(parts) > 5:
        shown += f" and {len(parts) - 5} more"
    return shown if len(parts) == 1 else f"{shown} ({intent.amount} in all)"


def operator_allowed(asset: Asset, rules: Sequence[Rule]) -> bool:
    """True when an ``approval_limit`` on this very collection says ``allow_unlimited``:
    only then may an operator be approved for every token (``setApprovalForAll``). A
    USD approval limit does not name the collection, so it does not speak for it."""
    return any(
        isinstance(rule, ApprovalLimit) and rule.limit.asset == asset.id and rule.allow_unlimited
        for rule in rules
    )
