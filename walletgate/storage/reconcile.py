"""``walletgate reconcile``: settle spends whose outcome walletgate never learnt.

A spend is ``unknown`` when the backend did not answer (timeout, reset); it may have
been broadcast, so its reservation keeps counting. A spend still ``pending`` long after
it was sent belongs to a gateway that died mid-flight. For each such row this command
asks the row's backend what became of it, then settles it exactly once, as the gateway
would have: **commit** (mined: the amount stays counted, the row says ``committed``)
or **refund** (it can never be mined: the counters get the amount back through the
reservation records, the row says ``refunded``), or leaves it as it is and says why.

Refunding needs proof that the transaction can never be mined; a signed transaction
can be broadcast by anyone who holds it, so "the backend does not know it" is not
proof. What is: another transaction of the same sender mined with the same nonce.

- known hash (raw transactions, or a hash the backend returned): a receipt means
  mined; else in the mempool means wait; else a used nonce means refund;
- ``eth_sendTransaction`` with an explicit nonce: once the sender's nonce has moved
  past it, the mined transaction with that nonce is searched for in recent blocks:
  the same transaction means commit, a different one means refund;
- anything else (no hash and no nonce, ``eth_signTransaction``, ``wallet_sendCalls``)
  stays unknown: walletgate cannot tell, and says so.

:func:`judge` is the pure decision; :func:`observe` asks the backend.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from walletgate.config.durations import parse_duration
from walletgate.config.settings import Backend, Settings, SettingsError
from walletgate.intents import DecodeError
from walletgate.proxy.backend import BackendClient, BackendError, new_session
from walletgate.proxy.evm.decode import decode_call
from walletgate.service.settlement import Outcome, settle_spend
from walletgate.storage.counters import Counters, CountersUnavailable, claims_from_json
from walletgate.storage.rebuild import PostgresClaimHistory, claims_from_row
from walletgate.storage.runtime import open_stores

#: Exit status when a row needs a backend that is not configured here or did not answer.
EXIT_BACKEND_MISSING = 3


class Action(StrEnum):
    COMMIT = "commit"
    REFUND = "refund"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row to reconcile, with what its request says about the transaction."""

    id: UUID
    created_at: datetime
    status: str
    method: str
    backend: str
    wallet: str | None
    nonce: int | None
    tx_hash: str | None
    request_tx: Mapping[str, Any] | None  # the transaction object of eth_sendTransaction
    claims: Sequence[Any]


@dataclass(frozen=True, slots=True)
class ChainView:
    """What the backend said about a candidate (``None``: not asked or not known)."""

    receipt: Mapping[str, Any] | None = None
    in_mempool: bool = False
    account_nonce: int | None = None  # the sender's next nonce at the latest block
    same_nonce_tx: Mapping[str, Any] | None = None  # the mined transaction with its nonce
    searched_blocks: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    why: str
    tx_hash: str | None = None


def _quantity(value: Any) -> int:
    return int(str(value), 16) if isinstance(value, str) else int(value or 0)


def same_transaction(request_tx: Mapping[str, Any], mined: Mapping[str, Any]) -> bool:
    """True when a mined transaction is the one the request asked for (to, value, data)."""
    to = request_tx.get("to")
    data = request_tx.get("data", request_tx.get("input")) or "0x"
    return (
        (str(to).lower() if to else None) == (str(mined["to"]).lower() if mined.get("to") else None)
        and _quantity(request_tx.get("value")) == _quantity(mined.get("value"))
        and str(data).lower() == str(mined.get("input") or "0x").lower()
    )


def nonce_used(candidate: Candidate, account_nonce: int | None) -> bool:
    """True when the sender's nonce has moved past the candidate's: a transaction with
    that nonce was mined, and no other one with it ever can be."""
    nonce = candidate.nonce
    return nonce is not None and account_nonce is not None and account_nonce > nonce


