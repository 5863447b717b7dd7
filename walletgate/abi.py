"""Strict ABI decoding, shared by every decoder of calldata (tokens, NFTs, wrappers,
conditioned contract methods).

Calldata is read with eth-abi in strict mode, and the values must then re-encode to
exactly the bytes sent. A contract's own decoder may accept what eth-abi skips (dirty
padding, stray offsets, trailing bytes), so calldata with two possible readings is
refused rather than judged under one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import eth_abi
from eth_abi.exceptions import DecodingError, EncodingError
from eth_utils import function_signature_to_4byte_selector

Context = TypeVar("Context")
Result = TypeVar("Result")


class NonCanonicalAbi(ValueError):
    """The bytes do not decode, or are not the one canonical encoding of what they decode to."""


def decode_canonical(types: Sequence[str], body: bytes) -> tuple[Any, ...]:
    """The values ``body`` (calldata after the selector) encodes for ``types``.

    Raises :class:`NonCanonicalAbi` (its message says why) when eth-abi refuses the
    bytes or when the decoded values do not re-encode to exactly ``body``.
    """
    try:
        values = eth_abi.decode(list(types), body, strict=True)
        canonical = eth_abi.encode(list(types), values)
    except (DecodingError, EncodingError, OverflowError, ValueError) as exc:
        raise NonCanonicalAbi(str(exc)) from None
    if canonical != body:
        raise NonCanonicalAbi(
            "not the canonical ABI encoding of its arguments "
            "(trailing bytes, dirty padding or unusual offsets)"
        )
    return tuple(values)


@dataclass(frozen=True)  # no slots: a slotted generic dataclass breaks Generic's __call__
class AbiFunction(Generic[Context, Result]):
    """A contract function a decoder recognises by its selector: its name and argument
    types, and how its decoded arguments (with the call's context) become a result."""

    name: str
    arg_types: tuple[str, ...]
    build: Callable[[Context, tuple[Any, ...]], Result]

    @property
    def signature(self) -> str:
        """The canonical signature, ``transfer(address,uint256)``."""
        return f"{self.name}({','.join(self.arg_types)})"

    @property
    def selector(self) -> bytes:
        """The 4-byte selector of :attr:`signature`."""
        return bytes(function_signature_to_4byte_selector(self.signature))
