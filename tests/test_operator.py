"""Operator commands against real gateways: settling an unknown spend by hand, reconcile
as a cron job runs it, global flags after the subcommand, and the token's printed URL.

The gateways sit behind a backend that drops or cuts ``eth_sendTransaction`` calls
without a nonce (what web3.py sends): reconcile cannot tell what became of those, so
the operator settles them with ``walletgate tx settle``, and the counters follow.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, StallingBackend
from tests.support.gateway import walletgate_cli
from tests.support.spender_fleet import (
    WALLET,
    document,
    fresh_recipient,
    stalling_fleet_fixtures,
    transfer,
)
from walletgate.cli import _parser

stalling, fleet, forwarding = stalling_fleet_fixtures()

CAP = 10**15
SPEND = 6 * 10**14  # two do not fit under CAP, fees or not


def spend(recipient: str) -> list[Any]:
    return transfer(recipient, SPEND)


async def cli(fleet: Fleet, *args: str, **env: str) -> Any:
    """``walletgate ARGS`` with the fleet's settings, ``env`` over them ("" unsets one)."""
    return await asyncio.to_thread(walletgate_cli, list(args), {**fleet.env, **env}, check=False)


async def unknown_spend(
    fleet: Fleet, stalling: StallingBackend, mode: str, rule: str, nonce: int | None = None
) -> str:
    """A spend left ``unknown`` (``mode`` "drop": never sent; "cut": mined, answer lost),
    with an explicit ``nonce`` if given; returns its id. A second one of the same size is
    refused by the cap meanwhile."""
    params = spend(fresh_recipient())
    if nonce is not None:
        params[0]["nonce"] = hex(nonce)
    stalling.mode = mode
    reply = await fleet.rpc(0, "eth_sendTransaction", params)
    assert reply["error"]["data"]["reason"] == "backend_unknown"
    stalling.mode = "forward"
    ((row,),) = await fleet.rows(
        "SELECT id FROM transactions WHERE status = 'unknown' AND claims @> $1::jsonb",
        json.dumps([{"rule": rule}]),
    )
    over = await fleet.rpc(1, "eth_sendTransaction", spend(fresh_recipient()))
    assert over["error"]["data"]["reason"] == "cumulative_cap_exceeded"
    return str(row)


async def row(fleet: Fleet, spend_id: str) -> Any:
    (found,) = await fleet.rows(
        "SELECT status, backend_error FROM transactions WHERE id = $1::uuid", spend_id
    )
    status, note = found["status"], found["backend_error"]
    return status, json.loads(note) if isinstance(note, str) else note


async def test_an_unknown_spend_refunded_by_hand_frees_its_amount(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "by-hand-refund", CAP))
    spend_id = await unknown_spend(fleet, stalling, "drop", "by-hand-refund")
    out = await cli(fleet, "reconcile")
    assert "no transaction hash and no nonce" in out.stdout  # reconcile cannot tell
    settled = await cli(fleet, "tx", "settle", spend_id, "--refunded", "--reason", "not in history")
    assert settled.returncode == 0, settled.stderr
    assert f"Settled spend {spend_id} (unknown) as refunded by fleet-tests" in settled.stdout
    status, note = await row(fleet, spend_id)
    assert status == "refunded"
    assert note["settled_by_hand"]["by"] == "fleet-tests"
    assert note["settled_by_hand"]["reason"] == "not in history"
    recipient = fresh_recipient()
    assert "result" in await fleet.rpc(1, "eth_sendTransaction", spend(recipient))
    assert await devnet.balance(recipient) == SPEND
    again = await cli(fleet, "tx", "settle", spend_id, "--committed", "--reason", "oops")
    assert again.returncode == 1
    assert "is 'refunded': only an 'unknown' spend" in again.stderr


async def test_an_unknown_spend_committed_by_hand_stays_counted(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend
) -> None:
    fleet.apply(document(devnet.chain_id, "by-hand-commit", CAP))
    spend_id = await unknown_spend(fleet, stalling, "cut", "by-hand-commit")
    settled = await cli(fleet, "tx", "settle", spend_id, "--committed", "--reason", "mined")
    assert settled.returncode == 0, settled.stderr
    assert (await row(fleet, spend_id))[0] == "committed"
    over = await fleet.rpc(1, "eth_sendTransaction", spend(fresh_recipient()))
    assert over["error"]["data"]["reason"] == "cumulative_cap_exceeded"


