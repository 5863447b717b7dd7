"""``walletgate tx list``: read the audit log."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from walletgate.config.durations import parse_duration
from walletgate.config.settings import Settings, SettingsError
from walletgate.service.actor import actor_of
from walletgate.service.settlement import Outcome
from walletgate.service.transactions import MAX_PAGE, list_transaction_page, settle_transaction
from walletgate.storage.audit_queries import TxFilter
from walletgate.storage.runtime import open_stores

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


def parse_time(text: str, *, now: datetime) -> datetime:
    """An ISO-8601 time (UTC if it has no zone) or a duration back from ``now`` (``90m``)."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(
            f"cannot read time {text!r}: use ISO-8601 (2026-11-26T10:00:00Z) or a duration (1h)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row_text(row: dict[str, Any]) -> str:
    amounts = ", ".join(f"{units} {asset}" for asset, units in row["amounts"].items()) or "-"
    explanation = row["explanation"] or {}
    message = explanation.get("message", "") if isinstance(explanation, dict) else ""
    parts = [
        row["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        str(row["id"]),
        row["agent_id"] or "-",
        row["wallet_id"] or "-",
        row["method"],
        row["decision"],
        row["status"],
        row["reason"],
        f"amounts={amounts}",
    ]
    if row["tx_hash"]:
        parts.append(f"tx={row['tx_hash']}")
    if message and row["decision"] != "allow":
        parts.append(f"— {message}")
    return "  ".join(parts)


async def run_tx_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print audit rows matching the filters, newest first."""
    now = datetime.now(UTC)
    flt = TxFilter(
        agent=args.agent,
        wallet=args.wallet,
        decision=args.decision,
        since=parse_time(args.since, now=now) if args.since else None,
        until=parse_time(args.until, now=now) if args.until else None,
        limit=max(1, min(args.limit, MAX_PAGE)),
    )
    async with open_stores(settings) as stores:
        rows = (await list_transaction_page(stores, flt)).rows
    for row in rows:
        if args.json:
            print(json.dumps(row, default=str, sort_keys=True))
        else:
            print(_row_text(row))
    if not rows:
        print("no transactions match", file=sys.stderr)
    return 0


async def run_tx_settle(args: argparse.Namespace, settings: Settings) -> int:
    """Settle an ``unknown`` (or stale ``pending``) spend by hand, as the operator says."""
    try:
        stale = timedelta(seconds=parse_duration(args.pending_older_than))
    except ValueError as exc:
        raise SettingsError(f"--pending-older-than: {exc}") from None
    outcome = Outcome(args.outcome)
    if args.tx_hash and outcome is not Outcome.COMMITTED:
        raise SettingsError("--tx-hash goes with --committed")
    if args.tx_hash and not _TX_HASH.match(args.tx_hash):
        raise SettingsError(f"--tx-hash {args.tx_hash!r}: expected 0x and 64 hex digits")
    async with open_stores(settings) as stores:
        done = await settle_transaction(
            stores,
            args.spend_id,
            outcome,
            reason=args.reason,
            actor=actor_of(settings),
            pending_older_than=stale,
            tx_hash=args.tx_hash,
        )
    effect = (
        "its amount stays counted"
        if outcome is Outcome.COMMITTED
        else "its amount is taken back from the counters"
    )
    print(
        f"Settled spend {done.spend_id} ({done.previous_status}) as {done.outcome} "
        f"by {done.actor}: {effect}."
    )
    return 0
