"""One small judge per rule type: what a single rule says about a single request.

Each judge sees one rule and the resolved :class:`RequestFacts`, never another rule, so
a verdict cannot depend on rule or policy order and adding a rule cannot change another
rule's verdict. A failed finding refuses the request (a tier's ``approval_required``
holds it instead); passed findings are kept for the explanation. Allowlists judge only
what they list: a request with no contract call passes every contract allowlist, and it
is the coverage check (``policies.coverage``) that refuses a call no allowlist admits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from walletgate.intents import (
    ANYONE,
    Delegation,
    MethodClass,
    NftApproval,
    TokenApproval,
)
from walletgate.policies.amounts import format_usd, micro_usd_at_least, micro_usd_at_most
from walletgate.policies.claims import MICRO_USD, REQUESTS, cap_claim, rate_claim, scope_id
from walletgate.policies.contract_rules import contract_problems
from walletgate.policies.decision import CounterClaim, Finding, Reason
from walletgate.policies.facts import RequestFacts, describe_movement, measure
from walletgate.policies.fee_rules import fee_cap, is_fee
from walletgate.policies.limits import (
    Quantity,
    applies_to,
    base_units_of,
    describe_limit,
    describe_quantity,
    describe_unpriced,
    exceeds,
    is_usd,
    requested,
    unit_of,
    usd_of,
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
    Limit,
    PerTxCap,
    Policy,
    RateLimit,
    Rule,
    SigningAllowlist,
    Tier,
    TimeWindow,
    Window,
)
from walletgate.policies.signing import signing_allowlist

T = TypeVar("T")

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's finding, with what it asks of the counters and of the owner.

    ``release_after`` belongs to a held request (a failed ``approval_required``
    finding): seconds until a ``delay`` tier lets it go, ``None`` for owner approval.
    """

    finding: Finding
    claim: CounterClaim | None = None
    notify: bool = False
    release_after: int | None = None


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
        return _unpriced(policy, rule, rule.limit, facts)
    limit, asked = _texts(policy, rule, rule.limit, quantity, facts)
    if exceeds(rule.limit, quantity):
        detail = f"{asked} requested, over the per-transaction cap of {limit}"
        return Verdict(_failed(policy, rule, Reason.PER_TX_CAP, detail, limit, asked))
    detail = f"{asked} requested, within the per-transaction cap of {limit}"
    return Verdict(_passed(policy, rule, detail, limit, asked))


def cumulative_cap(policy: Policy, rule: CumulativeCap, facts: RequestFacts) -> Verdict:
    """Claims the request's amount against a windowed cap; refuses it if it alone exceeds it.

    USD is claimed in micro-dollars, the amount rounded up and the cap rounded down, so
    the counters' check is never looser than the policy.
    """
    quantity = requested(rule.limit, facts.exposure)
    if quantity is None:
        return _unpriced(policy, rule, rule.limit, facts)
    limit, asked = _texts(policy, rule, rule.limit, quantity, facts)
    per, unit, cap = _memo(policy, rule, facts, ("cap",), lambda: _cap_terms(rule))
    amount = micro_usd_at_least(quantity) if is_usd(rule.limit) else int(quantity)
    if amount > cap:
        detail = f"{asked} requested, more than the whole cap of {limit} per {per}"
        return Verdict(_failed(policy, rule, Reason.CUMULATIVE_CAP, detail, limit, asked))
    claim = None
    if amount > 0:
        entity = scope_id(rule.scope, facts.wallet, facts.request.agent_id)
        claim = cap_claim(policy, rule, key_scope_id=entity, unit=unit, amount=amount, limit=cap)
    detail = f"{asked} requested against the cap of {limit} per {per} (per {rule.scope})"
    return Verdict(_passed(policy, rule, detail, limit, asked), claim=claim)


def _cap_terms(rule: CumulativeCap) -> tuple[str, str, int]:
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
    return _memo(policy, rule, facts, counted, lambda: _count_transaction(policy, rule, entity))


