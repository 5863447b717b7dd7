"""The console's pure parts: exact units, USD, time left, cap bars, movements, the
spending chart and the wallet sign-in message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from walletgate.console import chart, present, wallet_signin
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


def test_spend_charts_fill_missing_days_and_scale_by_the_busiest() -> None:
    today = datetime(2026, 12, 3, tzinfo=UTC).date()
    items = [
        {"wallet": "hot", "asset": "eth", "day": "2026-12-03", "spent": str(3 * 10**18 + 1)},
        {"wallet": "hot", "asset": "eth", "day": "2026-12-01", "spent": "1"},
        {"wallet": "hot", "asset": "usdc", "day": "2026-11-20", "spent": "5"},  # out of span
    ]
    charts = chart.spend_charts(items, ASSETS, today=today, days=3)
    assert [(c.wallet, c.asset) for c in charts] == [("hot", "eth"), ("hot", "usdc")]
    eth = charts[0]
    assert [b.day.isoformat() for b in eth.bars] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [b.base_units for b in eth.bars] == [1, 0, 3 * 10**18 + 1]
    assert eth.bars[2].human == "3.000000000000000001" and eth.total == "3.000000000000000002"
    heights = [b.height for b in eth.bars]
    assert heights[1] == 0 and heights[0] == 1 and heights[2] == chart.HEIGHT - 2
    assert all(b.y + b.height == chart.HEIGHT for b in eth.bars)
    assert "from 2026-12-01 to 2026-12-03" in eth.summary
    assert sum(b.base_units for b in charts[1].bars) == 0


def test_siwe_sign_in_message_and_signer() -> None:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    key = "0x" + (9).to_bytes(32, "big").hex()
    address = Account.from_key(key).address
    issued = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    message = wallet_signin.siwe_message(
        domain="127.0.0.1:9",
        uri="http://127.0.0.1:9/console",
        address=address.lower(),
        owner="ops",
        nonce="ab" * 16,
        issued=issued,
    )
    lines = message.split("\n")
    assert lines[0] == "127.0.0.1:9 wants you to sign in with your Ethereum account:"
    assert lines[1] == address  # checksummed, as EIP-4361 asks
    assert "Issued At: 2026-12-03T14:00:00Z" in lines
    assert "Expiration Time: 2026-12-03T14:05:00Z" in lines
    signature = Account.sign_message(encode_defunct(text=message), key).signature
    assert wallet_signin.recovered_signer(message, "0x" + bytes(signature).hex()) == address.lower()
    assert wallet_signin.recovered_signer(message + " ", "0x" + bytes(signature).hex()) != (
        address.lower()
    )
    for bad in ("0xzz", "", "0x12", "0x" + "00" * 65, "0x" + "ff" * 65, "0x" + "11" * 64 + "1b"):
        assert wallet_signin.recovered_signer(message, bad) is None
