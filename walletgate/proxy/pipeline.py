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
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from walletgate.intents import DecodedRequest, DecodeError, MethodClass
from walletgate.policies.claims import REQUESTS
from walletgate.policies.decision import CounterClaim, Decision, Finding, Outcome, Reason
from walletgate.policies.evaluator import evaluate, request_rate_claims
from walletgate.policies.model import PolicySet, Wallet
from walletgate.policies.request import SpendRequest
from walletgate.proxy import errors
from walletgate.proxy.backend import BackendClient, BackendReply, reply_of
from walletgate.proxy.backend import Outcome as ForwardOutcome
from walletgate.proxy.evm.methods import OWN_ACCOUNT_METHODS, classify
from walletgate.proxy.evm.reads import balance_query
from walletgate.proxy.fill import FillUnavailable, decode_with_fill
from walletgate.proxy.holds import (
    GET_APPROVAL,
    get_approval,
    hold_info,
    hold_response,
    may_hold,
    resent,
    state_response,
)
from walletgate.proxy.jsonrpc import dumps
from walletgate.proxy.metrics import Metrics
from walletgate.proxy.settle import forward, forward_and_settle, settle_quietly
from walletgate.storage.approvals import cancel_lost_hold, fingerprint
from walletgate.storage.audit import AuditOutcome, AuditRecord, AuditUnavailable, AuditWriter
from walletgate.storage.balance_cache import balance_entry, get_balances, put_balance
from walletgate.storage.counters import (
    CounterRefusal,
    Counters,
    CountersUnavailable,
    Reservation,
    StaleState,
    claims_to_json,
)
from walletgate.storage.redis_client import RedisClient
from walletgate.storage.redis_guard import CacheUnavailable

_log = logging.getLogger(__name__)

