"""The spend path: a spending or signing call decoded, judged, logged, reserved, forwarded
and settled, or refused; a held one logged with its approval and answered at once.

An allowed spend, in this order (SPEC §5, ``walletgate.storage.counters``):

1. **log**: its audit row is made durable, ``pending``, with its claims (group commit,
   ``storage.audit``). From then on a counter rebuilt from PostgreSQL counts it;
2. **reserve**: one ADMIT round trip counts the request rate and reserves the spend
   (idempotent per reservation: a rebuild between 1 and 2 already counted the row, and
   ADMIT then checks that amount without adding it again). The wallet's cached balances
   are dropped in the same round trip;
3. **forward**, then **settle**: a commit rides the next pipeline, a refund is made at
   once, an unknown outcome keeps counting until reconciled.

Why this is safe without the confirmation trip the reverse order needed: every counter
the reservation finds or rebuilds is either untouched since before the row was written
(then ADMIT adds the amount) or rebuilt from PostgreSQL after it (then it counts the
row); no counter the spend is forwarded under can miss it. A crash between 1 and 2
leaves a ``pending`` row that was never reserved nor forwarded: it keeps counting in
any rebuild (the safe side) and reconcile settles it like any stale pending row (its
refund takes back nothing, as there is no reservation record). A refusal at step 2 (a
cap, a rate, or counters unavailable) turns the row into the very refusal row the
request would have had (``denied``); a request that must be decided again on newer
state (``StateMoved``) loses its row, since it gets a new one then.

Held spends keep the order reserve, log, confirm: their row carries an approval, and an
approval must never be approvable on a reservation that was never made.
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
from walletgate.proxy.fill import FillUnavailable, decode_with_fill
from walletgate.proxy.gateway import Caller, Gateway, Response, SpendCall, StateMoved
from walletgate.proxy.holds import hold_info, hold_response, may_hold, resent, state_response
from walletgate.proxy.settle import drop_balances_soon, forward_and_settle, settle_quietly
from walletgate.storage.approvals import cancel_lost_hold, fingerprint
from walletgate.storage.audit import AuditOutcome, AuditRecord, AuditUnavailable
from walletgate.storage.cache_keys import balance_key
from walletgate.storage.counters import (
    CounterRefusal,
    CountersUnavailable,
    Reservation,
    reservation_of,
)

_log = logging.getLogger(__name__)


class SpendPath:
    """The spends of :class:`~walletgate.proxy.pipeline.CallHandler`, which provides the
    caller, the policies and the request-rate admission they share with every call."""

    _gw: Gateway
    _backend: BackendClient
    _caller: Caller
    _policies: PolicySet

    async def _admit(
        self,
        reservation_id: str,
        requests: Sequence[CounterClaim],
        spend: Sequence[CounterClaim] = (),
        *,
        now: float | None = None,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Reservation | CounterRefusal:
        raise NotImplementedError  # CallHandler's

    async def _count_request(
        self, call_id: Any, method_class: MethodClass, wallet: Wallet | None
    ) -> Response | None:
        raise NotImplementedError  # CallHandler's

    def _rate_limited(self, call_id: Any, refused: CounterRefusal) -> Response:
        raise NotImplementedError  # CallHandler's

    def _count(self, decision: Decision) -> None:
        raise NotImplementedError  # CallHandler's

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
        # From the audit row on, a disconnecting client cannot stop the request half
        # way: it is logged, reserved, forwarded and settled exactly once, or refused.
        return await asyncio.shield(
            asyncio.ensure_future(self._reserve_and_forward(call, decision))
        )

    async def _reserve(
        self, spend: SpendCall, decision: Decision, *, logged: bool
    ) -> Reservation | Response:
        """The request's rate count and the spend's reservation, in one round trip: the
        reservation, or the answer to a request refused by a rate, a cap or the counters
        being unavailable. ``logged``: the spend's ``pending`` row is already written (it
        then becomes the refusal's row, or goes if the request is decided again)."""
        requests = request_rate_claims(self._caller.agent_id, spend.wallet, self._policies)
        try:
            reserved = await self._admit(
                str(spend.tx_id), requests, decision.claims, now=spend.now.timestamp()
            )
        except CountersUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            decided = unavailable("counters unavailable")
            return await self._refuse_spend(spend, decided, logged=logged)
        except StateMoved:
            if logged:
                await self._discard(spend, decision)
            raise
        if isinstance(reserved, CounterRefusal) and not logged and reserved.claim.unit == REQUESTS:
            # Over a request rate: refused like any rate-limited call, before the spend.
            return self._rate_limited(spend.request_json["id"], reserved)
        if isinstance(reserved, CounterRefusal):
            # A cap, or a rate (whose refusal is then the row's: it was written first).
            refused = counter_refusal_decision(decision, reserved)
            return await self._refuse_spend(
                spend, refused, logged=logged, retry_after=reserved.retry_after
            )
        return reserved

    async def _reserve_and_forward(self, spend: SpendCall, decision: Decision) -> Response:
        call_id = spend.request_json["id"]
        record = audit_record(self._caller, self._backend.backend, spend, decision, "pending")
        try:
            await self._gw.audit.insert(record)
        except AuditUnavailable as exc:
            _log.warning("refusing %s: %s", spend.method, exc)
            # The database may have committed the row after all (the connection died
            # during COMMIT): it must not stay "pending", counting a spend never sent.
            self._mark_not_forwarded(spend, "the audit log was unavailable")
            # Every call counts against the request rates, refused or not.
            assert spend.decoded is not None  # only decoded calls are allowed
            limited = await self._count_request(call_id, spend.decoded.method_class, spend.wallet)
            if limited is not None:
                return limited
            decision = unavailable("audit log unavailable")
            self._count(decision)
            return refusal(call_id, decision, None)
        # The wallet's cached balances go in the reservation's round trip, before the
        # spend is forwarded, hence before the agent hears of it.
        stale = self._stale_balances(spend)
        dropping = drop_balances_soon(self._gw, stale) if stale is not None else None
        try:
            reserved = await self._reserve(spend, decision, logged=True)
        finally:
            if dropping is not None:
                await _quietly(dropping, stale)
        if not isinstance(reserved, Reservation):
            return reserved
        self._count(decision)
        return await self._forward_and_settle(
            spend, reserved, balances_dropped=dropping is not None
        )

    async def _reserve_and_hold(
        self, spend: SpendCall, decision: Decision, print_: str
    ) -> Response:
        """A held spend reserves its amount now, like an allowed one, so that approving it
        later cannot break a cap; it is logged with its approval and answered at once.

        Reserved before it is logged, and confirmed after: its row carries an approval,
        which must never be approvable (and then forwarded by the approvals worker) on a
        reservation that was never made, as a crash between a row written first and its
        reservation would leave it.
        """
        call_id = spend.request_json["id"]
        reserved = await self._reserve(spend, decision, logged=False)
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
            # Redis lost the reservation after it was made: a counter rebuilt before the
            # row above was written may not count it, so the hold must not be approvable.
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

    async def _refuse_spend(
        self, spend: SpendCall, decision: Decision, *, logged: bool = False, **extra: Any
    ) -> Response:
        """Refuse ``spend`` with ``decision``: its refusal row is written, or, when its
        ``pending`` row was written already (``logged``), that row becomes it."""
        if logged:
            await self._relog_as_refusal(spend, decision)
        else:
            await self._log_refusal(spend, decision)
        self._count(decision)
        return refusal(spend.request_json["id"], decision, spend.tx_id, **extra)

    async def _relog_as_refusal(self, spend: SpendCall, decision: Decision) -> None:
        """The spend's ``pending`` row, written before a reservation that was refused (or
        could not be made), becomes the refusal row :meth:`_log_refusal` would write."""
        record = audit_record(self._caller, self._backend.backend, spend, decision, "denied")
        try:
            await self._gw.audit.refuse(record)
        except AuditUnavailable:
            # The refusal stands; the row stays "pending", counting (the safe side),
            # until reconciled. Nothing was forwarded.
            _log.warning("could not log refusal %s of %s", spend.tx_id, spend.method)

    async def _discard(self, spend: SpendCall, decision: Decision) -> None:
        """The request is decided again on newer state (it gets a new row then): its
        ``pending`` row goes, and whatever a rebuild counted for it is taken back."""
        await self._settle_quietly(reservation_of(str(spend.tx_id), decision.claims), refund=True)
        try:
            await self._gw.audit.discard(spend.tx_id)
        except AuditUnavailable:
            _log.warning("could not drop the row %s of a request decided again", spend.tx_id)

    async def _forward_and_settle(
        self, spend: SpendCall, reserved: Reservation, *, balances_dropped: bool = False
    ) -> Response:
        assert spend.decoded is not None  # only decoded calls are allowed and forwarded
        settled = await forward_and_settle(
            self._gw,
            self._backend,
            tx_id=spend.tx_id,
            request_json=spend.request_json,
            decoded=spend.decoded,
            reserved=reserved,
            started=spend.started,
            balances_dropped=balances_dropped,
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

    def _stale_balances(self, spend: SpendCall) -> str | None:
        """The balance-cache key a forwarded ``spend`` makes stale, if any."""
        decoded = spend.decoded
        if decoded is None or decoded.wallet is None:
            return None
        if decoded.method_class is not MethodClass.SPENDING:
            return None
        return balance_key(self._backend.backend.chain_id, decoded.wallet)

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


async def _quietly(dropping: asyncio.Future[Any], key: str | None) -> None:
    """Wait for a cache drop; its failure is logged (the entry expires by itself)."""
    try:
        await dropping
    except Exception as exc:  # a Redis error of any kind: the spend goes on
        _log.warning("could not drop the balance cache %s: %s", key, exc)
