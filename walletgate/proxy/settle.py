"""Forward an allowed (or approved) spend and settle its reservation: one code path.

The request pipeline (:mod:`walletgate.proxy.pipeline`) forwards a spend it has just
reserved and logged; the approvals executor (:mod:`walletgate.proxy.holds`) forwards
a held spend its owner approved (or whose delay passed), reserved when it was held.
Both settle the same way: committed (the amount stays counted, the wallet's cached
balances dropped), refunded (the backend definitely refused it) or unknown (it may
have been broadcast: the reservation keeps counting until reconciled).

The request pipeline drops the wallet's cached balances in its admission's round trip,
before forwarding (``balances_dropped``): its commit then rides the next pipeline
(``Counters.commit_soon``) with a second drop of the cache, for a read that raced the
spend. A refund is always made at once: the amount must come back exactly once, and
before the agent can try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from walletgate.intents import DecodedRequest, MethodClass
from walletgate.proxy import errors
from walletgate.proxy.answers import with_id
from walletgate.proxy.backend import BackendClient, BackendReply
from walletgate.proxy.backend import Outcome as ForwardOutcome
from walletgate.storage.audit import AuditOutcome
from walletgate.storage.balance_cache import drop_balances
from walletgate.storage.cache_keys import BALANCE_DROPS_CHANNEL, balance_key
from walletgate.storage.counters import CountersUnavailable, Reservation
from walletgate.storage.redis_client import REDIS_ERRORS
from walletgate.storage.redis_guard import CacheUnavailable

if TYPE_CHECKING:
    from walletgate.proxy.gateway import Gateway

_log = logging.getLogger(__name__)
_DROP_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, CacheUnavailable, CountersUnavailable)

Response = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Settled:
    """How a forwarded spend ended: its audit status, the backend's reply, and the
    JSON-RPC response for the agent."""

    status: str  # committed | refunded | unknown
    reply: BackendReply
    response: Response
    tx_hash: str | None = None


async def forward(gw: Gateway, backend: BackendClient, payload: Any) -> BackendReply:
    """POST ``payload`` to ``backend``, with the latency and error metrics."""
    started = time.perf_counter()
    reply = await backend.post(payload)
    gw.metrics.backend_latency.observe(time.perf_counter() - started)
    if reply.outcome is ForwardOutcome.UNKNOWN:
        gw.metrics.backend_errors.labels(backend=backend.backend.name, kind="unknown").inc()
    elif reply.outcome is ForwardOutcome.REJECTED:
        gw.metrics.backend_errors.labels(backend=backend.backend.name, kind="rpc_error").inc()
    return reply


async def settle_quietly(
    gw: Gateway, reserved: Reservation, *, refund: bool, also_delete: str | None = None
) -> None:
    """Commit or refund ``reserved``; a Redis failure is logged, not raised."""
    try:
        if refund:
            await gw.counters.refund(reserved)
        else:
            await gw.counters.commit(reserved, also_delete=also_delete)
    except CountersUnavailable as exc:
        # A refund that did not happen over-counts (the safe side) until the window
        # passes; a commit that did not happen leaves a record that expires.
        _log.warning("could not settle reservation %s: %s", reserved.id, exc)


async def commit_soon(gw: Gateway, reserved: Reservation, *, also_delete: str | None) -> None:
    """Commit ``reserved`` in the next pipeline (``Counters.commit_soon``); a Redis
    failure is logged, not raised (the records expire by themselves)."""
    try:
        await gw.counters.commit_soon(reserved, also_delete=also_delete)
    except CountersUnavailable as exc:
        _log.warning("could not commit reservation %s: %s", reserved.id, exc)


def drop_balances_soon(gw: Gateway, key: str) -> asyncio.Future[Any]:
    """Drop a wallet's cached balances (``key``) before a spend from it is forwarded:
    this process's in-memory copies at once; the Redis entry, and, by announcing the
    drop, every other gateway's copies, in this event-loop turn's pipeline (the spend's
    reservation shares its round trip). Await the result for Redis's answer."""
    if gw.near is not None:
        gw.near.drop(key)
    return asyncio.gather(
        gw.counters.submit("DEL", key),
        gw.counters.submit("PUBLISH", BALANCE_DROPS_CHANNEL, key),
    )


