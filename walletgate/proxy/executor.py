"""The approvals worker inside every gateway process: holds that move by themselves.

Each round, in PostgreSQL, with ``FOR UPDATE SKIP LOCKED`` so that several gateway
processes share the work and no item is taken twice:

1. **release**: delayed spends whose ``release_at`` has come are approved (actor
   ``scheduler``), unless cancelled first;
2. **expire**: holds still pending at ``expires_at`` expire (whether anyone looks or
   not), and every hold that ended unforwarded gets its reservation back, once;
3. **strand**: an approval a gateway claimed and never finished (it died between
   forwarding and recording) becomes ``unknown``, its transaction row ``unknown``:
   reconcile or ``tx settle`` settles it;
4. **execute**: an approved hold is claimed (``approved`` -> ``executing`` in one
   transaction, before anything is sent), then its stored request is forwarded and
   settled exactly like an allowed spend (:func:`walletgate.proxy.settle.forward_and_settle`).

State lives only in PostgreSQL: a restart loses nothing, and a delay released while
every gateway was down runs on the first round after one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from walletgate.intents import DecodedRequest, DecodeError
from walletgate.proxy.backend import BackendClient
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import MissingFeeFields
from walletgate.proxy.evm.methods import classify
from walletgate.proxy.gateway import Gateway
from walletgate.proxy.settle import forward_and_settle
from walletgate.storage.approvals import due, give_back, lock, move
from walletgate.storage.audit import AuditOutcome
from walletgate.storage.cache import StateCache
from walletgate.storage.counters import CountersUnavailable, claims_from_json, reservation_of
from walletgate.storage.rebuild import claims_from_row
from walletgate.storage.redis_guard import CacheUnavailable

_log = logging.getLogger(__name__)

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
#: The settled audit status of a forwarded approval -> the approval's final status.
_FINAL = {"committed": "executed", "refunded": "failed", "unknown": "unknown"}
_BATCH = 20


class ApprovalWorker:
    """Releases, expires, refunds and executes holds; one per gateway process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        gateway: Gateway,
        backends: Mapping[str, BackendClient],
        state: StateCache,
        *,
        interval: float = 0.5,
        lease_seconds: float = 300.0,
    ) -> None:
        self._pool = pool
        self._gw = gateway
        self._backends = backends
        self._state = state
        self._interval = interval
        # Longer than any forward can take: only a dead gateway leaves a claim this old.
        self._lease = lease_seconds
        self._actor = f"gateway:{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start the background rounds."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="approvals-worker")

    async def close(self) -> None:
        """Stop after the current item (an item being forwarded is finished first)."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except (*_DB_ERRORS, CountersUnavailable, CacheUnavailable) as exc:
                _log.warning("approvals round failed: %s", exc)
            except Exception:  # a bug must not stop every later hold from moving
                _log.exception("approvals round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def run_once(self) -> None:
        """One round: release, expire, refund, strand, execute."""
        await self._sweep(
            "a.status = 'pending' AND a.kind = 'delay' AND a.release_at <= now()"
            " AND a.expires_at > now()",
            "approved",
            "scheduler",
            "the delay passed",
        )
        await self._sweep(
            "a.status = 'pending' AND a.expires_at <= now()",
            "expired",
            "walletgate",
            "nobody approved it in time",
        )
        await self._refund_released()
        await self._sweep(
            "a.status = 'executing' AND a.claimed_at < now() - make_interval(secs => $1)",
            "unknown",
            "walletgate",
            "the gateway forwarding it stopped before recording the outcome",
            self._lease,
        )
        while not self._stopping.is_set():
            claimed = await self._claim()
            if claimed is None:
                return
            await self._execute(claimed)

    async def _sweep(self, where: str, to: str, actor: str, reason: str, *args: Any) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await due(conn, where, _BATCH, *args):
                await move(conn, row, to, actor=actor, reason=reason)

    async def _refund_released(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            where = "a.status IN ('rejected', 'expired', 'cancelled') AND a.refunded_at IS NULL"
            for row in await due(conn, where, _BATCH):
                await give_back(conn, self._gw.counters, row)

    async def _claim(self) -> dict[str, Any] | None:
        """One approved hold of a backend this process has, moved to ``executing``."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await due(
                conn,
                "a.status = 'approved' AND t.backend = ANY($1::text[])",
                1,
                list(self._backends),
            )
            if not rows:
                return None
            row = rows[0]
            # The kill switch wins over an approval: a frozen agent or wallet sends nothing.
            snapshot = await self._state.snapshot()
            freeze = snapshot.policies.freeze_for(row["agent_id"], row["wallet_id"])
            if freeze is not None:
                why = f"frozen: {freeze.describe()} ({freeze.reason})"
                await move(conn, row, "cancelled", actor="walletgate", reason=why)
                return None
            await move(conn, row, "executing", actor=self._actor, reason="forwarding")
            return row

    async def _execute(self, row: Mapping[str, Any]) -> None:
        backend = self._backends[row["backend"]]
        request = row["request"]
        started = time.perf_counter()
        claims = claims_from_json(claims_from_row(row["claims"]))
        try:
            decoded = _decoded(request, backend.backend.chain_id)
        except DecodeError as exc:
            # Judged when it was held, so this is a bug or a tampered row: not sent.
            await self._not_sent(row, claims, f"the stored request cannot be decoded: {exc}")
            return
        settled = await forward_and_settle(
            self._gw,
            backend,
            tx_id=row["transaction_id"],
            request_json=request,
            decoded=decoded,
            reserved=reservation_of(str(row["transaction_id"]), claims),
            started=started,
        )
        final = _FINAL[settled.status]
        body = settled.reply.body
        result = body.get("result") if isinstance(body, dict) else None
        async with self._pool.acquire() as conn, conn.transaction():
            current = await lock(conn, row["id"])
            if current is not None and current["status"] in ("executing", "unknown"):
                await move(
                    conn,
                    current,
                    final,
                    actor=self._actor,
                    reason=f"the backend's answer: {settled.status}",
                    detail={"tx_hash": settled.tx_hash},
                    result=result,
                )

    async def _not_sent(self, row: Mapping[str, Any], claims: Any, why: str) -> None:
        await self._gw.counters.refund(reservation_of(str(row["transaction_id"]), claims))
        self._gw.audit.update(
            AuditOutcome(
                row["transaction_id"],
                "refunded",
                self._gw.clock(),
                backend_error={"message": f"not forwarded: {why}"},
            )
        )
        async with self._pool.acquire() as conn, conn.transaction():
            current = await lock(conn, row["id"])
            if current is not None and current["status"] == "executing":
                await move(conn, current, "failed", actor=self._actor, reason=why)


def _decoded(request: Mapping[str, Any], chain_id: int) -> DecodedRequest:
    """The stored (filled, judged) request decoded again for settling: its wallet,
    method class and signed hash."""
    method, params = str(request.get("method")), request.get("params")
    try:
        return decode_call(method, params, chain_id=chain_id)
    except MissingFeeFields as missing:
        # wallet_sendCalls: its fees were quoted, not written in the request.
        return DecodedRequest(method, classify(method), missing.wallet, chain_id, ())
