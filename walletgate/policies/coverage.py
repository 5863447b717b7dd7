"""Coverage: a spend that no applicable rule speaks for is refused (SPEC §4).

Rules judge what they list; coverage asks the other question, whether any rule speaks
for each intent at all:

- a transfer needs a rule that bounds its amount: a ``per_tx_cap`` or
  ``cumulative_cap`` in its asset or in USD. An asset walletgate does not know cannot
  be bounded (``unknown_asset``);
- a network fee (every transaction pays one) is bounded by those in the native coin or
  USD, or by a ``fee_cap`` with a per-transaction maximum;
- an approval is bounded by those or by an ``approval_limit`` on its asset; an
  unlimited approval needs an ``approval_limit`` on its asset (which must then say
  ``allow_unlimited``); ``setApprovalForAll(operator, true)`` is an unlimited approval
  and needs an ``approval_limit`` on that very collection saying ``allow_unlimited``;
- NFT transfers and approvals are bounded like token ones, in counts of tokens; one
  whose standard does not fit its asset's kind (``policies.nfts.kind_conflict``) is
  refused as ``unknown_asset``;
- a contract call or creation needs a ``contract_allowlist``, an EIP-7702 delegation a
  ``delegation_allowlist``, a message signature a ``signing_allowlist``;
- typed data whose ``domain.verifyingContract`` is a known asset but which the decoder
  could not read as a permit or a transfer authorization is never covered: the token
  contract verifies it, so it may well move or approve the token, and a signing
  allowlist (which lists methods, not what they sign) cannot bound that.

A zero amount moves nothing, so it needs no bound; a request with no intents at all
(say, a zero-value transaction to an account, with no data) is covered when any policy
applies to its wallet. Both are still judged by every rule: chain, time window,
destination lists, rate limits.

A gap is reported as a failed finding with no policy and no rule (``policy == ""``)
and ``rule_type == "coverage"``. Unlike rule findings, a gap can close when a rule is
added: coverage is the one place where more rules can admit more (the undecodable
token typed data above is the exception: no rule closes it).
"""

from __future__ import annotations

from collections.abc import Sequence

from walletgate.intents import (
    ContractCall,
    ContractCreation,
    Delegation,
    Intent,
    MessageSignature,
    NetworkFee,
    NftApproval,
    TokenApproval,
)
from walletgate.policies.decision import Finding, Reason
from walletgate.policies.facts import (
    Movable,
    Movement,
    RequestFacts,
    asset_of,
    contract_of,
    describe_movement,
    destination_of,
    is_movable,
)
from walletgate.policies.fee_rules import bounds_fee
from walletgate.policies.limits import applies_to
from walletgate.policies.model import (
    ApprovalLimit,
    ContractAllowlist,
    CumulativeCap,
    DelegationAllowlist,
    PerTxCap,
    PolicySet,
    Rule,
    SigningAllowlist,
)
from walletgate.policies.nfts import kind_conflict, operator_allowed

COVERAGE = "coverage"
#: The rules that bound an amount of an asset (or of USD).
_AMOUNT_BOUNDS = (PerTxCap, CumulativeCap)


def coverage_gaps(
    facts: RequestFacts, policies: PolicySet, rules: Sequence[Rule]
) -> tuple[Finding, ...]:
    """A failed finding for every intent that no rule in ``rules`` covers."""
    gaps: dict[Finding, None] = {}  # ordered and without duplicates
    for intent in facts.intents:
        gap = _gap(intent, facts, policies, rules)
        if gap is not None:
            gaps[gap] = None
    return tuple(gaps)


def _gap(
    intent: Intent, facts: RequestFacts, policies: PolicySet, rules: Sequence[Rule]
) -> Finding | None:
    if is_movable(intent):
        return _movement_gap(intent, facts, policies, rules)
    if isinstance(intent, ContractCall | ContractCreation):
        if not _any(rules, ContractAllowlist):
            what = (
                f"call to {intent.contract}"
                if isinstance(intent, ContractCall)
                else "contract creation"
            )
            return _finding(Reason.CONTRACT_NOT_ALLOWED, f"no contract_allowlist admits the {what}")
    elif isinstance(intent, Delegation):
        if not _any(rules, DelegationAllowlist):
            detail = f"no delegation_allowlist admits an EIP-7702 delegation to {intent.delegate}"
            return _finding(Reason.DELEGATION_NOT_ALLOWED, detail)
    elif isinstance(intent, MessageSignature):
        return _signature_gap(intent, facts, policies, rules)
    return None


