"""The arguments of ``walletgate approvals …`` (kept apart from the commands so that
parsing the command line imports nothing heavy)."""

from __future__ import annotations

import argparse
from typing import Any

#: Every status an approval can be in (migrations/0006_approvals.sql).
STATUSES = (
    "pending",
    "approved",
    "rejected",
    "expired",
    "cancelled",
    "executing",
    "executed",
    "failed",
    "unknown",
)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Any,
) -> None:
    """``walletgate approvals …`` (``command`` makes a subparser with the global flags)."""
    group = command(sub, "approvals", help="held spends: list, show, approve, reject, cancel")
    asub = group.add_subparsers(dest="approvals_command", required=True)
    listing = command(asub, "list", help="list approvals, newest first")
    listing.add_argument("--status", choices=STATUSES)
    for name in ("owner", "agent", "wallet"):
        listing.add_argument(
            f"--{name}", help=f"an {name} id" if name != "wallet" else "a wallet id"
        )
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = command(asub, "show", help="one approval: request, request hash, history")
    show.add_argument("approval_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    approve = command(asub, "approve", help="approve a hold: a gateway forwards it, once")
    approve.add_argument("approval_id", metavar="ID")
    approve.add_argument("--reason", default="", help="why (kept in the history)")
    approve.add_argument("--signature", help="the owner approver's EIP-712 signature (0x…)")
    approve.add_argument("--expiry", type=int, help="the signed expiry (unix seconds)")
    for name, text in (("reject", "reject a hold"), ("cancel", "cancel a hold or a delay")):
        parser = command(asub, name, help=f"{text}: never forwarded, reservation given back")
        parser.add_argument("approval_id", metavar="ID")
        parser.add_argument("--reason", required=True, help="why (kept in the history)")
    typed = command(asub, "typed-data", help="the EIP-712 document the owner's approver signs")
    typed.add_argument("approval_id", metavar="ID")
    typed.add_argument("--expiry", type=int, required=True, help="unix seconds")
    approver = command(asub, "approver", help="show, set or clear an owner's approver address")
    approver.add_argument("owner", metavar="OWNER")
    approver.add_argument("address", metavar="ADDRESS", nargs="?")
    approver.add_argument("--clear", action="store_true")