def judge(candidate: Candidate, chain: ChainView) -> Verdict:
    """Commit, refund or keep ``candidate``, given what the backend said (pure)."""
    nonce = candidate.nonce
    used = nonce_used(candidate, chain.account_nonce)
    if candidate.tx_hash is not None:
        if chain.receipt is not None:
            block = _quantity(chain.receipt.get("blockNumber"))
            return Verdict(Action.COMMIT, f"mined in block {block}", candidate.tx_hash)
        if chain.in_mempool:
            return Verdict(Action.KEEP, "waiting in the backend's mempool")
        if used:
            return Verdict(
                Action.REFUND, f"never mined, and nonce {nonce} was used by another transaction"
            )
        return Verdict(
            Action.KEEP,
            "unknown to the backend, but its nonce is still open: the signed transaction "
            "could still be broadcast",
        )
    if candidate.method != "eth_sendTransaction" or candidate.request_tx is None:
        return Verdict(Action.KEEP, f"{candidate.method} left no transaction hash to look for")
    if nonce is None:
        return Verdict(
            Action.KEEP,
            "no transaction hash and no nonce in the request: walletgate cannot tell whether "
            "the backend sent it; check the wallet's history",
        )
    if not used:
        return Verdict(Action.KEEP, f"nonce {nonce} of {candidate.wallet} is still open")
    if chain.same_nonce_tx is None:
        return Verdict(
            Action.KEEP,
            f"nonce {nonce} was used, but not by any transaction in the last "
            f"{chain.searched_blocks} blocks",
        )
    mined_hash = str(chain.same_nonce_tx["hash"]).lower()
    if same_transaction(candidate.request_tx, chain.same_nonce_tx):
        return Verdict(Action.COMMIT, f"mined as {mined_hash}", mined_hash)
    return Verdict(Action.REFUND, f"nonce {nonce} was used by another transaction ({mined_hash})")


def candidate_of(row: Mapping[str, Any]) -> Candidate | str:
    """The candidate of an audit row, or why its request cannot be read."""
    request = row["request"]
    request = json.loads(request) if isinstance(request, str) else request
    params = request.get("params") if isinstance(request, dict) else None
    try:
        decoded = decode_call(row["method"], params, chain_id=row["chain_id"])
    except DecodeError as exc:
        return f"its request cannot be decoded ({exc})"
    request_tx = None
    if row["method"] == "eth_sendTransaction" and isinstance(params, list) and params:
        request_tx = params[0] if isinstance(params[0], dict) else None
    return Candidate(
        id=row["id"],
        created_at=row["created_at"],
        status=row["status"],
        method=row["method"],
        backend=row["backend"],
        wallet=decoded.wallet,
        nonce=decoded.nonce,
        tx_hash=row["tx_hash"] or decoded.tx_hash,
        request_tx=request_tx,
        claims=claims_from_row(row["claims"]),
    )


async def _find_by_nonce(
    backend: BackendClient, wallet: str, nonce: int, since: datetime, max_blocks: int
) -> tuple[Mapping[str, Any] | None, int]:
    """The mined transaction of ``wallet`` with ``nonce``, searching back from the latest
    block to ``since`` (at most ``max_blocks``); and how many blocks were searched."""
    latest = _quantity(await backend.call("eth_blockNumber", []))
    searched = 0
    for number in range(latest, max(-1, latest - max_blocks), -1):
        block = await backend.call("eth_getBlockByNumber", [hex(number), True])
        searched += 1
        if not isinstance(block, dict):
            break
        for tx in block.get("transactions") or []:
            if (
                isinstance(tx, dict)
                and str(tx.get("from", "")).lower() == wallet
                and _quantity(tx.get("nonce")) == nonce
            ):
                return tx, searched
        if _quantity(block.get("timestamp")) < since.timestamp():
            break
    return None, searched


async def observe(candidate: Candidate, backend: BackendClient, max_blocks: int) -> ChainView:
    """Ask the backend what it knows about ``candidate``'s transaction."""
    account_nonce = None
    if candidate.wallet is not None and candidate.nonce is not None:
        count = await backend.call("eth_getTransactionCount", [candidate.wallet, "latest"])
        account_nonce = _quantity(count)
    if candidate.tx_hash is not None:
        receipt = await backend.call("eth_getTransactionReceipt", [candidate.tx_hash])
        if isinstance(receipt, dict):
            return ChainView(receipt=receipt, account_nonce=account_nonce)
        pending = await backend.call("eth_getTransactionByHash", [candidate.tx_hash])
        return ChainView(in_mempool=isinstance(pending, dict), account_nonce=account_nonce)
    if (
        candidate.wallet is not None
        and candidate.nonce is not None
        and nonce_used(candidate, account_nonce)
    ):
        # Search back to a little before the request: clocks of the gateway and the
        # chain need not agree.
        since = candidate.created_at - timedelta(minutes=10)
        found, searched = await _find_by_nonce(
            backend, candidate.wallet, candidate.nonce, since, max_blocks
        )
        return ChainView(account_nonce=account_nonce, same_nonce_tx=found, searched_blocks=searched)
    return ChainView(account_nonce=account_nonce)


_CANDIDATES = """
SELECT id, created_at, status, method, backend, chain_id, request, tx_hash, claims
  FROM transactions
 WHERE status = 'unknown' OR (status = 'pending' AND created_at < now() - $1::interval)
 ORDER BY created_at, id
"""


