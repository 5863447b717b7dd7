"""An oracle for what a recorded gateway must answer and forward, built from the pure
parts walletgate is made of (``parse_body``, ``decode_call``, ``evaluate`` over the same
compiled policies). :func:`served_like_the_oracle` sends one body and checks that:

- a body that does not parse gets exactly the oracle's error, and nothing is forwarded;
- an invalid request object gets exactly the oracle's error response, in its position;
- a call the oracle refuses is refused with the oracle's code and reason and never
  reaches the backend (the recording backend would show it);
- a spend the oracle allows either reaches the backend as the very document that was
  judged, with an audit row written before, or is refused by a counter (a cap or rate);
- a spend that leaves gas or fees to the backend is filled by the gateway: if it reaches
  the backend, it does so with only gas and fee fields added, complete, allowed by the
  oracle as filled and audited; otherwise it is refused;
  a read may reach it (or be answered from the balance cache);
- there is never an HTTP 500, nor a response that is not JSON-RPC.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from hypothesis import event

from tests.support.recorded_gateway import RecordedGateway
from walletgate.intents import DecodeError, MethodClass
from walletgate.policies.decision import Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.request import SpendRequest
from walletgate.proxy import errors
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.fees import FILLED_FIELDS, MissingFeeFields
from walletgate.proxy.evm.methods import OWN_ACCOUNT_METHODS, classify
from walletgate.proxy.jsonrpc import Call, dumps, loads_strict, parse_body

CHAIN_ID = 1337
#: Refusals the oracle cannot foresee: they depend on what was counted before.
COUNTER_REASONS = {Reason.CUMULATIVE_CAP, Reason.RATE_LIMITED}


@dataclass(frozen=True)
class Expected:
    """What the oracle says about one call."""

    may_forward: bool
    code: int | None = None  # the error code of a certain refusal
    reason: str | None = None  # its reason, when it is a policy decision
    result: Any = None  # walletgate's own answer, for a call it answers itself
    filled: bool = False  # the gateway fills gas and fees before judging it


def expected(call: Call, gw: RecordedGateway, now: datetime) -> Expected:
    """The oracle: the pure pipeline, as the gateway runs it for alice."""
    method_class = classify(call.method)
    if method_class is MethodClass.READ:
        return Expected(may_forward=True)
    if call.method in OWN_ACCOUNT_METHODS:
        if call.params not in (None, []):
            return Expected(False, errors.INVALID_PARAMS)
        return Expected(False, result=list(gw.policies.agent_addresses("alice", CHAIN_ID)))
    if method_class not in (MethodClass.SPENDING, MethodClass.SIGNING):
        return Expected(False, errors.METHOD_NOT_SUPPORTED, str(Reason.METHOD_NOT_ALLOWED))
    try:
        decoded = decode_call(call.method, call.params, chain_id=CHAIN_ID)
    except MissingFeeFields:
        return Expected(may_forward=True, filled=True)
    except DecodeError as exc:
        return Expected(False, exc.code, str(Reason.MALFORMED))
    decision = evaluate(SpendRequest("alice", decoded, CHAIN_ID), gw.policies, now)
    if decision.outcome is Outcome.ALLOW:
        return Expected(may_forward=True)
    return Expected(False, errors.code_for_reason(decision.reason), str(decision.reason))


def _is_refusal(response: dict[str, Any]) -> bool:
    """A refusal by walletgate itself (a backend's own error carries no decision)."""
    data = response.get("error", {}).get("data")
    return isinstance(data, dict) and data.get("decision") == "deny"


def _same_call(forwarded: dict[str, Any], call: Call) -> bool:
    return forwarded.get("method") == call.method and forwarded.get("params") == json.loads(
        dumps(call.params)
    )


def _filled_call(forwarded: dict[str, Any], call: Call) -> bool:
    """``forwarded`` is ``call`` with gas and fee fields added, and nothing else changed."""
    sent, params = forwarded.get("params"), json.loads(dumps(call.params))
    if forwarded.get("method") != call.method or not (
        isinstance(sent, list) and isinstance(params, list) and len(sent) == len(params) == 1
    ):
        return False
    (tx,), (original,) = sent, params
    return (
        isinstance(tx, dict)
        and isinstance(original, dict)
        and {key: tx.get(key) for key in original} == original
        and set(tx) - set(original) <= FILLED_FIELDS
    )


def _check_filled(
    gw: RecordedGateway,
    call: Call,
    response: dict[str, Any] | None,
    forwarded: list[Any],
    now: datetime,
) -> None:
    """A call the gateway fills: forwarded only as the complete, allowed, audited filled
    call (or unchanged, for wallet_sendCalls, whose fees are estimated), else refused."""
    reached = [f for f in forwarded if _same_call(f, call) or _filled_call(f, call)]
    event(f"{classify(call.method)}: filled, " + ("forwarded" if reached else "refused"))
    if not reached:
        assert response is None or _is_refusal(response) or "error" in response, response
        return
    if call.method != "wallet_sendCalls":
        # The filled document decodes as it is (nothing left to the backend) and passes.
        decoded = decode_call(call.method, reached[0]["params"], chain_id=CHAIN_ID)
        decision = evaluate(SpendRequest("alice", decoded, CHAIN_ID), gw.policies, now)
        assert decision.outcome is Outcome.ALLOW, decision.message
    assert _audited(gw, call.method, now), f"forwarded {call.method} has no audit row"


def _audited(gw: RecordedGateway, method: str, since: datetime) -> bool:
    """An allow row for a ``method`` call made after ``since`` was written (the pipeline
    writes it before forwarding; requests here are sent one at a time)."""

    async def count() -> int:
        conn = await asyncpg.connect(gw.database_url)
        try:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM transactions"
                " WHERE decision = 'allow' AND method = $1 AND created_at >= $2",
                method,
                since,
            )
            return found
        finally:
            await conn.close()

    # In a thread of its own: this test's thread belongs to pytest-asyncio's loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result() > 0


