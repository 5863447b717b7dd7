"""Where every request is decided: one JSON-RPC call in, one JSON-RPC response out.

This is the imperative shell around the pure core. For a spending or signing call:
decode (``proxy.evm``) → evaluate (``policies.evaluator``) → reserve counters →
durable audit row → forward → settle counters and the audit row. Reads are forwarded
(``eth_getBalance`` from the balance cache); node administration and unknown methods
are refused. Anything walletgate cannot decide is refused as "unavailable" and never
forwarded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from walletgate.intents import DecodedRequest, DecodeError, MethodClass
from walletgate.policies.claims import REQUESTS
from walletgate.policies.decision import CounterClaim, Decision, Outcome, Reason
from walletgate.policies.evaluator import evaluate, request_rate_claims
from walletgate.policies.model import PolicySet, Wallet
from walletgate.policies.request import SpendRequest
from walletgate.proxy import errors
from walletgate.proxy.answers import (
    audit_record,
    call_json,
    counter_refusal_decision,
    refusal,
    unavailable,
)
from walletgate.proxy.backend import BackendClient
from walletgate.proxy.evm.methods import OWN_ACCOUNT_METHODS, classify
from walletgate.proxy.fill import FillUnavailable, decode_with_fill
from walletgate.proxy.gateway import Caller, Gateway, Response, SpendCall, StateMoved
from walletgate.proxy.holds import (
    GET_APPROVAL,
    get_approval,
    hold_info,
    hold_response,
    may_hold,
    resent,
    state_response,
)
from walletgate.proxy.read_path import ReadPath
from walletgate.proxy.settle import forward_and_settle, settle_quietly
from walletgate.storage.approvals import cancel_lost_hold, fingerprint
from walletgate.storage.audit import AuditOutcome, AuditRecord, AuditUnavailable
from walletgate.storage.counters import (
    CounterRefusal,
    CountersUnavailable,
    Reservation,
    StaleState,
)

__all__ = ["CallHandler", "Caller", "Gateway", "StateMoved", "call_json"]

_log = logging.getLogger(__name__)


class CallHandler(ReadPath):
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

    async def _admit(
        self,
        reservation_id: str,
        requests: Sequence[CounterClaim],
        spend: Sequence[CounterClaim] = (),
        *,
        now: float | None = None,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Reservation | CounterRefusal:
        """``Counters.admit`` with the version proof this request still owes, if any."""
        admitted = await self._gw.counters.admit(
            reservation_id,
            requests=requests,
            spend=spend,
            now=self._gw.clock().timestamp() if now is None else now,
            version=self._unproven_version,
            reads=reads,
        )
        if isinstance(admitted, StaleState):
            raise StateMoved
        self._unproven_version = None
        return admitted

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
        if not claims and self._unproven_version is None and not reads:
            return None
        try:
            # Request counts are final at once: no record, so the id is never stored.
            admitted = await self._admit("requests", claims, reads=reads)
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

    # -- spends --------------------------------------------------------------------------

    async def _spend(
        self, call_id: Any, method: str, method_class: MethodClass, params: Any
    ) -> Response:
        call = SpendCall(
            tx_id=uuid.uuid4(),
            now=self._gw.clock(),
            method=method,
            request_json=call_json(call_id, method, params),
            started=time.perf_counter(),
        )
        # A resend of a held request is answered with its approval's state (or result):
        # never a second hold, never a second spend.
        print_ = fingerprint(method, params, self._caller.agent_id, self._backend.backend.chain_id)
        if may_hold(self._policies):
            found = await resent(self._gw.pool, self._caller.agent_id, print_)
            if found is not None:
                limited = await self._count_request(call_id, method_class, None)
                if limited is not None:
                    return limited
                if isinstance(found, Exception):
                    return await self._refuse_spend(call, unavailable("approvals unavailable"))
                return state_response(call_id, found)
        try:
            # Gas and fees the request leaves to the backend are filled first: the filled
            # request is what is judged, logged and forwarded.
            filled = await decode_with_fill(self._backend, self._policies, method, params)
        except FillUnavailable as exc:
            limited = await self._count_request(call_id, method_class, None)
            if limited is not None:
                return limited
            _log.warning("refusing %s: %s", method, exc)
            return await self._refuse_spend(call, unavailable(f"no gas or fee quote: {exc}"))
        except DecodeError as exc:
            limited = await self._count_request(call_id, method_class, None)
            if limited is not None:
                return limited
            decision = Decision(Outcome.DENY, Reason.MALFORMED, f"cannot decode {method}: {exc}")
            await self._log_refusal(call, decision)
            self._count(decision)
            return errors.error_object(
                call_id,
                exc.code,
                f"invalid {method} request: {exc}",
                {**decision.to_json(), "where": exc.where, "transaction_id": str(call.tx_id)},
            )
        decoded = filled.decoded
        if filled.params is not params:
            call = dataclasses.replace(call, request_json=call_json(call_id, method, filled.params))
        call = dataclasses.replace(call, decoded=decoded, wallet=self._wallet_of(decoded))
        request = SpendRequest(
            agent_id=self._caller.agent_id, decoded=decoded, chain_id=self._backend.backend.chain_id
        )
        decision = evaluate(request, self._policies, call.now)
        if decision.outcome is Outcome.HOLD:
            return await asyncio.shield(
                asyncio.ensure_future(self._reserve_and_hold(call, decision, print_))
            )
        if decision.outcome is not Outcome.ALLOW:
            limited = await self._count_request(call_id, method_class, call.wallet)
            if limited is not None:
                return limited
            logged = await self._log_refusal(call, decision)
            self._count(decision)
            extra = (
                {"approval_id": str(logged.approval_id)} if logged and logged.approval_id else {}
            )
            return refusal(call_id, decision, call.tx_id if logged else None, **extra)
        # From the reservation on, a disconnecting client cannot stop the request half
        # way: it is reserved, logged, forwarded and settled exactly once, or refused.
        return await asyncio.shield(
            asyncio.ensure_future(self._reserve_and_forward(call, decision))
        )

    async def _reserve(self, spend: SpendCall, decision: Decision) -> Reservation | Response:
        """The request's rate count and the spend's reservation, in one round trip: the
        reservation, or the answer to a request refused by a rate, a cap or the counters
        being unavailable."""
        requests = request_rate_claims(self._caller.agent_id, spend.wallet, self._policies)
        try:
            reserved = await self._admit(
                str(spend.tx_id), requests, decision.claims, now=spend.now.timestamp()
            )
        except CountersUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            return await self._refuse_spend(spend, unavailable("counters unavailable"))
        if isinstance(reserved, CounterRefusal) and reserved.claim.unit == REQUESTS:
            # Over a request rate: refused like any rate-limited call, before the spend.
            return self._rate_limited(spend.request_json["id"], reserved)
        if isinstance(reserved, CounterRefusal):
            refused = counter_refusal_decision(decision, reserved)
            return await self._refuse_spend(spend, refused, retry_after=reserved.retry_after)
        return reserved

    async def _reserve_and_forward(self, spend: SpendCall, decision: Decision) -> Response:
        call_id = spend.request_json["id"]
        reserved = await self._reserve(spend, decision)
        if not isinstance(reserved, Reservation):
            return reserved
        record = audit_record(self._caller, self._backend.backend, spend, decision, "pending")
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            await self._settle_quietly(reserved, refund=True)
            # The database may have committed the row after all (the connection died
            # during COMMIT): it must not stay "pending", counting a spend never sent.
            self._mark_not_forwarded(spend, "the audit log was unavailable")
            decision = unavailable("audit log unavailable")
            self._count(decision)
            return refusal(call_id, decision, None)
        if not await self._still_reserved(reserved):
            # Redis lost the reservation after it was made: a counter rebuilt before the
            # row above was written may not count it, so it must not be sent.
            await self._settle_quietly(reserved, refund=True)
            self._mark_not_forwarded(spend, "the counters were lost")
            decision = unavailable("the counters were lost while deciding")
            self._count(decision)
            return refusal(call_id, decision, spend.tx_id)
        self._count(decision)
        return await self._forward_and_settle(spend, reserved)

    async def _reserve_and_hold(
        self, spend: SpendCall, decision: Decision, print_: str
    ) -> Response:
        """A held spend reserves its amount now, like an allowed one, so that approving it
        later cannot break a cap; it is logged with its approval and answered at once."""
        call_id = spend.request_json["id"]
        reserved = await self._reserve(spend, decision)
        if not isinstance(reserved, Reservation):
            return reserved
        record = dataclasses.replace(
            audit_record(self._caller, self._backend.backend, spend, decision, "held"),
            approval_id=uuid.uuid4(),
            hold=hold_info(decision, spend.now, print_),
        )
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            await self._settle_quietly(reserved, refund=True)
            decision = unavailable("audit log unavailable")
            self._count(decision)
            return refusal(call_id, decision, None)
        if not await self._still_reserved(reserved) and record.approval_id is not None:
            # Redis lost the reservation after it was made (see _reserve_and_forward): the
            # hold must not be approvable on a counter that may not count it.
            await self._settle_quietly(reserved, refund=True)
            await cancel_lost_hold(self._gw.pool, record.approval_id, "the counters were lost")
            decision = unavailable("the counters were lost while deciding")
            self._count(decision)
            return refusal(call_id, decision, spend.tx_id)
        self._count(decision)
        return hold_response(call_id, decision, record)

    def _mark_not_forwarded(self, spend: SpendCall, why: str) -> None:
        """Queue the outcome of an allowed spend refused before forwarding (a no-op if
        its row was never written): the audit writer retries it until it lands."""
        self._gw.audit.update(
            AuditOutcome(
                spend.tx_id,
                "refunded",
                self._gw.clock(),
                backend_error={"message": f"not forwarded: {why}"},
            )
        )

    async def _still_reserved(self, reserved: Reservation) -> bool:
        try:
            return await self._gw.counters.confirm(reserved)
        except CountersUnavailable as exc:
            _log.warning("cannot confirm reservation %s: %s", reserved.id, exc)
            return False

    async def _refuse_spend(self, spend: SpendCall, decision: Decision, **extra: Any) -> Response:
        await self._log_refusal(spend, decision)
        self._count(decision)
        return refusal(spend.request_json["id"], decision, spend.tx_id, **extra)

    async def _forward_and_settle(self, spend: SpendCall, reserved: Reservation) -> Response:
        assert spend.decoded is not None  # only decoded calls are allowed and forwarded
        settled = await forward_and_settle(
            self._gw,
            self._backend,
            tx_id=spend.tx_id,
            request_json=spend.request_json,
            decoded=spend.decoded,
            reserved=reserved,
            started=spend.started,
        )
        return settled.response

    async def _settle_quietly(
        self, reserved: Reservation, *, refund: bool, also_delete: str | None = None
    ) -> None:
        await settle_quietly(self._gw, reserved, refund=refund, also_delete=also_delete)

    # -- audit helpers -------------------------------------------------------------------

    def _wallet_of(self, decoded: DecodedRequest) -> Wallet | None:
        if decoded.wallet is None:
            return None
        return self._policies.wallet_by_address(self._backend.backend.chain_id, decoded.wallet)

    async def _log_refusal(self, call: SpendCall, decision: Decision) -> AuditRecord | None:
        """Log a refused (or held) request; returns its row, or None if it could not be
        logged (the refusal stands either way: nothing is forwarded)."""
        held = decision.outcome is Outcome.HOLD
        record = audit_record(
            self._caller, self._backend.backend, call, decision, "held" if held else "denied"
        )
        if held:
            record = dataclasses.replace(record, approval_id=uuid.uuid4())
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable:
            # The refusal stands; only its record is missing. Nothing was forwarded.
            _log.warning("could not log refusal %s of %s", call.tx_id, call.method)
            return None
        return record

    def _count(self, decision: Decision) -> None:
        self._gw.metrics.decisions.labels(
            decision=str(decision.outcome), reason=str(decision.reason)
        ).inc()
