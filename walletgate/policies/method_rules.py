"""Contract methods listed with their signature: decode the call, check its arguments.

A ``contract_allowlist`` method given as an object (``signature``, ``conditions``,
``recipients``, ``max_value``; see docs/policies.md) compiles into a :class:`MethodRule`.
A call it names is decoded strictly against the signature (eth-abi): calldata that is not
exactly the canonical ABI encoding of arguments of those types fails the entry, since a
contract could read bytes walletgate did not judge. The decoded arguments must pass the
entry's condition tree (:mod:`walletgate.policies.conditions`), the value sent with the
call must be within ``max_value``, and the arguments marked as recipients become
destinations that the destination lists judge (:func:`call_recipients`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from walletgate.abi import NonCanonicalAbi, decode_canonical
from walletgate.intents import ContractCall, InvalidAddress, canonical_address
from walletgate.policies.conditions import Condition, Context, failure

#: A step of a recipient path: a field index, or ``None`` for every element of an array.
Step = int | None


@dataclass(frozen=True, slots=True)
class RecipientPath:
    """Where a recipient address sits in the arguments: ``label`` as written
    (``order.recipient``), ``steps`` resolved against the signature."""

    label: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class MethodRule:
    """One method of one contract, with the checks on its calls.

    ``types`` are the canonical ABI types of the arguments (what eth-abi decodes);
    ``condition`` constrains the arguments as a tuple (``None``: none);
    ``max_value`` is the most native coin, in whole units, sent with one call
    (``None``: no per-method cap, the amount rules still count it).
    """

    contract: str
    selector: str
    signature: str
    types: tuple[str, ...]
    condition: Condition | None = None
    recipients: tuple[RecipientPath, ...] = ()
    max_value: Decimal | None = None


class UndecodableCall(ValueError):
    """Calldata that is not the canonical encoding of the method's arguments."""


def applies(rule: MethodRule, call: ContractCall) -> bool:
    """True when ``rule`` names the contract and method of ``call``."""
    return rule.contract == call.contract and rule.selector == call.selector


def decode_arguments(rule: MethodRule, data: bytes) -> tuple[Any, ...]:
    """The arguments of a call to ``rule``'s method; raises :class:`UndecodableCall`.

    Strict: the bytes after the selector must be exactly what encoding the decoded
    arguments gives back (no trailing bytes, no dirty padding, no odd offsets).
    """
    try:
        return decode_canonical(rule.types, data[4:])
    except NonCanonicalAbi as exc:
        raise UndecodableCall(f"calldata does not decode as {rule.signature}: {exc}") from None


def method_problem(
    rule: MethodRule, call: ContractCall, wallet: str, native_decimals: int | None
) -> str | None:
    """Why ``call`` does not pass ``rule`` (``None`` when it does).

    ``native_decimals`` are the decimals of the chain's native coin, ``None`` when
    walletgate does not know the coin (then a ``max_value`` cannot admit any value).
    """
    where = f"{call.contract} {rule.signature}"
    if rule.max_value is not None and call.value > 0:
        if native_decimals is None:
            return f"{where}: the native coin is not a known asset, so max_value cannot be checked"
        if Decimal(call.value) > rule.max_value.scaleb(native_decimals):
            return (
                f"{where}: sends {call.value} base units of the native coin, over max_value "
                f"{rule.max_value} ({rule.max_value.scaleb(native_decimals):f} base units)"
            )
    try:
        arguments = decode_arguments(rule, call.data)
    except UndecodableCall as exc:
        return f"{call.contract}: {exc}"
    if rule.condition is not None:
        problem = failure(rule.condition, arguments, Context(wallet=wallet))
        if problem is not None:
            return f"{where}: {problem}"
    return None


def recipients_of(rule: MethodRule, call: ContractCall) -> frozenset[str]:
    """The addresses ``rule`` marks as recipients in ``call`` (none if it does not decode:
    such a call fails the entry anyway)."""
    if not rule.recipients:
        return frozenset()
    try:
        arguments = decode_arguments(rule, call.data)
    except UndecodableCall:
        return frozenset()
    found: set[str] = set()
    for path in rule.recipients:
        for value in _walk(arguments, path.steps):
            try:
                found.add(canonical_address(value))
            except InvalidAddress:
                continue  # the compiler only accepts paths to addresses
    return frozenset(found)


def call_recipients(calls: Iterable[ContractCall], rules: Iterable[MethodRule]) -> frozenset[str]:
    """Every recipient any applicable ``rules`` mark in ``calls``."""
    listed = tuple(rules)
    found: set[str] = set()
    for call in calls:
        for rule in listed:
            if applies(rule, call):
                found |= recipients_of(rule, call)
    return frozenset(found)


def _walk(value: Any, steps: tuple[Step, ...]) -> Iterator[Any]:
    if not steps:
        yield value
        return
    step, rest = steps[0], steps[1:]
    if step is None:
        for item in value:
            yield from _walk(item, rest)
    else:
        yield from _walk(value[step], rest)
