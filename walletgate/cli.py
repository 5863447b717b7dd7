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

from walletgate.config.settings import SettingsError, load_settings
from walletgate.errors import UserError

# command path -> "module:function"
_COMMANDS: dict[tuple[str, ...], str] = {
    ("serve",): "walletgate.proxy.server:run_serve",
    ("migrate",): "walletgate.storage.migrations:run_migrate",
    ("devnet",): "walletgate.devnet:run_devnet",
    ("policies", "validate"): "walletgate.config.policy_commands:run_validate",
    ("policies", "plan"): "walletgate.config.policy_commands:run_plan",
    ("policies", "apply"): "walletgate.config.policy_commands:run_apply",
    ("policies", "export"): "walletgate.config.policy_commands:run_export",
    ("agents", "token", "issue"): "walletgate.storage.token_commands:run_issue",
    ("agents", "token", "revoke"): "walletgate.storage.token_commands:run_revoke",
    ("agents", "token", "list"): "walletgate.storage.token_commands:run_list",
    ("simulate",): "walletgate.proxy.simulate:run_simulate",
    ("tx", "list"): "walletgate.storage.audit_commands:run_tx_list",
    ("freeze",): "walletgate.storage.freeze_commands:run_freeze",
    ("unfreeze",): "walletgate.storage.freeze_commands:run_unfreeze",
    ("reconcile",): "walletgate.storage.reconcile:run_reconcile",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walletgate",
        description="Policy-enforcing reverse proxy between AI agents and their wallet backend.",
    )
    parser.add_argument("--config", help="YAML settings file (or WALLETGATE_CONFIG)")
    parser.add_argument("--data-dir", help="directory for embedded servers (default .walletgate)")
    parser.add_argument("--database-url", help="PostgreSQL URL (or WALLETGATE_DATABASE_URL)")
    parser.add_argument("--redis-url", help="Redis URL (or WALLETGATE_REDIS_URL)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
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

    sub.add_parser("migrate", help="apply pending database migrations")

    devnet = sub.add_parser("devnet", help="serve a local EVM devnet (eth-tester) over JSON-RPC")
    devnet.add_argument("--host", default="127.0.0.1")
    devnet.add_argument("--port", type=int, default=8546, help="0 picks a free port")
    devnet.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once serving, write url, chain id, accounts and token here as JSON",
    )

    policies = sub.add_parser("policies", help="validate, plan, apply and export policies")
    psub = policies.add_subparsers(dest="policies_command", required=True)
    for name, text in (
        ("validate", "check a policy document without touching the database"),
        ("plan", "show what apply would add, change and remove"),
        ("apply", "apply a policy document in one database transaction"),
    ):
        p = psub.add_parser(name, help=text)
        p.add_argument("file")
    exp = psub.add_parser("export", help="write the current state as a policy document")
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")

    agents = sub.add_parser("agents", help="manage agents")
    asub = agents.add_subparsers(dest="agents_command", required=True)
    token = asub.add_parser("token", help="issue, revoke and list agent tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    issue = tsub.add_parser("issue", help="issue a new token (printed once)")
    issue.add_argument("agent")
    revoke = tsub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token_id", help="token id or prefix, as shown by 'list'")
    tlist = tsub.add_parser("list", help="list tokens (never the secrets)")
    tlist.add_argument("agent", nargs="?")

    simulate = sub.add_parser("simulate", help="dry-run a JSON-RPC request file: no side effects")
    simulate.add_argument("request_file", help="JSON-RPC request (object or batch), or - for stdin")
    simulate.add_argument("--agent", required=True, help="the agent id the request comes from")
    simulate.add_argument("--at", help="ISO-8601 time to judge at (default: now)")

    tx = sub.add_parser("tx", help="the transaction audit log")
    txsub = tx.add_subparsers(dest="tx_command", required=True)
    tlist2 = txsub.add_parser("list", help="list logged transactions")
    tlist2.add_argument("--agent")
    tlist2.add_argument("--wallet")
    tlist2.add_argument("--decision", choices=["allow", "deny", "hold", "error"])
    tlist2.add_argument("--since", help="ISO-8601 time or a duration like 1h")
    tlist2.add_argument("--until", help="ISO-8601 time")
    tlist2.add_argument("--limit", type=int, default=50)
    tlist2.add_argument("--json", action="store_true", help="one JSON object per line")

    freeze = sub.add_parser(
        "freeze", help="the kill switch: refuse every spend of an agent, a wallet or everyone"
    )
    _freeze_targets(freeze, listing=True)
    freeze.add_argument("--reason", help="why (required to freeze; kept in the freeze log)")
    freeze.add_argument("--lifted", action="store_true", help="with --list: lifted ones too")
    unfreeze = sub.add_parser("unfreeze", help="lift a freeze")
    _freeze_targets(unfreeze, listing=False)
    unfreeze.add_argument("--reason", help="why (kept in the freeze log)")

    reconcile = sub.add_parser(
        "reconcile", help="settle spends whose outcome is unknown by asking the backend"
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

    return parser


def _freeze_targets(parser: argparse.ArgumentParser, *, listing: bool) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", help="an agent id")
    target.add_argument("--wallet", help="a wallet id")
    target.add_argument("--all", action="store_true", help="every agent and wallet")
    if listing:
        target.add_argument("--list", action="store_true", help="show the freezes in force")


def _command_path(args: argparse.Namespace) -> tuple[str, ...]:
    path = [args.command]
    for attr in ("policies_command", "agents_command", "token_command", "tx_command"):
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
            result = asyncio.run(func(args, settings))
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