async def settle(
    pool: asyncpg.Pool, counters: Counters, candidate: Candidate, verdict: Verdict
) -> None:
    """Apply ``verdict`` through the one settlement path (``walletgate.service.settlement``):
    counters first, then the row, so an interrupted run leaves the row for the next one."""
    outcome = Outcome.COMMITTED if verdict.action is Action.COMMIT else Outcome.REFUNDED
    await settle_spend(
        pool,
        counters,
        candidate.id,
        claims_from_json(candidate.claims),
        outcome,
        {"reconciled": verdict.why},
        tx_hash=verdict.tx_hash,
    )


async def run_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: settle unknown (and stale pending) spends; print one line each and a
    summary line. Exits 3 when a row's backend is not configured here or could not be
    reached (a cron job must notice that nothing was settled), else 0."""
    try:
        stale = timedelta(seconds=parse_duration(args.pending_older_than))
    except ValueError as exc:
        raise SettingsError(f"--pending-older-than: {exc}") from None
    if args.max_blocks < 1:
        raise SettingsError("--max-blocks must be at least 1")
    settings = replace(
        settings,
        backend_url=getattr(args, "backend_url", None) or settings.backend_url,
        chain_id=getattr(args, "chain_id", None) or settings.chain_id,
    )
    tally = dict.fromkeys(Action, 0)
    async with open_stores(settings) as stores, new_session(settings) as session:
        reconciler = _Reconciler(
            {backend.name: backend for backend in settings.all_backends()},
            session,
            Counters(stores.redis, PostgresClaimHistory(stores.pool)),
            stores.pool,
            args.max_blocks,
            args.dry_run,
        )
        rows = await stores.pool.fetch(_CANDIDATES, stale)
        for row in rows:
            verdict = await reconciler.reconcile(row)
            tally[verdict.action] += 1
            print(f"{row['id']} {row['method']} ({row['status']}): {verdict.action}: {verdict.why}")
    print(_summary(len(rows), tally, reconciler, dry_run=args.dry_run), flush=True)
    return EXIT_BACKEND_MISSING if reconciler.missing or reconciler.unreachable else 0


def _summary(
    count: int, tally: Mapping[Action, int], reconciler: _Reconciler, *, dry_run: bool
) -> str:
    """The one line a cron job's log keeps: what was settled, and what could not be."""
    prefix = "would " if dry_run else ""
    parts = [
        f"reconcile: {count} to reconcile: {prefix}commit {tally[Action.COMMIT]}, "
        f"{prefix}refund {tally[Action.REFUND]}, {tally[Action.KEEP]} left as they are"
    ]
    if reconciler.missing:
        parts.append(f"backends not configured here: {', '.join(sorted(reconciler.missing))}")
    if reconciler.unreachable:
        parts.append(f"backends unreachable: {', '.join(sorted(reconciler.unreachable))}")
    return "; ".join(parts)


@dataclass(frozen=True)
class _Reconciler:
    backends: Mapping[str, Backend]
    session: aiohttp.ClientSession
    counters: Counters
    pool: asyncpg.Pool
    max_blocks: int
    dry_run: bool
    # Backends a row needed that are not configured here, or did not answer.
    missing: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)

    async def reconcile(self, row: asyncpg.Record) -> Verdict:
        """Judge one row and, unless this is a dry run, settle it."""
        candidate = candidate_of(row)
        if isinstance(candidate, str):
            return Verdict(Action.KEEP, candidate)
        config = self.backends.get(candidate.backend)
        if config is None:
            self.missing.add(candidate.backend)
            return Verdict(
                Action.KEEP,
                f"backend {candidate.backend!r} is not configured here (give --backend-url and "
                "--chain-id, or configure it as serve has it)",
            )
        try:
            chain = await observe(candidate, BackendClient(config, self.session), self.max_blocks)
        except BackendError as exc:
            self.unreachable.add(candidate.backend)
            return Verdict(Action.KEEP, f"the backend could not tell: {exc}")
        verdict = judge(candidate, chain)
        if verdict.action is Action.KEEP or self.dry_run:
            return verdict
        try:
            await settle(self.pool, self.counters, candidate, verdict)
        except CountersUnavailable as exc:
            return Verdict(Action.KEEP, f"{verdict.why}, but the counters are unavailable: {exc}")
        except ValueError as exc:  # claims in the row that cannot be read back
            return Verdict(Action.KEEP, f"{verdict.why}, but its claims are unreadable: {exc}")
        return verdict
