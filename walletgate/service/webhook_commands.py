"""``walletgate webhooks list | retry | test``: webhook deliveries from the shell."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from walletgate.config.settings import Settings
from walletgate.service.actor import actor_of
from walletgate.service.webhooks import (
    Delivery,
    list_deliveries,
    parse_delivery_id,
    retry_delivery,
    send_test_event,
)
from walletgate.storage.runtime import open_stores


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def format_deliveries(deliveries: list[Delivery]) -> str:
    """A plain-text table of deliveries (never a secret: only the endpoint's URL)."""
    header = ("ID", "EVENT", "TYPE", "OWNER", "WEBHOOK", "STATUS", "TRIES", "NEXT", "LAST")
    rows = [
        (
            str(d.id),
            str(d.event_id),
            d.event_type,
            d.owner,
            d.webhook,
            d.status,
            str(d.attempts),
            _when(d.next_attempt_at) if d.status == "pending" else "-",
            d.last_error or (str(d.last_status) if d.last_status is not None else "-"),
        )
        for d in deliveries
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    """List deliveries, newest first."""
    async with open_stores(settings) as stores:
        deliveries = await list_deliveries(
            stores.pool, status=args.status, owner=args.owner, limit=args.limit
        )
    if args.json:
        for delivery in deliveries:
            print(json.dumps(delivery.to_json()))
    else:
        print(format_deliveries(deliveries))
    return 0


async def run_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Put one delivery back in the queue, due now."""
    delivery_id = parse_delivery_id(args.delivery_id)
    async with open_stores(settings) as stores:
        delivery = await retry_delivery(stores.pool, delivery_id, actor=actor_of(settings))
    print(
        f"Delivery {delivery.id} of event {delivery.event_id} to {delivery.owner}/"
        f"{delivery.webhook} is queued again; the gateways send it shortly."
    )
    return 0


async def run_test(args: argparse.Namespace, settings: Settings) -> int:
    """Send a webhook.test event to every endpoint of an owner."""
    async with open_stores(settings) as stores:
        deliveries = await send_test_event(stores.pool, args.owner, actor=actor_of(settings))
    if not deliveries:
        print(f"Owner {args.owner!r} has no webhooks (owners[].webhooks in the policy document).")
        return 1
    print(format_deliveries(deliveries))
    print("Queued; the gateways send it shortly ('walletgate webhooks list' shows how it went).")
    return 0
