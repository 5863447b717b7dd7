"""The answers and records the request path builds: JSON-RPC refusals, decisions for
what cannot be decided or counted, the call as forwarded, and audit rows."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import Any

from walletgate.config.settings import Backend
from walletgate.policies.decision import Decision, Finding, Outcome, Reason
from walletgate.proxy import errors
from walletgate.proxy.gateway import Caller, Response, SpendCall
from walletgate.proxy.passthrough import RawAnswer
from walletgate.storage.audit import AuditRecord
from walletgate.storage.counters import CounterRefusal, claims_to_json

_log = logging.getLogger(__name__)


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


def refusal(call_id: Any, decision: Decision, tx_id: uuid.UUID | None, **extra: Any) -> Response:
    """The JSON-RPC error for a refused (or held) call: the decision as its data."""
    data = decision.to_json()
    data["transaction_id"] = str(tx_id) if tx_id else None
    data.update(extra)
    return errors.error_object(
        call_id, errors.code_for_reason(decision.reason), decision.message, data
    )


def unavailable(what: str) -> Decision:
    """The decision when walletgate cannot decide (fail closed): nothing is forwarded."""
    return Decision(
        outcome=Outcome.DENY,
        reason=Reason.UNAVAILABLE,
        message=f"walletgate cannot decide right now ({what}); the request was not forwarded",
    )


def counter_refusal_decision(decision: Decision, refusal: CounterRefusal) -> Decision:
    """``decision`` turned into the refusal of a counter that had no room (a cumulative
    cap, or a rate) for what it claimed."""
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


def audit_record(
    caller: Caller, backend: Backend, call: SpendCall, decision: Decision, status: str
) -> AuditRecord:
    """The audit row of a spending or signing call, with its decision and ``status``."""
    # Rows refer only to entities of this agent: a foreign wallet is named in the
    # explanation, not linked, so the audit row cannot fail on it.
    wallet, decoded = call.wallet, call.decoded
    own_wallet = wallet if wallet is not None and wallet.agent == caller.agent_id else None
    return AuditRecord(
        id=call.tx_id,
        created_at=call.now,
        method=call.method,
        request=call.request_json,
        decision=str(decision.outcome) if decision.reason is not Reason.UNAVAILABLE else "error",
        reason=str(decision.reason),
        status=status,
        agent_id=caller.agent_id,
        wallet_id=own_wallet.id if own_wallet else None,
        owner_id=caller.owner_id,
        chain_id=backend.chain_id,
        backend=backend.name,
        intents=[intent_to_json(i) for i in decoded.intents] if decoded else [],
        explanation=decision.to_json(),
        amounts=dict(decision.amounts),
        usd_value=decision.usd_value,
        claims=claims_to_json(decision.claims) if status in ("pending", "held") else [],
        timings={"decide_ms": round((time.perf_counter() - call.started) * 1000, 3)},
        notify=decision.notify,
    )


def call_json(call_id: Any, method: str, params: Any) -> dict[str, Any]:
    """The call as forwarded: exactly what was judged, with ``params`` left out when the
    agent sent none (``"params": null`` is not valid JSON-RPC for every backend)."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id, "method": method}
    if params is not None:
        out["params"] = params
    return out


def with_id(body: Any, call_id: Any) -> Response:
    """The backend's answer (or a bare result) as the answer to ``call_id``: the answer
    itself, bytes and all, when it already answers ``call_id`` (a RawAnswer)."""
    if type(body) is RawAnswer and body.answers(call_id):
        return body
    if isinstance(body, dict):
        return {**body, "id": call_id}
    return {"jsonrpc": "2.0", "id": call_id, "result": body}


def internal_error(call_id: Any, method: str) -> dict[str, Any]:
    """The answer to a call that failed in a way walletgate did not foresee (a bug, or a
    client library failing in a new way): a JSON-RPC error, never an HTTP 500. What was
    done before the failure stays recorded (a forwarded spend has its row, which
    ``reconcile`` settles), so the agent is told the outcome is not known."""
    _log.exception("internal error while handling %s", method)
    return errors.error_object(
        call_id,
        errors.INTERNAL_ERROR,
        f"walletgate failed while handling {method} (internal error, see its log); "
        "if this was a transaction, whether it was sent is not known: check its receipt",
        {"reason": "internal_error"},
    )
