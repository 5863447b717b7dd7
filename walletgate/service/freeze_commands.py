"""``walletgate freeze | unfreeze``: the kill switch, from the shell.

The actions are in :mod:`walletgate.service.freezes`; this module prints their results.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import asyncpg

from walletgate.config.settings import Settings
from walletgate.policies.model import Freeze, describe_frozen
from walletgate.service.actor import actor_of
from walletgate.service.freezes import FreezeDone, freeze_target, list_freeze_log, unfreeze_target
from walletgate.storage.runtime import open_stores


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.agent is not None:
        return "agent", args.agent
    if args.wallet is not None:
        return "wallet", args.wallet
    return "all", None


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _describe(found: Freeze) -> str:
    return f"by {found.frozen_by} at {_when(found.frozen_at)}: {found.reason}"


def _announced(done: FreezeDone, settings: Settings) -> bool:
    if done.announcement.ok:
        return True
    print(
        f"walletgate: the change is committed, but the gateways could not be told "
        f"({done.announcement.error}); they refuse every spend while Redis is down and pick "
        f"it up within {settings.policy_cache_ttl} s of it coming back: run the command again "
        "then",
        file=sys.stderr,
    )
    return False


def format_freezes(rows: list[asyncpg.Record]) -> str:
    """A plain-text table of freezes: what, since when, by whom, why, and any lifting."""
    header = ("WHAT", "FROZEN AT", "BY", "REASON", "LIFTED")
    lines = [header]
    for row in rows:
        lifted = "-"
        if row["unfrozen_at"] is not None:
            lifted = f"{_when(row['unfrozen_at'])} by {row['unfrozen_by']}"
        what = describe_frozen(row["scope"], row["target"])
        lines.append((what, _when(row["frozen_at"]), row["frozen_by"], row["reason"], lifted))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


async def run_freeze(args: argparse.Namespace, settings: Settings) -> int:
    """Freeze an agent, a wallet or everything (``--list``: show the freezes)."""
    async with open_stores(settings) as stores:
        if args.list:
            rows = await list_freeze_log(stores, lifted=args.lifted)
            print(format_freezes(rows) if rows else "nothing is frozen")
            return 0
        scope, target = _target(args)
        done = await freeze_target(
            stores,
            scope,
            target,
            reason=args.reason or "",
            actor=actor_of(settings),
            cache_ttl=settings.policy_cache_ttl,
        )
    announced = _announced(done, settings)
    _report(done, frozen=True)
    return 0 if announced else 1


async def run_unfreeze(args: argparse.Namespace, settings: Settings) -> int:
    """Lift the freeze on an agent, a wallet or everything."""
    scope, target = _target(args)
    async with open_stores(settings) as stores:
        done = await unfreeze_target(
            stores,
            scope,
            target,
            reason=args.reason or "",
            actor=actor_of(settings),
            cache_ttl=settings.policy_cache_ttl,
        )
    announced = _announced(done, settings)
    _report(done, frozen=False)
    return 0 if announced else 1


def _report(done: FreezeDone, *, frozen: bool) -> None:
    change = done.change
    what = describe_frozen(done.scope, done.target)
    if frozen and change.changed:
        print(
            f"Froze {what} (state version {change.state_version}): every gateway refuses "
            "its spends and signatures from its next request."
        )
    elif frozen:
        assert change.freeze is not None
        print(f"{what} is already frozen ({_describe(change.freeze)}); nothing changed.")
    elif change.changed:
        assert change.freeze is not None
        print(
            f"Unfroze {what} (state version {change.state_version}; it was frozen "
            f"{_describe(change.freeze)})."
        )
    else:
        print(f"{what} is not frozen; nothing changed.")
