"""The ``signing_allowlist`` rule: which message signatures a scope may make.

Each :class:`~walletgate.intents.MessageSignature` of a request is judged on its own:

- its method must be in ``methods``;
- ``eth_sign`` and ``personal_sign`` (no structure to judge) need nothing more;
- typed data needs a ``typed_data`` entry that matches its domain (exactly the entry's
  ``verifying_contract`` and ``chain_id``, and ``name`` when the entry gives one) and
  its primary type (and exactly the entry's ``types``, the EIP-712 type string, when it
  gives them), and whose ``conditions`` its message passes. A document whose
  domain has no chainId is valid on every chain: only an entry with
  ``allow_missing_chain_id`` matches it;
- ``allow_any_typed_data_unsafe`` admits any typed document walletgate decodes to no
  recognised standard (legacy v1 documents, which have no domain, included). It never
  admits one marked with a standard (:attr:`MessageSignature.standard`): an ERC-7710
  delegation, or a permit or order that binds no chain. Those need an entry.

Typed data that decodes to approvals, transfers or calls (permits, Seaport orders, Safe
transactions) is judged as those intents by the other rules, like the transaction it
authorizes; it reaches this rule only when it binds no chain.
"""

from __future__ import annotations

from typing import Any, cast

from walletgate.intents import MessageSignature, TypedStruct, TypedValue
from walletgate.policies.conditions import Condition, Context, failure
from walletgate.policies.decision import Reason
from walletgate.policies.facts import RequestFacts
from walletgate.policies.model import Policy, SigningAllowlist, TypedDataEntry
from walletgate.policies.verdicts import Verdict, and_more, failed, listed

#: The typed-data methods: what they sign has a structure entries can judge.
TYPED_DATA_METHODS = frozenset(
    {"eth_signTypedData", "eth_signTypedData_v1", "eth_signTypedData_v3", "eth_signTypedData_v4"}
)


def signing_allowlist(policy: Policy, rule: SigningAllowlist, facts: RequestFacts) -> Verdict:
    """Every message signature is admitted: its method listed and, for typed data, its
    document matched by an entry (or the unsafe opt-out, see the module docstring)."""

    problems = sorted(
        {
            problem
            for intent in facts.intents
            if isinstance(intent, MessageSignature)
            and (problem := signature_problem(rule, intent, facts.wallet.address)) is not None
        }
    )
    if problems:
        detail = and_more(problems[0], problems)
        return Verdict(failed(policy, rule, Reason.SIGNING_NOT_ALLOWED, detail))
    return listed(policy, rule, facts, "every signature is on the signing allowlist")


def signature_problem(
    rule: SigningAllowlist, signature: MessageSignature, wallet: str
) -> str | None:
    """Why ``rule`` refuses ``signature``, or ``None`` when it admits it."""
    if signature.method not in rule.methods:
        return f"{signature.method} is not on the signing allowlist"
    if signature.method not in TYPED_DATA_METHODS:
        return None
    if signature.primary_type is None:  # legacy v1 typed data: no domain to match
        if rule.allow_any_typed_data_unsafe:
            return None
        return (
            f"{signature.method} signs legacy typed data, which has no domain, so no "
            "typed_data entry can admit it"
        )
    matching = [entry for entry in rule.typed_data if _domain_matches(entry, signature)]
    problems = [_condition_problem(entry, signature, wallet) for entry in matching]
    if any(problem is None for problem in problems):
        return None
    if signature.standard is None and rule.allow_any_typed_data_unsafe and not matching:
        return None
    what = describe_document(signature)
    if problems:
        reasons = "; ".join(sorted(problem for problem in problems if problem is not None))
        return f"{what} does not meet the conditions of its typed_data entry: {reasons}"
    if signature.standard is not None and signature.chain_id is None:
        return (
            f"{what} is a {signature.standard} whose domain has no chainId, so it is valid "
            "on every chain; only a typed_data entry with allow_missing_chain_id admits it"
        )
    if signature.standard is not None:
        return f"{what} is a {signature.standard}, which only a matching typed_data entry admits"
    return f"no typed_data entry of the signing allowlist admits {what}"


def describe_document(signature: MessageSignature) -> str:
    """A typed document for humans: ``"typed data Mail (domain 'Ether Mail', contract
    0x…, chain 1)"``."""
    parts = []
    if signature.domain_name is not None:
        parts.append(f"domain {signature.domain_name!r}")
    parts.append(f"contract {signature.verifying_contract or '(none)'}")
    parts.append(f"chain {signature.chain_id if signature.chain_id is not None else '(none)'}")
    return f"typed data {signature.primary_type} ({', '.join(parts)})"


def _domain_matches(entry: TypedDataEntry, signature: MessageSignature) -> bool:
    if entry.primary_type != signature.primary_type:
        return False
    if entry.verifying_contract != signature.verifying_contract:
        return False
    if entry.name is not None and entry.name != signature.domain_name:
        return False
    if entry.types is not None and entry.types != signature.encoded_type:
        return False
    if signature.chain_id is None:
        return entry.allow_missing_chain_id
    return entry.chain_id == signature.chain_id


def _condition_problem(
    entry: TypedDataEntry, signature: MessageSignature, wallet: str
) -> str | None:
    if entry.conditions is None:
        return None
    if signature.message is None:  # a decoder always sets it for typed data; fail closed
        return "the message is not known"
    condition = cast(Condition, entry.conditions)
    return failure(condition, plain_value(signature.message), Context(wallet=wallet), "message")


def plain_value(value: TypedValue) -> Any:
    """A typed value as the condition evaluator reads an ABI value: a struct is the tuple
    of its fields in declaration order (conditions find fields by index; entries compile
    their names to indexes against the entry's ``types``)."""
    if isinstance(value, TypedStruct):
        return tuple(plain_value(item) for _, _, item in value.fields)
    if isinstance(value, tuple):
        return tuple(plain_value(item) for item in value)
    return value
