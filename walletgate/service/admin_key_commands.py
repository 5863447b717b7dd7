"""``walletgate admin-keys issue | list | revoke``: print the admin key actions' results."""

from __future__ import annotations

import argparse
from datetime import datetime

from walletgate.config.settings import Settings
from walletgate.service.actor import actor_of
from walletgate.service.admin_keys import issue_key, list_keys, revoke_key
from walletgate.storage.admin_keys import AdminKeyRecord
from walletgate.storage.runtime import open_stores


def _scope_text(record: AdminKeyRecord) -> str:
    return "operator" if record.owner_id is None else f"owner {record.owner_id}"


async def run_issue(args: argparse.Namespace, settings: Settings) -> int:
    """Issue an operator key (``--operator``) or an owner's key (``--owner ID``); the
    secret is printed once."""
    async with open_stores(settings) as stores:
        issued = await issue_key(stores, owner_id=args.owner, actor=actor_of(settings))
    record = issued.record
    print(
        "\n".join(
            [
                f"Issued admin key {record.prefix} (id {record.key_id}), "
                f"scope {_scope_text(record)}.",
                "It is shown only this once; walletgate keeps just a hash of it:",
                "",
                f"    {issued.key}",
                "",
                "Send it to the admin API as a bearer token:",
                f"    Authorization: Bearer {issued.key}",
            ]
        )
    )
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def format_key_table(records: list[AdminKeyRecord]) -> str:
    """A plain-text table of admin keys: identifiers, scopes and dates, never a secret."""
    header = ("ID", "PREFIX", "SCOPE", "CREATED", "BY", "LAST USED", "STATUS")
    rows = [
        (
            str(r.key_id),
            r.prefix,
            _scope_text(r),
            _when(r.created_at),
            r.created_by,
            _when(r.last_used_at),
            "active" if r.active else f"revoked {_when(r.revoked_at)} by {r.revoked_by}",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    """List admin keys: ids, prefixes, scopes, dates, never secrets."""
    async with open_stores(settings) as stores:
        records = await list_keys(stores)
    print(format_key_table(records) if records else "no admin keys")
    return 0


async def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke an admin key by id or prefix; the admin API refuses it from then on."""
    async with open_stores(settings) as stores:
        record = await revoke_key(stores, args.key_id, actor=actor_of(settings))
    print(f"Revoked admin key {record.prefix} (id {record.key_id}), scope {_scope_text(record)}.")
    return 0
