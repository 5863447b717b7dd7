"""Where every request is decided: one JSON-RPC call in, one JSON-RPC response out.

This is the imperative shell around the pure core. For a spending or signing call
(:mod:`walletgate.proxy.spend_path`): decode (``proxy.evm``) → evaluate
(``policies.evaluator``) → durable audit row → reserve counters (one round trip, which
also counts the request rate) → forward → settle counters and the audit row. The row
comes first so that no confirmation trip is needed (a counter rebuilt after it counts
it; see the spend path's docstring for why that order is safe). Reads
(:mod:`walletgate.proxy.read_path`) are forwarded (``eth_getBalance`` from the balance
cache); node administration and unknown methods are refused. Anything walletgate cannot
decide is refused as "unavailable" and never forwarded.

This module keeps what every call shares: the handler, its admission (request rates and
the state-version proof) and the dispatch by method class.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from walletgate.intents import MethodClass
from walletgate.policies.decision import CounterClaim, Decision, Outcome, Reason
from walletgate.policies.evaluator import request_rate_claims
from walletgate.policies.model import PolicySet, Wallet
from walletgate.proxy import errors
from walletgate.proxy.answers import call_json, counter_refusal_decision, refusal, unavailable
from walletgate.proxy.backend import BackendClient
from walletgate.proxy.evm.methods import OWN_ACCOUNT_METHODS, classify
from walletgate.proxy.gateway import Caller, Gateway, Response, StateMoved
from walletgate.proxy.holds import GET_APPROVAL, get_approval
from walletgate.proxy.read_path import ReadPath
from walletgate.proxy.spend_path import SpendPath
from walletgate.storage.counters import (
    CounterRefusal,
    CountersUnavailable,
    Reservation,
    StaleState,
)
from walletgate.storage.leases import StateLease

__all__ = ["CallHandler", "Caller", "Gateway", "StateMoved", "call_json"]

_log = logging.getLogger(__name__)

#: The reservation id of a request count alone (final at once: never stored).
_REQUESTS_ONLY = "requests"


class CallHandler(ReadPath, SpendPath):
    """Handles the calls of one HTTP request for one caller and one backend."""

    def __init__(
        self,
        gw: Gateway,
        backend: BackendClient,
        caller: Caller,
        policies: PolicySet,
        *,
        reads_only: bool = False,
        unproven_version: int | None = None,
        lease: StateLease | None = None,
    ) -> None:
        self._gw = gw
        self._backend = backend
        self._caller = caller
        self._policies = policies
        # The state could not be proven current (Redis is down) and reads fail open:
        # reads are served, anything else is refused as unavailable.
        self._reads_only = reads_only
        # The caller and policies came from memory, as of this state version, with no
        # trip to Redis yet: the first counter call of the request proves the version
        # still current in the same round trip (or raises StateMoved) before anything
        # is counted, logged, forwarded or answered.
        self._unproven_version = unproven_version
        # This process's state lease (storage.leases): while it vouches for that version
        # at the moment a call is decided, no proof is owed, except by a spend's
        # reservation, which proves it atomically with its counters.
        self._lease = lease

    async def _admit(
        self,
        reservation_id: str,
        requests: Sequence[CounterClaim],
        spend: Sequence[CounterClaim] = (),
        *,
        now: float | None = None,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Reservation | CounterRefusal:
        """``Counters.admit`` with the version proof this request still owes, if any: a
        spend (``spend`` claims) owes it even under the state lease."""
        # A reservation of its own (not a request count alone) is a spend or a hold.
        version = self._version_owed(spending=reservation_id != _REQUESTS_ONLY)
        admitted = await self._gw.counters.admit(
            reservation_id,
            requests=requests,
            spend=spend,
            now=self._gw.clock().timestamp() if now is None else now,
            version=version,
            reads=reads,
        )
        if isinstance(admitted, StaleState):
            raise StateMoved
        if version is not None:
            self._unproven_version = None
        return admitted

    def _version_owed(self, *, spending: bool) -> int | None:
        """The state version a counter trip must prove, or None. Asked when each call is
        decided, not when the request arrived: a body that comes in after a change
        returned finds the lease no longer vouching for the old version."""
        version = self._unproven_version
        if version is None or spending or self._lease is None:
            return version
        return None if self._lease.trusts(version) else version

    async def handle(self, call_id: Any, method: str, params: Any) -> Response:
        """Decide one call and return its JSON-RPC response."""
        method_class = classify(method)
        self._gw.metrics.requests.labels(method_class=str(method_class)).inc()
        if self._reads_only and method_class is not MethodClass.READ:
            decision = unavailable("policies and credentials cannot be checked")
            self._count(decision)
            return refusal(call_id, decision, None)
        if method == GET_APPROVAL:
            limited = await self._count_request(call_id, method_class, None)
            if limited is not None:
                return limited
            return await get_approval(self._gw.pool, call_id, self._caller.agent_id, params)
        if method_class in (MethodClass.SPENDING, MethodClass.SIGNING):
            # Counted against request rates once decoded, so wallet-scoped limits apply.
            return await self._spend(call_id, method, method_class, params)
        if method_class is MethodClass.READ:
            return (await self._reads([(call_id, method, params)]))[0]
        limited = await self._count_request(call_id, method_class, None)
        if limited is not None:
            return limited
        if method in OWN_ACCOUNT_METHODS:
            return self._own_accounts(call_id, params)
        self._gw.metrics.decisions.labels(decision="deny", reason=Reason.METHOD_NOT_ALLOWED).inc()
        return errors.error_object(
            call_id,
            errors.METHOD_NOT_SUPPORTED,
            f"method {method!r} is not allowed through walletgate "
            f"({method_class} methods are denied)",
            {"decision": "deny", "reason": str(Reason.METHOD_NOT_ALLOWED), "method": method},
        )

    def _own_accounts(self, call_id: Any, params: Any) -> Response:
        """``eth_accounts`` / ``eth_requestAccounts``: the caller's own wallets on this
        backend's chain, never the backend's list (it may hold other agents' keys)."""
        if params not in (None, []):
            return errors.error_object(
                call_id, errors.INVALID_PARAMS, "this method takes no parameters", None
            )
        chain_id = self._backend.backend.chain_id
        accounts = list(self._policies.agent_addresses(self._caller.agent_id, chain_id))
        return {"jsonrpc": "2.0", "id": call_id, "result": accounts}

    async def _count_request(
        self, call_id: Any, method_class: MethodClass, wallet: Wallet | None
    ) -> Response | None:
        """Count this call against the agent's (and, for spends, the wallet's) request-rate
        limits: every call counts, allowed or not.

        Returns the refusal when a limit is reached, or when the counters cannot be
        reached and the call is a spend (or reads are configured to fail closed).
        """
        admitted = await self._admit_request(call_id, method_class, wallet)
        return admitted if isinstance(admitted, dict) else None

    async def _admit_request(
        self,
        call_id: Any,
        method_class: MethodClass,
        wallet: Wallet | None,
        *,
        calls: int = 1,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Response | Reservation | None:
        """:meth:`_count_request` for ``calls`` calls together, reading the hash fields
        ``reads`` in the same round trip: the refusal, the admission (with the values
        read), or ``None`` when no admission was made (nothing to count and the state
        already proven, or the counters failed and reads fail open)."""
        claims = request_rate_claims(self._caller.agent_id, wallet, self._policies)
        if calls != 1:
            claims = tuple(dataclasses.replace(c, amount=c.amount * calls) for c in claims)
        if not claims and self._version_owed(spending=False) is None and not reads:
            return None
        quota = self._gw.quota
        try:
            if quota is not None and self._version_owed(spending=False) is None:
                # From this process's leased blocks: usually no trip at all.
                counted = await quota.admit(claims, self._gw.clock().timestamp(), reads)
                admitted = (
                    counted
                    if isinstance(counted, CounterRefusal)
                    else Reservation(_REQUESTS_ONLY, (), counted.read)
                )
            else:
                # Request counts are final at once: no record, so the id is never stored.
                admitted = await self._admit(_REQUESTS_ONLY, claims, reads=reads)
        except CountersUnavailable:
            if method_class is MethodClass.READ and self._gw.reads_fail_open:
                return None
            decision = unavailable("rate counters unavailable")
            self._count(decision)
            return refusal(call_id, decision, None)
        if isinstance(admitted, CounterRefusal):
            return self._rate_limited(call_id, admitted)
        return admitted

    def _rate_limited(self, call_id: Any, refused: CounterRefusal) -> Response:
        """The answer to a call over a request-rate limit (not logged: nothing to spend)."""
        base = Decision(Outcome.DENY, Reason.RATE_LIMITED, "")
        decision = counter_refusal_decision(base, refused)
        self._count(decision)
        return refusal(call_id, decision, None, retry_after=refused.retry_after)

    def _count(self, decision: Decision) -> None:
        self._gw.metrics.decisions.labels(
            decision=str(decision.outcome), reason=str(decision.reason)
        ).inc()
