"""The console's pure formatting: exact units, USD, time left, cap bars, movements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from walletgate.console import present
from walletgate.policies.model import Asset, AssetKind

ETH = Asset("eth", 1337, None, "ETH", 18, Decimal("3000"), kind=AssetKind.NATIVE)
USDC = Asset("usdc", 1337, "0x" + "11" * 20, "USDC", 6)
ASSETS = {"eth": ETH, "usdc": USDC}


def test_human_units_are_exact() -> None:
    assert present.human_units(600042000000000000, 18) == "0.600042"
    assert present.human_units(10**18 * 12345678901234567890, 18) == "12345678901234567890"
    assert present.human_units(1, 18) == "0.000000000000000001"
    assert present.human_units(0, 6) == "0"
    assert present.human_units(1_500_000, 0) == "1500000"


def test_amounts_name_each_asset_in_both_units() -> None:
    shown = present.amounts('{"eth": "600000000000000000", "usdc": "2500000"}', ASSETS)
    assert [(a.human, a.symbol, a.base_units) for a in shown] == [
        ("0.6", "ETH", "600000000000000000"),
        ("2.5", "USDC", "2500000"),
    ]
    unknown = present.amounts({"mystery": "7"}, ASSETS)
    assert [(a.human, a.symbol, a.base_units) for a in unknown] == [("?", "mystery", "7")]


def test_usd_and_time_left() -> None:
    assert present.usd("1800.126") == "$1,800.13"
    assert present.usd(None) == "unknown"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert present.time_left(now + timedelta(seconds=598), now) == "9 min 58 s"
    assert present.time_left(now + timedelta(hours=2, minutes=5), now) == "2 h 5 min"
    assert present.time_left(now - timedelta(seconds=1), now) == "past"


def test_movement_of_a_transaction_request() -> None:
    request = {"params": [{"from": "0xaa", "to": "0xbb", "value": hex(6 * 10**17)}]}
    assert present.movement(request, ETH) == {
        "from": "0xaa",
        "to": "0xbb",
        "value_wei": "600000000000000000",
        "value": "0.6 ETH",
    }
    assert present.movement({"params": ["0xsigned"]}, ETH) == {}


def test_cap_bar_in_the_caps_unit() -> None:
    cap = {"policy": "p", "rule": "daily", "window": "1d", "unit": "eth"}
    bar = present.cap_bar(
        {**cap, "limit": str(20 * 10**18), "spent": str(5 * 10**18), "remaining": str(15 * 10**18)},
        ASSETS,
    )
    assert (bar.spent, bar.left, bar.limit, bar.percent) == ("5 ETH", "15 ETH", "20 ETH", 25)
    usd_cap = {
        **cap,
        "unit": "micro_usd",
        "limit": "100000000",
        "spent": "99500000",
        "remaining": "500000",
    }
    bar = present.cap_bar(usd_cap, ASSETS)
    assert (bar.spent, bar.left, bar.percent) == ("$99.50", "$0.50", 99)
    over = present.cap_bar({**cap, "limit": "0", "spent": "0", "remaining": "0"}, ASSETS)
    assert over.percent == 100
