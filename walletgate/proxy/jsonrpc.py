"""JSON-RPC 2.0 envelopes, sans-I/O: request bytes in, calls out; responses as plain dicts.

Parsing is strict because walletgate judges a request and then forwards it: anything the
backend could read differently from us (a duplicate key where one parser keeps the first
value and another the last, a number too large for the other side, a lone surrogate) is
refused instead of guessed.

Why the standard library ``json`` and not orjson: orjson silently keeps the last of
duplicate keys and has no hooks, so it could only ever be a second parse after this one,
which would cost more than it saves. ``json.loads`` with ``object_pairs_hook``,
``parse_int``, ``parse_float`` and ``parse_constant`` gives every check in one pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from itertools import accumulate
from typing import Any, TypeAlias

#: A JSON-RPC id as parsed: fractional numbers arrive as Decimal, never float.
JsonId: TypeAlias = str | int | Decimal | None
Params: TypeAlias = list[Any] | dict[str, Any] | None

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_BATCH = 100
#: 2**256 has 78 decimal digits; anything much longer is not a number anyone means.
MAX_NUMBER_CHARS = 100

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The closing quote is optional so that an unterminated string is consumed once, to the
# end, instead of being retried from every later quote (quadratic on hostile input).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_REQUEST_MEMBERS = frozenset({"jsonrpc", "id", "method", "params"})


class ErrorCode(IntEnum):
    """JSON-RPC 2.0 and EIP-1474 error codes."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    INVALID_INPUT = -32000
    RESOURCE_NOT_FOUND = -32001
    RESOURCE_UNAVAILABLE = -32002
    TRANSACTION_REJECTED = -32003
    METHOD_NOT_SUPPORTED = -32004
    LIMIT_EXCEEDED = -32005
    VERSION_NOT_SUPPORTED = -32006


class RequestError(ValueError):
    """The whole body is unusable (parse error, empty batch, ...): answer with id null."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Call:
    """One well-formed request. ``is_notification`` is true when the request had no
    ``id``: the client expects no response, but the call is judged all the same."""

    id: JsonId
    method: str
    params: Params
    is_notification: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One element of a body: a call, or the error response for an invalid request
    object (with the request's id when that much could be read, else null)."""

    call: Call | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A request body. ``items`` holds one element for a single request and every element
    of a batch in order; ``is_batch`` tells them apart (a batch of one still gets an array
    back). ``error`` is set, and ``items`` empty, when the whole body is unusable."""

    items: tuple[Item, ...]
    is_batch: bool
    error: dict[str, Any] | None = None


class _Refused(Exception):
    """Raised from inside ``json.loads`` hooks; turned into a parse error."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise _Refused(f"duplicate object key {key!r}")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a duplicate")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"number too large ({len(text)} digits)")
    return int(text)


def _bounded_decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"number too long ({len(text)} characters)")
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent beyond what decimal can hold: 1e9999999999999999999
        raise _Refused(f"number out of range: {text}") from None
    # "1e999999999" is short but absurd, and would explode anything that scales it.
    if abs(value.adjusted()) > MAX_NUMBER_CHARS:
        raise _Refused(f"number out of range: {text}")
    return value


def _no_constant(text: str) -> Any:
    raise _Refused(f"{text} is not valid JSON")


def _nesting_depth(text: str, max_depth: int) -> int:
    """How deeply ``text`` nests arrays and objects (0 when plainly within ``max_depth``).

    Measured before parsing because the C parser recurses: under a raised recursion
    limit (py-evm raises it to 100000) a hostile ``[[[[...`` overflows the C stack and
    kills the process instead of raising. Strings are removed first, so brackets inside
    them do not count.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return 0
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _reject_lone_surrogates(root: Any) -> None:
    """A ``\\ud800`` escape parses to a string no UTF-8 encoder (or backend) accepts."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise _Refused("string contains an unpaired UTF-16 surrogate escape")
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


#: ``json.loads`` with these hooks would build the decoder (and its scanner) per call.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_int=_bounded_int,
    parse_float=_bounded_decimal,
    parse_constant=_no_constant,
)