def _count_transaction(policy: Policy, rule: RateLimit, entity: str) -> Verdict:
    limit = f"{rule.max} transactions per {_duration(rule.per_seconds)}"
    if rule.max < 1:
        detail = f"no transactions allowed ({limit})"
        return Verdict(_failed(policy, rule, Reason.RATE_LIMITED, detail, limit, "1 transaction"))
    detail = f"1 transaction counted against {limit} (per {rule.scope})"
    return Verdict(
        _passed(policy, rule, detail, limit, "1 transaction"),
        claim=rate_claim(policy, rule, key_scope_id=entity),
    )


def approval_limit(policy: Policy, rule: ApprovalLimit, facts: RequestFacts) -> Verdict:
    """Each approval the limit applies to is at most its maximum; unlimited ones only if allowed."""
    limit = _limit_text(policy, rule, rule.limit, facts)
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
        return Verdict(_failed(policy, rule, reason, _and_more(detail, problems), limit, asked))
    return Verdict(_passed(policy, rule, f"approvals are within {limit}", limit))


def tier(policy: Policy, rule: Tier, facts: RequestFacts) -> Verdict:
    """Above its threshold a request is notified, delayed, or held for the owner's approval."""
    quantity = requested(rule.above, facts.exposure)
    if quantity is None:
        return _unpriced(policy, rule, rule.above, facts)
    above, asked = _texts(policy, rule, rule.above, quantity, facts)
    if not exceeds(rule.above, quantity):
        detail = f"{asked} is not above the {rule.action} threshold of {above}"
        return Verdict(_passed(policy, rule, detail, above, asked))
    if rule.action == "notify":
        detail = f"{asked} is above {above}: the owner is notified"
        return Verdict(_passed(policy, rule, detail, above, asked), notify=True)
    if rule.action == "delay":
        detail = f"{asked} is above {above}: held for {_duration(rule.delay_seconds)}"
        finding = _failed(policy, rule, Reason.APPROVAL_REQUIRED, detail, above, asked)
        return Verdict(finding, release_after=rule.delay_seconds)
    # require_approval, and any action this version does not know: the strictest hold.
    detail = f"{asked} is above {above}: held for the owner's approval"
    return Verdict(_failed(policy, rule, Reason.APPROVAL_REQUIRED, detail, above, asked))


# -- list rules ------------------------------------------------------------------------


def describe_destination(address: str) -> str:
    """A destination for humans: the address, or what :data:`ANYONE` stands for."""
    if address == ANYONE:
        return f"anyone ({ANYONE}: whoever fulfils or executes the signed document)"
    return address


def destination_allowlist(
    policy: Policy, rule: DestinationAllowlist, facts: RequestFacts
) -> Verdict:
    """Every recipient and approval spender is listed."""
    unlisted = sorted(facts.destinations - rule.addresses)
    if unlisted:
        first = describe_destination(unlisted[0])
        detail = _and_more(f"{first} is not on the destination allowlist", unlisted)
        return Verdict(
            _failed(policy, rule, Reason.DESTINATION_NOT_ALLOWED, detail, None, unlisted[0])
        )
    return _listed(policy, rule, facts, "every destination is on the allowlist")


def destination_denylist(policy: Policy, rule: DestinationDenylist, facts: RequestFacts) -> Verdict:
    """No recipient or approval spender is listed. Value that anyone may take (an open
    order's fulfiller, a refunded executor) may go to a listed address too."""
    listed = sorted(facts.destinations & rule.addresses)
    if ANYONE in facts.destinations and rule.addresses and ANYONE not in listed:
        listed.insert(0, ANYONE)
    if listed:
        first = (
            f"{describe_destination(ANYONE)} includes every address on the denylist"
            if listed[0] == ANYONE
            else f"{listed[0]} is on the destination denylist"
        )
        detail = _and_more(first, listed)
        return Verdict(_failed(policy, rule, Reason.DESTINATION_DENIED, detail, None, listed[0]))
    return _listed(policy, rule, facts, "no destination is on the denylist")


