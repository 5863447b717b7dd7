"""JSON-RPC envelope parsing: strict JSON, precise -32700 / -32600 errors, batch positions."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import eth  # noqa: F401  # py-evm raises the recursion limit to 100000 on import
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletgate.proxy.jsonrpc import (
    Call,
    ErrorCode,
    RequestError,
    call_to_json,
    dumps,
    error_response,
    loads_strict,
    parse_body,
    result_response,
)


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def _whole_body_error(body: bytes, **limits: int) -> dict[str, Any]:
    parsed = parse_body(body, **limits)
    assert parsed.items == ()
    assert parsed.error is not None
    assert parsed.error["id"] is None
    error: dict[str, Any] = parsed.error["error"]
    return error


def test_single_call_is_parsed() -> None:
    parsed = parse_body(_body({"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}))
    assert parsed.error is None
    assert not parsed.is_batch
    assert [item.call for item in parsed.items] == [Call(7, "eth_chainId", [])]


def test_absent_params_and_notifications_are_kept_apart() -> None:
    parsed = parse_body(_body({"jsonrpc": "2.0", "method": "eth_blockNumber"}))
    (item,) = parsed.items
    assert item.call == Call(None, "eth_blockNumber", None, is_notification=True)
    assert call_to_json(item.call) == {"jsonrpc": "2.0", "method": "eth_blockNumber"}


def test_null_id_is_a_request_not_a_notification() -> None:
    (item,) = parse_body(_body({"jsonrpc": "2.0", "id": None, "method": "m"})).items
    assert item.call is not None
    assert not item.call.is_notification
    assert call_to_json(item.call)["id"] is None


def test_batch_keeps_positions_and_per_element_errors() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        5,
        {"jsonrpc": "2.0", "id": "c", "method": 1},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": {"x": 1}},
        {"jsonrpc": "2.0", "id": "e", "method": "eth_getBalance", "params": "0x1"},
    ]
    parsed = parse_body(_body(batch))
    assert parsed.is_batch and parsed.error is None
    calls = [item.call for item in parsed.items]
    errors = [item.error for item in parsed.items]
    assert calls[0] == Call("a", "eth_chainId", None)
    assert calls[3] == Call(None, "eth_blockNumber", {"x": 1}, is_notification=True)
    assert calls[1] is calls[2] is calls[4] is None
    assert errors[1] == error_response(None, -32600, "request must be a JSON object")
    assert errors[2] == error_response("c", -32600, "method must be a string")
    assert errors[4] == error_response("e", -32600, "params must be an array or object")


def test_batch_of_one_is_still_a_batch() -> None:
    parsed = parse_body(_body([{"jsonrpc": "2.0", "id": 1, "method": "m"}]))
    assert parsed.is_batch and len(parsed.items) == 1


@pytest.mark.parametrize(
    ("request_object", "request_id", "message"),
    [
        (
            {"jsonrpc": "2.0", "id": True, "method": "m"},
            None,
            "id must be a string, number or null",
        ),
        ({"jsonrpc": "2.0", "id": [1], "method": "m"}, None, "id must be a string, number or null"),
        (
            {"jsonrpc": "2.0", "id": {"a": 1}, "method": "m"},
            None,
            "id must be a string, number or null",
        ),
        ({"id": 3, "method": "m"}, 3, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "1.0", "id": 3, "method": "m"}, 3, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 3}, 3, "method must be a string"),
        ({"jsonrpc": "2.0", "id": 3, "method": ""}, 3, "method must not be empty"),
        (
            {"jsonrpc": "2.0", "id": 3, "method": "m", "params": None},
            3,
            "params must be an array or object",
        ),
        (
            {"jsonrpc": "2.0", "id": 3, "method": "m", "params": 1},
            3,
            "params must be an array or object",
        ),
        (
            {"jsonrpc": "2.0", "id": 3, "method": "m", "extra": 1},
            3,
            "unexpected request member 'extra'",
        ),
    ],
)
def test_invalid_request_objects_get_precise_errors(
    request_object: dict[str, Any], request_id: Any, message: str
) -> None:
    (item,) = parse_body(_body(request_object)).items
    assert item.call is None
    assert item.error == error_response(request_id, ErrorCode.INVALID_REQUEST, message)


def test_string_and_fractional_ids_are_echoed_exactly() -> None:
    parsed = parse_body(
        b'[{"jsonrpc":"2.0","id":"x","method":"m"},{"jsonrpc":"2.0","id":1.50,"method":"m"}]'
    )
    ids = [item.call.id for item in parsed.items if item.call is not None]
    assert ids == ["x", Decimal("1.50")]
    assert dumps(result_response(ids[1], "0x1")) == b'{"jsonrpc":"2.0","id":1.50,"result":"0x1"}'


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{", -32700, "invalid JSON"),
        (b"", -32700, "invalid JSON"),
        (b"   ", -32700, "invalid JSON"),
        (b'{"a": 1} x', -32700, "Extra data"),
        (b"\xff\xfe{}", -32700, "not valid UTF-8 (byte 0)"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"m","params":["\xc3"]}',
            -32700,
            "not valid UTF-8 (byte 48)",
        ),
        (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}', -32700, "duplicate object key 'id'"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"eth_sendTransaction","params":[{"to":"0x1","to":"0x2"}]}',
            -32700,
            "duplicate object key 'to'",
        ),
        (b'{"a": NaN}', -32700, "NaN is not valid JSON"),
        (b'{"a": Infinity}', -32700, "Infinity is not valid JSON"),
        (b'{"a": -Infinity}', -32700, "-Infinity is not valid JSON"),
        (b'{"a": ' + b"9" * 101 + b"}", -32700, "number too large"),
        (b'{"a": 1.' + b"5" * 100 + b"}", -32700, "number too long"),
        (b'{"a": 1e999999999}', -32700, "number out of range"),
        (b'{"a": "\\ud800"}', -32700, "unpaired UTF-16 surrogate"),
        (b'{"\\uDC00": 1}', -32700, "unpaired UTF-16 surrogate"),
        (b'{"a": ["ok", "\\ud83d\\ude00", "\\udfff"]}', -32700, "unpaired UTF-16 surrogate"),
        (b'\xef\xbb\xbf{"a": 1}', -32700, "Unexpected UTF-8 BOM"),
        (b'{"a": 1, "b": 2, "a": 1}', -32700, "duplicate object key 'a'"),
        (b"[]", -32600, "empty batch"),
        (b"5", -32600, "request must be a JSON object or array"),
        (b'"eth_chainId"', -32600, "request must be a JSON object or array"),
        (b"null", -32600, "request must be a JSON object or array"),
    ],
)
def test_whole_body_errors(body: bytes, code: int, fragment: str) -> None:
    error = _whole_body_error(body)
    assert error["code"] == code
    assert fragment in error["message"]


def test_nesting_limit_is_exact() -> None:
    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    assert parse_body(nested(8), max_depth=8).error is None  # a batch of invalid elements
    assert _whole_body_error(nested(9), max_depth=8)["message"] == (
        "invalid JSON: nesting deeper than 8 levels"
    )
    # py-evm raises the recursion limit to 100000, where the C parser would overflow
    # the C stack on this: it must be refused before parsing.
    assert sys.getrecursionlimit() >= 100_000
    assert "nesting deeper than" in _whole_body_error(nested(200_000))["message"]
    assert "nesting deeper than" in _whole_body_error(b'{"a":' * 200_000)["message"]
    # An unterminated string full of escaped quotes is measured in one pass.
    hostile = b"[" * 70 + b'"' + b'\\"' * 300_000
    assert "nesting deeper than" in _whole_body_error(hostile)["message"]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = _body({"jsonrpc": "2.0", "id": 1, "method": "m", "params": ['[[[[{{{{\\"[[[']})
    (item,) = parse_body(body, max_depth=2).items
    assert item.call is not None and item.call.params == ['[[[[{{{{\\"[[[']


def test_nesting_within_the_limit_parses() -> None:
    params = {"a": {"b": [[{"c": 1}]]}}
    body = _body({"jsonrpc": "2.0", "id": 1, "method": "m", "params": params})
    (item,) = parse_body(body, max_depth=6).items
    assert item.call is not None and item.call.params == params
    assert "nesting deeper" in _whole_body_error(body, max_depth=5)["message"]


def test_batch_size_limit() -> None:
    batch = [{"jsonrpc": "2.0", "id": n, "method": "m"} for n in range(4)]
    assert len(parse_body(_body(batch), max_batch=4).items) == 4
    error = _whole_body_error(_body(batch), max_batch=3)
    assert error == {"code": -32600, "message": "batch of 4 requests exceeds the limit of 3"}


def test_large_but_sane_numbers_are_exact_integers() -> None:
    value = 2**256 - 1
    assert loads_strict(f'{{"v": {value}}}') == {"v": value}
    assert loads_strict('{"v": 12.5}') == {"v": Decimal("12.5")}


def test_loads_strict_raises_request_error() -> None:
    with pytest.raises(RequestError) as caught:
        loads_strict('{"a":1,"a":1}')
    assert caught.value.code == ErrorCode.PARSE_ERROR


def test_error_response_includes_data_only_when_given() -> None:
    assert error_response(1, -32003, "no") == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32003, "message": "no"},
    }
    data = {"decision": "deny", "reason": "per_tx_cap_exceeded"}
    assert error_response("x", ErrorCode.LIMIT_EXCEEDED, "cap", data)["error"] == {
        "code": -32005,
        "message": "cap",
        "data": data,
    }


def test_dumps_round_trips_parsed_documents_exactly() -> None:
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_feeHistory",'
        b'"params":["0x5","latest",[12.50,1E+2,-0.0]]}'
    )
    (item,) = parse_body(body).items
    assert item.call is not None
    assert dumps(call_to_json(item.call)) == body


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    parsed = parse_body(body)
    assert (parsed.error is None) == bool(parsed.items)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_arbitrary_json_documents_never_raise(document: Any) -> None:
    parsed = parse_body(_body(document))
    if isinstance(document, list) and document:
        assert parsed.is_batch and len(parsed.items) == len(document)
    for item in parsed.items:
        assert (item.call is None) != (item.error is None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=20))
def test_batches_keep_every_position(valid: list[bool]) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": index, "method": "eth_chainId"}
        if ok
        else {"jsonrpc": "2.0", "id": index, "method": index}
        for index, ok in enumerate(valid)
    ]
    parsed = parse_body(_body(batch))
    for index, (ok, item) in enumerate(zip(valid, parsed.items, strict=True)):
        if ok:
            assert item.call == Call(index, "eth_chainId", None)
        else:
            assert item.error == error_response(index, -32600, "method must be a string")


def test_paired_surrogate_escapes_are_one_character() -> None:
    assert loads_strict(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_a_str_holding_a_lone_surrogate_is_refused() -> None:
    # Text given as str (JSON found inside params) may carry a surrogate itself, with no
    # escape in sight; bytes cannot (the UTF-8 codec refuses an encoded surrogate).
    with pytest.raises(RequestError, match="unpaired UTF-16 surrogate"):
        loads_strict('{"a": "x\ud800"}')
    with pytest.raises(RequestError, match="not valid UTF-8"):
        loads_strict(b'{"a": "\xed\xa0\x80"}')
