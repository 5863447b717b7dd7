"""Strict readers for the values of Ethereum JSON-RPC: quantities, byte strings, addresses.

Strict in the way geth's ``hexutil`` is strict (``0x`` prefix, no leading zeros in a
quantity, whole bytes in data), so that walletgate never accepts a value the backend
would read differently. Each reader names the offending part of the request in its
:class:`DecodeError`.
"""

from __future__ import annotations

import binascii
import re

from walletgate.intents import DecodeError, InvalidAddress, canonical_address

_QUANTITY_RE = re.compile(r"0x(?:0|[1-9a-fA-F][0-9a-fA-F]*)")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+")


def read_quantity(value: object, where: str, *, bits: int = 256) -> int:
    """A JSON-RPC quantity: ``0x``-prefixed hex, no leading zeros, at most ``bits`` bits."""
    if not isinstance(value, str) or not _QUANTITY_RE.fullmatch(value):
        raise DecodeError(
            f"must be a hex quantity (0x-prefixed, no leading zeros), got {_preview(value)}",
            where=where,
        )
    # The length check first: it bounds the work int() does on a huge string.
    if len(value) - 2 > (bits + 3) // 4:
        raise DecodeError(f"quantity exceeds {bits} bits", where=where)
    number = int(value, 16)
    if number.bit_length() > bits:
        raise DecodeError(f"quantity exceeds {bits} bits", where=where)
    return number


def read_data(value: object, where: str) -> bytes:
    """A JSON-RPC byte string: ``0x`` followed by an even number of hex digits."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError("must be 0x-prefixed hex data", where=where)
    if len(value) % 2:
        raise DecodeError("hex data must have an even number of digits", where=where)
    try:
        return binascii.unhexlify(value[2:])
    except ValueError:  # binascii.Error, or non-ASCII text
        raise DecodeError(f"invalid hex data {_preview(value)}", where=where) from None


def read_address(value: object, where: str) -> str:
    """A 20-byte address, returned canonical (lowercase)."""
    try:
        return canonical_address(value)  # type: ignore[arg-type]  # checked inside
    except InvalidAddress:
        raise DecodeError(
            f"must be a 20-byte hex address, got {_preview(value)}", where=where
        ) from None


def read_uint(value: object, where: str, *, bits: int = 256) -> int:
    """An unsigned integer as typed data carries one: a JSON integer, a decimal string or
    a ``0x`` hex string. Stricter than eth-account's coercion (no signs, spaces,
    underscores or fractions), so the number judged is the number signed."""
    if isinstance(value, bool):
        raise DecodeError("must be an unsigned integer, got a boolean", where=where)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and len(value) <= 2 + (bits + 3) // 4 and _HEX_RE.fullmatch(value):
        number = int(value, 16)
    elif isinstance(value, str) and len(value) <= 80 and _DECIMAL_RE.fullmatch(value):
        number = int(value)
    else:
        raise DecodeError(
            "must be an unsigned integer (number, decimal or 0x-hex string), "
            f"got {_preview(value)}",
            where=where,
        )
    if number < 0 or number.bit_length() > bits:
        raise DecodeError(f"integer out of range for uint{bits}", where=where)
    return number


def _preview(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 50 else text[:47] + "..."