def _signature_gap(
    intent: MessageSignature, facts: RequestFacts, policies: PolicySet, rules: Sequence[Rule]
) -> Finding | None:
    # Only a token address is looked up: None would name the native coin. A signature
    # marked with a standard was decoded (it only asks a typed_data entry to admit it).
    token = intent.verifying_contract if intent.standard is None else None
    asset = None if token is None else policies.asset_by_address(facts.request.chain_id, token)
    if asset is not None:
        detail = (
            f"{intent.method} signs typed data ({intent.primary_type}) for token contract "
            f"{token} ({asset.symbol}) that walletgate cannot decode; the token verifies "
            "it, so it may move or approve funds, and no signing_allowlist can admit it"
        )
        return _finding(Reason.SIGNING_NOT_ALLOWED, detail)
    if not _any(rules, SigningAllowlist):
        return _finding(Reason.SIGNING_NOT_ALLOWED, f"no signing_allowlist admits {intent.method}")
    return None


def _movement_gap(
    intent: Movable, facts: RequestFacts, policies: PolicySet, rules: Sequence[Rule]
) -> Finding | None:
    asset = asset_of(intent, facts.request.chain_id, policies)
    if asset is None:
        token = contract_of(intent) or "the native coin"
        detail = (
            f"{token} is not a known asset on chain {facts.request.chain_id}, so no rule can "
            f"bound what is sent to {destination_of(intent)}"
        )
        return _finding(Reason.UNKNOWN_ASSET, detail)
    conflict = kind_conflict(intent, asset)
    if conflict is not None:  # an NFT call on a token, an ERC-20 call on a collection
        return _finding(Reason.UNKNOWN_ASSET, conflict)
    if isinstance(intent, NftApproval) and intent.unlimited and not operator_allowed(asset, rules):
        what = describe_movement(Movement(intent, asset), facts.wallet.address)
        detail = f"no approval_limit on {asset.symbol} with allow_unlimited allows the {what}"
        return _finding(Reason.UNLIMITED_APPROVAL, detail)
    approval_limited = isinstance(intent, TokenApproval | NftApproval) and any(
        isinstance(rule, ApprovalLimit) and applies_to(rule.limit, asset) for rule in rules
    )
    if isinstance(intent, TokenApproval) and intent.unlimited and not approval_limited:
        what = describe_movement(Movement(intent, asset), facts.wallet.address)
        detail = f"no approval_limit on {asset.symbol} allows the {what}"
        return _finding(Reason.UNLIMITED_APPROVAL, detail)
    fee = isinstance(intent, NetworkFee)
    bounded = approval_limited or any(
        (isinstance(rule, _AMOUNT_BOUNDS) and applies_to(rule.limit, asset))
        or (fee and bounds_fee(rule, asset))
        for rule in rules
    )
    if intent.amount > 0 and not bounded:
        # Described only here: a covered movement (the common case) needs no text.
        what = describe_movement(Movement(intent, asset), facts.wallet.address)
        detail = (
            f"no policy bounds the {what}: it needs a per_tx_cap or cumulative_cap "
            f"in {asset.symbol} or USD" + (", or a fee_cap with a maximum" if fee else "")
        )
        return _finding(Reason.NO_POLICY, detail)
    return None


def _any(rules: Sequence[Rule], kind: type) -> bool:
    return any(isinstance(rule, kind) for rule in rules)


def _finding(reason: Reason, detail: str) -> Finding:
    return Finding(
        policy="",
        rule="",
        rule_type=COVERAGE,
        passed=False,
        reason=reason,
        message=f"not covered: {detail}",
    )
