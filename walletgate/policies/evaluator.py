"""The policy evaluator: a decoded request, the compiled policies and the time → a decision.

Pure: no I/O, no clock, no globals. ``evaluate`` runs, in order,

1. admission (``policies.admission``): a well-formed spending or signing request, for a
   wallet the agent owns on the backend's chain, bound to no other chain; then the
   kill switch: a freeze on everyone, the agent or the wallet refuses it (``frozen``);
2. applicability: the enabled policies of the wallet, its agent and its owner; with none,
   the request is refused (``no_policy``);
3. coverage (``policies.coverage``): every intent needs some rule that speaks for it;
4. every applicable rule (``policies.rules``), each on its own.

Deny overrides: any failed finding refuses the request, except a tier's
``approval_required``, which holds it when nothing refuses. The decision does not depend
on the order of rules or policies: findings are sorted, failed ones first, by a fixed
reason priority (:data:`REASON_PRIORITY`), then policy id, rule id and text, and the
first failed finding decides. Cumulative caps and rate limits that depend on earlier
spends are not decided here: they become :class:`CounterClaim` values for the counters
layer (a refused request carries none).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

from walletgate.policies.admission import Refusal, admit, malformation
from walletgate.policies.claims import request_rate_claims
from walletgate.policies.contract_rules import marked_recipients
from walletgate.policies.coverage import coverage_gaps
from walletgate.policies.decision import CounterClaim, Decision, Finding, Outcome, Reason
from walletgate.policies.facts import Exposure, RequestFacts, measure, resolve_movements
from walletgate.policies.model import Freeze, Policy, PolicySet
from walletgate.policies.nfts import with_nft_semantics
from walletgate.policies.request import SpendRequest
from walletgate.policies.rules import Verdict, judge

__all__ = ["REASON_PRIORITY", "evaluate", "request_rate_claims"]

#: Which refusal speaks for a request that several rules refuse: what no amount can fix
#: (unknown assets, missing coverage, lists) before amounts, and a hold last of all.
REASON_PRIORITY: tuple[Reason, ...] = (
    Reason.UNKNOWN_ASSET,
    Reason.NO_POLICY,
    Reason.CONTRACT_NOT_ALLOWED,
    Reason.DELEGATION_NOT_ALLOWED,
    Reason.SIGNING_NOT_ALLOWED,
    Reason.UNLIMITED_APPROVAL,
    Reason.CHAIN_NOT_ALLOWED,
    Reason.DESTINATION_DENIED,
    Reason.DESTINATION_NOT_ALLOWED,
    Reason.ASSET_NOT_ALLOWED,
    Reason.OUTSIDE_TIME_WINDOW,
    Reason.PRICE_UNAVAILABLE,
    Reason.APPROVAL_LIMIT,
    Reason.PER_TX_CAP,
    Reason.FEE_CAP,
    Reason.CUMULATIVE_CAP,
    Reason.RATE_LIMITED,
    Reason.APPROVAL_REQUIRED,
)
_PRIORITY = {reason: rank for rank, reason in enumerate(REASON_PRIORITY)}


def evaluate(request: SpendRequest, policies: PolicySet, now: datetime) -> Decision:
    """Decide ``request`` under ``policies`` at ``now`` (timezone-aware), with its explanation.

    Raises ``ValueError`` only for a naive ``now``, a caller's bug; a request, however
    malformed, always gets a decision.
    """
    if now.utcoffset() is None:
        raise ValueError("evaluate() needs a timezone-aware now")
    problem = malformation(request.decoded)
    if problem is not None:
        return Decision(Outcome.DENY, Reason.MALFORMED, f"denied: malformed request: {problem}")
    # ERC-721 transferFrom / approve carry ERC-20 selectors: judged as what they are.
    request = with_nft_semantics(request, policies)
    movements = resolve_movements(request, policies)
    exposure = measure(movements, now)
    admitted = admit(request, policies)
    if isinstance(admitted, Refusal):
        return _refused(admitted, exposure)
    freeze = policies.freeze_for(request.agent_id, admitted.id)
    if freeze is not None:
        return _refused(Refusal(Reason.FROZEN, frozen_message(freeze)), exposure)
    applicable = policies.policies_for(admitted)
    if not applicable:
        refusal = Refusal(
            Reason.NO_POLICY,
            f"no enabled policy applies to wallet {admitted.id!r} "
            f"(agent {request.agent_id!r}, owner {admitted.owner!r})",
        )
        return _refused(refusal, exposure)
    rules = [(policy, rule) for policy in applicable for rule in policy.rules]
    recipients = marked_recipients(request.decoded.intents, [rule for _, rule in rules])
    facts = RequestFacts(
        request, admitted, now, policies.assets, movements, exposure, policies.judged, recipients
    )
    verdicts = [
        verdict for policy, rule in rules if (verdict := judge(policy, rule, facts)) is not None
    ]
    gaps = coverage_gaps(facts, policies, [rule for _, rule in rules])
    findings = sorted((*gaps, *(verdict.finding for verdict in verdicts)), key=finding_order)
    return _decide(tuple(findings), verdicts, exposure, applicable)


def frozen_message(freeze: Freeze) -> str:
    """Why a frozen request is refused: what is frozen, by whom, since when, and why."""
    since = freeze.frozen_at.isoformat(timespec="seconds")
    return f"{freeze.describe()} is frozen (by {freeze.frozen_by} at {since}: {freeze.reason})"


def finding_order(finding: Finding) -> tuple[object, ...]:
    """Sort key of findings: failed first, by reason priority, then by name and text."""
    return (
        finding.passed,
        _PRIORITY.get(finding.reason, len(_PRIORITY)),
        finding.policy,
        finding.rule,
        finding.rule_type,
        finding.message,
        finding.limit or "",
        finding.requested or "",
    )


def _decide(
    findings: tuple[Finding, ...],
    verdicts: Sequence[Verdict],
    exposure: Exposure,
    applicable: Sequence[Policy],
) -> Decision:
    failed = [finding for finding in findings if not finding.passed]
    holds = [
        verdict
        for verdict in verdicts
        if not verdict.finding.passed and verdict.finding.reason is Reason.APPROVAL_REQUIRED
    ]
    notify = any(verdict.notify for verdict in verdicts)
    delay: int | None = None
    timeout: int | None = None
    if len(failed) > len(holds):
        outcome, reason = Outcome.DENY, failed[0].reason
        others = len(failed) - 1
        more = f" ({others} more finding{'s' if others > 1 else ''} failed)" if others else ""
        message = f"denied: {failed[0].message}{more}"
    elif holds:
        outcome, reason = Outcome.HOLD, Reason.APPROVAL_REQUIRED
        delays = [verdict.release_after for verdict in holds]
        # An owner-approval hold outranks any delay; several delays wait for the longest.
        delay = None if None in delays else max(d for d in delays if d is not None)
        # The strictest timeout of the holding tiers bounds how long the hold may wait.
        timeouts = [v.expire_after for v in holds if v.expire_after is not None]
        timeout = min(timeouts) if timeouts else None
        message = f"held: {failed[0].message}"
    else:
        outcome, reason = Outcome.ALLOW, Reason.ALLOWED
        names = ", ".join(sorted(repr(policy.id) for policy in applicable))
        message = f"allowed: {len(findings)} rules of {names} passed"
        if notify:
            message += "; the owner is notified"
    claims = () if outcome is Outcome.DENY else _claims(verdicts)
    return Decision(
        outcome,
        reason,
        message,
        findings=findings,
        claims=claims,
        usd_value=_usd(exposure),
        amounts=exposure.amounts,
        notify=notify,
        hold_delay_seconds=delay,
        hold_timeout_seconds=timeout,
    )


def _claims(verdicts: Sequence[Verdict]) -> tuple[CounterClaim, ...]:
    claims = (verdict.claim for verdict in verdicts if verdict.claim is not None)
    return tuple(sorted(claims, key=attrgetter("key")))


def _refused(refusal: Refusal, exposure: Exposure) -> Decision:
    return Decision(
        Outcome.DENY,
        refusal.reason,
        f"denied: {refusal.message}",
        usd_value=_usd(exposure),
        amounts=exposure.amounts,
    )


def _usd(exposure: Exposure) -> Decimal | None:
    return exposure.usd_decimal()