def served_like_the_oracle(gw: RecordedGateway, body: bytes) -> None:
    """Send ``body`` and check the answer and the backend against the oracle."""
    mark = gw.backend.mark()
    now = datetime.now(UTC)
    status, raw = gw.post(body)
    forwarded = gw.backend.forwarded_calls(mark)
    assert status in (200, 204), (status, raw[:300])
    parsed = parse_body(body)
    if parsed.error is not None:
        event(f"body refused: {parsed.error['error']['code']}")
        assert status == 200 and loads_strict(raw) == parsed.error
        assert forwarded == [], "an unparsable body reached the backend"
        return
    answer = loads_strict(raw) if status == 200 else None
    responses = list(answer) if parsed.is_batch and answer is not None else [answer]
    if status == 204:
        responses = []
    position = 0
    for item in parsed.items:
        if item.error is not None:
            assert responses[position] == item.error
            position += 1
            continue
        assert item.call is not None
        call = item.call
        oracle = expected(call, gw, now)
        response: dict[str, Any] | None = None
        if not call.is_notification:
            response = responses[position]
            position += 1
            assert isinstance(response, dict) and response.get("jsonrpc") == "2.0", response
            assert response["id"] == call.id
            assert ("result" in response) != ("error" in response), response
        if oracle.filled:
            _check_filled(gw, call, response, forwarded, now)
            continue
        reached = any(_same_call(f, call) for f in forwarded)
        event(
            f"{classify(call.method)}: " + ("forwarded" if reached else f"refused {oracle.reason}")
        )
        if not oracle.may_forward:
            assert not reached, f"refused {call.method} reached the backend"
            if response is not None and oracle.code is None:
                assert response.get("result") == oracle.result, (response, oracle)
            elif response is not None:
                assert response["error"]["code"] == oracle.code, (response, oracle)
                data = response["error"].get("data") or {}
                assert data.get("reason") == oracle.reason, (response, oracle)
            continue
        if response is not None and _is_refusal(response):
            reason = response["error"]["data"]["reason"]
            assert reason in COUNTER_REASONS, (response, "the oracle allowed it")
            assert not reached
            continue
        if classify(call.method) is MethodClass.READ:
            continue  # forwarded, or answered from the balance cache
        assert reached, f"allowed {call.method} was answered but not forwarded: {response}"
        assert _audited(gw, call.method, now), f"forwarded {call.method} has no audit row"
    assert position == len(responses), "more responses than calls"
