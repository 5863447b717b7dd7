"""Warnings: what a valid policy document allows that its author probably did not mean.

A warning never stops a document (``validate`` still succeeds, ``apply`` still applies
it); ``walletgate policies validate`` prints each one, located like an error. Each rule
type may have checks here: a check takes one rule (canonical or as written: both are
schema-valid) and its key path, and yields a :class:`Problem` per warning. To add one,
add the check to :data:`RULE_WARNINGS`. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from walletgate.config.document_errors import KeyPath, Problem
from walletgate.config.methods import method_warnings

RuleWarning = Callable[[Mapping[str, Any], KeyPath], Iterator[Problem]]

#: The methods that sign whatever 32-byte hash they are given, a permit's or an order's
#: EIP-712 digest included.
_RAW_HASH_METHODS = ("eth_sign",)


def signing_warnings(rule: Mapping[str, Any], path: KeyPath) -> Iterator[Problem]:
    """The unsafe typed-data opt-out, and ``eth_sign`` (it signs any hash, so any typed
    document's digest: no typed_data entry can judge what it authorizes)."""
    if rule.get("allow_any_typed_data_unsafe"):
        yield Problem(
            (*path, "allow_any_typed_data_unsafe"),
            "every typed document that walletgate does not decode may be signed, whatever "
            "contract verifies it (orders, votes, meta-transactions, logins); list the "
            "documents the agent needs in typed_data instead",
        )
    for method in _RAW_HASH_METHODS:
        if method in rule.get("methods", ()):
            yield Problem(
                (*path, "methods", list(rule["methods"]).index(method)),
                f"{method} signs any 32-byte hash, the digest of any permit, order or "
                "transaction included, and walletgate cannot tell which; prefer "
                "personal_sign or typed_data entries",
            )


#: Rule type -> its warning checks.
RULE_WARNINGS: dict[str, tuple[RuleWarning, ...]] = {
    "contract_allowlist": (method_warnings,),
    "signing_allowlist": (signing_warnings,),
}


def document_warnings(doc: Mapping[str, Any]) -> list[Problem]:
    """Every warning in a valid document, in document order."""
    problems: list[Problem] = []
    for number, policy in enumerate(doc.get("policies", [])):
        for index, rule in enumerate(policy.get("rules", [])):
            path: KeyPath = ("policies", number, "rules", index)
            for check in RULE_WARNINGS.get(rule.get("type", ""), ()):
                problems.extend(check(rule, path))
    return problems
