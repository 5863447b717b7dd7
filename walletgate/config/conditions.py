"""Conditions as operators write them, compiled against the types they constrain.

A condition node is a mapping of one or more operators (several must all pass)::

    amount: {lte: "1000000"}                 # integers: base units, quoted or plain
    to: {own_wallet: true}
    path: {every: {in_list: tokens}}          # a list named in the rule's ``lists``
    order: {fields: {recipient: {equals: "0x…"}, "1": {gte: "5"}}}
    fee: {one_of: ["500", "3000"]}
    token: {not: {equals: "0x…"}}
    x: {any: [{lte: "5"}, {gte: "100"}]}

Operators: ``equals``, ``one_of``, ``lte``, ``gte``, ``in_list``, ``own_wallet``,
``every``, ``some``, ``fields``, ``all``, ``any``, ``not``. Each is checked against the
type it applies to (``lte`` on an address is an error, not a condition that never holds),
and values are converted once: integers exactly (never floats), addresses to their
canonical form (a mixed-case address must be a valid checksum), bytes from ``0x`` hex.

:func:`compile_fields` is also what typed-data field conditions use: give it the struct's
fields as :class:`~walletgate.config.signatures.Param` values and ``by_name=True``.
Pure; errors are :class:`ConditionError` at a key path relative to the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from walletgate.config.addresses import checked_address
from walletgate.config.document_errors import KeyPath
from walletgate.config.signatures import AbiType, Param
from walletgate.intents import InvalidAddress
from walletgate.policies.conditions import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Condition,
    Equals,
    Every,
    Field,
    Fields,
    InList,
    Not,
    OneOf,
    OwnWallet,
    Some,
)

#: Address lists by name, canonical (a rule's ``lists``).
Lists = Mapping[str, frozenset[str]]

_INTEGER_RE = re.compile(r"-?[0-9]+")
_HEX_RE = re.compile(r"0x([0-9a-fA-F]{2})*")
_INDEX_RE = re.compile(r"[0-9]+")
_COMPARABLE = ("address", "uint", "int", "bool", "bytes", "string")


class ConditionError(ValueError):
    """A condition that does not fit the value it constrains; ``path`` is where."""

    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def compile_fields(
    node: Mapping[str, Any],
    params: Sequence[Param],
    lists: Lists,
    path: KeyPath = (),
    *,
    by_name: bool = False,
) -> Fields:
    """Conditions on fields (``{name or index: condition}``) of a tuple of ``params``.

    Fields are looked up by index in the value, or by name when ``by_name`` (structs
    decoded to mappings); reasons name a field by its name where it has one.
    """
    fields = []
    seen: dict[int, str] = {}
    for key, child in node.items():
        index = field_index(key, params, path)
        if index in seen:
            raise ConditionError((*path, key), f"the same field as {seen[index]!r}")
        seen[index] = key
        param = params[index]
        label: str | int = param.name if param.name is not None else index
        lookup: str | int = param.name if by_name and param.name is not None else index
        condition = compile_condition(child, param.type, lists, (*path, key))
        fields.append(Field(lookup, label, condition))
    return Fields(tuple(fields))


def field_index(key: str, params: Sequence[Param], path: KeyPath) -> int:
    """The index of the field ``key`` (a name, or an index written as digits)."""
    for index, param in enumerate(params):
        if param.name == key:
            return index
    if _INDEX_RE.fullmatch(key) and int(key) < len(params):
        return int(key)
    names = [param.name for param in params if param.name is not None]
    known = f"names: {', '.join(names)}; " if names else ""
    raise ConditionError(
        (*path, key), f"no argument or field {key!r} ({known}indexes 0 to {len(params) - 1})"
    )


def compile_condition(node: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> Condition:
    """One condition node (a mapping of operators, all of which must pass)."""
    if not isinstance(node, Mapping) or not node:
        raise ConditionError(path, "a condition is a mapping of operators such as {lte: '5'}")
    parts = [
        _operator(name, operand, abi_type, lists, (*path, name)) for name, operand in node.items()
    ]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _operator(name: str, operand: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> Condition:
    base = abi_type.base
    operators: dict[str, Callable[[], Condition]] = {
        "equals": lambda: Equals(value_of(operand, abi_type, path)),
        "one_of": lambda: OneOf(
            tuple(value_of(item, abi_type, (*path, n)) for n, item in enumerate(operand))
        ),
        "lte": lambda: AtMost(_integer(operand, abi_type, path)),
        "gte": lambda: AtLeast(_integer(operand, abi_type, path)),
        "in_list": lambda: _in_list(operand, abi_type, lists, path),
        "own_wallet": lambda: _own_wallet(operand, abi_type, path),
        "every": lambda: Every(_element(operand, abi_type, lists, path)),
        "some": lambda: Some(_element(operand, abi_type, lists, path)),
        "fields": lambda: _fields(operand, abi_type, lists, path),
        "all": lambda: AllOf(_each(operand, abi_type, lists, path)),
        "any": lambda: AnyOf(_each(operand, abi_type, lists, path)),
        "not": lambda: Not(compile_condition(operand, abi_type, lists, path)),
    }
    compiled = operators.get(name)
    if compiled is None:
        raise ConditionError(path, f"unknown condition operator {name!r}")
    if name in ("equals", "one_of") and base not in _COMPARABLE:
        raise ConditionError(path, f"{name} compares plain values, not a {abi_type.canonical}")
    return compiled()


def _each(operand: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> tuple[Condition, ...]:
    return tuple(
        compile_condition(item, abi_type, lists, (*path, n)) for n, item in enumerate(operand)
    )


def _element(operand: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> Condition:
    if abi_type.element is None:
        raise ConditionError(path, f"every/some apply to arrays, not to a {abi_type.canonical}")
    return compile_condition(operand, abi_type.element, lists, path)


def _fields(operand: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> Condition:
    if not abi_type.is_tuple:
        raise ConditionError(path, f"fields apply to tuples, not to a {abi_type.canonical}")
    return compile_fields(operand, abi_type.components, lists, path)


def _in_list(operand: Any, abi_type: AbiType, lists: Lists, path: KeyPath) -> Condition:
    if abi_type.base != "address":
        raise ConditionError(path, f"in_list applies to addresses, not to a {abi_type.canonical}")
    if operand not in lists:
        known = ", ".join(sorted(lists)) or "none: add them under the rule's lists"
        raise ConditionError(path, f"unknown address list {operand!r} (known: {known})")
    return InList(operand, lists[operand])


def _own_wallet(operand: Any, abi_type: AbiType, path: KeyPath) -> Condition:
    if abi_type.base != "address":
        raise ConditionError(
            path, f"own_wallet applies to addresses, not to a {abi_type.canonical}"
        )
    if operand is not True:
        raise ConditionError(path, "own_wallet takes true (to allow any address, leave it out)")
    return OwnWallet()


def _integer(operand: Any, abi_type: AbiType, path: KeyPath) -> int:
    if abi_type.base not in ("uint", "int"):
        raise ConditionError(path, f"lte/gte compare integers, not a {abi_type.canonical}")
    value = value_of(operand, abi_type, path)
    assert isinstance(value, int)  # value_of of an integer type
    return value


def value_of(raw: Any, abi_type: AbiType, path: KeyPath) -> Any:
    """A condition value as the decoder gives it for ``abi_type``; raises
    :class:`ConditionError`."""
    base = abi_type.base
    if base == "address":
        try:
            return checked_address(raw) if isinstance(raw, str) else _bad(raw, "an address", path)
        except InvalidAddress as exc:
            raise ConditionError(path, str(exc)) from None
    if base in ("uint", "int"):
        return _integer_value(raw, abi_type, path)
    if base == "bool":
        return raw if isinstance(raw, bool) else _bad(raw, "true or false", path)
    if base == "bytes":
        if not isinstance(raw, str) or not _HEX_RE.fullmatch(raw):
            _bad(raw, "bytes written as 0x followed by hex digit pairs", path)
        value = bytes.fromhex(raw[2:])
        size = abi_type.canonical[5:]
        if size and len(value) != int(size):
            raise ConditionError(
                path, f"{raw} is {len(value)} bytes, a {abi_type.canonical} is {size}"
            )
        return value
    if base == "string":
        return raw if isinstance(raw, str) else _bad(raw, "a string", path)
    raise ConditionError(path, f"no plain value of type {abi_type.canonical}")


def spelled(value: Any) -> Any:
    """A compiled value written back for the canonical document (inverse of :func:`value_of`)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    raise TypeError(f"not a condition value: {value!r}")


