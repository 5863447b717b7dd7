"""A signing allowlist's ``typed_data`` entries: checked, canonicalised and compiled.

An entry names a domain (``verifying_contract``, ``chain_id``, optionally ``name``) and
a ``primary_type``. With ``types`` (the EIP-712 type string of the primary type, as its
typehash hashes it: ``Mail(Person from,string contents)Person(string name,address
wallet)``) only documents of exactly those types match, and ``conditions`` on the
message's fields become possible: the structs are read as tuples and the conditions
compiled by :mod:`walletgate.config.conditions`, like a contract method's arguments.
Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

from walletgate.config.addresses import checked_address
from walletgate.config.conditions import ConditionError, Lists, compile_fields, decompile_fields
from walletgate.config.document_errors import KeyPath, Problem
from walletgate.config.methods import _list_names, compile_lists
from walletgate.config.signatures import Param, SignatureError, parse_signature
from walletgate.intents import InvalidAddress
from walletgate.policies.conditions import Fields
from walletgate.policies.model import TypedDataEntry
from walletgate.proxy.evm.typed_values import type_string

Field = tuple[str, str]

_STRUCT_RE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)\(([^()]*)\)")
_ATOMIC_RE = re.compile(r"address|bool|string|bytes|bytes[0-9]{1,2}|u?int[0-9]{0,3}")
_MEMBER_RE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*(?:\[[0-9]*\])*) ([A-Za-z_$][A-Za-z0-9_$]*)")


def parse_types(text: str, primary: str) -> dict[str, tuple[Field, ...]]:
    """The struct definitions of an EIP-712 type string whose first struct is ``primary``;
    raises ``ValueError`` naming what is wrong. The string must be canonical: the
    primary type, then every struct it references, sorted by name, each once."""
    types: dict[str, tuple[Field, ...]] = {}
    at = 0
    while at < len(text):
        match = _STRUCT_RE.match(text, at)
        if match is None:
            raise ValueError(f"expected Name(type name,...) at position {at}")
        name, body = match.group(1), match.group(2)
        if name in types:
            raise ValueError(f"{name} is defined twice")
        members = []
        for member in body.split(",") if body else []:
            parsed = _MEMBER_RE.fullmatch(member)
            if parsed is None:
                raise ValueError(f"{member!r} in {name} is not 'type name'")
            members.append((parsed.group(2), parsed.group(1)))
        types[name] = tuple(members)
        at = match.end()
    if not types or next(iter(types)) != primary:
        raise ValueError(f"the type string must start with the primary type {primary}")
    for name, fields in types.items():
        for member, kind in fields:
            base = kind.split("[", 1)[0]
            if not _ATOMIC_RE.fullmatch(base) and base not in types:
                raise ValueError(f"{name}.{member} has type {base}, which is not defined")
    if type_string(types, primary) != text:
        raise ValueError(
            f"not the canonical type string: expected {type_string(types, primary)!r} (the "
            "primary type, then the structs it references sorted by name, each once)"
        )
    return types


def struct_params(types: dict[str, tuple[Field, ...]], primary: str) -> tuple[Param, ...]:
    """The fields of ``primary`` as ABI parameters (structs as named tuples), for the
    condition compiler; raises ``ValueError`` for a recursive struct."""
    signature = f"m({_members(types, primary, ())})"
    try:
        return parse_signature(signature).params
    except SignatureError as exc:
        raise ValueError(str(exc)) from None


def _members(types: dict[str, tuple[Field, ...]], name: str, seen: tuple[str, ...]) -> str:
    if name in seen:
        raise ValueError(f"{name} contains itself: conditions cannot follow a recursive type")
    parts = []
    for member, kind in types[name]:
        base, suffix = kind.split("[", 1)[0], kind[len(kind.split("[", 1)[0]) :]
        if base in types:
            kind = f"({_members(types, base, (*seen, name))}){suffix}"
        parts.append(f"{kind} {member}")
    return ",".join(parts)


def compile_entry(entry: Mapping[str, Any], lists: Lists) -> TypedDataEntry:
    """The :class:`TypedDataEntry` of a valid entry; raises ``ValueError`` or
    :class:`ConditionError` (at a path relative to the entry) for a bad one."""
    conditions = None
    if "conditions" in entry:
        types = parse_types(entry["types"], entry["primary_type"])
        params = struct_params(types, entry["primary_type"])
        conditions = compile_fields(entry["conditions"], params, lists, ("conditions",))
    return TypedDataEntry(
        verifying_contract=checked_address(entry["verifying_contract"]),
        chain_id=entry["chain_id"],
        primary_type=entry["primary_type"],
        name=entry.get("name"),
        types=entry.get("types"),
        allow_missing_chain_id=entry.get("allow_missing_chain_id", False),
        conditions=conditions,
    )


def typed_data_problems(rule: Mapping[str, Any], path: KeyPath) -> Iterator[Problem]:
    """Every problem in the ``typed_data`` entries of a ``signing_allowlist`` rule."""
    try:
        lists = compile_lists(rule.get("lists"))
    except InvalidAddress:
        return  # reported by the address list checks
    for number, entry in enumerate(rule.get("typed_data", [])):
        where: KeyPath = (*path, "typed_data", number)
        try:
            if "types" in entry:
                parse_types(entry["types"], entry["primary_type"])
            compile_entry(entry, lists)
        except ConditionError as exc:
            yield Problem((*where, *exc.path), exc.message)
        except InvalidAddress as exc:
            yield Problem((*where, "verifying_contract"), str(exc))
        except ValueError as exc:
            yield Problem((*where, "types"), str(exc))


def canonical_entries(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``typed_data`` in canonical form: addresses lowercase, defaults written out,
    conditions decompiled, entries sorted and each once."""
    canonical: dict[str, dict[str, Any]] = {}
    for entry in entries:
        out: dict[str, Any] = {
            "verifying_contract": checked_address(entry["verifying_contract"]),
            "chain_id": entry["chain_id"],
        }
        if "name" in entry:
            out["name"] = entry["name"]
        out["primary_type"] = entry["primary_type"]
        if "types" in entry:
            out["types"] = entry["types"]
        out["allow_missing_chain_id"] = entry.get("allow_missing_chain_id", False)
        if "conditions" in entry:
            # Lists only matter for membership, not spelling: any names compile here.
            compiled = compile_entry(entry, _list_names(entry["conditions"]))
            out["conditions"] = decompile_fields(cast(Fields, compiled.conditions).fields)
        canonical[repr(sorted(out.items()))] = out
    return [canonical[key] for key in sorted(canonical)]
