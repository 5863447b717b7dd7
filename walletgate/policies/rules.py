"""One small judge per rule type: what a single rule says about a single request.

Each judge sees one rule and the resolved :class:`RequestFacts`, never another rule, so
a verdict cannot depend on rule or policy order and adding a rule cannot change another
rule's verdict. A failed finding refuses the request (a tier's ``approval_required``
holds it instead); passed findings are kept for the explanation.

This module holds the amount rules (caps, rates, approval limits, tiers) and the table
of every rule type's judge; the list rules are in ``policies.list_rules``, time windows
in ``policies.time_rules``, fee caps in ``policies.fee_rules``, signing in
``policies.signing``, and what a verdict is made of in ``policies.verdicts``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from walletgate.intents import MethodClass, NftApproval, TokenApproval
from walletgate.policies.amounts import micro_usd_at_least, micro_usd_at_most
from walletgate.policies.claims import MICRO_USD, REQUESTS, cap_claim, rate_claim, scope_id
from walletgate.policies.decision import Reason
from walletgate.policies.facts import RequestFacts, describe_movement, measure
from walletgate.policies.fee_rules import fee_cap
from walletgate.policies.limits import (
    applies_to,
    base_units_of,
    describe_quantity,
    exceeds,
    is_usd,
    requested,
    unit_of,
    usd_of,
)
from walletgate.policies.list_rules import (
    asset_allowlist,
    chain_allowlist,
    contract_allowlist,
    delegation_allowlist,
    destination_allowlist,
    destination_denylist,
)
from walletgate.policies.model import (
    ApprovalLimit,
    AssetAllowlist,
    ChainAllowlist,
    ContractAllowlist,
    CumulativeCap,
    DelegationAllowlist,
    DestinationAllowlist,
    DestinationDenylist,
    FeeCap,
    PerTxCap,
    Policy,
    RateLimit,
    Rule,
    SigningAllowlist,
    Tier,
    TimeWindow,
)
from walletgate.policies.signing import signing_allowlist
from walletgate.policies.time_rules import describe_window, duration, time_window
from walletgate.policies.verdicts import (
    Verdict,
    and_more,
    failed,
    limit_text,
    memo,
    passed,
    texts,
    unpriced,
)

__all__ = ["Verdict", "cap_terms", "judge"]


def judge(policy: Policy, rule: Rule, facts: RequestFacts) -> Verdict | None:
    """The verdict of ``rule`` (in ``policy``) on the request; ``None`` if it does not judge it."""
    # One dictionary lookup per rule: the judges by rule type are at the end of this
    # module (no rule type has subclasses).
    judge_of_type = _JUDGES.get(type(rule))
    return None if judge_of_type is None else judge_of_type(policy, rule, facts)


# -- amount rules ----------------------------------------------------------------------


def per_tx_cap(policy: Policy, rule: PerTxCap, facts: RequestFacts) -> Verdict:
    """The request's total in the cap's asset (or its USD value) is at most the cap."""
    quantity = requested(rule.limit, facts.exposure)
    if quantity is None:
        return unpriced(policy, rule, rule.limit, facts)
    limit, asked = texts(policy, rule, rule.limit, quantity, facts)
    if exceeds(rule.limit, quantity):
        detail = f"{asked} requested, over the per-transaction cap of {limit}"
        return Verdict(failed(policy, rule, Reason.PER_TX_CAP, detail, limit, asked))
    detail = f"{asked} requested, within the per-transaction cap of {limit}"
    return Verdict(passed(policy, rule, detail, limit, asked))


def cumulative_cap(policy: Policy, rule: CumulativeCap, facts: RequestFacts) -> Verdict:
    """Claims the request's amount against a windowed cap; refuses it if it alone exceeds it.

    USD is claimed in micro-dollars, the amount rounded up and the cap rounded down, so
    the counters' check is never looser than the policy.
    """
    quantity = requested(rule.limit, facts.exposure)
    if quantity is None:
        return unpriced(policy, rule, rule.limit, facts)
    limit, asked = texts(policy, rule, rule.limit, quantity, facts)
    per, unit, cap = memo(policy, rule, facts, ("cap",), lambda: cap_terms(rule))
    amount = micro_usd_at_least(quantity) if is_usd(rule.limit) else int(quantity)
    if amount > cap:
        detail = f"{asked} requested, more than the whole cap of {limit} per {per}"
        return Verdict(failed(policy, rule, Reason.CUMULATIVE_CAP, detail, limit, asked))
    claim = None
    if amount > 0:
        entity = scope_id(rule.scope, facts.wallet, facts.request.agent_id)
        claim = cap_claim(policy, rule, key_scope_id=entity, unit=unit, amount=amount, limit=cap)
    detail = f"{asked} requested against the cap of {limit} per {per} (per {rule.scope})"
    return Verdict(passed(policy, rule, detail, limit, asked), claim=claim)


def cap_terms(rule: CumulativeCap) -> tuple[str, str, int]:
    """A cumulative cap's window for humans, its counter's unit and the cap in that unit.

    USD is claimed in micro-dollars with the cap rounded down (see :func:`cumulative_cap`).
    """
    per = describe_window(rule.window)
    if is_usd(rule.limit):
        return per, MICRO_USD, micro_usd_at_most(usd_of(rule.limit))
    return per, unit_of(rule.limit), base_units_of(rule.limit)


def rate_limit(policy: Policy, rule: RateLimit, facts: RequestFacts) -> Verdict | None:
    """Counts one transaction per spending request (request counts are the proxy's)."""
    if rule.counts == REQUESTS or facts.request.decoded.method_class is not MethodClass.SPENDING:
        return None
    entity = scope_id(rule.scope, facts.wallet, facts.request.agent_id)
    # Nothing else of the request matters: one verdict per counter, worked out once.
    counted = ("counted", entity)
    return memo(policy, rule, facts, counted, lambda: _count_transaction(policy, rule, entity))


def _count_transaction(policy: Policy, rule: RateLimit, entity: str) -> Verdict:
    limit = f"{rule.max} transactions per {duration(rule.per_seconds)}"
    if rule.max < 1:
        detail = f"no transactions allowed ({limit})"
        return Verdict(failed(policy, rule, Reason.RATE_LIMITED, detail, limit, "1 transaction"))
    detail = f"1 transaction counted against {limit} (per {rule.scope})"
    return Verdict(
        passed(policy, rule, detail, limit, "1 transaction"),
        claim=rate_claim(policy, rule, key_scope_id=entity),
    )


def approval_limit(policy: Policy, rule: ApprovalLimit, facts: RequestFacts) -> Verdict:
    """Each approval the limit applies to is at most its maximum; unlimited ones only if allowed."""
    limit = limit_text(policy, rule, rule.limit, facts)
    problems: list[tuple[int, Reason, str, str | None]] = []
    for movement in facts.movements:
        intent = movement.intent
        # NFT approvals too: one token counts 1, setApprovalForAll is unlimited.
        if not isinstance(intent, TokenApproval | NftApproval):
            continue
        if not applies_to(rule.limit, movement.asset):
            continue
        what = describe_movement(movement, facts.wallet.address)
        if intent.unlimited:
            if not rule.allow_unlimited:
                problems.append((0, Reason.UNLIMITED_APPROVAL, f"{what} is not allowed", None))
            continue
        quantity = requested(rule.limit, measure([movement], facts.now))
        if quantity is None:
            detail = f"{what} has no fresh USD price to check against {limit}"
            problems.append((1, Reason.PRICE_UNAVAILABLE, detail, None))
        elif exceeds(rule.limit, quantity):
            over = describe_quantity(rule.limit, quantity, facts.assets)
            problems.append((2, Reason.APPROVAL_LIMIT, f"{what} is over {limit}", over))
    if problems:
        _, reason, detail, asked = min(problems, key=lambda problem: problem[:3])
        return Verdict(failed(policy, rule, reason, and_more(detail, problems), limit, asked))
    return Verdict(passed(policy, rule, f"approvals are within {limit}", limit))


def tier(policy: Policy, rule: Tier, facts: RequestFacts) -> Verdict:
    """Above its threshold a request is notified, delayed, or held for the owner's approval."""
    quantity = requested(rule.above, facts.exposure)
    if quantity is None:
        return unpriced(policy, rule, rule.above, facts)
    above, asked = texts(policy, rule, rule.above, quantity, facts)
    if not exceeds(rule.above, quantity):
        detail = f"{asked} is not above the {rule.action} threshold of {above}"
        return Verdict(passed(policy, rule, detail, above, asked))
    if rule.action == "notify":
        detail = f"{asked} is above {above}: the owner is notified"
        return Verdict(passed(policy, rule, detail, above, asked), notify=True)
    if rule.action == "delay":
        detail = f"{asked} is above {above}: held for {duration(rule.delay_seconds)}"
        finding = failed(policy, rule, Reason.APPROVAL_REQUIRED, detail, above, asked)
        return Verdict(
            finding,
            release_after=rule.delay_seconds,
            expire_after=rule.approval_timeout_seconds,
        )
    # require_approval, and any action this version does not know: the strictest hold.
    detail = f"{asked} is above {above}: held for the owner's approval"
    return Verdict(
        failed(policy, rule, Reason.APPROVAL_REQUIRED, detail, above, asked),
        expire_after=rule.approval_timeout_seconds,
    )


#: The judge of each rule type (see :func:`judge`).
_JUDGES: dict[type, Callable[[Policy, Any, RequestFacts], Verdict | None]] = {
    PerTxCap: per_tx_cap,
    CumulativeCap: cumulative_cap,
    RateLimit: rate_limit,
    DestinationAllowlist: destination_allowlist,
    DestinationDenylist: destination_denylist,
    AssetAllowlist: asset_allowlist,
    ContractAllowlist: contract_allowlist,
    ChainAllowlist: chain_allowlist,
    TimeWindow: time_window,
    ApprovalLimit: approval_limit,
    Tier: tier,
    SigningAllowlist: signing_allowlist,
    DelegationAllowlist: delegation_allowlist,
    FeeCap: fee_cap,
}