async def test_settle_refuses_what_it_cannot_settle(fleet: Fleet) -> None:
    missing = await cli(fleet, "tx", "settle", "not-a-uuid", "--refunded", "--reason", "x")
    assert missing.returncode == 1 and "is not a spend id" in missing.stderr
    no_reason = await cli(
        fleet, "tx", "settle", "0" * 8 + "-0000-0000-0000-" + "0" * 12, "--refunded"
    )
    assert no_reason.returncode == 2  # argparse: --reason is required
    bad_hash = await cli(
        fleet, "tx", "settle", "x", "--committed", "--reason", "r", "--tx-hash", "0x12"
    )
    assert bad_hash.returncode == 2 and "expected 0x and 64 hex digits" in bad_hash.stderr


async def test_reconcile_from_cron_fails_loudly_without_its_backend(
    fleet: Fleet, devnet: Devnet, stalling: StallingBackend, tmp_path: Path
) -> None:
    fleet.apply(document(devnet.chain_id, "cron", CAP))
    # With a nonce, so reconcile must ask the backend about it (the sender's nonce).
    nonce = int(await devnet.rpc("eth_getTransactionCount", [WALLET, "pending"]), 16)
    spend_id = await unknown_spend(fleet, stalling, "drop", "cron", nonce)
    no_backend = {"WALLETGATE_BACKEND_URL": "", "WALLETGATE_CHAIN_ID": ""}
    missing = await cli(fleet, "reconcile", **no_backend)
    assert missing.returncode == 3
    assert "backends not configured here: default" in missing.stdout.splitlines()[-1]
    flags = ("--backend-url", stalling.url, "--chain-id", str(devnet.chain_id))
    given = await cli(fleet, "reconcile", *flags, **no_backend)
    assert given.returncode == 0, given.stdout + given.stderr
    assert given.stdout.splitlines()[-1].startswith("reconcile: 1 to reconcile:")
    config = tmp_path / "walletgate.yaml"
    config.write_text(f"backend_url: {stalling.url}\nchain_id: {devnet.chain_id}\n")
    from_config = await cli(fleet, "reconcile", "--config", str(config), **no_backend)
    assert from_config.returncode == 0, from_config.stdout + from_config.stderr
    dead = ("--backend-url", "http://127.0.0.1:9", "--chain-id", str(devnet.chain_id))
    unreachable = await cli(fleet, "reconcile", *dead, **no_backend)
    assert unreachable.returncode == 3
    assert "backends unreachable: default" in unreachable.stdout
    done = await cli(fleet, "tx", "settle", spend_id, "--refunded", "--reason", "cleanup")
    assert done.returncode == 0, done.stderr


async def test_global_flags_work_after_the_subcommand(fleet: Fleet) -> None:
    no_urls = {"WALLETGATE_DATABASE_URL": "", "WALLETGATE_REDIS_URL": ""}
    urls = ("--database-url", fleet.database_url, "--redis-url", fleet.env["WALLETGATE_REDIS_URL"])
    listed = await cli(fleet, "agents", "token", "list", *urls, **no_urls)
    assert listed.returncode == 0, listed.stderr
    assert "spender" in listed.stdout
    before = await cli(
        fleet,
        "--database-url",
        fleet.database_url,
        "tx",
        "list",
        "--redis-url",
        fleet.env["WALLETGATE_REDIS_URL"],
        **no_urls,
    )
    assert before.returncode == 0, before.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--database-url", "pg://x", "--port", "9"],
        ["--database-url", "pg://x", "serve"],
        ["policies", "apply", "--database-url", "pg://x", "f.yaml"],
        ["agents", "token", "issue", "a", "--database-url", "pg://x"],
        ["--database-url", "pg://other", "reconcile", "--database-url", "pg://x"],
    ],
)
def test_global_flags_parse_anywhere(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    assert args.database_url == "pg://x"
    assert args.config is None and args.data_dir is None and args.redis_url is None


async def test_the_issued_token_url_names_the_configured_gateway(fleet: Fleet) -> None:
    given = await cli(fleet, "agents", "token", "issue", "spender", "--url", "https://gw.example/")
    assert "    https://gw.example/t/wg_" in given.stdout
    configured = await cli(fleet, "agents", "token", "issue", "spender", WALLETGATE_PORT="9123")
    assert "    http://127.0.0.1:9123/t/wg_" in configured.stdout
