"""``walletgate simulate``: the gateway's decision on a request file, with no side effects.

The request is judged exactly as ``serve`` would judge it: the same decoder, the same
policies (through the same cache), the same evaluator, and the counters are consulted
read-only. Nothing is forwarded, reserved or logged. Gas and fees a transaction leaves
to the backend are filled from the backend's quotes, as ``serve`` fills them, when a
backend for the chain is configured (those are reads); without one, such a transaction
is refused as it stands.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from walletgate.config.settings import Settings, SettingsError
from walletgate.intents import DecodedRequest, DecodeError, MethodClass
from walletgate.policies.decision import Decision, Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import PolicySet
from walletgate.policies.request import SpendRequest
from walletgate.proxy.answers import counter_refusal_decision
from walletgate.proxy.backend import BackendClient, new_session
from walletgate.proxy.evm.decode import decode_call
from walletgate.proxy.evm.methods import classify
from walletgate.proxy.fill import FillUnavailable, decode_with_fill
from walletgate.proxy.jsonrpc import Call, parse_body
from walletgate.storage.cache import StateCache
from walletgate.storage.counters import CounterRefusal, Counters
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.runtime import open_stores


def _chain_for(agent: str, policies: PolicySet, configured: int | None) -> int:
    if configured is not None:
        return configured
    chains = {w.chain_id for w in policies.wallets.values() if w.agent == agent}
    if len(chains) != 1:
        raise SettingsError(
            f"cannot tell which chain to judge agent {agent!r} on (its wallets are on "
            f"{sorted(chains) or 'no chain'}): set WALLETGATE_CHAIN_ID"
        )
    return chains.pop()


def _decide_offline(
    call: Call,
    agent: str,
    chain_id: int,
    policies: PolicySet,
    now: datetime,
    decoded: DecodedRequest | None = None,
) -> tuple[Decision, Any]:
    """The pure part: decode (unless ``decoded``, filled already) and evaluate; the
    counters come after."""
    method_class = classify(call.method)
    if method_class not in (MethodClass.SPENDING, MethodClass.SIGNING):
        outcome = "forward" if method_class is MethodClass.READ else "deny"
        reason = Reason.ALLOWED if outcome == "forward" else Reason.METHOD_NOT_ALLOWED
        return Decision(
            Outcome.ALLOW if outcome == "forward" else Outcome.DENY,
            reason,
            f"{call.method} is a {method_class} method: "
            + ("forwarded" if outcome == "forward" else "refused"),
        ), None
    try:
        if decoded is None:
            decoded = decode_call(call.method, call.params, chain_id=chain_id)
    except DecodeError as exc:
        return Decision(Outcome.DENY, Reason.MALFORMED, f"cannot decode {call.method}: {exc}"), None
    return evaluate(SpendRequest(agent, decoded, chain_id), policies, now), decoded


async def simulate_calls(
    calls: list[Call], agent: str, settings: Settings, now: datetime
) -> list[dict[str, Any]]:
    """Decisions for ``calls`` as the gateway would make them now, without side effects."""
    results = []
    async with open_stores(settings) as stores:
        snapshot = await StateCache(stores.redis, stores.pool, settings).snapshot()
        policies = snapshot.policies
        if agent not in policies.agents:
            raise SettingsError(f"unknown agent {agent!r}")
        chain_id = _chain_for(agent, policies, settings.chain_id)
        counters = Counters(stores.redis, PostgresClaimHistory(stores.pool))
        backend = next((b for b in settings.all_backends() if b.chain_id == chain_id), None)
        session = new_session(settings) if backend is not None else None
        client = BackendClient(backend, session) if backend and session else None
        try:
            for call in calls:
                try:
                    filled = await _filled(client, policies, call)
                except FillUnavailable as exc:
                    unavailable = f"walletgate cannot decide right now (no gas or fee quote: {exc})"
                    decision = Decision(Outcome.DENY, Reason.UNAVAILABLE, unavailable)
                    results.append({"id": call.id, "method": call.method, **decision.to_json()})
                    continue
                decision = await _decide(call, agent, chain_id, policies, counters, now, filled)
                results.append({"id": call.id, "method": call.method, **decision.to_json()})
        finally:
            if session is not None:
                await session.close()
    return results


async def _filled(
    client: BackendClient | None, policies: PolicySet, call: Call
) -> DecodedRequest | None:
    """The decoded spend with what it leaves to the backend filled, as ``serve`` fills
    it; ``None`` to decode it as it stands (no backend, or not a spend, or malformed)."""
    if client is None or classify(call.method) not in (MethodClass.SPENDING, MethodClass.SIGNING):
        return None
    try:
        return (await decode_with_fill(client, policies, call.method, call.params)).decoded
    except DecodeError:
        return None  # _decide_offline reports it


async def _decide(
    call: Call,
    agent: str,
    chain_id: int,
    policies: PolicySet,
    counters: Counters,
    now: datetime,
    decoded: DecodedRequest | None,
) -> Decision:
    """One call's decision: the pure one, then the counters, read-only."""
    decision, _decoded = _decide_offline(call, agent, chain_id, policies, now, decoded)
    if decision.outcome is Outcome.ALLOW and decision.claims:
        refusal = await counters.peek(decision.claims, now.timestamp())
        if isinstance(refusal, CounterRefusal):
            decision = counter_refusal_decision(decision, refusal)
    return decision


def _read_request(source: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read {source}: {exc.strerror}") from None


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """CLI handler: print one decision per call as JSON; exit 0 if all allowed, else 3."""
    parsed = parse_body(_read_request(args.request_file))
    if parsed.error is not None:
        print(json.dumps(parsed.error, indent=2))
        return 2
    calls = [item.call for item in parsed.items if item.call is not None]
    invalid = [item.error for item in parsed.items if item.error is not None]
    for error in invalid:
        print(json.dumps(error, indent=2))
    now = datetime.now(UTC)
    if args.at:
        try:
            now = datetime.fromisoformat(args.at)
        except ValueError:
            raise SettingsError(f"--at {args.at!r} is not an ISO-8601 time") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    results = await simulate_calls(calls, args.agent, settings, now)
    print(json.dumps(results if parsed.is_batch else results[0], indent=2, sort_keys=True))
    allowed = all(r["decision"] == "allow" for r in results) and not invalid
    return 0 if allowed else 3
