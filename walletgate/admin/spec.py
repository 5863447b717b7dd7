"""The OpenAPI document and request validation against it.

The document (``openapi.yaml``) is the single description of the API: the app's routes
are made from its operations, and each request's parameters and body are checked
against the operation's schemas (JSON Schema 2020-12, OpenAPI 3.1's dialect) before a
handler runs, so bad input is a 4xx problem document, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from walletgate.admin.problems import Problem

DOC_URI = "urn:walletgate:admin-openapi"
METHODS = ("get", "post", "put", "patch", "delete")
JSON = "application/json"
YAML = "application/yaml"
#: Media types a policy document may come as (YAML is a superset of JSON).
YAML_TYPES = frozenset({YAML, "application/x-yaml", "text/yaml", "text/plain", JSON})


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID(value))


def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or parse_time(value) is not None


# Only the formats the document uses, each checked the way handlers read it.
FORMATS = FormatChecker(formats=())
FORMATS.checks("uuid", raises=ValueError)(_is_uuid)
FORMATS.checks("date-time", raises=ValueError)(_is_datetime)


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time with a zone; raises ValueError otherwise."""
    if "T" not in text.upper():
        raise ValueError(f"{text!r} is not a date-time")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return parsed


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document shipped in the package."""
    text = resources.files("walletgate.admin").joinpath("openapi.yaml").read_text("utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@cache
def document_json() -> bytes:
    """The document as served at ``/openapi.json``."""
    return json.dumps(document(), indent=1).encode()


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource(DOC_URI, resource)
    return registry


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _validator(pointer: str) -> Draft202012Validator:
    """A validator of the schema at JSON pointer ``pointer`` inside the document."""
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"}, registry=_registry(), format_checker=FORMATS
    )


def schema_validator(name: str) -> Draft202012Validator:
    """A validator of the document's ``components.schemas.<name>`` (for tests and tools)."""
    return _validator(f"/components/schemas/{_escape(name)}")


def _resolve(node: Mapping[str, Any], pointer: str) -> tuple[Mapping[str, Any], str]:
    """Follow a local ``$ref`` (once is all the document uses): the node and its pointer."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, pointer
    target: Any = document()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target, ref.removeprefix("#")


@dataclass(frozen=True)
class Param:
    """One path or query parameter: how to read it and what it must be."""

    name: str
    location: str
    required: bool
    kind: str  # the JSON type its text is read as: "string", "integer" or "boolean"
    format: str | None
    validator: Draft202012Validator


@dataclass(frozen=True)
class Body:
    """What an operation's request body must be."""

    media: str
    required: bool
    validator: Draft202012Validator | None  # None: a text document (checked by its handler)


@dataclass(frozen=True)
class Operation:
    """One operation of the document, as the app routes and validates it."""

    operation_id: str
    method: str
    path: str
    public: bool
    params: tuple[Param, ...]
    body: Body | None


def _param(node: Mapping[str, Any], pointer: str) -> Param:
    node, pointer = _resolve(node, pointer)
    schema, schema_pointer = _resolve(node["schema"], f"{pointer}/schema")
    return Param(
        name=node["name"],
        location=node["in"],
        required=bool(node.get("required", False)),
        kind=schema.get("type", "string"),
        format=schema.get("format"),
        validator=_validator(schema_pointer),
    )


def _body(node: Mapping[str, Any] | None, pointer: str) -> Body | None:
    if node is None:
        return None
    node, pointer = _resolve(node, pointer)
    media = next(iter(node["content"]))
    # Only JSON bodies have a schema here; a text document is checked by its handler.
    schema = f"{pointer}/content/{_escape(media)}/schema"
    validator = _validator(schema) if media == JSON else None
    return Body(media, bool(node.get("required", False)), validator)


def _params(node: Mapping[str, Any], pointer: str) -> list[Param]:
    found = node.get("parameters", [])
    return [_param(p, f"{pointer}/parameters/{i}") for i, p in enumerate(found)]


@cache
def operations() -> tuple[Operation, ...]:
    """Every operation of the document."""
    out = []
    for path, item in document()["paths"].items():
        base = f"/paths/{_escape(path)}"
        shared = [
            _param(p, f"{base}/parameters/{i}") for i, p in enumerate(item.get("parameters", []))
        ]
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            here = f"{base}/{method}"
            own = [
                _param(p, f"{here}/parameters/{i}") for i, p in enumerate(op.get("parameters", []))
            ]
            out.append(
                Operation(
                    operation_id=op["operationId"],
                    method=method,
                    path=path,
                    public=op.get("security") == [],
                    params=(*shared, *own),
                    body=_body(op.get("requestBody"), f"{here}/requestBody"),
                )
            )
    return tuple(out)


def _bad(errors: list[dict[str, Any]]) -> Problem:
    detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return Problem(400, detail, errors=errors)


def _typed(param: Param, text: str) -> Any:
    """The text of a parameter read as its JSON type; raises ValueError."""
    if param.kind == "integer":
        if not text.lstrip("-").isdigit() or len(text) > 30:
            raise ValueError(f"{text!r} is not an integer")
        return int(text)
    if param.kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    return text


def _converted(param: Param, value: Any) -> Any:
    """A checked value as handlers use it: UUIDs and times parsed."""
    if param.format == "uuid":
        return UUID(value)
    if param.format == "date-time":
        return parse_time(value)
    return value


def read_params(op: Operation, request: web.Request) -> dict[str, Any]:
    """The operation's parameters of ``request``, typed and checked; raises a 400
    :class:`Problem` listing every one that is missing, unknown or malformed."""
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    query = request.rel_url.query
    known = {p.name for p in op.params if p.location == "query"}
    for name in sorted(set(query) - known):
        errors.append({"path": f"query.{name}", "message": "unknown parameter"})
    for param in op.params:
        where = f"{param.location}.{param.name}"
        if param.location == "path":
            texts = [request.match_info[param.name]]
        else:
            texts = query.getall(param.name, [])
        if not texts:
            if param.required:
                errors.append({"path": where, "message": "is required"})
            continue
        if len(texts) > 1:
            errors.append({"path": where, "message": "given more than once"})
            continue
        try:
            value = _typed(param, texts[0])
        except ValueError as exc:
            errors.append({"path": where, "message": str(exc)})
            continue
        problems = [e.message for e in param.validator.iter_errors(value)]
        if problems:
            errors.append({"path": where, "message": "; ".join(problems)})
            continue
        values[param.name] = _converted(param, value)
    if errors:
        raise _bad(errors)
    return values


async def read_body(op: Operation, request: web.Request) -> Any:
    """The operation's request body: checked JSON data, the raw bytes of a text
    document, or ``None`` when there is none. Raises a 4xx :class:`Problem`."""
    body = op.body
    if body is None:
        return None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size  # aiohttp keeps it only there
        raise Problem(413, f"the body is larger than {limit} bytes") from None
    if not raw:
        if body.required:
            raise _bad([{"path": "body", "message": "a body is required"}])
        return None
    media = request.content_type
    if body.validator is None:
        if media not in YAML_TYPES:
            raise Problem(415, f"send the document as {YAML}, not {media}")
        return raw
    if media != JSON:
        raise Problem(415, f"send the body as {JSON}, not {media}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad([{"path": "body", "message": f"not JSON: {exc}"}]) from None
    errors = [
        {"path": "body" + "".join(f"[{p!r}]" for p in e.absolute_path), "message": e.message}
        for e in body.validator.iter_errors(data)
    ]
    if errors:
        raise _bad(errors)
    return data
