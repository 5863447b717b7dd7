"""Pure formatting for the console's pages: amounts for a person, cap bars, time left.

No I/O and no clock: the caller passes ``now``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from walletgate.policies.model import Asset


@dataclass(frozen=True, slots=True)
class Amount:
    """One asset amount: base units exactly, the same in whole units, and the symbol."""

    asset: str
    base_units: str
    human: str
    symbol: str


def human_units(base_units: int, decimals: int) -> str:
    """``base_units`` as whole units, exact (no float): 600000000000000000, 18 -> 0.6."""
    value = Decimal(base_units).scaleb(-decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def amounts(
    raw: Mapping[str, Any] | str | bytes | None, assets: Mapping[str, Asset]
) -> list[Amount]:
    """The ``amounts`` of an audit row (asset id -> base units) for a person."""
    # A JSON column the store did not decode arrives as text.
    decoded: Mapping[str, Any] | None = json.loads(raw) if isinstance(raw, str | bytes) else raw
    out = []
    for asset_id, units in (decoded or {}).items():
        asset = assets.get(asset_id)
        try:
            base = int(units)
        except (TypeError, ValueError):
            out.append(Amount(asset_id, str(units), "?", asset.symbol if asset else asset_id))
            continue
        if asset is None:
            out.append(Amount(asset_id, str(base), "?", asset_id))
        else:
            out.append(Amount(asset_id, str(base), human_units(base, asset.decimals), asset.symbol))
    return out


def usd(value: Any) -> str:
    """A USD value (a decimal string or ``None``) as ``$1,234.56``."""
    if value is None or value == "":
        return "unknown"
    amount = Decimal(str(value))
    return f"${amount.quantize(Decimal('0.01')):,}"


def time_left(until: datetime | None, now: datetime) -> str:
    """How long until ``until``, for a person: ``9 min 58 s``, or ``past``."""
    if until is None:
        return ""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "past"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def movement(request: Any, native: Asset | None = None) -> dict[str, str]:
    """Where a stored JSON-RPC request sends value: ``to``, ``value`` in wei and, given
    the chain's ``native`` asset, in whole units; the audit's amounts (what was judged,
    the network fee included) are the truth, this is context."""
    if isinstance(request, str | bytes):
        request = json.loads(request)
    params = request.get("params") if isinstance(request, Mapping) else None
    first = params[0] if isinstance(params, list) and params else None
    if not isinstance(first, Mapping):
        return {}
    out = {}
    for key in ("from", "to"):
        if isinstance(first.get(key), str):
            out[key] = first[key]
    value = first.get("value")
    if isinstance(value, str):
        try:
            out["value_wei"] = str(int(value, 16) if value.startswith("0x") else int(value))
        except ValueError:
            out["value_wei"] = value
    if native is not None and out.get("value_wei", "").isdigit():
        out["value"] = f"{human_units(int(out['value_wei']), native.decimals)} {native.symbol}"
    return out


@dataclass(frozen=True, slots=True)
class CapBar:
    """One cap as a bar: what is spent and left, in the cap's unit, and the share used."""

    label: str
    window: str
    unit: str
    spent: str
    left: str
    limit: str
    percent: int


def _unit_text(units: int, unit: str, assets: Mapping[str, Asset]) -> tuple[str, str]:
    if unit == "micro_usd":
        return usd(Decimal(units).scaleb(-6)), "USD"
    asset = assets.get(unit)
    if asset is not None:
        return f"{human_units(units, asset.decimals)} {asset.symbol}", asset.symbol
    return str(units), unit


def cap_bar(cap: Mapping[str, Any], assets: Mapping[str, Asset]) -> CapBar:
    """A cap of a spend summary (the admin API's ``caps`` item) as a bar."""
    limit, spent, left = int(cap["limit"]), int(cap["spent"]), int(cap["remaining"])
    percent = 100 if limit <= 0 else min(100, max(0, spent * 100 // limit))
    unit = str(cap["unit"])
    spent_text, unit_text = _unit_text(spent, unit, assets)
    return CapBar(
        label=f"{cap['policy']} / {cap['rule']}",
        window=str(cap["window"]),
        unit=unit_text,
        spent=spent_text,
        left=_unit_text(left, unit, assets)[0],
        limit=_unit_text(limit, unit, assets)[0],
        percent=percent,
    )