def loads_strict(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity, huge numbers, deep nesting,
    invalid UTF-8 and lone surrogates. Fractions become :class:`Decimal`, never float.

    Raises :class:`RequestError` (-32700) naming what was wrong. Also used for JSON that
    arrives inside params (typed data given as a string).
    """
    # Text decoded here holds no surrogate (the UTF-8 codec refuses encoded ones); a str
    # given by the caller might.
    may_hold_surrogate = not isinstance(text, bytes)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(
                ErrorCode.PARSE_ERROR, f"body is not valid UTF-8 (byte {exc.start})"
            ) from None
    if _nesting_depth(text, max_depth) > max_depth:
        raise RequestError(
            ErrorCode.PARSE_ERROR, f"invalid JSON: nesting deeper than {max_depth} levels"
        )
    try:
        if text.startswith("\ufeff"):  # what json.loads checks before decoding a str
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _STRICT_DECODER.decode(text)
        # Only a \u escape, or a surrogate in the text itself, can put a surrogate in the
        # value: without either, the walk over every string of the document is skipped.
        if "\\u" in text or (may_hold_surrogate and _LONE_SURROGATE.search(text)):
            _reject_lone_surrogates(value)
    except _Refused as exc:
        raise RequestError(ErrorCode.PARSE_ERROR, f"invalid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            ErrorCode.PARSE_ERROR,
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    return value


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):  # bool is an int subclass, but true is not a number
        return False
    return value is None or isinstance(value, str | int | Decimal)


def _parse_element(element: Any) -> Item:
    if not isinstance(element, dict):
        return _invalid(None, "request must be a JSON object")
    raw_id = element.get("id")
    if not _valid_id(raw_id):
        return _invalid(None, "id must be a string, number or null")
    request_id: JsonId = raw_id
    if element.get("jsonrpc") != "2.0":
        return _invalid(request_id, 'jsonrpc must be "2.0"')
    if not _REQUEST_MEMBERS.issuperset(element):
        # The backend might give meaning to a member we do not judge: refuse it.
        unexpected = sorted(set(element) - _REQUEST_MEMBERS)
        return _invalid(request_id, f"unexpected request member {unexpected[0]!r}")
    method = element.get("method")
    if not isinstance(method, str):
        return _invalid(request_id, "method must be a string")
    if not method:
        return _invalid(request_id, "method must not be empty")
    params = element.get("params")
    if "params" in element and not isinstance(params, list | dict):
        return _invalid(request_id, "params must be an array or object")
    call = Call(request_id, method, params, is_notification="id" not in element)
    return Item(call=call)


def _invalid(request_id: JsonId, message: str) -> Item:
    return Item(error=error_response(request_id, ErrorCode.INVALID_REQUEST, message))


def parse_body(
    body: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> ParsedBody:
    """Parse a JSON-RPC request body into calls; never raises for bad input.

    Errors that spoil the whole body (malformed JSON: -32700; an empty or oversize batch,
    a body that is neither object nor array: -32600) set ``error`` to the response to
    send. An invalid element becomes an :class:`Item` carrying its error response, in its
    position, so the response keeps JSON-RPC batch semantics.
    """
    try:
        document = loads_strict(body, max_depth=max_depth)
        if isinstance(document, list):
            if not document:
                raise RequestError(ErrorCode.INVALID_REQUEST, "empty batch")
            if len(document) > max_batch:
                raise RequestError(
                    ErrorCode.INVALID_REQUEST,
                    f"batch of {len(document)} requests exceeds the limit of {max_batch}",
                )
            return ParsedBody(tuple(_parse_element(item) for item in document), is_batch=True)
        if not isinstance(document, dict):
            raise RequestError(ErrorCode.INVALID_REQUEST, "request must be a JSON object or array")
    except RequestError as exc:
        return ParsedBody((), is_batch=False, error=error_response(None, exc.code, exc.message))
    return ParsedBody((_parse_element(document),), is_batch=False)


def error_response(request_id: JsonId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error response object; ``data`` is included only when given."""
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    """A JSON-RPC success response object."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def call_to_json(call: Call) -> dict[str, Any]:
    """The request object for ``call``, as it would be forwarded (notifications stay
    notifications, absent params stay absent)."""
    out: dict[str, Any] = {"jsonrpc": "2.0"}
    if not call.is_notification:
        out["id"] = call.id
    out["method"] = call.method
    if call.params is not None:
        out["params"] = call.params
    return out


class _HasDecimal(Exception):
    """Raised by the fast path of :func:`dumps` when a Decimal needs its exact digits."""


def _refuse_decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        raise _HasDecimal
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


#: Built once: ``json.dumps`` with these options would build an encoder per call.
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse_decimal
)


def dumps(value: Any) -> bytes:
    """Serialise JSON compactly as UTF-8, writing parsed :class:`Decimal` numbers back
    with their exact digits (``json`` alone would need a float, which may round).

    Used for responses and for forwarding the elements of a batch.
    """
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except _HasDecimal:
        out: list[str] = []
        _encode_into(value, out)
        return "".join(out).encode("utf-8")


def _encode_into(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode_into(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode_into(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
