"""Properties of the evaluator over generated policies and requests (hypothesis).

- order does not matter: any permutation of policies and of rules within them gives the
  same decision;
- a request over any per-transaction cap is never allowed (nor held);
- adding a rule never turns a rule's refusal into an allow (only coverage gaps close);
- USD counter claims are never looser than the policy.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.policy_world import (
    ALICE,
    ASSETS,
    BOB,
    CHAIN,
    DELEGATE,
    ETH,
    NOW,
    OTHER_SELECTOR,
    ROUTER,
    SINK,
    STALE_TOKEN,
    SWAP_SELECTOR,
    UNKNOWN_TOKEN,
    UNPRICED_TOKEN,
    WUSD_TOKEN,
    approval,
    call,
    creation,
    delegation,
    native,
    signature,
    spend,
    transfer,
    world,
)
from walletgate.intents import (
    MAX_UINT256,
    Intent,
    MethodClass,
    NativeTransfer,
    TokenApproval,
    TokenTransfer,
)
from walletgate.policies.decision import Decision, Outcome
from walletgate.policies.evaluator import evaluate
from walletgate.policies.model import (
    ApprovalLimit,
    Asset,
    AssetAllowlist,
    ChainAllowlist,
    ContractAllowlist,
    CumulativeCap,
    DelegationAllowlist,
    DestinationAllowlist,
    DestinationDenylist,
    Limit,
    PerTxCap,
    Policy,
    RateLimit,
    Rule,
    Scope,
    SigningAllowlist,
    Tier,
    TimeWindow,
    Window,
)
from walletgate.policies.request import SpendRequest

EXAMPLES = settings(max_examples=300, deadline=None)

ADDRESSES = st.sampled_from([ALICE, BOB, SINK, ROUTER, DELEGATE])
TOKENS = st.sampled_from([WUSD_TOKEN, STALE_TOKEN, UNPRICED_TOKEN, UNKNOWN_TOKEN])
TOKEN_ASSET = {asset.address: asset for asset in ASSETS.values() if asset.chain_id == CHAIN}
AMOUNTS = st.integers(0, 10**22)
ASSET_IDS = st.sampled_from(["eth", "wusd", "stale", "unpriced"])
SIGNING_METHODS = st.sampled_from(["personal_sign", "eth_sign", "eth_signTypedData_v4"])
SCOPES = st.sampled_from(list(Scope))

# -- requests --------------------------------------------------------------------------

intents: st.SearchStrategy[Intent] = st.one_of(
    st.builds(native, ADDRESSES, AMOUNTS),
    st.builds(transfer, TOKENS, ADDRESSES, AMOUNTS, source=st.none() | ADDRESSES),
    st.builds(approval, TOKENS, ADDRESSES, AMOUNTS | st.just(MAX_UINT256)),
    st.builds(
        call, st.sampled_from([ROUTER, BOB]), st.sampled_from([SWAP_SELECTOR, OTHER_SELECTOR, None])
    ),
    st.builds(creation),
    st.builds(delegation, ADDRESSES),
    st.builds(signature, SIGNING_METHODS),
)
requests = st.builds(
    lambda found, method_class: spend(*found, method_class=method_class),
    st.lists(intents, max_size=4),
    st.sampled_from([MethodClass.SPENDING, MethodClass.SPENDING, MethodClass.SIGNING]),
)
# Around NOW: prices (one hour maximum age) go stale during the second half.
moments = st.integers(-30, 120).map(lambda minutes: NOW + timedelta(minutes=minutes))

# -- policies --------------------------------------------------------------------------

usd_amounts = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(0, 10**7),
    st.integers(0, 6),
)
limits = st.one_of(
    st.builds(lambda asset, units: Limit(asset=asset, base_units=units), ASSET_IDS, AMOUNTS),
    st.builds(lambda usd: Limit(usd=usd), usd_amounts),
)
windows = st.one_of(
    st.builds(Window, seconds=st.sampled_from([60, 3600, 86400])),
    st.builds(
        Window,
        calendar=st.sampled_from(["day", "week", "month"]),
        timezone=st.sampled_from(["UTC", "Europe/Berlin"]),
    ),
)
hours = st.integers(0, 23).map(time)


def rules_with(rule_id: str) -> st.SearchStrategy[Rule]:
    """Any rule, with the id ``rule_id``."""
    return RULES.map(lambda rule: replace(rule, id=rule_id))


def _any_rule(rule_id: str) -> st.SearchStrategy[Rule]:
    return st.one_of(
        st.builds(PerTxCap, st.just(rule_id), limits),
        st.builds(CumulativeCap, st.just(rule_id), limits, windows, SCOPES),
        st.builds(
            RateLimit,
            st.just(rule_id),
            st.sampled_from(["requests", "transactions"]),
            st.integers(0, 5),
            st.sampled_from([1, 60]),
            st.sampled_from([Scope.AGENT, Scope.WALLET]),
        ),
        st.builds(DestinationAllowlist, st.just(rule_id), st.frozensets(ADDRESSES)),
        st.builds(DestinationDenylist, st.just(rule_id), st.frozensets(ADDRESSES)),
        st.builds(AssetAllowlist, st.just(rule_id), st.frozensets(ASSET_IDS)),
        st.builds(
            ContractAllowlist,
            st.just(rule_id),
            st.frozensets(
                st.tuples(st.sampled_from([ROUTER, BOB]), st.sampled_from([SWAP_SELECTOR, None]))
            ),
            st.booleans(),
        ),
        st.builds(ChainAllowlist, st.just(rule_id), st.frozensets(st.sampled_from([CHAIN, 1, 5]))),
        st.builds(
            TimeWindow,
            st.just(rule_id),
            st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
            st.frozensets(st.integers(0, 6)),
            hours,
            hours,
        ),
        st.builds(ApprovalLimit, st.just(rule_id), limits, st.booleans()),
        st.builds(
            Tier,
            st.just(rule_id),
            limits,
            st.sampled_from(["notify", "delay", "require_approval"]),
            st.integers(0, 3600),
        ),
        st.builds(SigningAllowlist, st.just(rule_id), st.frozensets(SIGNING_METHODS)),
        st.builds(DelegationAllowlist, st.just(rule_id), st.frozensets(ADDRESSES)),
    )


#: Built once: hypothesis validates each new strategy object, which is slow for this one.
RULES = _any_rule("rule")


@st.composite
def policy_lists(draw: st.DrawFn) -> list[Policy]:
    """One to three enabled policies that all apply to the trader's hot wallet."""
    targets = [(Scope.AGENT, "trader"), (Scope.OWNER, "acme"), (Scope.WALLET, "trader-hot")]
    found = []
    for index in range(draw(st.integers(1, 3))):
        count = draw(st.integers(0, 5))
        rules = tuple(draw(rules_with(f"r{n}")) for n in range(count))
        scope, target = draw(st.sampled_from(targets))
        found.append(Policy(f"p{index}", scope, target, rules))
    return found


