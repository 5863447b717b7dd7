"""A typed-data message read into immutable values (:class:`TypedStruct`), by its types.

Each value is read as strictly as the permit fields are (``hexvalues``): an address is
exactly 0x + 40 hex digits, an unsigned integer a JSON integer, a decimal string or a
0x-hex string, a ``bytesN`` exactly N bytes of 0x-hex, a bool only true or false. A
looser spelling eth-account would coerce is a DecodeError, never a different value:
rules compare these values, so they must be the values signed. Keys the types do not
declare are not signed, and are left out.
"""

from __future__ import annotations

import re
from typing import Any

from walletgate.intents import DecodeError, TypedStruct, TypedValue
from walletgate.proxy.evm.hexvalues import read_address, read_data, read_uint

Field = tuple[str, str]

_ARRAY_RE = re.compile(r"^(.*)\[(\d*)\]$")
_UINT_RE = re.compile(r"uint(\d{1,3})")
_INT_RE = re.compile(r"int(\d{1,3})")
_BYTES_RE = re.compile(r"bytes(\d{1,2})")
_SIGNED_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")


def read_struct(
    types: dict[str, tuple[Field, ...]], type_name: str, value: object, where: str
) -> TypedStruct:
    """``value`` read as a struct of type ``type_name`` (declared in ``types``)."""
    if not isinstance(value, dict):
        raise DecodeError(f"must be an object ({type_name})", where=where)
    fields: list[tuple[str, str, TypedValue]] = []
    for name, kind in types[type_name]:
        if name not in value:
            raise DecodeError(f"{name} is required", where=f"{where}.{name}")
        fields.append((name, kind, read_value(types, kind, value[name], f"{where}.{name}")))
    return TypedStruct(type_name, tuple(fields))


def read_value(
    types: dict[str, tuple[Field, ...]], kind: str, value: object, where: str
) -> TypedValue:
    """``value`` read as EIP-712 type ``kind`` (atomic, dynamic, array or struct)."""
    array = _ARRAY_RE.match(kind)
    if array is not None:
        return _read_array(types, array.group(1), array.group(2), value, where)
    if kind in types:
        return read_struct(types, kind, value, where)
    return _read_atomic(kind, value, where)


def _read_array(
    types: dict[str, tuple[Field, ...]], item: str, size: str, value: object, where: str
) -> tuple[TypedValue, ...]:
    if not isinstance(value, list):
        raise DecodeError(f"must be an array ({item}[{size}])", where=where)
    if size and len(value) != int(size):
        raise DecodeError(f"must have exactly {size} elements, got {len(value)}", where=where)
    return tuple(
        read_value(types, item, element, f"{where}[{index}]") for index, element in enumerate(value)
    )


def _read_atomic(kind: str, value: object, where: str) -> TypedValue:
    if kind == "address":
        return read_address(value, where)
    if kind == "bool":
        if not isinstance(value, bool):
            raise DecodeError("must be true or false", where=where)
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise DecodeError("must be a string", where=where)
        return value
    if kind == "bytes":
        return read_data(value, where)
    if (match := _UINT_RE.fullmatch(kind)) is not None:
        return read_uint(value, where, bits=int(match.group(1)))
    if (match := _INT_RE.fullmatch(kind)) is not None:
        return _read_int(value, where, int(match.group(1)))
    if (match := _BYTES_RE.fullmatch(kind)) is not None:
        data = read_data(value, where)
        if len(data) != int(match.group(1)):
            raise DecodeError(f"must be exactly {match.group(1)} bytes", where=where)
        return data
    # eth-account encoded the document, so this is a type it knows and walletgate does not.
    raise DecodeError(f"walletgate cannot read values of type {kind!r}", where=where)


def _read_int(value: object, where: str, bits: int) -> int:
    """A signed integer: a JSON integer or a decimal string (optionally negative)."""
    if isinstance(value, bool):
        raise DecodeError("must be an integer, got a boolean", where=where)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and len(value) <= 80 and _SIGNED_DECIMAL_RE.fullmatch(value):
        number = int(value)
    else:
        raise DecodeError("must be an integer (number or decimal string)", where=where)
    bound = 1 << (bits - 1)
    if not -bound <= number < bound:
        raise DecodeError(f"integer out of range for int{bits}", where=where)
    return number


def message_struct(
    types: dict[str, tuple[Field, ...]], primary_type: str, message: Any, where: str
) -> TypedStruct:
    """The whole message of a document, at ``{where}.message``."""
    return read_struct(types, primary_type, message, f"{where}.message")


def type_string(types: dict[str, tuple[Field, ...]], primary: str) -> str:
    """The EIP-712 ``encodeType`` of ``primary``: its definition, then those of the
    structs it references (transitively), sorted by name."""
    seen: set[str] = set()
    stack = [primary]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for _, kind in types[name]:
            base = kind.split("[", 1)[0]
            if base in types and base not in seen:
                stack.append(base)
    ordered = [primary, *sorted(seen - {primary})]
    return "".join(
        f"{name}({','.join(f'{kind} {field}' for field, kind in types[name])})" for name in ordered
    )
