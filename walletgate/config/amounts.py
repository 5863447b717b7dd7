"""Exact decimal amounts: whole-unit strings ("1.5" ETH) to integer base units and back.

Only string and integer arithmetic is used: no float, and no ``Decimal`` context whose
precision could round a 78-digit wei amount.
"""

from __future__ import annotations

import re
from decimal import Decimal

#: Amounts are written as plain decimals: digits, optionally a point and more digits.
AMOUNT_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
#: Base-unit amounts must fit in a uint256, like every EVM amount.
MAX_BASE_UNITS = (1 << 256) - 1


class AmountError(ValueError):
    """An amount is malformed, too precise for its asset, or out of range."""


def _split(text: str) -> tuple[str, str]:
    if not AMOUNT_RE.match(text):
        raise AmountError(f'{text!r} is not a plain decimal number like "1.5"')
    whole, _, fraction = text.partition(".")
    return whole.lstrip("0") or "0", fraction.rstrip("0")


def normalize_decimal(value: str | int) -> str:
    """The canonical spelling of a non-negative decimal: ``"007.50"`` -> ``"7.5"``."""
    whole, fraction = _split(str(value))
    return f"{whole}.{fraction}" if fraction else whole


def to_base_units(value: str | int, decimals: int, *, symbol: str = "") -> int:
    """Convert whole units to base units exactly: ``("1.5", 18)`` -> ``1500000000000000000``.

    Raises :class:`AmountError` when the value has more fractional digits than the asset
    has decimals (it cannot be represented) or exceeds a uint256.
    """
    whole, fraction = _split(str(value))
    if len(fraction) > decimals:
        unit = f" {symbol}" if symbol else ""
        raise AmountError(
            f"{value}{unit} has {len(fraction)} decimal places but the asset has only {decimals}"
        )
    base_units = int(whole + fraction.ljust(decimals, "0"))
    if base_units > MAX_BASE_UNITS:
        raise AmountError(f"{value} is {base_units} base units, more than a uint256 can hold")
    return base_units


def from_base_units(base_units: int, decimals: int) -> str:
    """The canonical whole-unit string for ``base_units``: ``(1500, 3)`` -> ``"1.5"``."""
    if base_units < 0:
        raise AmountError(f"negative amount: {base_units}")
    digits = str(base_units).rjust(decimals + 1, "0")
    whole, fraction = digits[: len(digits) - decimals], digits[len(digits) - decimals :]
    return normalize_decimal(f"{whole}.{fraction}" if fraction else whole)


def parse_usd(value: str | int) -> Decimal:
    """A USD amount as an exact ``Decimal`` (the string is validated first)."""
    return Decimal(normalize_decimal(value))
