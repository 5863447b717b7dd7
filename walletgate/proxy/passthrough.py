"""The backend's answer bytes passed through to the agent, where that is safe.

A read used to be decoded from the backend's bytes, given the agent's id and encoded
again. Where the answer is exactly what the agent should get, its bytes go out as they
came in; everything else takes the decode-and-encode path as before.

The backend's bytes are passed through only when all of this holds:

- they are one JSON object in UTF-8 with no byte order mark, that decodes as strict
  JSON (no NaN or Infinity, no lone surrogate);
- its members are exactly ``jsonrpc`` (``"2.0"``), ``id`` and either ``result`` or an
  ``error`` object with an integer ``code`` and a string ``message``;
- none of those member names occurs twice in the bytes (a decoder keeps the last of
  duplicate keys, an agent's may keep the first), and the bytes hold no backslash, so
  no member name can hide behind an escape;
- its ``id`` is the agent's id: the same string, or the same integer written with the
  same digits (never ``null``, which is how a backend answers what it could not read,
  and never a fraction). The read path forwards a single call with the agent's id
  unchanged, so this is the backend answering that call. Any other answer goes to the
  agent as before: decoded, with the agent's id, encoded again.

What the ``result`` holds is the backend's: walletgate judges none of it (a duplicate
key deep inside it reaches the agent as the backend wrote it, where re-encoding used to
keep the last). The decoded answer (a :class:`RawAnswer`, a dict) is still what the
rest of the request path sees: the balance cache takes its ``result`` as before.
Changing it drops the bytes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from walletgate.proxy.jsonrpc import dumps

_MEMBERS_RESULT = frozenset({"jsonrpc", "id", "result"})
_MEMBERS_ERROR = frozenset({"jsonrpc", "id", "error"})
#: Decoded documents walked for floats beyond this many values go to the stdlib decoder.
_WALK_BUDGET = 64
#: Answers up to this many bytes are decoded by orjson first (see decode_answer).
_ORJSON_BELOW = 16384


class RawAnswer(dict[str, Any]):
    """A backend's JSON-RPC answer, decoded, with the bytes it came in as (``raw``).

    Any change to the dict drops ``raw``: the bytes no longer say what it holds.
    """

    __slots__ = ("raw",)

    def __init__(self, decoded: dict[str, Any], raw: bytes) -> None:
        super().__init__(decoded)
        self.raw: bytes | None = raw

    def answers(self, call_id: Any) -> bool:
        """Whether these bytes may go to the agent as the answer to ``call_id``: the
        answer's id is ``call_id``, in value and type, written as walletgate wrote it."""
        if self.raw is None:
            return False
        answer_id = self.get("id")
        kind = type(call_id)
        # bool is an int subclass; Decimal and None ids never pass (see the module doc).
        if kind is not str and kind is not int:
            return False
        if type(answer_id) is not kind or answer_id != call_id:
            return False
        # Equal values, and the bytes hold no backslash: a string id is written exactly
        # as walletgate forwarded it. An integer has one other spelling: -0 for 0.
        return call_id != 0 or kind is str or b"-0" not in self.raw

    def _dropped(self) -> None:
        self.raw = None

    def __setitem__(self, key: str, value: Any) -> None:
        self._dropped()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._dropped()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> RawAnswer:  # type: ignore[override,misc]
        self._dropped()
        return super().__ior__(other)

    def clear(self) -> None:
        self._dropped()
        super().clear()

    def pop(self, *args: Any) -> Any:
        self._dropped()
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self._dropped()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._dropped()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._dropped()
        super().update(*args, **kwargs)


def _has_float(value: Any) -> bool | None:
    """Whether ``value`` holds a float anywhere (``None``: too large to walk here)."""
    stack = [value]
    budget = _WALK_BUDGET
    while stack:
        budget -= 1
        if budget < 0:
            return None
        node = stack.pop()
        kind = type(node)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
    return False


def decode_answer(raw: bytes) -> Any:
    """The backend's answer decoded exactly as ``json.loads`` decodes it (raises
    ``ValueError`` or ``UnicodeDecodeError`` where it does, and for NaN, Infinity and
    encoded surrogates, which could not be sent on), as a :class:`RawAnswer` when it is
    one JSON-RPC object whose bytes may pass through to the agent.

    Small answers (most reads) go to orjson first: it is several times cheaper. Where
    it refuses (NaN, a BOM, UTF-16: no pass-through then) or may differ (it turns an
    integer past 64 bits into a float, so any float, or a document too large to check,
    is decoded again), the standard library's value is the one kept. Larger answers
    and batches go to the standard library at once: checking orjson's value would cost
    more than it saves.
    """
    if len(raw) > _ORJSON_BELOW or raw[:1] == b"[":
        # A batch answer is never passed through, and walking orjson's value of one for
        # floats costs more than the standard library's decoding.
        body = _loads(raw)
    else:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _loads(raw)
        if _has_float(body) is not False:
            body = _loads(raw)
    return _with_raw(body, raw) if type(body) is dict else body


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


#: json.loads with keyword arguments would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def _loads(raw: bytes) -> Any:
    """``json.loads``, refusing NaN and Infinity and UTF-8 that encodes a surrogate
    (neither could be sent on: no JSON encoder writes them)."""
    return _DECODER.decode(raw.decode(json.detect_encoding(raw)))


def _with_raw(body: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """``body`` as a :class:`RawAnswer` when its bytes may be passed on, else itself."""
    if body.get("jsonrpc") != "2.0" or b"\\" in raw or not raw.lstrip().startswith(b"{"):
        return body  # (the last: a byte order mark, which json.loads skips)
    if len(body) != 3 or raw.count(b'"jsonrpc"') != 1 or raw.count(b'"id"') != 1:
        return body
    if body.keys() == _MEMBERS_RESULT:
        if raw.count(b'"result"') != 1 or b'"error"' in raw:
            return body
    elif body.keys() == _MEMBERS_ERROR:
        error = body["error"]
        if (
            type(error) is not dict
            or type(error.get("code")) is not int
            or type(error.get("message")) is not str
            or raw.count(b'"error"') != 1
            or b'"result"' in raw
        ):
            return body
    else:
        return body
    return RawAnswer(body, raw)


def encode(body: Any) -> bytes:
    """A response (or a batch of them) as bytes: a passed-through answer as it came in,
    anything else with :func:`~walletgate.proxy.jsonrpc.dumps`."""
    if type(body) is RawAnswer and body.raw is not None:
        return body.raw
    if type(body) is list and any(type(item) is RawAnswer for item in body):
        return b"[" + b",".join(encode(item) for item in body) + b"]"
    return dumps(body)
