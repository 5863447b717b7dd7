"""Pure: spending per day as a bar chart (server-side SVG) with a table alternative.

Amounts stay int base units; whole units (``present.human_units``) are for display. Bar
heights are integer proportions of the tallest day, so no float touches an amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from walletgate.console.present import human_units
from walletgate.policies.model import Asset

#: The chart's drawing box (SVG user units); it scales to the page's width.
WIDTH = 280
HEIGHT = 80


@dataclass(frozen=True, slots=True)
class Bar:
    """One day: its label, what was spent (base units and for a person), its rectangle."""

    day: date
    base_units: int
    human: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class SpendChart:
    """One wallet's spending of one asset, day by day, oldest first."""

    wallet: str
    asset: str
    symbol: str
    bars: tuple[Bar, ...]
    total: str
    peak: str

    @property
    def summary(self) -> str:
        """The chart in a sentence (its accessible description)."""
        first, last = self.bars[0].day, self.bars[-1].day
        return (
            f"{self.symbol} spent by wallet {self.wallet} per day from {first} to {last}: "
            f"{self.total} {self.symbol} in all, at most {self.peak} {self.symbol} in a day."
        )


def spend_charts(
    items: Iterable[Mapping[str, Any]], assets: Mapping[str, Asset], *, today: date, days: int
) -> list[SpendChart]:
    """One chart per (wallet, asset) of the admin API's daily spending ``items``, each
    covering the ``days`` days up to ``today`` (days without spending are zero)."""
    sums: dict[tuple[str, str], dict[date, int]] = {}
    for item in items:
        day = item["day"] if isinstance(item["day"], date) else date.fromisoformat(item["day"])
        per_day = sums.setdefault((str(item["wallet"]), str(item["asset"])), {})
        per_day[day] = per_day.get(day, 0) + int(item["spent"])
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    return [
        _chart(wallet, asset, per_day, span, assets.get(asset))
        for (wallet, asset), per_day in sorted(sums.items())
    ]


def _chart(
    wallet: str, asset: str, per_day: Mapping[date, int], span: list[date], meta: Asset | None
) -> SpendChart:
    decimals = meta.decimals if meta is not None else 0
    symbol = meta.symbol if meta is not None and meta.symbol else asset
    values = [per_day.get(day, 0) for day in span]
    peak = max(values, default=0)
    slot = WIDTH // len(span)
    bars = []
    for i, (day, value) in enumerate(zip(span, values, strict=True)):
        # A day with any spending shows at least 1 unit high, so it is never invisible.
        height = 0 if peak == 0 or value == 0 else max(1, value * (HEIGHT - 2) // peak)
        bars.append(
            Bar(
                day=day,
                base_units=value,
                human=human_units(value, decimals),
                x=i * slot + 1,
                y=HEIGHT - height,
                width=max(1, slot - 2),
                height=height,
            )
        )
    return SpendChart(
        wallet=wallet,
        asset=asset,
        symbol=symbol,
        bars=tuple(bars),
        total=human_units(sum(values), decimals),
        peak=human_units(peak, decimals),
    )
