"""What a judge returns: a rule's :class:`Verdict` and the findings it is made of, with
the texts of limits and amounts every judge words the same way.

Findings name the policy and rule, say what was asked against what limit, and are
immutable, so a verdict that depends only on its rule can be shared (see :func:`memo`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from walletgate.policies.amounts import format_usd
from walletgate.policies.decision import CounterClaim, Finding, Reason
from walletgate.policies.facts import RequestFacts
from walletgate.policies.limits import (
    Quantity,
    describe_limit,
    describe_quantity,
    describe_unpriced,
    is_usd,
)
from walletgate.policies.model import Limit, Policy, Rule

T = TypeVar("T")


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
    #: A held request's ``approval_timeout`` (seconds; None: the default).
    expire_after: int | None = None


def message(policy: Policy, rule: Rule, detail: str) -> str:
    return f"policy {policy.id!r}, rule {rule.id!r} ({rule.type}): {detail}"


def passed(
    policy: Policy, rule: Rule, detail: str, limit: str | None = None, asked: str | None = None
) -> Finding:
    return Finding(
        policy=policy.id,
        rule=rule.id,
        rule_type=rule.type,
        passed=True,
        reason=Reason.ALLOWED,
        message=message(policy, rule, detail),
        limit=limit,
        requested=asked,
    )


def failed(
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
        message=message(policy, rule, detail),
        limit=limit,
        requested=asked,
    )


def unpriced(policy: Policy, rule: Rule, limit: Limit, facts: RequestFacts) -> Verdict:
    """A USD rule facing an asset with no fresh price fails closed."""
    assets = describe_unpriced(facts.exposure, facts.assets)
    limit_words = limit_text(policy, rule, limit, facts)
    detail = f"no fresh USD price for {assets}, so the limit of {limit_words} cannot be checked"
    return Verdict(failed(policy, rule, Reason.PRICE_UNAVAILABLE, detail, limit_words))


def texts(
    policy: Policy, rule: Rule, limit: Limit, quantity: Quantity, facts: RequestFacts
) -> tuple[str, str]:
    """The limit (``rule``'s only one) and the requested quantity, for humans."""
    limit_words = limit_text(policy, rule, limit, facts)
    usd = facts.exposure.usd_decimal() if is_usd(limit) else None
    if usd is not None:
        # Against a USD limit the quantity is the request's USD value (``requested``),
        # whose exact Decimal the request converts once for every rule and the decision.
        return limit_words, format_usd(usd)
    return limit_words, describe_quantity(limit, quantity, facts.assets)


def limit_text(policy: Policy, rule: Rule, limit: Limit, facts: RequestFacts) -> str:
    """``describe_limit`` of ``rule``'s one limit, worked out once per rule."""
    return memo(policy, rule, facts, ("limit",), lambda: describe_limit(limit, facts.assets))


def listed(policy: Policy, rule: Rule, facts: RequestFacts, detail: str) -> Verdict:
    """The passed verdict of a list rule: it depends on nothing but ``detail``, so one
    immutable instance serves every request that passes."""
    kind = ("passed", detail)
    return memo(policy, rule, facts, kind, lambda: Verdict(passed(policy, rule, detail)))


def memo(
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


def and_more(first: str, everything: Sequence[object]) -> str:
    """``first``, noting how many more problems of the same rule there are."""
    more = len(everything) - 1
    return f"{first} (and {more} more)" if more > 0 else first
