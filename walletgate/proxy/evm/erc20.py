"""ERC-20 calldata: transfer, transferFrom, approve and increaseAllowance become intents.

Calldata that carries one of these selectors must decode exactly (strict eth-abi
decoding, zero padding, no missing or extra bytes) or it is a :class:`DecodeError`. It
is never demoted to an unknown contract call: a token contract's dispatcher matches only
the selector, so a transfer with sloppy padding or trailing bytes still moves tokens,
and "unknown call" would let it be judged by the contract allowlist instead of the
spending caps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector

from walletgate.intents import (
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


@dataclass(frozen=True, slots=True)
class _TokenFunction:
    name: str
    arg_types: tuple[str, ...]
    build: Callable[[TokenCallContext, tuple[Any, ...]], TokenIntent]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.arg_types)})"

    @property
    def selector(self) -> bytes:
        return bytes(function_signature_to_4byte_selector(self.signature))


_FUNCTIONS = (
    _TokenFunction("transfer", ("address", "uint256"), _transfer),
    _TokenFunction("transferFrom", ("address", "address", "uint256"), _transfer_from),
    _TokenFunction("approve", ("address", "uint256"), _approve),
    _TokenFunction("increaseAllowance", ("address", "uint256"), _increase_allowance),
)
_BY_SELECTOR = {function.selector: function for function in _FUNCTIONS}


def decode_token_call(data: bytes, context: TokenCallContext, where: str) -> TokenIntent | None:
    """The token intent of ``data``, or ``None`` when its selector is not an ERC-20 one.

    Raises :class:`DecodeError` when the selector matches but the arguments do not
    decode exactly (see the module docstring).
    """
    function = _BY_SELECTOR.get(data[:4]) if len(data) >= 4 else None
    if function is None:
        return None
    expected = 4 + 32 * len(function.arg_types)  # all arguments are static words
    if len(data) != expected:
        raise DecodeError(
            f"{function.signature} calldata must be {expected} bytes, got {len(data)}",
            where=where,
        )
    try:
        args = eth_abi.decode(function.arg_types, data[4:], strict=True)
    except DecodingError as exc:
        raise DecodeError(f"{function.signature} calldata: {exc}", where=where) from None
    return function.build(context, args)
