"""Spend summaries: for each cap and rate limit that applies, its limit, what is counted
in its current window and what is left.

Nothing here does window arithmetic or reads counters its own way. Each cap is turned
into the very counter claim the evaluator would make (:mod:`walletgate.policies.claims`,
``rules.cap_terms`` for its unit and rounded limit), and the counters layer is asked
about it with ``Counters.peek`` and an amount larger than the whole limit, which never
fits: the refusal carries the window's total. ``peek`` writes nothing, except that a
counter missing from Redis is rebuilt from the audit log first, exactly (and as
idempotently) as the request pipeline would rebuild it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from walletgate.policies.claims import cap_claim, rate_claim, scope_id
from walletgate.policies.decision import CounterClaim
from walletgate.policies.model import (
    Agent,
    CumulativeCap,
    Policy,
    PolicySet,
    RateLimit,
    Scope,
    Wallet,
    Window,
)
from walletgate.policies.rules import cap_terms
from walletgate.policies.time_rules import describe_window
from walletgate.storage.counters import CounterRefusal, Counters, counter_of
from walletgate.storage.rebuild import PostgresClaimHistory
from walletgate.storage.runtime import Stores
from walletgate.storage.windows import bucketing


@dataclass(frozen=True, slots=True)
class CapUsage:
    """One counter: the rule it enforces, who it counts, and its current window."""

    policy: str
    rule: str
    type: str  # "cumulative_cap" | "rate_limit"
    scope: str  # whose counter: "wallet" | "agent" | "owner"
    entity: str  # the wallet, agent or owner id it counts for
    unit: str  # an asset id, "micro_usd", "requests" or "transactions"
    window: str  # for humans: "24h", "calendar month (UTC)"
    window_start: datetime
    limit: int
    spent: int
    remaining: int


def _window_text(rule: CumulativeCap | RateLimit) -> str:
    if isinstance(rule, CumulativeCap):
        return describe_window(rule.window)
    return describe_window(Window(seconds=rule.per_seconds))


def _claim(
    policy: Policy, rule: CumulativeCap | RateLimit, wallet: Wallet | None, agent: Agent | None
) -> CounterClaim | None:
    """The claim ``rule`` would make for a spend by ``agent`` (from ``wallet``), with an
    amount that can never fit; ``None`` when the counter cannot be named (a wallet rule
    without a wallet, an agent rule without an agent)."""
    if rule.scope is Scope.AGENT and agent is None:
        return None
    agent_id = "" if agent is None else agent.id
    if wallet is not None:
        entity = scope_id(rule.scope, wallet, agent_id)
    elif rule.scope is Scope.WALLET or agent is None:
        return None
    else:
        entity = agent.id if rule.scope is Scope.AGENT else agent.owner
    if isinstance(rule, CumulativeCap):
        _per, unit, cap = cap_terms(rule)
        return cap_claim(policy, rule, key_scope_id=entity, unit=unit, amount=cap + 1, limit=cap)
    claim = rate_claim(policy, rule, key_scope_id=entity)
    return dataclasses.replace(claim, amount=claim.limit + 1)


def _limited(policies: Iterable[Policy]) -> Iterator[tuple[Policy, CumulativeCap | RateLimit]]:
    for policy in policies:
        for rule in policy.rules:
            if isinstance(rule, CumulativeCap | RateLimit):
                yield policy, rule


def _claims_of(
    policies: PolicySet, agent: Agent | None, wallet: Wallet | None
) -> Iterator[tuple[CumulativeCap | RateLimit, CounterClaim]]:
    if wallet is not None:
        applicable = policies.policies_for(wallet)
    elif agent is not None:
        applicable = policies.policies_for_agent(agent)
    else:
        return
    for policy, rule in _limited(applicable):
        claim = _claim(policy, rule, wallet, agent)
        if claim is not None:
            yield rule, claim


async def _usage(
    counters: Counters, found: dict[str, tuple[CumulativeCap | RateLimit, CounterClaim]]
) -> list[CapUsage]:
    now = time.time()
    out = []
    for key in sorted(found):
        rule, claim = found[key]
        refusal = await counters.peek([claim], now)
        # An amount above the whole limit never fits, so peek always answers a refusal.
        assert isinstance(refusal, CounterRefusal)
        window = bucketing(counter_of(claim).shape, now)
        spent = refusal.already
        out.append(
            CapUsage(
                policy=claim.policy,
                rule=claim.rule,
                type=rule.type,
                scope=str(rule.scope),
                entity=key.split(":")[1],
                unit=claim.unit,
                window=_window_text(rule),
                window_start=datetime.fromtimestamp(window.counts_from, UTC),
                limit=claim.limit,
                spent=spent,
                remaining=max(0, claim.limit - spent),
            )
        )
    return out


def _agent_of(policies: PolicySet, wallet: Wallet) -> Agent | None:
    return None if wallet.agent is None else policies.agents.get(wallet.agent)


async def wallet_spend(stores: Stores, policies: PolicySet, wallet_id: str) -> list[CapUsage]:
    """Every counter a spend from ``wallet_id`` is checked against (its wallet's, its
    agent's and its owner's). The caller checks that the wallet exists."""
    wallet = policies.wallets[wallet_id]
    agent = _agent_of(policies, wallet)
    found = {claim.key: (rule, claim) for rule, claim in _claims_of(policies, agent, wallet)}
    return await _usage(_counters(stores), found)


async def agent_spend(stores: Stores, policies: PolicySet, agent_id: str) -> list[CapUsage]:
    """Every counter that belongs to ``agent_id`` (agent-scoped caps and rate limits)."""
    agent = policies.agents[agent_id]
    return await _usage(_counters(stores), _entity_claims(policies, [agent], "agent", agent_id))


async def owner_spend(stores: Stores, policies: PolicySet, owner_id: str) -> list[CapUsage]:
    """Every counter that belongs to ``owner_id`` (owner-scoped caps and rate limits)."""
    agents = [a for a in policies.agents.values() if a.owner == owner_id]
    found = _entity_claims(policies, agents, "owner", owner_id)
    for wallet in policies.wallets.values():
        if wallet.owner == owner_id and wallet.agent is None:
            for rule, claim in _claims_of(policies, None, wallet):
                if claim.key.startswith(f"owner:{owner_id}:"):
                    found[claim.key] = (rule, claim)
    return await _usage(_counters(stores), found)


def _entity_claims(
    policies: PolicySet, agents: Iterable[Agent], scope: str, entity: str
) -> dict[str, tuple[CumulativeCap | RateLimit, CounterClaim]]:
    """The counters of ``scope`` ``entity`` reached by ``agents`` with or without their
    wallets (a cap attached to a wallet may still count per agent or per owner)."""
    prefix = f"{scope}:{entity}:"
    found: dict[str, tuple[CumulativeCap | RateLimit, CounterClaim]] = {}
    for agent in agents:
        wallets: list[Wallet | None] = [None]
        wallets += [w for w in policies.wallets.values() if w.agent == agent.id]
        for wallet in wallets:
            for rule, claim in _claims_of(policies, agent, wallet):
                if claim.key.startswith(prefix):
                    found[claim.key] = (rule, claim)
    return found


def _counters(stores: Stores) -> Counters:
    return Counters(stores.redis, PostgresClaimHistory(stores.pool))
