"""Measuring a request against an amount :class:`~walletgate.policies.model.Limit`.

A limit is either base units of one asset or a USD value. Against an asset limit a
request counts the base units it moves in that asset; against a USD limit it counts the
USD value of everything it moves, which is unknown (``None``) when a price is missing or
stale, and then every USD rule fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from walletgate.policies.amounts import format_asset_amount, format_units, format_usd
from walletgate.policies.facts import Exposure
from walletgate.policies.model import Asset, Limit

#: How much of a limit's unit a request uses: base units (int) or USD (Fraction).
Quantity = int | Fraction

USD = "usd"


def is_usd(limit: Limit) -> bool:
    """True for a USD limit (one that names no asset)."""
    return limit.asset is None


def unit_of(limit: Limit) -> str:
    """The limit's unit: its asset id, or ``"usd"``."""
    return USD if limit.asset is None else limit.asset


def applies_to(limit: Limit, asset: Asset) -> bool:
    """True when amounts of ``asset`` count against ``limit`` (USD limits count every asset)."""
    return is_usd(limit) or limit.asset == asset.id


def base_units_of(limit: Limit) -> int:
    """An asset limit's maximum; a limit missing its figure allows nothing (fail closed)."""
    return limit.base_units if limit.base_units is not None else 0


def usd_of(limit: Limit) -> Decimal:
    """A USD limit's maximum; a limit missing its figure allows nothing (fail closed)."""
    return limit.usd if limit.usd is not None else Decimal(0)


def requested(limit: Limit, exposure: Exposure) -> Quantity | None:
    """What the request uses of ``limit``'s unit; ``None`` when its USD value is unknown."""
    if limit.asset is None:
        return exposure.usd
    return exposure.amount_of(limit.asset)


def exceeds(limit: Limit, quantity: Quantity) -> bool:
    """True when ``quantity`` is over the limit (reaching it exactly is within)."""
    if is_usd(limit):
        # quantity > usd, compared exactly by cross-multiplying the integer ratios
        # (both denominators are positive) instead of building a Fraction of the limit.
        numerator, denominator = usd_of(limit).as_integer_ratio()
        return quantity.numerator * denominator > numerator * quantity.denominator
    return quantity > base_units_of(limit)


def describe_limit(limit: Limit, assets: Mapping[str, Asset]) -> str:
    """The limit for humans: ``"1.5 ETH"`` or ``"1000 USD"``."""
    if limit.asset is None:
        return format_usd(usd_of(limit))
    return describe_quantity(limit, base_units_of(limit), assets)


def describe_quantity(limit: Limit, quantity: Quantity, assets: Mapping[str, Asset]) -> str:
    """A quantity in ``limit``'s unit for humans."""
    if isinstance(quantity, Fraction):
        return format_usd(quantity)
    if limit.asset is None:
        return format_usd(Fraction(quantity))
    asset = assets.get(limit.asset)
    if asset is None:
        return format_units(quantity, 0, limit.asset)
    return format_asset_amount(quantity, asset)


def describe_unpriced(exposure: Exposure, assets: Mapping[str, Asset]) -> str:
    """Names the assets without a usable USD price: ``"WUSD, XYZ"``."""
    return ", ".join(
        assets[asset_id].symbol if asset_id in assets else asset_id
        for asset_id in exposure.unpriced
    )
