"""The ``walletgate`` command.

This module only parses arguments and dispatches: each command's work lives in the
module named in ``_COMMANDS`` as an ``async def run_<name>(args, settings) -> int`` or a
plain ``def``. Errors a user can fix print one line to stderr and exit non-zero;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
from collections.abc import Sequence
from typing import Any

import uvloop

from walletgate.config.settings import SettingsError, load_settings
from walletgate.errors import UserError
from walletgate.service import approval_args

#: Commands that run on uvloop instead of asyncio's own loop: the gateway. Measured
#: side by side under wrk (docs/benchmarks.md): its CPU per read about 7% lower, per
#: allowed spend about 4 to 10%. The others have no request path to speed up.
_ON_UVLOOP = frozenset({("serve",)})

# command path -> "module:function"
_COMMANDS: dict[tuple[str, ...], str] = {
    ("serve",): "walletgate.proxy.server:run_serve",
    ("migrate",): "walletgate.storage.migrations:run_migrate",
    ("devnet",): "walletgate.devnet:run_devnet",
    ("policies", "validate"): "walletgate.service.policy_commands:run_validate",
    ("policies", "plan"): "walletgate.service.policy_commands:run_plan",
    ("policies", "apply"): "walletgate.service.policy_commands:run_apply",
    ("policies", "export"): "walletgate.service.policy_commands:run_export",
    ("agents", "token", "issue"): "walletgate.service.token_commands:run_issue",
    ("agents", "token", "revoke"): "walletgate.service.token_commands:run_revoke",
    ("agents", "token", "list"): "walletgate.service.token_commands:run_list",
    ("simulate",): "walletgate.proxy.simulate:run_simulate",
    ("tx", "list"): "walletgate.service.audit_commands:run_tx_list",
    ("tx", "settle"): "walletgate.service.audit_commands:run_tx_settle",
    ("backup",): "walletgate.service.backup:run_backup",
    ("restore",): "walletgate.service.backup:run_restore",
    ("freeze",): "walletgate.service.freeze_commands:run_freeze",
    ("unfreeze",): "walletgate.service.freeze_commands:run_unfreeze",
    ("reconcile",): "walletgate.storage.reconcile:run_reconcile",
    ("admin-keys", "issue"): "walletgate.service.admin_key_commands:run_issue",
    ("admin-keys", "list"): "walletgate.service.admin_key_commands:run_list",
    ("admin-keys", "revoke"): "walletgate.service.admin_key_commands:run_revoke",
    ("webhooks", "list"): "walletgate.service.webhook_commands:run_list",
    ("webhooks", "retry"): "walletgate.service.webhook_commands:run_retry",
    ("webhooks", "test"): "walletgate.service.webhook_commands:run_test",
    ("approvals", "list"): "walletgate.service.approval_commands:run_list",
    ("approvals", "show"): "walletgate.service.approval_commands:run_show",
    ("approvals", "approve"): "walletgate.service.approval_commands:run_approve",
    ("approvals", "reject"): "walletgate.service.approval_commands:run_reject",
    ("approvals", "cancel"): "walletgate.service.approval_commands:run_cancel",
    ("approvals", "typed-data"): "walletgate.service.approval_commands:run_typed_data",
    ("approvals", "approver"): "walletgate.service.approval_commands:run_approver",
}


def _add_global_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--config", default=default, help="YAML settings file (or WALLETGATE_CONFIG)"
    )
    parser.add_argument(
        "--data-dir", default=default, help="directory for embedded servers (default .walletgate)"
    )
    parser.add_argument(
        "--database-url", default=default, help="PostgreSQL URL (or WALLETGATE_DATABASE_URL)"
    )
    parser.add_argument("--redis-url", default=default, help="Redis URL (or WALLETGATE_REDIS_URL)")


def _global_flags() -> argparse.ArgumentParser:
    """The global flags again, for every subcommand, so they may also come after it.

    Their default is SUPPRESS: a subcommand that was not given one leaves the value the
    top-level parser read (or its None) alone instead of overwriting it.
    """
    parent = argparse.ArgumentParser(add_help=False)
    _add_global_flags(parent, default=argparse.SUPPRESS)
    return parent


_GLOBAL_FLAGS = _global_flags()


def _command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand that also accepts the global flags."""
    return subparsers.add_parser(name, parents=[_GLOBAL_FLAGS], **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walletgate",
        description="Policy-enforcing reverse proxy between AI agents and their wallet backend.",
    )
    _add_global_flags(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = _command(sub, "serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--backend-url", help="default backend JSON-RPC URL")
    serve.add_argument("--chain-id", type=int, help="chain id the default backend must serve")
    serve.add_argument("--workers", type=int, default=1, help="gateway processes on one port")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="also start the devnet, apply examples/policies.yaml and print an agent URL",
    )
    serve.add_argument(
        "--devnet-port",
        type=int,
        default=8546,
        help="with --demo: the devnet's port (default 8546; 0 picks a free one)",
    )

    _command(sub, "migrate", help="apply pending database migrations")

    devnet = _command(sub, "devnet", help="serve a local EVM devnet (eth-tester) over JSON-RPC")
    devnet.add_argument("--host", default="127.0.0.1")
    devnet.add_argument("--port", type=int, default=8546, help="0 picks a free port")
    devnet.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once serving, write url, chain id, accounts and token here as JSON",
    )

    policies = _command(sub, "policies", help="validate, plan, apply and export policies")
    psub = policies.add_subparsers(dest="policies_command", required=True)
    for name, text in (
        ("validate", "check a policy document without touching the database"),
        ("plan", "show what apply would add, change and remove"),
        ("apply", "apply a policy document in one database transaction"),
    ):
        p = _command(psub, name, help=text)
        p.add_argument("file")
    exp = _command(psub, "export", help="write the current state as a policy document")
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")

    agents = _command(sub, "agents", help="manage agents")
    asub = agents.add_subparsers(dest="agents_command", required=True)
    token = _command(asub, "token", help="issue, revoke and list agent tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    issue = _command(tsub, "issue", help="issue a new token (printed once)")
    issue.add_argument("agent")
    issue.add_argument(
        "--url",
        help="the gateway URL agents use, for the printed agent URL "
        "(default: http://HOST:PORT of the host and port settings)",
    )
    revoke = _command(tsub, "revoke", help="revoke a token at once")
    revoke.add_argument("token_id", help="token id or prefix, as shown by 'list'")
    tlist = _command(tsub, "list", help="list tokens (never the secrets)")
    tlist.add_argument("agent", nargs="?")

    simulate = _command(sub, "simulate", help="dry-run a JSON-RPC request file: no side effects")
    simulate.add_argument("request_file", help="JSON-RPC request (object or batch), or - for stdin")
    simulate.add_argument("--agent", required=True, help="the agent id the request comes from")
    simulate.add_argument("--at", help="ISO-8601 time to judge at (default: now)")

    tx = _command(sub, "tx", help="the transaction audit log")
    txsub = tx.add_subparsers(dest="tx_command", required=True)
    tlist2 = _command(txsub, "list", help="list logged transactions")
    tlist2.add_argument("--agent")
    tlist2.add_argument("--wallet")
    tlist2.add_argument("--decision", choices=["allow", "deny", "hold", "error"])
    tlist2.add_argument("--since", help="ISO-8601 time or a duration like 1h")
    tlist2.add_argument("--until", help="ISO-8601 time")
    tlist2.add_argument("--limit", type=int, default=50)
    tlist2.add_argument("--json", action="store_true", help="one JSON object per line")
    settle = _command(
        txsub,
        "settle",
        help="settle an 'unknown' spend by hand (audited; the counters follow)",
    )
    settle.add_argument("spend_id", metavar="ID", help="the spend's id, as 'tx list' shows")
    outcome = settle.add_mutually_exclusive_group(required=True)
    outcome.add_argument(
        "--committed",
        dest="outcome",
        action="store_const",
        const="committed",
        help="it was mined: its amount stays counted",
    )
    outcome.add_argument(
        "--refunded",
        dest="outcome",
        action="store_const",
        const="refunded",
        help="it can never be mined: its amount is taken back from the counters",
    )
    settle.add_argument("--reason", required=True, help="why (kept in the audit log)")
    settle.add_argument("--tx-hash", help="with --committed: the hash it was mined as")
    settle.add_argument(
        "--pending-older-than",
        default="10m",
        metavar="DURATION",
        help="a 'pending' spend this old may be settled too (its gateway died; default 10m)",
    )

    freeze = _command(
        sub, "freeze", help="the kill switch: refuse every spend of an agent, a wallet or everyone"
    )
    _freeze_targets(freeze, listing=True)
    freeze.add_argument("--reason", help="why (required to freeze; kept in the freeze log)")
    freeze.add_argument("--lifted", action="store_true", help="with --list: lifted ones too")
    unfreeze = _command(sub, "unfreeze", help="lift a freeze")
    _freeze_targets(unfreeze, listing=False)
    unfreeze.add_argument("--reason", help="why (kept in the freeze log)")

    reconcile = _command(
        sub, "reconcile", help="settle spends whose outcome is unknown by asking the backend"
    )
    reconcile.add_argument(
        "--pending-older-than",
        default="10m",
        metavar="DURATION",
        help="also settle 'pending' rows this old (a gateway died mid-flight; default 10m)",
    )
    reconcile.add_argument(
        "--max-blocks",
        type=int,
        default=5000,
        help="blocks to search for a transaction known only by sender and nonce",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="report, change nothing")
    reconcile.add_argument("--backend-url", help="the default backend's JSON-RPC URL, as serve's")
    reconcile.add_argument(
        "--chain-id", type=int, help="chain id of the default backend, as serve's"
    )

    _admin_keys_commands(sub)

    backup = _command(
        sub, "backup", help="back up the embedded database to FILE (pg_dump custom format)"
    )
    backup.add_argument("file", metavar="FILE")
    restore = _command(
        sub,
        "restore",
        help="restore the embedded database from FILE (replaces its contents; stop gateways first)",
    )
    restore.add_argument("file", metavar="FILE")

    _webhooks_parser(sub)
    approval_args.add_parser(sub, _command)
    return parser


def _webhooks_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhooks = _command(sub, "webhooks", help="webhook deliveries: see, retry, test")
    wsub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    wlist = _command(wsub, "list", help="list deliveries, newest first")
    wlist.add_argument("--status", choices=["pending", "delivered", "failed"])
    wlist.add_argument("--owner", help="an owner id")
    wlist.add_argument("--limit", type=int, default=50)
    wlist.add_argument("--json", action="store_true", help="one JSON object per line")
    retry = _command(wsub, "retry", help="send a delivery again (due now, fresh attempts)")
    retry.add_argument("delivery_id", metavar="ID", help="the delivery's id, as 'list' shows")
    test = _command(wsub, "test", help="send a webhook.test event to every endpoint of OWNER")
    test.add_argument("owner", metavar="OWNER")


def _admin_keys_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = _command(sub, "admin-keys", help="issue, list and revoke admin API keys")
    ksub = keys.add_subparsers(dest="admin_keys_command", required=True)
    issue = _command(ksub, "issue", help="issue a key (printed once)")
    scope = issue.add_mutually_exclusive_group(required=True)
    scope.add_argument("--operator", action="store_true", help="a key that may do everything")
    scope.add_argument("--owner", metavar="ID", help="a key confined to this owner's objects")
    _command(ksub, "list", help="list keys (never the secrets)")
    revoke = _command(ksub, "revoke", help="revoke a key at once")
    revoke.add_argument("key_id", metavar="ID", help="key id or prefix, as shown by 'list'")


def _freeze_targets(parser: argparse.ArgumentParser, *, listing: bool) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", help="an agent id")
    target.add_argument("--wallet", help="a wallet id")
    target.add_argument("--all", action="store_true", help="every agent and wallet")
    if listing:
        target.add_argument("--list", action="store_true", help="show the freezes in force")


def _command_path(args: argparse.Namespace) -> tuple[str, ...]:
    path = [args.command]
    for attr in (
        "policies_command",
        "agents_command",
        "token_command",
        "tx_command",
        "admin_keys_command",
        "webhooks_command",
        "approvals_command",
    ):
        value = getattr(args, attr, None)
        if value:
            path.append(value)
    return tuple(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``walletgate`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            args.config,
            data_dir=args.data_dir,
            database_url=args.database_url,
            redis_url=args.redis_url,
        )
    except SettingsError as exc:
        print(f"walletgate: {exc}", file=sys.stderr)
        return 2
    target = _COMMANDS[_command_path(args)]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        if inspect.iscoroutinefunction(func):
            run = uvloop.run if _command_path(args) in _ON_UVLOOP else asyncio.run
            result = run(func(args, settings))
        else:
            result = func(args, settings)
    except SettingsError as exc:
        print(f"walletgate: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"walletgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