def _integer_value(raw: Any, abi_type: AbiType, path: KeyPath) -> int:
    if isinstance(raw, str) and _INTEGER_RE.fullmatch(raw):
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        _bad(raw, 'a whole number in base units, quoted: "1000000"', path)
    bits = int(abi_type.canonical[len(abi_type.base) :])
    low, high = (
        (0, 2**bits - 1) if abi_type.base == "uint" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    if not low <= value <= high:
        raise ConditionError(path, f"{value} is outside the range of a {abi_type.canonical}")
    return value


def _bad(raw: Any, expected: str, path: KeyPath) -> Any:
    raise ConditionError(path, f"{raw!r} is not {expected}")


def decompile(condition: Condition) -> dict[str, Any]:
    """A compiled condition written back as one canonical node (for the canonical document:
    values in one spelling, fields by name where they have one, several operators of one
    node as ``all``). Compiling the result gives the same condition."""
    match condition:
        case Equals(expected):
            return {"equals": spelled(expected)}
        case OneOf(options):
            return {"one_of": [spelled(option) for option in options]}
        case AtMost(bound):
            return {"lte": str(bound)}
        case AtLeast(bound):
            return {"gte": str(bound)}
        case InList(name, _):
            return {"in_list": name}
        case OwnWallet():
            return {"own_wallet": True}
        case Every(inner):
            return {"every": decompile(inner)}
        case Some(inner):
            return {"some": decompile(inner)}
        case Fields(fields):
            return {"fields": decompile_fields(fields)}
        case AllOf(conditions):
            return {"all": [decompile(inner) for inner in conditions]}
        case AnyOf(conditions):
            return {"any": [decompile(inner) for inner in conditions]}
        case Not(inner):
            return {"not": decompile(inner)}
    raise TypeError(f"not a condition: {condition!r}")


def decompile_fields(fields: Sequence[Field]) -> dict[str, Any]:
    """Field conditions written back: ``{name or index: node}``."""
    return {str(field.label): decompile(field.condition) for field in fields}