Response = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated agent behind a request."""

    agent_id: str
    owner_id: str
    token_id: str


@dataclass(frozen=True, slots=True)
class _SpendCall:
    """One spending or signing call on its way through the pipeline: what its audit row
    and its refusals are built from."""

    tx_id: uuid.UUID
    now: datetime
    method: str
    request_json: dict[str, Any]
    started: float
    decoded: DecodedRequest | None = None
    wallet: Wallet | None = None


@dataclass
class Gateway:
    """The per-process dependencies of the request path."""

    counters: Counters
    audit: AuditWriter
    redis: RedisClient
    metrics: Metrics
    balance_ttl: int
    reads_fail_open: bool
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The database, for held spends (resends, ``walletgate_getApproval``); None: no
    #: approvals are looked up (a held spend is still held and answered).
    pool: asyncpg.Pool | None = None


def intent_to_json(intent: object) -> dict[str, Any]:
    """An intent as a JSON-able dict with its kind, amounts as decimal strings and bytes
    as ``0x`` hex."""
    out: dict[str, Any] = {"kind": type(intent).__name__}
    for key, value in dataclasses.asdict(intent).items():  # type: ignore[call-overload]
        out[key] = _json_value(value)
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)  # amounts pass 2**53: JSON numbers would lose them
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return value


def _refusal(call_id: Any, decision: Decision, tx_id: uuid.UUID | None, **extra: Any) -> Response:
    data = decision.to_json()
    data["transaction_id"] = str(tx_id) if tx_id else None
    data.update(extra)
    return errors.error_object(
        call_id, errors.code_for_reason(decision.reason), decision.message, data
    )


def _unavailable(what: str) -> Decision:
    return Decision(
        outcome=Outcome.DENY,
        reason=Reason.UNAVAILABLE,
        message=f"walletgate cannot decide right now ({what}); the request was not forwarded",
    )


def counter_refusal_decision(decision: Decision, refusal: CounterRefusal) -> Decision:
    claim = refusal.claim
    counts = claim.unit in ("requests", "transactions")
    reason = Reason.RATE_LIMITED if counts else Reason.CUMULATIVE_CAP
    finding = Finding(
        policy=claim.policy,
        rule=claim.rule,
        rule_type="rate_limit" if reason is Reason.RATE_LIMITED else "cumulative_cap",
        passed=False,
        reason=reason,
        message=(
            f"{claim.policy}/{claim.rule}: {refusal.already} {claim.unit} already counted, "
            f"{claim.amount} more would exceed the limit of {claim.limit}"
        ),
        limit=f"{claim.limit} {claim.unit}",
        requested=f"{claim.amount} {claim.unit}",
        already_spent=f"{refusal.already} {claim.unit}",
    )
    return dataclasses.replace(
        decision,
        outcome=Outcome.DENY,
        reason=reason,
        message=finding.message,
        findings=(finding, *decision.findings),
    )


class StateMoved(Exception):
    """The state the request was being decided on is not current any more (a policy,
    token or freeze changed): nothing was counted, forwarded or logged, and the request
    must be authenticated and decided again on fresh state."""


class CallHandler:
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
            decision = _unavailable("policies and credentials cannot be checked")
            self._count(decision)
            return _refusal(call_id, decision, None)
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
            decision = _unavailable("rate counters unavailable")
            self._count(decision)
            return _refusal(call_id, decision, None)
        if isinstance(admitted, CounterRefusal):
            return self._rate_limited(call_id, admitted)
        return admitted

    def _rate_limited(self, call_id: Any, refusal: CounterRefusal) -> Response:
        """The answer to a call over a request-rate limit (not logged: nothing to spend)."""
        base = Decision(Outcome.DENY, Reason.RATE_LIMITED, "")
        decision = counter_refusal_decision(base, refusal)
        self._count(decision)
        return _refusal(call_id, decision, None, retry_after=refusal.retry_after)

    # -- reads ---------------------------------------------------------------------------

    async def handle_reads(self, calls: Sequence[tuple[Any, str, Any]]) -> list[Response]:
        """A run of read calls of one batch, decided as one unit: counted against the
        request-rate limits together (all of them, or none when they do not all fit),
        answered from the balance cache where it can, the rest forwarded to the backend
        in one batch. Returns their responses in order."""
        self._gw.metrics.requests.labels(method_class=str(MethodClass.READ)).inc(len(calls))
        return await self._reads(calls)

    async def _reads(self, calls: Sequence[tuple[Any, str, Any]]) -> list[Response]:
        chain_id = self._backend.backend.chain_id
        queries = [
            balance_query(params) if method == "eth_getBalance" else None
            for _, method, params in calls
        ]
        entries = [balance_entry(chain_id, *query) for query in queries if query is not None]
        admitted = await self._admit_request(
            calls[0][0], MethodClass.READ, None, calls=len(calls), reads=entries
        )
        if isinstance(admitted, dict):
            return [_with_id(admitted, call_id) for call_id, _, _ in calls]
        if admitted is not None and entries:
            found: Sequence[str | None] = admitted.read
        else:
            found = await self._cached_balances(entries)
        self._note_cache_use(found)
        cached = iter(found)
        answers: list[Response | None] = [None] * len(calls)
        for i, query in enumerate(queries):
            balance = next(cached) if query is not None else None
            if balance is not None:
                answers[i] = {"jsonrpc": "2.0", "id": calls[i][0], "result": balance}
        missing = [i for i, answer in enumerate(answers) if answer is None]
        replies = await self._forward_together([call_json(*calls[i]) for i in missing])
        for i, reply in zip(missing, replies, strict=True):
            answers[i] = await self._answer_read(calls[i][0], queries[i], reply)
        return [answer for answer in answers if answer is not None]

    async def _answer_read(
        self, call_id: Any, query: tuple[str, str] | None, reply: BackendReply
    ) -> Response:
        """The backend's answer to one read, remembered in the balance cache if it is one."""
        if reply.body is None:
            return errors.error_object(
                call_id, errors.RESOURCE_UNAVAILABLE, f"backend unavailable: {reply.detail}"
            )
        result = reply.body.get("result") if isinstance(reply.body, dict) else None
        if (
            query is not None
            and reply.outcome is ForwardOutcome.SUCCESS
            and isinstance(result, str)
        ):
            # On a Redis error the next read is a cache miss; this answer is still right.
            with contextlib.suppress(RedisError, CacheUnavailable):
                await put_balance(
                    self._gw.redis,
                    self._backend.backend.chain_id,
                    *query,
                    result,
                    self._gw.balance_ttl,
                )
        return _with_id(reply.body, call_id)

    async def _cached_balances(self, entries: Sequence[tuple[str, str]]) -> Sequence[str | None]:
        """The balance cache's answers (one round trip), ``None`` where it has none or
        Redis fails (the reads then go to the backend)."""
        if not entries:
            return []
        try:
            return await get_balances(self._gw.redis, entries)
        except (RedisError, CacheUnavailable):
            return [None] * len(entries)

    def _note_cache_use(self, found: Sequence[str | None]) -> None:
        for balance in found:
            result = "miss" if balance is None else "hit"
            self._gw.metrics.balance_cache.labels(result=result).inc()

    async def _forward_together(self, payloads: list[dict[str, Any]]) -> list[BackendReply]:
        """Forward calls in one backend request (a JSON-RPC batch when there are several);
        one by one when the backend's batch answer cannot be matched to them by id."""
        if len(payloads) <= 1:
            return [await self._forward(payload) for payload in payloads]
        ids = [dumps(payload["id"]) for payload in payloads]
        if len(set(ids)) == len(ids) and b"null" not in ids:
            reply = await self._forward(payloads)
            if isinstance(reply.body, list):
                by_id = {
                    dumps(answer.get("id")): answer
                    for answer in reply.body
                    if isinstance(answer, dict)
                }
                if all(key in by_id for key in ids):
                    return [reply_of(by_id[key], "no result in the batch answer") for key in ids]
        return [await self._forward(payload) for payload in payloads]

    async def _forward(self, payload: Any) -> BackendReply:
        return await forward(self._gw, self._backend, payload)

    # -- spends --------------------------------------------------------------------------

    async def _spend(
        self, call_id: Any, method: str, method_class: MethodClass, params: Any
    ) -> Response:
        call = _SpendCall(
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
                    return await self._refuse_spend(call, _unavailable("approvals unavailable"))
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
            return await self._refuse_spend(call, _unavailable(f"no gas or fee quote: {exc}"))
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
            return _refusal(call_id, decision, call.tx_id if logged else None, **extra)
        # From the reservation on, a disconnecting client cannot stop the request half
        # way: it is reserved, logged, forwarded and settled exactly once, or refused.
        return await asyncio.shield(
            asyncio.ensure_future(self._reserve_and_forward(call, decision))
        )

    async def _reserve_and_forward(self, spend: _SpendCall, decision: Decision) -> Response:
        call_id = spend.request_json["id"]
        # The request's rate count and the spend's reservation: one round trip.
        requests = request_rate_claims(self._caller.agent_id, spend.wallet, self._policies)
        try:
            reserved = await self._admit(
                str(spend.tx_id), requests, decision.claims, now=spend.now.timestamp()
            )
        except CountersUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            return await self._refuse_spend(spend, _unavailable("counters unavailable"))
        if isinstance(reserved, CounterRefusal) and reserved.claim.unit == REQUESTS:
            # Over a request rate: refused like any rate-limited call, before the spend.
            return self._rate_limited(call_id, reserved)
        if isinstance(reserved, CounterRefusal):
            refused = counter_refusal_decision(decision, reserved)
            return await self._refuse_spend(spend, refused, retry_after=reserved.retry_after)
        record = self._record(spend, decision, "pending")
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            await self._settle_quietly(reserved, refund=True)
            # The database may have committed the row after all (the connection died
            # during COMMIT): it must not stay "pending", counting a spend never sent.
            self._mark_not_forwarded(spend, "the audit log was unavailable")
            decision = _unavailable("audit log unavailable")
            self._count(decision)
            return _refusal(call_id, decision, None)
        if not await self._still_reserved(reserved):
            # Redis lost the reservation after it was made: a counter rebuilt before the
            # row above was written may not count it, so it must not be sent.
            await self._settle_quietly(reserved, refund=True)
            self._mark_not_forwarded(spend, "the counters were lost")
            decision = _unavailable("the counters were lost while deciding")
            self._count(decision)
            return _refusal(call_id, decision, spend.tx_id)
        self._count(decision)
        return await self._forward_and_settle(spend, reserved)

    async def _reserve_and_hold(
        self, spend: _SpendCall, decision: Decision, print_: str
    ) -> Response:
        """A held spend reserves its amount now, like an allowed one, so that approving it
        later cannot break a cap; it is logged with its approval and answered at once."""
        call_id = spend.request_json["id"]
        requests = request_rate_claims(self._caller.agent_id, spend.wallet, self._policies)
        try:
            reserved = await self._admit(
                str(spend.tx_id), requests, decision.claims, now=spend.now.timestamp()
            )
        except CountersUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            return await self._refuse_spend(spend, _unavailable("counters unavailable"))
        if isinstance(reserved, CounterRefusal) and reserved.claim.unit == REQUESTS:
            return self._rate_limited(call_id, reserved)
        if isinstance(reserved, CounterRefusal):
            refused = counter_refusal_decision(decision, reserved)
            return await self._refuse_spend(spend, refused, retry_after=reserved.retry_after)
        record = dataclasses.replace(
            self._record(spend, decision, "held"),
            approval_id=uuid.uuid4(),
            hold=hold_info(decision, spend.now, print_),
        )
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            await self._settle_quietly(reserved, refund=True)
            decision = _unavailable("audit log unavailable")
            self._count(decision)
            return _refusal(call_id, decision, None)
        if not await self._still_reserved(reserved) and record.approval_id is not None:
            # Redis lost the reservation after it was made (see _reserve_and_forward): the
            # hold must not be approvable on a counter that may not count it.
            await self._settle_quietly(reserved, refund=True)
            await cancel_lost_hold(self._gw.pool, record.approval_id, "the counters were lost")
            decision = _unavailable("the counters were lost while deciding")
            self._count(decision)
            return _refusal(call_id, decision, spend.tx_id)
        self._count(decision)
        return hold_response(call_id, decision, record)

    def _mark_not_forwarded(self, spend: _SpendCall, why: str) -> None:
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

    async def _refuse_spend(self, spend: _SpendCall, decision: Decision, **extra: Any) -> Response:
        await self._log_refusal(spend, decision)
        self._count(decision)
        return _refusal(spend.request_json["id"], decision, spend.tx_id, **extra)

    async def _forward_and_settle(self, spend: _SpendCall, reserved: Reservation) -> Response:
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

    def _record(self, call: _SpendCall, decision: Decision, status: str) -> AuditRecord:
        # Rows refer only to entities of this agent: a foreign wallet is named in the
        # explanation, not linked, so the audit row cannot fail on it.
        wallet, decoded = call.wallet, call.decoded
        own_wallet = (
            wallet if wallet is not None and wallet.agent == self._caller.agent_id else None
        )
        return AuditRecord(
            id=call.tx_id,
            created_at=call.now,
            method=call.method,
            request=call.request_json,
            decision=str(decision.outcome)
            if decision.reason is not Reason.UNAVAILABLE
            else "error",
            reason=str(decision.reason),
            status=status,
            agent_id=self._caller.agent_id,
            wallet_id=own_wallet.id if own_wallet else None,
            owner_id=self._caller.owner_id,
            chain_id=self._backend.backend.chain_id,
            backend=self._backend.backend.name,
            intents=[intent_to_json(i) for i in decoded.intents] if decoded else [],
            explanation=decision.to_json(),
            amounts=dict(decision.amounts),
            usd_value=decision.usd_value,
            claims=claims_to_json(decision.claims) if status in ("pending", "held") else [],
            timings={"decide_ms": round((time.perf_counter() - call.started) * 1000, 3)},
            notify=decision.notify,
        )

    async def _log_refusal(self, call: _SpendCall, decision: Decision) -> AuditRecord | None:
        """Log a refused (or held) request; returns its row, or None if it could not be
        logged (the refusal stands either way: nothing is forwarded)."""
        held = decision.outcome is Outcome.HOLD
        record = self._record(call, decision, "held" if held else "denied")
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


def call_json(call_id: Any, method: str, params: Any) -> dict[str, Any]:
    """The call as forwarded: exactly what was judged, with ``params`` left out when the
    agent sent none (``"params": null`` is not valid JSON-RPC for every backend)."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id, "method": method}
    if params is not None:
        out["params"] = params
    return out


def _with_id(body: Any, call_id: Any) -> Response:
    if isinstance(body, dict):
        return {**body, "id": call_id}
    return {"jsonrpc": "2.0", "id": call_id, "result": body}
