"""Structural validation against the published JSON Schema, with messages people can act on.

jsonschema's own messages quote whole sub-documents ("{...} is not valid under any of
the given schemas"). Here every error is reported at the most specific key path with a
short message; schema nodes may carry ``errorMessage`` / ``patternErrorMessage`` (the
convention yaml-language-server understands too) to say what a rule means.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from walletgate.config.document_errors import KeyPath, Problem
from walletgate.config.yaml_io import YamlFloat

SCHEMA_RESOURCE = "schemas/policies.schema.json"

_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


@cache
def policy_schema() -> dict[str, Any]:
    """The policy document JSON Schema (draft 2020-12), as shipped in the package."""
    text = resources.files("walletgate.config").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_strict_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


#: JSON Schema counts 6.0 as an integer; here it is not: a YAML float that slipped into
#: an integer field (decimals, a chain id, a count) would carry float arithmetic into
#: base-unit amounts, or crash the semantic checks that rely on the schema.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


@cache
def _validator() -> Any:
    return _StrictValidator(policy_schema())


def schema_problems(data: Any) -> list[Problem]:
    """Every way ``data`` departs from the schema, one :class:`Problem` per key path."""
    if data is None:
        return [Problem((), "the document is empty: start with 'version: 1'")]
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        problems.extend(_explain(error))
    return problems


def _shown(value: Any) -> str:
    if isinstance(value, YamlFloat):
        return value.text
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return json.dumps(value)


def _explain(error: ValidationError) -> Iterator[Problem]:
    path: KeyPath = tuple(error.absolute_path)
    node: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    value = error.instance
    expected = error.validator_value

    if kind == "type" and isinstance(value, YamlFloat):
        types = [expected] if isinstance(expected, str) else list(expected)
        if "string" in types:
            yield Problem(
                path,
                f"{value.text} is a YAML float, and floats lose precision: "
                f'write amounts as quoted strings, e.g. "{value.text}"',
            )
        else:
            yield Problem(path, f"{value.text} is read as a YAML float; expected {_types(types)}")
    elif kind == "additionalProperties":
        allowed = ", ".join(node.get("properties", {}))
        for key in value:
            if key not in node.get("properties", {}):
                yield Problem((*path, key), f"unknown key {key!r} (allowed here: {allowed})")
    elif kind == "dependentRequired":
        for key, needs in expected.items():
            missing = [need for need in needs if key in value and need not in value]
            if missing:
                listed = " and ".join(repr(need) for need in missing)
                yield Problem((*path, key), f"{key!r} is set, so {listed} is required too")
    elif kind == "pattern" and "patternErrorMessage" in node:
        yield Problem(path, f"{_shown(value)} {node['patternErrorMessage']}")
    elif "errorMessage" in node:
        yield Problem(path, str(node["errorMessage"]))
    elif kind == "required":
        for key in expected:
            if key not in value:
                yield Problem(path, f"missing key {key!r}")
    else:
        yield Problem(path, _generic(kind, value, expected))


def _types(types: list[str]) -> str:
    return " or ".join(_TYPE_NAMES.get(name, name) for name in types)


def _generic(kind: str, value: Any, expected: Any) -> str:
    shown = _shown(value)
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        got = _JSON_TYPES.get(type(value), type(value).__name__)
        if isinstance(value, dict | list) or value is None:
            return f"expected {_types(types)}, got {got}"
        return f"expected {_types(types)}, got {got}: {shown}"
    if kind == "enum":
        return f"{shown} is not one of: {', '.join(str(choice) for choice in expected)}"
    if kind == "const":
        return f"must be {json.dumps(expected)}, not {shown}"
    if kind == "minimum":
        return f"{shown} is less than the minimum, {expected}"
    if kind == "maximum":
        return f"{shown} is more than the maximum, {expected}"
    if kind == "minItems":
        return f"needs at least {expected} item{'s' if expected != 1 else ''}"
    if kind == "maxItems":
        return f"has more than {expected} items"
    if kind == "uniqueItems":
        return "lists the same value more than once"
    if kind == "minLength":
        return "must not be empty" if expected == 1 else f"is shorter than {expected} characters"
    if kind == "maxLength":
        return f"is longer than {expected} characters"
    if kind == "pattern":
        return f"{shown} does not match {expected}"
    return f"{shown} is not valid ({kind})"
