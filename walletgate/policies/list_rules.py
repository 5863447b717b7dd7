"""The list rules: destinations, assets, contracts, chains and EIP-7702 delegates.

Allowlists judge only what they list: a request with no contract call passes every
contract allowlist, and it is the coverage check (``policies.coverage``) that refuses a
call no allowlist admits.
"""

from __future__ import annotations

from walletgate.intents import ANYONE, Delegation
from walletgate.policies.contract_rules import contract_problems
from walletgate.policies.decision import Reason
from walletgate.policies.facts import RequestFacts
from walletgate.policies.fee_rules import is_fee
from walletgate.policies.model import (
    AssetAllowlist,
    ChainAllowlist,
    ContractAllowlist,
    DelegationAllowlist,
    DestinationAllowlist,
    DestinationDenylist,
    Policy,
)
from walletgate.policies.verdicts import Verdict, and_more, failed, listed


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
        detail = and_more(f"{first} is not on the destination allowlist", unlisted)
        return Verdict(
            failed(policy, rule, Reason.DESTINATION_NOT_ALLOWED, detail, None, unlisted[0])
        )
    return listed(policy, rule, facts, "every destination is on the allowlist")


def destination_denylist(policy: Policy, rule: DestinationDenylist, facts: RequestFacts) -> Verdict:
    """No recipient or approval spender is listed. Value that anyone may take (an open
    order's fulfiller, a refunded executor) may go to a listed address too."""
    denied = sorted(facts.destinations & rule.addresses)
    if ANYONE in facts.destinations and rule.addresses and ANYONE not in denied:
        denied.insert(0, ANYONE)
    if denied:
        first = (
            f"{describe_destination(ANYONE)} includes every address on the denylist"
            if denied[0] == ANYONE
            else f"{denied[0]} is on the destination denylist"
        )
        detail = and_more(first, denied)
        return Verdict(failed(policy, rule, Reason.DESTINATION_DENIED, detail, None, denied[0]))
    return listed(policy, rule, facts, "no destination is on the denylist")


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
        detail = and_more(f"{unlisted[0]} is not on the asset allowlist", unlisted)
        return Verdict(failed(policy, rule, Reason.ASSET_NOT_ALLOWED, detail, None, unlisted[0]))
    return listed(policy, rule, facts, "every asset is on the allowlist")


def contract_allowlist(policy: Policy, rule: ContractAllowlist, facts: RequestFacts) -> Verdict:
    """Every contract call is admitted by a listed (contract, method) and its conditions;
    creation only if allowed (the checks: ``policies.contract_rules``)."""
    refused = contract_problems(rule, facts.intents, facts.wallet.address, facts.movements)
    if refused:
        detail = and_more(refused[0], refused)
        return Verdict(failed(policy, rule, Reason.CONTRACT_NOT_ALLOWED, detail))
    return listed(policy, rule, facts, "every contract call is on the allowlist")


def chain_allowlist(policy: Policy, rule: ChainAllowlist, facts: RequestFacts) -> Verdict:
    """The backend's chain is listed."""
    chain = facts.request.chain_id
    if chain not in rule.chains:
        detail = f"chain {chain} is not on the chain allowlist"
        return Verdict(failed(policy, rule, Reason.CHAIN_NOT_ALLOWED, detail, None, str(chain)))
    return listed(policy, rule, facts, f"chain {chain} is allowed")


def delegation_allowlist(policy: Policy, rule: DelegationAllowlist, facts: RequestFacts) -> Verdict:
    """Every EIP-7702 delegate is listed."""
    delegates = {intent.delegate for intent in facts.intents if isinstance(intent, Delegation)}
    unlisted = sorted(delegates - rule.delegates)
    if unlisted:
        detail = and_more(f"delegation to {unlisted[0]} is not on the allowlist", unlisted)
        return Verdict(
            failed(policy, rule, Reason.DELEGATION_NOT_ALLOWED, detail, None, unlisted[0])
        )
    return listed(policy, rule, facts, "every delegate is on the allowlist")
