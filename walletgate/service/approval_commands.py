"""``walletgate approvals list | show | approve | reject | cancel | typed-data | approver``.

Formatting only: the actions are :mod:`walletgate.service.approvals`.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from walletgate.config.settings import Settings
from walletgate.service import approvals
from walletgate.service.actor import actor_of
from walletgate.storage.runtime import open_stores


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "-"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def format_approvals(items: list[dict[str, Any]]) -> str:
    """A plain-text table of approvals."""
    header = ("ID", "STATUS", "KIND", "AGENT", "WALLET", "METHOD", "AMOUNTS", "EXPIRES", "RELEASE")
    rows = [
        (
            item["id"],
            item["status"],
            item["kind"],
            item["agent_id"] or "-",
            item["wallet_id"] or "-",
            item["method"],
            ",".join(f"{asset}={units}" for asset, units in (item["amounts"] or {}).items()) or "-",
            _when(item["expires_at"]),
            _when(item["release_at"]),
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _describe(item: dict[str, Any]) -> str:
    lines = [
        f"approval     {item['id']} ({item['kind']})",
        f"status       {item['status']}",
        f"transaction  {item['transaction_id']} ({item['transaction_status']})",
        f"agent        {item['agent_id']}  wallet {item['wallet_id']}  owner {item['owner_id']}",
        f"request      {item['method']} {_json(item['request'].get('params'))}",
        f"request hash {item['request_hash']}",
        f"amounts      {_json(item['amounts'])}  usd {item['usd_value']}",
        f"requested    {_when(item['requested_at'])}",
        f"expires      {_when(item['expires_at'])}",
    ]
    if item["release_at"] is not None:
        lines.append(f"release      {_when(item['release_at'])}")
    if item["approver"]:
        lines.append(f"approver     {item['approver']} (approving needs its signature)")
    if item["tx_hash"]:
        lines.append(f"tx hash      {item['tx_hash']}")
    lines.append("history:")
    for step in item["history"]:
        reason = f": {step['reason']}" if step["reason"] else ""
        lines.append(
            f"  {_when(step['at'])}  {step['from_status'] or '-'} -> {step['to_status']}"
            f"  by {step['actor']}{reason}"
        )
    return "\n".join(lines)


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    """List approvals, newest first."""
    flt = approvals.ApprovalFilter(
        status=args.status, agent=args.agent, wallet=args.wallet, owner=args.owner, limit=args.limit
    )
    async with open_stores(settings) as stores:
        items = await approvals.list_approvals(stores, flt)
    if args.json:
        for item in items:
            print(_json(item))
    else:
        print(format_approvals(items))
    return 0


async def run_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one approval with its request and history."""
    async with open_stores(settings) as stores:
        item = await approvals.get_approval(stores, args.approval_id)
    print(_json(item) if args.json else _describe(item))
    return 0


async def run_approve(args: argparse.Namespace, settings: Settings) -> int:
    """Approve a hold; a gateway forwards it next."""
    async with open_stores(settings) as stores:
        item = await approvals.approve(
            stores,
            args.approval_id,
            actor=actor_of(settings),
            reason=args.reason,
            signature=args.signature,
            signature_expiry=args.expiry,
        )
    print(f"Approval {item['id']} is {item['status']}; a gateway forwards it shortly.")
    return 0


async def _release(args: argparse.Namespace, settings: Settings, verb: str) -> int:
    action = approvals.reject if verb == "rejected" else approvals.cancel
    async with open_stores(settings) as stores:
        item = await action(stores, args.approval_id, actor=actor_of(settings), reason=args.reason)
    refund = (
        "its reservation was given back"
        if item.get("refunded")
        else "its reservation is given back by the gateways' next sweep"
    )
    print(f"Approval {item['id']} is {item['status']}: never forwarded; {refund}.")
    return 0


async def run_reject(args: argparse.Namespace, settings: Settings) -> int:
    """Reject a hold."""
    return await _release(args, settings, "rejected")


async def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Cancel a hold or a delay before it runs."""
    return await _release(args, settings, "cancelled")


async def run_typed_data(args: argparse.Namespace, settings: Settings) -> int:
    """Print the EIP-712 document the owner's approver signs."""
    async with open_stores(settings) as stores:
        document = await approvals.signing_request(stores, args.approval_id, expiry=args.expiry)
    print(json.dumps(document, indent=2))
    return 0


async def run_approver(args: argparse.Namespace, settings: Settings) -> int:
    """Show, set or clear an owner's approver address."""
    async with open_stores(settings) as stores:
        if args.clear:
            await approvals.set_approver(stores, args.owner, None, actor=actor_of(settings))
            print(f"Owner {args.owner!r} has no approver: approvals need no signature.")
            return 0
        if args.address is not None:
            address = await approvals.set_approver(
                stores, args.owner, args.address, actor=actor_of(settings)
            )
            print(f"Owner {args.owner!r} approves with {address}: approvals need its signature.")
            return 0
        found = await approvals.get_approver(stores, args.owner)
    print(found or f"Owner {args.owner!r} has no approver address.")
    return 0