def decide(request: SpendRequest, policies: list[Policy], now: datetime) -> Decision:
    return evaluate(request, world(*policies), now)


# -- order does not matter -------------------------------------------------------------


@EXAMPLES
@given(policy_lists(), requests, moments, st.data())
def test_order_of_policies_and_rules_does_not_matter(
    policies: list[Policy], request: SpendRequest, now: datetime, data: st.DataObject
) -> None:
    shuffled = [
        Policy(p.id, p.scope, p.target, tuple(data.draw(st.permutations(p.rules))))
        for p in data.draw(st.permutations(policies))
    ]
    assert decide(request, shuffled, now) == decide(request, policies, now)


# -- per-transaction caps --------------------------------------------------------------


def exposure(request: SpendRequest) -> dict[str, int]:
    """Base units per asset id that the request moves or approves (the oracle's sum)."""
    totals: dict[str, int] = {}
    for intent in request.decoded.intents:
        if isinstance(intent, NativeTransfer | TokenTransfer | TokenApproval):
            token = None if isinstance(intent, NativeTransfer) else intent.token
            asset = TOKEN_ASSET.get(token)
            if asset is not None:
                totals[asset.id] = totals.get(asset.id, 0) + intent.amount
    return totals


def usd_of(totals: dict[str, int], now: datetime) -> Fraction | None:
    value = Fraction(0)
    for asset_id, amount in totals.items():
        asset = ASSETS[asset_id]
        fresh = (
            asset.price_usd is not None
            and asset.price_as_of is not None
            and (asset.price_max_age is None or now - asset.price_as_of <= asset.price_max_age)
        )
        if amount and not fresh:
            return None
        if amount and asset.price_usd is not None:
            value += Fraction(amount) * Fraction(asset.price_usd) / 10**asset.decimals
    return value


def over(cap: PerTxCap, request: SpendRequest, now: datetime) -> bool:
    """True when the request is over the cap, or the cap cannot be checked (no price)."""
    totals = exposure(request)
    if cap.limit.asset is not None:
        return totals.get(cap.limit.asset, 0) > (cap.limit.base_units or 0)
    usd = usd_of(totals, now)
    return usd is None or usd > Fraction(cap.limit.usd or 0)


