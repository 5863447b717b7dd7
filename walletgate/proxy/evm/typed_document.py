"""An EIP-712 document as a request carries it: read strictly and checked to encode.

A document is an object (or a JSON string, parsed strictly: duplicate keys are refused)
with exactly ``types``, ``primaryType``, ``domain`` and ``message``. It is checked with
eth-account's ``encode_typed_data``, so only data that would actually be signed is
judged, after bounds on its size (see :data:`MAX_TYPES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import EncodingError, ParseError, PredicateMappingError
from eth_account.messages import encode_typed_data
from eth_utils import ValidationError

from walletgate.intents import DecodeError
from walletgate.proxy.jsonrpc import RequestError, loads_strict

Field = tuple[str, str]

_DOCUMENT_KEYS = frozenset({"types", "primaryType", "domain", "message"})
#: eth-account re-derives a type's encoding for every struct value it hashes, so its cost
#: grows as struct values x types: without bounds a 600 kB request buys seconds of CPU.
#: Real permits and orders stay far below these (a 100-token Permit2 batch: 101 x 3).
MAX_TYPES = 64
MAX_STRUCT_VALUES = 512
#: What eth-account raises for data it cannot encode.
_ENCODING_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    EncodingError,
    ParseError,  # eth-abi's type grammar: "PermitDetails[[]" (not a ValueError)
    PredicateMappingError,  # eth-abi's registry, for type strings it has no coder for
    ValidationError,
    RecursionError,
)


@dataclass(frozen=True, slots=True)
class TypedData:
    """A structurally valid EIP-712 document that eth-account can encode."""

    types: dict[str, tuple[Field, ...]]
    primary_type: str
    domain: dict[str, Any]
    message: dict[str, Any]


def _read_types(value: object, where: str) -> dict[str, tuple[Field, ...]]:
    if not isinstance(value, dict):
        raise DecodeError("types must be an object", where=where)
    types: dict[str, tuple[Field, ...]] = {}
    for name, fields in value.items():
        if not isinstance(fields, list):
            raise DecodeError("must be an array of {name, type}", where=f"{where}.{name}")
        parsed: list[Field] = []
        for index, field in enumerate(fields):
            if (
                not isinstance(field, dict)
                or set(field) != {"name", "type"}
                or not isinstance(field["name"], str)
                or not isinstance(field["type"], str)
            ):
                raise DecodeError(
                    "must be {name: string, type: string}", where=f"{where}.{name}[{index}]"
                )
            parsed.append((field["name"], field["type"]))
        types[name] = tuple(parsed)
    return types


def _check_size(types: dict[str, tuple[Field, ...]], message: dict[str, Any], where: str) -> None:
    if len(types) > MAX_TYPES:
        raise DecodeError(
            f"typed data declares {len(types)} types; the limit is {MAX_TYPES}",
            where=f"{where}.types",
        )
    objects, stack = 0, [message]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            objects += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if objects > MAX_STRUCT_VALUES:
        raise DecodeError(
            f"typed data message holds {objects} objects; the limit is {MAX_STRUCT_VALUES}",
            where=f"{where}.message",
        )


def parse_typed_data(value: object, where: str) -> TypedData:
    """Read typed data given as an object or a JSON string (parsed strictly: duplicate
    keys are refused) and check that eth-account can encode it."""
    if isinstance(value, str):
        try:
            value = loads_strict(value)
        except RequestError as exc:
            raise DecodeError(f"typed data string: {exc.message}", where=where) from None
    if not isinstance(value, dict):
        raise DecodeError("typed data must be an object or a JSON string", where=where)
    missing = sorted(_DOCUMENT_KEYS - set(value))
    if missing:
        raise DecodeError(f"typed data is missing {missing[0]!r}", where=where)
    unknown = sorted(set(value) - _DOCUMENT_KEYS)
    if unknown:
        raise DecodeError(f"unknown typed data member {unknown[0]!r}", where=where)
    types = _read_types(value["types"], f"{where}.types")
    primary_type = value["primaryType"]
    if not isinstance(primary_type, str) or primary_type not in types:
        raise DecodeError("primaryType must name a type in types", where=f"{where}.primaryType")
    for key in ("domain", "message"):
        if not isinstance(value[key], dict):
            raise DecodeError(f"{key} must be an object", where=f"{where}.{key}")
    _check_size(types, value["message"], where)
    try:
        encode_typed_data(full_message=value)
    except _ENCODING_ERRORS as exc:
        raise DecodeError(f"typed data does not encode: {exc}", where=where) from None
    return TypedData(types, primary_type, value["domain"], value["message"])
