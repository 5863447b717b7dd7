"""Exact amount arithmetic and formatting: base units, USD values, micro-dollars.

USD values are computed as :class:`fractions.Fraction`, never rounded until a limit is
compared or a counter claim is made. ``Decimal`` arithmetic rounds to its context
precision (28 digits by default), which a wei amount times a price can exceed; a
fraction cannot. Prices are decimals and scales are powers of ten, so every value here
is a terminating decimal and converts back to ``Decimal`` exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from walletgate.policies.model import Asset

#: Counters hold USD as integer micro-dollars (Lua numbers are doubles, not decimals).
MICRO_USD_PER_USD = 10**6


def format_units(base_units: int, decimals: int, symbol: str) -> str:
    """``base_units`` as a whole-unit decimal with its symbol, exactly: ``"1.5 ETH"``."""
    whole, fraction = divmod(abs(base_units), 10**decimals)
    text = str(whole)
    if fraction:
        text += "." + str(fraction).rjust(decimals, "0").rstrip("0")
    sign = "-" if base_units < 0 else ""
    return f"{sign}{text} {symbol}"


def format_asset_amount(base_units: int, asset: Asset) -> str:
    """``base_units`` of ``asset`` for humans, with the asset's symbol and decimals."""
    return format_units(base_units, asset.decimals, asset.symbol)


def format_usd(value: Decimal | Fraction) -> str:
    """A USD value for humans, exactly and without exponent notation: ``"1000.50 USD"``."""
    amount = to_decimal(value) if isinstance(value, Fraction) else value
    return f"{amount:f} USD"


def to_decimal(value: Fraction) -> Decimal:
    """The exact ``Decimal`` of a terminating fraction (every USD value here is one).

    Raises ``ValueError`` for a fraction with no finite decimal expansion.
    """
    denominator = value.denominator
    # The power of two in the denominator is its count of trailing zero bits.
    twos = (denominator & -denominator).bit_length() - 1
    denominator >>= twos
    fives = 0
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        raise ValueError(f"{value} has no finite decimal expansion")
    places = max(twos, fives)
    scaled = value.numerator * 10**places // value.denominator
    # The string constructor is exact; arithmetic would round to the context precision.
    return Decimal(f"{scaled}E-{places}")


def usd_value(asset: Asset, base_units: int, now: datetime) -> Fraction | None:
    """The exact USD value of ``base_units`` of ``asset``; ``None`` when unpriced or stale."""
    price = asset.price_at(now)
    if price is None:
        return None
    # One exact Fraction from integers (Decimal.as_integer_ratio is exact), rather than
    # three Fractions multiplied and divided: the same canonical value, one gcd.
    numerator, denominator = price.as_integer_ratio()
    return Fraction(base_units * numerator, denominator * 10**asset.decimals)


def micro_usd_at_least(value: Fraction | int) -> int:
    """``value`` in whole micro-dollars rounded up: a request never counts for less."""
    # Integer ceiling division: exact, without an intermediate Fraction.
    return -(-value.numerator * MICRO_USD_PER_USD // value.denominator)


def micro_usd_at_most(value: Decimal) -> int:
    """``value`` in whole micro-dollars rounded down: a limit never grows by rounding."""
    numerator, denominator = value.as_integer_ratio()  # exact, denominator > 0
    return numerator * MICRO_USD_PER_USD // denominator