@EXAMPLES
@given(policy_lists(), requests, moments)
def test_a_request_over_any_per_tx_cap_is_never_allowed(
    policies: list[Policy], request: SpendRequest, now: datetime
) -> None:
    caps = [rule for p in policies for rule in p.rules if isinstance(rule, PerTxCap)]
    decision = decide(request, policies, now)
    if any(over(cap, request, now) for cap in caps):
        assert decision.outcome is Outcome.DENY
    if decision.outcome is not Outcome.DENY:
        assert all(not over(cap, request, now) for cap in caps)


@EXAMPLES
@given(
    st.builds(PerTxCap, st.just("cap"), limits),
    st.lists(
        st.builds(native, ADDRESSES, AMOUNTS) | st.builds(transfer, TOKENS, ADDRESSES, AMOUNTS),
        min_size=1,
        max_size=4,
    ),
)
def test_a_lone_per_tx_cap_allows_exactly_what_it_bounds(
    cap: PerTxCap, moves: list[Intent]
) -> None:
    request = spend(*moves)
    decision = decide(request, [Policy("p", Scope.AGENT, "trader", (cap,))], NOW)
    if decision.allowed:
        assert not over(cap, request, NOW)


# -- monotonicity ----------------------------------------------------------------------


@EXAMPLES
@given(policy_lists(), requests, moments, rules_with("added"), st.integers(0, 3))
def test_adding_a_rule_never_lifts_a_rule_refusal(
    policies: list[Policy],
    request: SpendRequest,
    now: datetime,
    added: Rule,
    where: int,
) -> None:
    if where < len(policies):
        target = policies[where]
        grown = list(policies)
        grown[where] = Policy(target.id, target.scope, target.target, (*target.rules, added))
    else:
        grown = [*policies, Policy("added", Scope.WALLET, "trader-hot", (added,))]
    before, after = decide(request, policies, now), decide(request, grown, now)
    refusals = {f for f in before.findings if not f.passed and f.rule_type != "coverage"}
    assert refusals <= set(after.findings)
    if refusals and before.outcome is Outcome.DENY:
        assert after.outcome is Outcome.DENY
    if before.outcome is Outcome.HOLD:
        assert after.outcome is not Outcome.ALLOW
    if before.outcome is Outcome.DENY and after.outcome is not Outcome.DENY:
        # Only a closed coverage gap can admit more.
        assert all(f.rule_type == "coverage" for f in before.findings if not f.passed)


# -- USD rounding ----------------------------------------------------------------------


@EXAMPLES
@given(
    price=st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(0, 10**12),
        st.integers(0, 12),
    ),
    decimals=st.integers(0, 30),
    amount=st.integers(0, 10**40),
    cap=st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(0, 10**15),
        st.integers(0, 9),
    ),
)
def test_usd_claims_are_never_looser_than_the_policy(
    price: Decimal, decimals: int, amount: int, cap: Decimal
) -> None:
    token = Asset("tok", CHAIN, WUSD_TOKEN, "TOK", decimals, price, NOW, None)
    rule = CumulativeCap("usd", Limit(usd=cap), Window(seconds=3600), Scope.WALLET)
    policies = world(Policy("p", Scope.AGENT, "trader", (rule,)), assets=[ETH, token])
    decision = evaluate(spend(transfer(WUSD_TOKEN, ALICE, amount)), policies, NOW)
    exact = Fraction(amount) * Fraction(price) / 10**decimals
    if exact > Fraction(cap):
        assert decision.outcome is Outcome.DENY
    for claim in decision.claims:
        # The claim counts at least the exact value and allows at most the exact cap,
        # each by less than one micro-dollar.
        assert 0 <= Fraction(claim.amount, 10**6) - exact < Fraction(1, 10**6)
        assert 0 <= Fraction(cap) - Fraction(claim.limit, 10**6) < Fraction(1, 10**6)
    if decision.allowed and exact > 0:
        assert len(decision.claims) == 1


# -- always a decision -----------------------------------------------------------------


@EXAMPLES
@given(policy_lists(), requests, moments)
def test_every_request_gets_a_consistent_decision(
    policies: list[Policy], request: SpendRequest, now: datetime
) -> None:
    decision = decide(request, policies, now)
    failed = [f for f in decision.findings if not f.passed]
    if decision.outcome is Outcome.ALLOW:
        assert not failed
    else:
        assert decision.deciding is None or decision.deciding.reason is decision.reason
    if decision.outcome is Outcome.DENY:
        assert decision.claims == ()
    decision.to_json()  # always serialisable
