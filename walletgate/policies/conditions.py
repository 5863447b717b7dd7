"""Conditions on decoded values: one small tree model (after Zodiac Roles) and its evaluator.

A condition constrains a decoded value: a contract call's arguments (``contract_allowlist``
method entries) or, equally, the fields of EIP-712 typed data. The tree is built once,
when a policy document is compiled (:mod:`walletgate.config.conditions`), and evaluated
here, in one place. Pure: no I/O, no clock.

The API:

- build a tree from the node types below: :class:`Equals`, :class:`OneOf`,
  :class:`AtMost` (≤), :class:`AtLeast` (≥), :class:`InList` (a named address list),
  :class:`OwnWallet` (the acting wallet), :class:`Every` / :class:`Some` (arrays),
  :class:`Fields` (a tuple's or struct's fields, by name or index), :class:`AllOf`,
  :class:`AnyOf`, :class:`Not`;
- call ``failure(condition, value, Context(wallet=...), path="args")``. ``value`` is a
  decoded value tree: ``int`` (never ``bool``), ``str`` (addresses in any case),
  ``bytes``, ``bool``, ``list`` / ``tuple`` (an array, or a tuple whose fields are
  matched by index) and ``Mapping`` (a struct whose fields are matched by name). It
  returns ``None`` when the value passes, or one human-readable reason that names the
  path of the offending value: ``"args.path[2]: 0x… is not in list 'tokens'"``.

Addresses compare case-insensitively (both sides are reduced to the canonical lowercase
form), so a checksummed decoder output matches a canonical policy value. A value of the
wrong shape (a string where an integer is expected, a missing field) fails, never passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
#: Longest rendering of a value inside a reason (long bytes are cut).
_SHOWN = 80


@dataclass(frozen=True, slots=True)
class Context:
    """What conditions may refer to beyond the value: the wallet that acts (canonical)."""

    wallet: str


@dataclass(frozen=True, slots=True)
class Equals:
    """The value equals ``expected`` (an int, a string or address, bytes or a bool)."""

    expected: Any


@dataclass(frozen=True, slots=True)
class OneOf:
    """The value equals one of ``options``."""

    options: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AtMost:
    """An integer value is at most ``bound``."""

    bound: int


@dataclass(frozen=True, slots=True)
class AtLeast:
    """An integer value is at least ``bound``."""

    bound: int


@dataclass(frozen=True, slots=True)
class InList:
    """An address value is in the address list called ``name`` (``members`` canonical)."""

    name: str
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class OwnWallet:
    """An address value is the wallet that acts (Zodiac's EqualToAvatar)."""


@dataclass(frozen=True, slots=True)
class Every:
    """Every element of an array passes ``condition`` (an empty array passes)."""

    condition: Condition


@dataclass(frozen=True, slots=True)
class Some:
    """At least one element of an array passes ``condition`` (an empty array fails)."""

    condition: Condition


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a tuple or struct: ``key`` is an index (tuples, lists) or a name
    (mappings); ``label`` is how paths name it (the argument name where there is one)."""

    key: int | str
    label: str | int
    condition: Condition


@dataclass(frozen=True, slots=True)
class Fields:
    """Each listed field passes its condition (Zodiac's Matches); others are free."""

    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every condition passes."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one condition passes."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The condition fails."""

    condition: Condition


Condition = (
    Equals
    | OneOf
    | AtMost
    | AtLeast
    | InList
    | OwnWallet
    | Every
    | Some
    | Fields
    | AllOf
    | AnyOf
    | Not
)


def failure(condition: Condition, value: Any, context: Context, path: str = "args") -> str | None:
    """``None`` when ``value`` passes ``condition``, else why not, naming the value's path."""
    match condition:
        case Equals(expected):
            if same(value, expected):
                return None
            return f"{path}: {show(value)} is not {show(expected)}"
        case OneOf(options):
            if any(same(value, option) for option in options):
                return None
            return f"{path}: {show(value)} is not one of {', '.join(map(show, options))}"
        case AtMost(bound):
            return _integer_problem(value, path) or (
                None if value <= bound else f"{path}: {value} is more than {bound}"
            )
        case AtLeast(bound):
            return _integer_problem(value, path) or (
                None if value >= bound else f"{path}: {value} is less than {bound}"
            )
        case InList(name, members):
            address = _address(value)
            if address is not None and address in members:
                return None
            return f"{path}: {show(value)} is not in list {name!r}"
        case OwnWallet():
            if _address(value) == context.wallet:
                return None
            return f"{path}: {show(value)} is not the caller's own wallet {context.wallet}"
        case Every(inner):
            items = _array(value)
            if items is None:
                return f"{path}: {show(value)} is not an array"
            for index, item in enumerate(items):
                problem = failure(inner, item, context, f"{path}[{index}]")
                if problem is not None:
                    return problem
            return None
        case Some(inner):
            items = _array(value)
            if items is None:
                return f"{path}: {show(value)} is not an array"
            problems = [
                failure(inner, item, context, f"{path}[{i}]") for i, item in enumerate(items)
            ]
            if any(problem is None for problem in problems):
                return None
            if not problems:
                return f"{path}: the array is empty, so no element is {describe(inner)}"
            return f"{path}: no element is {describe(inner)} ({problems[0]})"
        case Fields(fields):
            for field in fields:
                found, item = _field(value, field.key)
                where = _join(path, field.label)
                if not found:
                    return f"{where}: missing"
                problem = failure(field.condition, item, context, where)
                if problem is not None:
                    return problem
            return None
        case AllOf(conditions):
            for inner in conditions:
                problem = failure(inner, value, context, path)
                if problem is not None:
                    return problem
            return None
        case AnyOf(conditions):
            problems = [failure(inner, value, context, path) for inner in conditions]
            if any(problem is None for problem in problems):
                return None
            return "none of the alternatives passes: " + "; ".join(
                problem for problem in problems if problem is not None
            )
        case Not(inner):
            if failure(inner, value, context, path) is None:
                return f"{path}: {show(value)} must not be {describe(inner)}"
            return None
    raise TypeError(f"not a condition: {condition!r}")  # a caller's bug, never input


def describe(condition: Condition) -> str:
    """A condition for humans, as a predicate: ``"at most 5"``, ``"in list 'tokens'"``."""
    match condition:
        case Equals(expected):
            return show(expected)
        case OneOf(options):
            return "one of " + ", ".join(map(show, options))
        case AtMost(bound):
            return f"at most {bound}"
        case AtLeast(bound):
            return f"at least {bound}"
        case InList(name, _):
            return f"in list {name!r}"
        case OwnWallet():
            return "the caller's own wallet"
        case Every(inner):
            return f"an array whose every element is {describe(inner)}"
        case Some(inner):
            return f"an array with some element {describe(inner)}"
        case Fields(fields):
            parts = (f"{field.label} {describe(field.condition)}" for field in fields)
            return "a value whose " + ", ".join(parts)
        case AllOf(conditions):
            return " and ".join(describe(inner) for inner in conditions)
        case AnyOf(conditions):
            return "either " + " or ".join(describe(inner) for inner in conditions)
        case Not(inner):
            return f"not {describe(inner)}"
    raise TypeError(f"not a condition: {condition!r}")


def same(value: Any, expected: Any) -> bool:
    """Equality of decoded values: addresses in any case, bools never equal to ints."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, str) and isinstance(expected, str):
        value_address, expected_address = _address(value), _address(expected)
        if value_address is not None and expected_address is not None:
            return value_address == expected_address
        return value == expected
    if isinstance(value, bytes | bytearray) and isinstance(expected, bytes | bytearray):
        return bytes(value) == bytes(expected)
    if isinstance(value, int) and isinstance(expected, int):
        return value == expected
    if isinstance(value, list | tuple) and isinstance(expected, list | tuple):
        return len(value) == len(expected) and all(map(same, value, expected))
    return False


def show(value: Any) -> str:
    """A value for a reason: integers in decimal, bytes in hex, long ones cut."""
    if isinstance(value, bytes | bytearray):
        text = "0x" + bytes(value).hex()
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value.lower() if _ADDRESS_RE.fullmatch(value) else repr(value)
    else:
        text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _join(path: str, label: str | int) -> str:
    return f"{path}[{label}]" if isinstance(label, int) else f"{path}.{label}"


def _integer_problem(value: Any, path: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"{path}: {show(value)} is not an integer"


def _address(value: Any) -> str | None:
    if isinstance(value, str) and _ADDRESS_RE.fullmatch(value):
        return value.lower()
    return None


def _array(value: Any) -> Sequence[Any] | None:
    return value if isinstance(value, list | tuple) else None


def _field(value: Any, key: int | str) -> tuple[bool, Any]:
    """``(True, field)`` when ``value`` has the field ``key``, else ``(False, None)``."""
    if isinstance(value, Mapping):
        return (True, value[key]) if key in value else (False, None)
    if isinstance(value, list | tuple) and isinstance(key, int) and 0 <= key < len(value):
        return True, value[key]
    return False, None
