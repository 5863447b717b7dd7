"""Strict ABI decoding, shared by every decoder of calldata (tokens, NFTs, wrappers,
conditioned contract methods).

Calldata is read with eth-abi in strict mode, and the values must then re-encode to
exactly the bytes sent. A contract's own decoder may accept what eth-abi skips (dirty
padding, stray offsets, trailing bytes), so calldata with two possible readings is
refused rather than judged under one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import eth_abi
from eth_abi.exceptions import DecodingError, EncodingError


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