def asset_allowlist(policy: Policy, rule: AssetAllowlist, facts: RequestFacts) -> Verdict:
    """Every asset moved or approved is listed (network fees, paid in the native coin
    whatever the transaction moves, are not judged here: caps and fee caps bound them)."""
    unlisted = sorted(
        {
            movement.asset.symbol
            for movement in facts.movements
            if movement.asset.id not in rule.assets and not is_fee(movement.intent)
        }
    )
    if unlisted:
        detail = _and_more(f"{unlisted[0]} is not on the asset allowlist", unlisted)
        return Verdict(_failed(policy, rule, Reason.ASSET_NOT_ALLOWED, detail, None, unlisted[0]))
    return _listed(policy, rule, facts, "every asset is on the allowlist")


def contract_allowlist(policy: Policy, rule: ContractAllowlist, facts: RequestFacts) -> Verdict:
    """Every contract call is admitted by a listed (contract, method) and its conditions;
    creation only if allowed (the checks: ``policies.contract_rules``)."""
    refused = contract_problems(rule, facts.intents, facts.wallet.address, facts.movements)
    if refused:
        detail = _and_more(refused[0], refused)
        return Verdict(_failed(policy, rule, Reason.CONTRACT_NOT_ALLOWED, detail))
    return _listed(policy, rule, facts, "every contract call is on the allowlist")


def chain_allowlist(policy: Policy, rule: ChainAllowlist, facts: RequestFacts) -> Verdict:
    """The backend's chain is listed."""
    chain = facts.request.chain_id
    if chain not in rule.chains:
        detail = f"chain {chain} is not on the chain allowlist"
        return Verdict(_failed(policy, rule, Reason.CHAIN_NOT_ALLOWED, detail, None, str(chain)))
    return _listed(policy, rule, facts, f"chain {chain} is allowed")


def delegation_allowlist(policy: Policy, rule: DelegationAllowlist, facts: RequestFacts) -> Verdict:
    """Every EIP-7702 delegate is listed."""
    delegates = {intent.delegate for intent in facts.intents if isinstance(intent, Delegation)}
    unlisted = sorted(delegates - rule.delegates)
    if unlisted:
        detail = _and_more(f"delegation to {unlisted[0]} is not on the allowlist", unlisted)
        return Verdict(
            _failed(policy, rule, Reason.DELEGATION_NOT_ALLOWED, detail, None, unlisted[0])
        )
    return _listed(policy, rule, facts, "every delegate is on the allowlist")


# -- time ------------------------------------------------------------------------------