def _tx_hash_of(decoded: DecodedRequest, result: Any) -> str | None:
    if (
        isinstance(result, str)
        and len(result) == 66
        and decoded.method != "wallet_sendCalls"
        and decoded.method.startswith("eth_send")
    ):
        return result.lower()
    return None


async def forward_and_settle(
    gw: Gateway,
    backend: BackendClient,
    *,
    tx_id: uuid.UUID,
    request_json: dict[str, Any],
    decoded: DecodedRequest,
    reserved: Reservation,
    started: float,
    balances_dropped: bool = False,
) -> Settled:
    """Forward ``request_json`` (exactly what was judged), settle ``reserved`` by the
    backend's answer and queue the audit row's outcome. ``started``: when deciding began
    (``time.perf_counter``), for the timings. ``balances_dropped``: the caller already
    dropped the wallet's cached balances before forwarding, so nothing needs to wait
    for Redis before the answer when the backend accepted the spend."""
    forwarded_at = time.perf_counter()
    reply = await forward(gw, backend, request_json)
    settled: datetime = gw.clock()
    timings = {
        "decide_ms": round((forwarded_at - started) * 1000, 3),
        "backend_ms": round((time.perf_counter() - forwarded_at) * 1000, 3),
    }
    chain_id = backend.backend.chain_id
    # A forwarded spend changes the wallet's balance: its cached answers go, in the
    # same round trip as the commit when there is one.
    stale_balances = (
        balance_key(chain_id, decoded.wallet)
        if decoded.wallet is not None and decoded.method_class is MethodClass.SPENDING
        else None
    )
    announce = stale_balances
    if announce is not None and gw.near is not None:
        # This process's own copies go before the answer (a read that raced the spend
        # may have put the old balance back since the drop before forwarding).
        gw.near.drop(announce)
    tx_hash: str | None = None
    if reply.outcome is ForwardOutcome.SUCCESS:
        if balances_dropped:
            await commit_soon(gw, reserved, also_delete=stale_balances)
        else:
            await settle_quietly(gw, reserved, refund=False, also_delete=stale_balances)
        stale_balances = None  # dropped with the commit
        result = reply.body.get("result") if isinstance(reply.body, dict) else None
        tx_hash = _tx_hash_of(decoded, result) or decoded.tx_hash
        status = "committed"
        gw.audit.update(AuditOutcome(tx_id, status, settled, tx_hash=tx_hash, timings=timings))
    elif reply.outcome is ForwardOutcome.REJECTED:
        await settle_quietly(gw, reserved, refund=True)
        error = reply.body.get("error") if isinstance(reply.body, dict) else None
        status = "refunded"
        gw.audit.update(AuditOutcome(tx_id, status, settled, backend_error=error, timings=timings))
    else:
        # It may have been broadcast: the reservation keeps counting until reconciled.
        status, tx_hash = "unknown", decoded.tx_hash
        gw.audit.update(
            AuditOutcome(
                tx_id,
                status,
                settled,
                tx_hash=tx_hash,
                backend_error={"message": reply.detail},
                timings=timings,
            )
        )
    if stale_balances is not None and decoded.wallet is not None:
        try:
            if balances_dropped:  # once more, later: for a read that raced the spend
                await gw.counters.delete_later(stale_balances)
            else:
                await drop_balances(gw.redis, chain_id, decoded.wallet)
        except _DROP_ERRORS:
            _log.warning("could not drop the balance cache of %s", decoded.wallet)
    if announce is not None:
        # Every gateway's in-memory copies (storage.near_balances) go when they hear it.
        with contextlib.suppress(CountersUnavailable):
            await gw.counters.send_later("PUBLISH", BALANCE_DROPS_CHANNEL, announce)
    gw.metrics.spend_latency.observe(time.perf_counter() - started)
    call_id = request_json.get("id")
    if reply.body is None:
        response = errors.error_object(
            call_id,
            errors.RESOURCE_UNAVAILABLE,
            f"the backend's answer is unknown ({reply.detail}); the transaction may have been "
            "sent and keeps counting against limits until reconciled",
            {"decision": "allow", "reason": "backend_unknown", "transaction_id": str(tx_id)},
        )
    else:
        response = with_id(reply.body, call_id)
    return Settled(status, reply, response, tx_hash)
