"""The ``contract_allowlist`` checks: which contract calls one allowlist refuses, and why.

A call passes an allowlist when its (contract, method) is listed plainly (a signature,
selector or ``"*"`` string: the method is allowed with any arguments), or when one of
the method entries listed with a signature admits it (:mod:`policies.method_rules`):
its calldata decodes strictly, its arguments pass the entry's conditions, and the value
sent is within the entry's ``max_value``. A contract creation passes only with
``allow_create``. The judge in :mod:`policies.rules` turns the problems into a finding.

Recipients that entries mark are destinations: :func:`marked_recipients` is what
:class:`~walletgate.policies.facts.RequestFacts` adds to the destinations it derives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from walletgate.intents import ContractCall, ContractCreation, Intent
from walletgate.policies.facts import Movement
from walletgate.policies.method_rules import applies, call_recipients, method_problem
from walletgate.policies.model import ContractAllowlist, Rule


def contract_problems(
    rule: ContractAllowlist,
    intents: Iterable[Intent],
    wallet: str,
    movements: Iterable[Movement],
) -> list[str]:
    """Why ``rule`` refuses each contract call or creation in ``intents``, sorted.
    ``movements`` are the request's (they carry the native coin's asset, if known)."""
    refused = []
    decimals = native_decimals(movements)
    for intent in intents:
        if isinstance(intent, ContractCreation) and not rule.allow_create:
            refused.append("contract creation is not allowed")
        elif isinstance(intent, ContractCall):
            problem = call_problem(rule, intent, wallet, decimals)
            if problem is not None:
                refused.append(problem)
    return sorted(refused)


def call_problem(
    rule: ContractAllowlist, call: ContractCall, wallet: str, decimals: int | None
) -> str | None:
    """Why ``rule`` refuses ``call``, or ``None`` when a plain or conditioned entry admits it."""
    if (call.contract, call.selector) in rule.methods or (call.contract, None) in rule.methods:
        return None
    entries = [entry for entry in rule.method_rules if applies(entry, call)]
    if not entries:
        method = call.selector or "(no method selector)"
        return f"{call.contract} method {method} is not on the contract allowlist"
    problems = [method_problem(entry, call, wallet, decimals) for entry in entries]
    if any(problem is None for problem in problems):
        return None
    return "; ".join(sorted(problem for problem in problems if problem is not None))


def marked_recipients(intents: Iterable[Intent], rules: Sequence[Rule]) -> frozenset[str]:
    """The recipient arguments that the applicable allowlists' entries mark in the calls."""
    entries = [
        entry
        for rule in rules
        if isinstance(rule, ContractAllowlist)
        for entry in rule.method_rules
        if entry.recipients
    ]
    if not entries:  # the common case: nothing to decode
        return frozenset()
    calls = [intent for intent in intents if isinstance(intent, ContractCall)]
    return call_recipients(calls, entries)


def native_decimals(movements: Iterable[Movement]) -> int | None:
    """The decimals of the native coin the request moves; ``None`` when it moves none
    that walletgate knows. A call that sends value moves native coin (to the contract,
    or to a wrapper's inner targets), so ``max_value`` always finds it when it matters."""
    for movement in movements:
        if movement.asset.address is None:
            return movement.asset.decimals
    return None
