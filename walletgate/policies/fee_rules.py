"""The ``fee_cap`` rule: bounds on what a request may pay in network fees.

Fees already count with ``value`` in every native and USD cap (``policies.facts`` makes a
:class:`~walletgate.intents.NetworkFee` a movement of the native coin). A ``fee_cap``
bounds them on their own as well: the most the request's transactions may pay in fees
(native base units or USD, summed over the request, e.g. over the calls of a
``wallet_sendCalls``), and the max fee per gas of each transaction. It bounds nothing
else, so it is also how a policy that caps only tokens covers the fees of its
transactions (``policies.coverage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from walletgate.intents import Intent, NetworkFee
from walletgate.policies.amounts import format_units
from walletgate.policies.decision import Reason
from walletgate.policies.facts import Movement, RequestFacts, measure
from walletgate.policies.limits import applies_to, describe_limit, describe_quantity, exceeds
from walletgate.policies.limits import requested as requested_of
from walletgate.policies.model import Asset, FeeCap, Policy, Rule
from walletgate.policies.verdicts import Verdict, failed, passed

#: Fees per gas are shown in gwei (10**9 wei), as wallets and explorers show them.
GWEI_DECIMALS = 9


def fee_cap(policy: Policy, rule: FeeCap, facts: RequestFacts) -> Verdict | None:
    """Each transaction's max fee per gas, and the request's fees together, are within
    the rule; ``None`` for a request that pays no fee (a message signature)."""

    fees = [intent for intent in facts.intents if isinstance(intent, NetworkFee)]
    if not fees:
        return None
    if rule.max_fee_per_gas is not None:
        over = [fee for fee in fees if fee.max_fee_per_gas > rule.max_fee_per_gas]
        if over:
            limit = f"{gwei(rule.max_fee_per_gas)} per gas"
            asked = f"{gwei(max(fee.max_fee_per_gas for fee in over))} per gas"
            detail = f"a max fee of {asked} is over the fee cap of {limit}"
            finding = failed(policy, rule, Reason.FEE_CAP, detail, limit, asked)
            return Verdict(finding)
    if rule.limit is None:
        detail = f"every max fee per gas is within {gwei(rule.max_fee_per_gas or 0)}"
        return Verdict(passed(policy, rule, detail))
    movements = fee_movements(facts.movements)
    exposure = measure(movements, facts.now)
    quantity = requested_of(rule.limit, exposure)
    limit = describe_limit(rule.limit, facts.assets)
    if quantity is None:
        detail = f"no fresh USD price for the network fee to check the fee cap of {limit}"
        return Verdict(failed(policy, rule, Reason.PRICE_UNAVAILABLE, detail, limit))
    asked = describe_quantity(rule.limit, quantity, facts.assets)
    if exceeds(rule.limit, quantity):
        detail = f"network fees of up to {asked}, over the fee cap of {limit}"
        return Verdict(failed(policy, rule, Reason.FEE_CAP, detail, limit, asked))
    detail = f"network fees of up to {asked}, within the fee cap of {limit}"
    return Verdict(passed(policy, rule, detail, limit, asked))


def fee_movements(movements: Iterable[Movement]) -> list[Movement]:
    """The network fees among a request's movements."""
    return [movement for movement in movements if isinstance(movement.intent, NetworkFee)]


def bounds_fee(rule: Rule, asset: Asset) -> bool:
    """True when ``rule`` is a fee cap that bounds the fee total in ``asset`` (coverage:
    a cap on the fee per gas alone does not bound it, gas is up to the request)."""
    return isinstance(rule, FeeCap) and rule.limit is not None and applies_to(rule.limit, asset)


def fee_per_gas_ceiling(rules: Sequence[Rule]) -> int | None:
    """The lowest ``max_fee_per_gas`` of the fee caps in ``rules`` (``None``: none has
    one): the gateway never fills a fee per gas above it."""
    ceilings = [
        rule.max_fee_per_gas
        for rule in rules
        if isinstance(rule, FeeCap) and rule.max_fee_per_gas is not None
    ]
    return min(ceilings, default=None)


def is_fee(intent: Intent) -> bool:
    """True for a network fee (which goes to no destination and is in no asset list)."""
    return isinstance(intent, NetworkFee)


def gwei(wei: int) -> str:
    """A fee per gas for humans: ``"1.5 gwei"``."""
    return format_units(wei, GWEI_DECIMALS, "gwei")
