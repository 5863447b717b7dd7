"""Counter claims: what the counters layer must reserve before a request is forwarded.

Cumulative caps and rate limits depend on what was spent before, which only the
counters (Redis) know; the evaluator states the claim and the counters decide it. A
claim's key is ``{scope}:{scope id}:{policy}:{rule}:{unit}``: its first two parts name
the entity the counter belongs to (the counters layer hash-tags on them), so that, for
example, an agent-scoped cap attached to an owner counts per agent.
"""

from __future__ import annotations

from walletgate.policies.decision import CounterClaim
from walletgate.policies.model import CumulativeCap, Policy, PolicySet, RateLimit, Scope, Wallet

#: Units of rate-limit claims.
REQUESTS = "requests"
TRANSACTIONS = "transactions"
#: Unit of USD cap claims: integer micro-dollars (asset caps use the asset id).
MICRO_USD = "micro_usd"


def claim_key(scope: Scope, scope_id: str, policy_id: str, rule_id: str, unit: str) -> str:
    """The counter a claim adds to."""
    return f"{scope}:{scope_id}:{policy_id}:{rule_id}:{unit}"


def scope_id(scope: Scope, wallet: Wallet, agent_id: str) -> str:
    """The id of the entity a counter of ``scope`` belongs to, for a request from ``wallet``."""
    if scope is Scope.WALLET:
        return wallet.id
    if scope is Scope.AGENT:
        return agent_id
    return wallet.owner


def cap_claim(
    policy: Policy, rule: CumulativeCap, *, key_scope_id: str, unit: str, amount: int, limit: int
) -> CounterClaim:
    """The claim of one cumulative cap: ``amount`` more against ``limit`` in ``unit``."""
    return CounterClaim(
        key=claim_key(rule.scope, key_scope_id, policy.id, rule.id, unit),
        amount=amount,
        limit=limit,
        policy=policy.id,
        rule=rule.id,
        unit=unit,
        window_seconds=rule.window.seconds,
        calendar=rule.window.calendar,
        timezone=rule.window.timezone,
    )


def rate_claim(policy: Policy, rule: RateLimit, *, key_scope_id: str) -> CounterClaim:
    """The claim of one rate limit: one more request or transaction in its window."""
    unit = REQUESTS if rule.counts == REQUESTS else TRANSACTIONS
    return CounterClaim(
        key=claim_key(rule.scope, key_scope_id, policy.id, rule.id, unit),
        amount=1,
        limit=rule.max,
        policy=policy.id,
        rule=rule.id,
        unit=unit,
        window_seconds=rule.per_seconds,
    )


def request_rate_claims(
    agent_id: str, wallet: Wallet | None, policies: PolicySet
) -> tuple[CounterClaim, ...]:
    """Claims of the ``counts: requests`` rate limits, for any request of ``agent_id``.

    The proxy reserves these for every method, reads included. ``wallet`` is the wallet
    the request acts for, or ``None`` (a read names none). A wallet that is not the
    agent's own is ignored, so an agent cannot spend another agent's request budget;
    wallet-scoped request limits count only the requests that act for that wallet.
    """
    key = (
        agent_id,
        None if wallet is None else wallet.id,
        None if wallet is None else wallet.agent,
        None if wallet is None else wallet.owner,
    )
    memo = policies.request_claims_memo
    found = memo.get(key)
    if found is None:
        found = memo[key] = _request_rate_claims(agent_id, wallet, policies)
    return found


def _request_rate_claims(
    agent_id: str, wallet: Wallet | None, policies: PolicySet
) -> tuple[CounterClaim, ...]:
    agent = policies.agents.get(agent_id)
    if agent is None:
        return ()
    own_wallet = wallet if wallet is not None and wallet.agent == agent_id else None
    if own_wallet is not None:
        applicable = policies.policies_for(own_wallet)
    else:
        applicable = policies.policies_for_agent(agent)
    claims = []
    for policy in applicable:
        for rule in policy.rules:
            if not isinstance(rule, RateLimit) or rule.counts != REQUESTS:
                continue
            if own_wallet is not None:
                entity = scope_id(rule.scope, own_wallet, agent_id)
            elif rule.scope is Scope.WALLET:
                continue  # no wallet, no wallet counter to add to
            else:
                entity = agent_id if rule.scope is Scope.AGENT else agent.owner
            claims.append(rate_claim(policy, rule, key_scope_id=entity))
    return tuple(sorted(claims, key=lambda claim: claim.key))