def time_window(policy: Policy, rule: TimeWindow, facts: RequestFacts) -> Verdict:
    """``now``, in the rule's time zone, falls in the window on an allowed day."""
    window = describe_time_window(rule)
    try:
        zone = ZoneInfo(rule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        detail = f"unknown time zone {rule.timezone!r}, so no time is inside {window}"
        return Verdict(_failed(policy, rule, Reason.OUTSIDE_TIME_WINDOW, detail, window))
    local = facts.now.astimezone(zone)
    at = f"{_DAY_NAMES[local.weekday()]} {local:%H:%M} {rule.timezone}"
    if not in_time_window(rule, local):
        detail = f"{at} is outside {window}"
        return Verdict(_failed(policy, rule, Reason.OUTSIDE_TIME_WINDOW, detail, window, at))
    return Verdict(_passed(policy, rule, f"{at} is inside {window}", window, at))


def in_time_window(rule: TimeWindow, local: datetime) -> bool:
    """True when local wall-clock ``local`` is inside the window.

    A window whose end is before its start crosses midnight, and the hours after
    midnight belong to the day it started: Fri 22:00–06:00 admits Saturday 05:00. A
    window whose start equals its end is empty.
    """
    clock, day = local.time(), local.weekday()
    if rule.start < rule.end:
        return day in rule.days and rule.start <= clock < rule.end
    if rule.end < rule.start:
        if clock >= rule.start:
            return day in rule.days
        return clock < rule.end and (day - 1) % 7 in rule.days
    return False


def describe_time_window(rule: TimeWindow) -> str:
    """The window for humans: ``"Mon, Tue 09:00–17:00 Europe/Berlin"``."""
    days = ", ".join(_DAY_NAMES[day] for day in sorted(rule.days)) or "no day"
    return f"{days} {rule.start:%H:%M}–{rule.end:%H:%M} {rule.timezone}"


def describe_window(window: Window) -> str:
    """A counting window for humans: ``"24h"`` or ``"calendar month (Europe/Berlin)"``."""
    if window.seconds is not None:
        return _duration(window.seconds)
    return f"calendar {window.calendar} ({window.timezone})"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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


# -- findings --------------------------------------------------------------------------


def _message(policy: Policy, rule: Rule, detail: str) -> str:
    return f"policy {policy.id!r}, rule {rule.id!r} ({rule.type}): {detail}"


def _passed(
    policy: Policy, rule: Rule, detail: str, limit: str | None = None, asked: str | None = None
) -> Finding:
    return Finding(
        policy=policy.id,
        rule=rule.id,
        rule_type=rule.type,
        passed=True,
        reason=Reason.ALLOWED,
        message=_message(policy, rule, detail),
        limit=limit,
        requested=asked,
    )


def _failed(
    policy: Policy,
    rule: Rule,
    reason: Reason,
    detail: str,
    limit: str | None = None,
    asked: str | None = None,
) -> Finding:
    return Finding(
        policy=policy.id,
        rule=rule.id,
        rule_type=rule.type,
        passed=False,
        reason=reason,
        message=_message(policy, rule, detail),
        limit=limit,
        requested=asked,
    )


def _unpriced(policy: Policy, rule: Rule, limit: Limit, facts: RequestFacts) -> Verdict:
    """A USD rule facing an asset with no fresh price fails closed."""
    assets = describe_unpriced(facts.exposure, facts.assets)
    limit_text = _limit_text(policy, rule, limit, facts)
    detail = f"no fresh USD price for {assets}, so the limit of {limit_text} cannot be checked"
    return Verdict(_failed(policy, rule, Reason.PRICE_UNAVAILABLE, detail, limit_text))


def _texts(
    policy: Policy, rule: Rule, limit: Limit, quantity: Quantity, facts: RequestFacts
) -> tuple[str, str]:
    """The limit (``rule``'s only one) and the requested quantity, for humans."""
    limit_text = _limit_text(policy, rule, limit, facts)
    usd = facts.exposure.usd_decimal() if is_usd(limit) else None
    if usd is not None:
        # Against a USD limit the quantity is the request's USD value (``requested``),
        # whose exact Decimal the request converts once for every rule and the decision.
        return limit_text, format_usd(usd)
    return limit_text, describe_quantity(limit, quantity, facts.assets)


def _limit_text(policy: Policy, rule: Rule, limit: Limit, facts: RequestFacts) -> str:
    """``describe_limit`` of ``rule``'s one limit, worked out once per rule."""
    return _memo(policy, rule, facts, ("limit",), lambda: describe_limit(limit, facts.assets))


def _listed(policy: Policy, rule: Rule, facts: RequestFacts, detail: str) -> Verdict:
    """The passed verdict of a list rule: it depends on nothing but ``detail``, so one
    immutable instance serves every request that passes."""
    passed = ("passed", detail)
    return _memo(policy, rule, facts, passed, lambda: Verdict(_passed(policy, rule, detail)))


def _memo(
    policy: Policy,
    rule: Rule,
    facts: RequestFacts,
    what: tuple[str, ...],
    derive: Callable[[], T],
) -> T:
    """``derive()``, worked out once per rule of the policy set and ``what``.

    Only for what depends on nothing but the rule, its policy and ``what`` (a kind, then
    the facts it depends on): a text, or a verdict (verdicts, findings and claims are
    immutable, so they can be shared). The memo lives with the policy set
    (:attr:`RequestFacts.judged`), so ``what`` must come from a bounded set (entity
    ids, constant texts), never from amounts.
    """
    key = (id(policy), id(rule), what)
    entry = facts.judged.get(key)
    if entry is not None and entry[0] is policy and entry[1] is rule:
        return cast(T, entry[2])
    value = derive()
    facts.judged[key] = (policy, rule, value)
    return value


def _and_more(first: str, everything: Sequence[object]) -> str:
    """``first``, noting how many more problems of the same rule there are."""
    more = len(everything) - 1
    return f"{first} (and {more} more)" if more > 0 else first
