"""``walletgate agents token issue | revoke | list``: the CLI handlers for agent tokens.

Token errors (unknown agent, unknown or ambiguous token) are ``UserError``s: the CLI
prints their one-line message and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from walletgate.config.settings import Settings
from walletgate.service.actor import actor_of
from walletgate.service.tokens import issue_agent_token, list_agent_tokens, revoke_agent_token
from walletgate.storage.runtime import open_stores
from walletgate.storage.tokens import IssuedToken, TokenAlreadyRevoked, TokenRecord


def gateway_url(settings: Settings, url: str | None = None) -> str:
    """The URL agents reach the gateway at: ``url`` if given (a load balancer, TLS in
    front), else the configured host and port (``host``/``port`` settings)."""
    if url:
        return url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def _issued_text(issued: IssuedToken, base: str) -> str:
    return "\n".join(
        [
            f"Issued token {issued.prefix} (id {issued.token_id}) for agent {issued.agent_id!r}.",
            "It is shown only this once; walletgate keeps just a hash of it:",
            "",
            f"    {issued.token}",
            "",
            "Give it to the agent as a bearer token:",
            f"    Authorization: Bearer {issued.token}",
            "or, for toolkits that accept only an RPC URL, in the URL path:",
            f"    {base}/t/{issued.token}/",
        ]
    )


async def run_issue(args: argparse.Namespace, settings: Settings) -> int:
    """Issue a token for ``args.agent`` and print it once, with how to use it."""
    async with open_stores(settings) as stores:
        issued = await issue_agent_token(stores, args.agent, actor=actor_of(settings))
    print(_issued_text(issued, gateway_url(settings, getattr(args, "url", None))))
    return 0


async def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke a token by id or prefix; every gateway refuses it from its next request."""
    async with open_stores(settings) as stores:
        try:
            revoked = await revoke_agent_token(
                stores, args.token_id, actor=actor_of(settings), cache_ttl=settings.policy_cache_ttl
            )
        except TokenAlreadyRevoked as exc:
            print(f"walletgate: {exc}; nothing to do", file=sys.stderr)
            return 0
    record = revoked.record
    if not revoked.announcement.ok:
        print(
            f"walletgate: token {record.prefix} is revoked in the database, but the caches "
            f"could not be told ({revoked.announcement.error}); gateways refuse spends while "
            f"Redis is down and pick the revocation up within {settings.policy_cache_ttl} s "
            "of it coming back",
            file=sys.stderr,
        )
        return 1
    print(
        f"Revoked token {record.prefix} (id {record.token_id}) of agent {record.agent_id!r}; "
        f"gateways refuse it from state version {revoked.announcement.version} on."
    )
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _status(record: TokenRecord) -> str:
    if record.active:
        return "active"
    return f"revoked {_when(record.revoked_at)} by {record.revoked_by or 'unknown'}"


def format_token_table(records: list[TokenRecord]) -> str:
    """A plain-text table of tokens: identifiers and dates, never a secret."""
    header = ("ID", "AGENT", "PREFIX", "CREATED", "BY", "LAST USED", "STATUS")
    rows = [
        (
            str(r.token_id),
            r.agent_id,
            r.prefix,
            _when(r.created_at),
            r.created_by or "-",
            _when(r.last_used_at),
            _status(r),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    """List tokens (of ``args.agent`` if given): ids, prefixes, dates, never secrets."""
    async with open_stores(settings) as stores:
        records = await list_agent_tokens(stores, args.agent)
    if not records:
        print("no tokens" + (f" for agent {args.agent!r}" if args.agent else ""))
        return 0
    print(format_token_table(records))
    return 0
