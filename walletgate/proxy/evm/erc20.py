"""ERC-20 calldata: transfer, transferFrom, approve and increaseAllowance become intents,
and so do the token methods that do the same with a callback or under another name:
ERC-1363's ``transferAndCall``, ``transferFromAndCall`` and ``approveAndCall`` (with and
without their ``bytes`` argument: the callback runs on the recipient, the tokens move
all the same), ``increaseApproval`` (the pre-``increaseAllowance`` name), and ERC-777's
``send``, ``operatorSend`` and ``authorizeOperator`` (an operator may move every token,
so it is an unlimited approval).

Calldata that carries one of these selectors must decode exactly (strict eth-abi
decoding, and the arguments must re-encode to the very bytes sent: no sloppy padding,
offsets or trailing bytes) or it is a :class:`DecodeError`. It is never demoted to an
unknown contract call: a token contract's dispatcher matches only the selector, so a
transfer with sloppy padding or trailing bytes still moves tokens, and "unknown call"
would let it be judged by the contract allowlist instead of the spending caps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from walletgate.abi import AbiFunction, NonCanonicalAbi, decode_canonical
from walletgate.intents import (
    MAX_UINT256,
    UNLIMITED_APPROVAL_THRESHOLD,
    DecodeError,
    TokenApproval,
    TokenTransfer,
    canonical_address,
)

TokenIntent = TokenTransfer | TokenApproval


@dataclass(frozen=True, slots=True)
class TokenCallContext:
    """Where the call happens: the chain, the acting wallet and the token contract."""

    chain_id: int
    wallet: str
    token: str


def approval(context: TokenCallContext, spender: str, amount: int, via: str) -> TokenApproval:
    """A :class:`TokenApproval` with ``unlimited`` set from the shared threshold."""
    return TokenApproval(
        chain_id=context.chain_id,
        wallet=context.wallet,
        token=context.token,
        spender=canonical_address(spender),
        amount=amount,
        unlimited=amount >= UNLIMITED_APPROVAL_THRESHOLD,
        via=via,
    )


def _transfer(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    to, amount = args
    return TokenTransfer(
        context.chain_id,
        context.wallet,
        context.token,
        canonical_address(to),
        amount,
        source=context.wallet,
    )


def _transfer_from(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    source, to, amount = args
    return TokenTransfer(
        context.chain_id,
        context.wallet,
        context.token,
        canonical_address(to),
        amount,
        source=canonical_address(source),
    )


def _approve(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    spender, amount = args
    return approval(context, spender, amount, "approve")


def _increase_allowance(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    spender, amount = args
    return approval(context, spender, amount, "increaseAllowance")


#: The functions this module decodes, with their context and intent types.
_TokenFunction = AbiFunction[TokenCallContext, TokenIntent]


def _first(count: int, build: Callable[[TokenCallContext, tuple[Any, ...]], TokenIntent]) -> Any:
    """``build`` over the first ``count`` arguments (the ERC-1363 callback data is not
    what moves tokens)."""
    return lambda context, args: build(context, args[:count])


def _approve_and_call(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    spender, amount = args[:2]
    return approval(context, spender, amount, "approveAndCall")


def _increase_approval(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    spender, amount = args
    return approval(context, spender, amount, "increaseApproval")


def _authorize_operator(context: TokenCallContext, args: tuple[Any, ...]) -> TokenIntent:
    # An ERC-777 operator may send every token the holder has, now and later.
    (operator,) = args
    return approval(context, operator, MAX_UINT256, "authorizeOperator")


_TRANSFER = ("address", "uint256")
_TRANSFER_FROM = ("address", "address", "uint256")
_FUNCTIONS = (
    _TokenFunction("transfer", _TRANSFER, _transfer),
    _TokenFunction("transferFrom", _TRANSFER_FROM, _transfer_from),
    _TokenFunction("approve", _TRANSFER, _approve),
    _TokenFunction("increaseAllowance", _TRANSFER, _increase_allowance),
    _TokenFunction("increaseApproval", _TRANSFER, _increase_approval),
    _TokenFunction("transferAndCall", _TRANSFER, _transfer),
    _TokenFunction("transferAndCall", (*_TRANSFER, "bytes"), _first(2, _transfer)),
    _TokenFunction("transferFromAndCall", _TRANSFER_FROM, _transfer_from),
    _TokenFunction("transferFromAndCall", (*_TRANSFER_FROM, "bytes"), _first(3, _transfer_from)),
    _TokenFunction("approveAndCall", _TRANSFER, _approve_and_call),
    _TokenFunction("approveAndCall", (*_TRANSFER, "bytes"), _approve_and_call),
    # ERC-777: send and operatorSend move tokens like transfer and transferFrom.
    _TokenFunction("send", (*_TRANSFER, "bytes"), _first(2, _transfer)),
    _TokenFunction("operatorSend", (*_TRANSFER_FROM, "bytes", "bytes"), _first(3, _transfer_from)),
    _TokenFunction("authorizeOperator", ("address",), _authorize_operator),
)
_BY_SELECTOR = {function.selector: function for function in _FUNCTIONS}
#: The selectors this module decodes (``0x`` + 8 hex digits): calls with them are token
#: intents, judged by the asset rules, never contract calls a method entry could judge.
TOKEN_SELECTORS = frozenset("0x" + selector.hex() for selector in _BY_SELECTOR)


def decode_token_call(data: bytes, context: TokenCallContext, where: str) -> TokenIntent | None:
    """The token intent of ``data``, or ``None`` when its selector is not an ERC-20 one.

    Raises :class:`DecodeError` when the selector matches but the arguments do not
    decode exactly (see the module docstring).
    """
    function = _BY_SELECTOR.get(data[:4]) if len(data) >= 4 else None
    if function is None:
        return None
    return function.build(
        context, decode_arguments(function.signature, function.arg_types, data, where)
    )


def decode_arguments(
    signature: str, arg_types: tuple[str, ...], data: bytes, where: str
) -> tuple[Any, ...]:
    """The arguments of ``data`` (selector included) for a function of ``arg_types``,
    decoded strictly; a :class:`DecodeError` unless they re-encode to exactly the bytes
    sent, so no two readings of the same calldata can differ (a contract's own decoder
    may accept sloppy padding, stray offsets or trailing bytes that eth-abi skips)."""
    try:
        return decode_canonical(arg_types, data[4:])
    except NonCanonicalAbi as exc:
        raise DecodeError(f"{signature} calldata: {exc}", where=where) from None
