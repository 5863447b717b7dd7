"""HTTP edge cases against a real ``walletgate serve``, over raw sockets where needed.

Each hostile request carries a valid agent token and, wherever the framing allows, an
*allowed* spend: had walletgate accepted the request, the recording backend would have
received it. So "nothing was forwarded" below is a real check, not a formality.

The gateway here runs with 2-second client timeouts (``keepalive_timeout``,
``request_read_timeout``) so slow-client cases finish quickly; no test asserts how long
anything took.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.recorded_gateway import (
    ALICE,
    COUNTERPARTIES,
    RecordedGateway,
    read_reply,
    recorded_gateway_fixture,
)

MAX_BODY = 1_048_576
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [0-9]{3} ")
CLIENT_TIMEOUT = 2


gw = recorded_gateway_fixture(
    "http-edges",
    {
        "WALLETGATE_KEEPALIVE_TIMEOUT": str(CLIENT_TIMEOUT),
        "WALLETGATE_REQUEST_READ_TIMEOUT": str(CLIENT_TIMEOUT),
    },
)


def new_id() -> int:
    return secrets.randbelow(10**15)


def allowed_spend(call_id: int) -> dict[str, Any]:
    """An eth_sendTransaction the policies allow: proof of forwarding if it ever arrives."""
    return {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "eth_sendTransaction",
        "params": [{"from": ALICE, "to": COUNTERPARTIES[0], "value": "0x1"}],
    }


def rpc(call_id: int, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}


def encoded(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def head(gw: RecordedGateway, *lines: str, method: str = "POST", path: str = "/") -> bytes:
    """A request head with alice's token and ``lines`` as extra header lines."""
    text = f"{method} {path} HTTP/1.1\r\nHost: walletgate\r\n"
    text += f"Authorization: Bearer {gw.tokens['alice']}\r\n"
    text += "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return text.encode()


def chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


@pytest.fixture
def no_forward(gw: RecordedGateway) -> Iterator[list[int]]:
    """Ids appended to the yielded list must never reach the backend during the test,
    and the gateway must still be healthy and must not have logged a traceback."""
    ids: list[int] = []
    mark = gw.backend.mark()
    log_mark = len(gw.log())
    yield ids
    forwarded = {call.get("id") for call in gw.backend.forwarded_calls(mark)}
    assert not forwarded & set(ids), f"forwarded: {forwarded & set(ids)}"
    assert gw.get("/healthz")[0] == 200
    assert "Traceback" not in gw.sync_log()[log_mark:]


def error_of(reply_body: bytes) -> dict[str, Any]:
    document = json.loads(reply_body)
    assert isinstance(document, dict) and "error" in document, document
    error: dict[str, Any] = document["error"]
    return error


# -- bodies over the limit ---------------------------------------------------------------


def test_body_over_the_limit_by_content_length(gw: RecordedGateway, no_forward: list[int]) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    body = encoded(allowed_spend(call_id))
    body += b" " * (MAX_BODY + 1 - len(body))
    status, reply = gw.post(body)
    assert status == 413
    error = error_of(reply)
    assert error["code"] == -32600 and "too large" in error["message"]


def test_body_over_the_limit_chunked(gw: RecordedGateway, no_forward: list[int]) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    body = encoded(allowed_spend(call_id))
    body += b" " * (MAX_BODY + 10 - len(body))
    reply = gw.exchange(head(gw, "Transfer-Encoding: chunked") + chunked(body))
    assert reply.status == 413
    assert error_of(reply.body)["code"] == -32600


def test_compressed_body_that_inflates_past_the_limit(
    gw: RecordedGateway, no_forward: list[int]
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    bomb = compressor.compress(encoded(allowed_spend(call_id)) + b" " * (64 * MAX_BODY))
    bomb += compressor.flush()
    assert len(bomb) < MAX_BODY // 4  # small on the wire, 64 MiB inflated
    status, reply = gw.post(bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413
    assert error_of(reply)["code"] == -32600


def test_body_of_exactly_the_limit_is_judged_and_forwarded_compactly(
    gw: RecordedGateway,
) -> None:
    call_id = new_id()
    request = {"jsonrpc": "2.0", "id": call_id, "method": "eth_blockNumber", "params": []}
    body = encoded(request)
    body += b" " * (MAX_BODY - len(body))
    mark = gw.backend.mark()
    status, reply = gw.post(body)
    assert status == 200 and "result" in json.loads(reply)
    [forwarded] = [r for r in gw.backend.since(mark) if call_id in [c["id"] for c in r.calls()]]
    assert len(forwarded.body) < 200, "walletgate forwards what it parsed, not the padding"


# -- deep nesting --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1_000, 200_000])
def test_deep_nesting_is_a_parse_error(
    gw: RecordedGateway, no_forward: list[int], depth: int
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    spend = allowed_spend(call_id)
    nested = "[" * depth + "]" * depth
    body = encoded(spend).replace(b'"0x1"}]', b'"0x1","data":' + nested.encode() + b"}]")
    status, reply = gw.post(body)
    assert status == 200
    error = error_of(reply)
    assert error["code"] == -32700 and "nesting deeper than 64" in error["message"]


def test_deep_nesting_inside_typed_data_given_as_a_string(
    gw: RecordedGateway, no_forward: list[int]
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    typed = '{"types":' + "[" * 10_000 + "]" * 10_000 + "}"
    body = encoded(rpc(call_id, "eth_signTypedData_v4", [ALICE, typed]))
    status, reply = gw.post(body)
    assert status == 200
    error = error_of(reply)
    assert error["code"] == -32602
    assert error["data"]["where"] == "params[1]"
    assert "nesting deeper than" in error["message"]


# -- duplicate keys ------------------------------------------------------------------------

SPEND_TEMPLATE = (
    '{"jsonrpc":"2.0","id":ID,"method":"eth_sendTransaction",'
    '"params":[{"from":"FROM","to":"TO","value":"0x1"}]}'
)


def _duplicate_key_bodies(call_id: int) -> dict[str, str]:
    spend = (
        SPEND_TEMPLATE.replace("ID", str(call_id))
        .replace("FROM", ALICE)
        .replace("TO", COUNTERPARTIES[0])
    )
    other = COUNTERPARTIES[1]
    return {
        # the read judged, the spend forwarded - if the parser kept the first value
        "method": spend.replace('"method":', '"method":"eth_blockNumber","method":'),
        "params": spend.replace('"params":', '"params":[],"params":'),
        "id": spend.replace('"id":', '"id":1,"id":'),
        "to": spend.replace('"value"', f'"to":"{other}","value"'),
        "value": spend.replace('"value":"0x1"', '"value":"0x1","value":"0xffffffffffff"'),
        "escaped spelling": spend.replace('"value":"0x1"', '"value":"0x1","v\\u0061lue":"0xff"'),
        "batch element": "[" + spend.replace('"to":', f'"to":"{other}","to":') + "]",
    }


@pytest.mark.parametrize("where", list(_duplicate_key_bodies(0)))
def test_duplicate_keys_are_refused_never_judged_on_one_value(
    gw: RecordedGateway, no_forward: list[int], where: str
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    body = _duplicate_key_bodies(call_id)[where]
    json.loads(body)  # valid JSON for a lenient parser: the duplicate is the only problem
    status, reply = gw.post(body.encode())
    assert status == 200
    document = json.loads(reply)
    error = document[0]["error"] if isinstance(document, list) else document["error"]
    assert error["code"] == -32700
    assert "duplicate object key" in error["message"]


def test_duplicate_keys_inside_typed_data_given_as_a_string(
    gw: RecordedGateway, no_forward: list[int]
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    typed = (
        '{"types":{"EIP712Domain":[]},"primaryType":"EIP712Domain",'
        '"domain":{},"domain":{"chainId":1},"message":{}}'
    )
    body = encoded(rpc(call_id, "eth_signTypedData_v4", [ALICE, typed]))
    error = error_of(gw.post(body)[1])
    assert error["code"] == -32602 and "duplicate object key 'domain'" in error["message"]


def test_what_is_forwarded_is_the_document_that_was_judged(gw: RecordedGateway) -> None:
    """Escapes, spacing and number spelling are normalised: the backend gets the values
    walletgate parsed and judged, re-serialised, never the agent's original bytes."""
    call_id = new_id()
    body = (
        '{ "jsonrpc" : "2.0" , "id" : ID , "method" : "eth_getBalance" ,'
        ' "params" : [ "\\u0030x' + ALICE[2:] + '" , "l\\u0061test" ] }'
    ).replace("ID", str(call_id))
    mark = gw.backend.mark()
    status, reply = gw.post(body.encode())
    assert status == 200 and "result" in json.loads(reply)
    [request] = [r for r in gw.backend.since(mark) if b"eth_getBalance" in r.body]
    assert json.loads(request.body)["params"] == [ALICE, "latest"]
    assert b"\\u" not in request.body and b" " not in request.body


# -- Content-Length and Transfer-Encoding ----------------------------------------------------


def _framing_attacks(gw: RecordedGateway, body: bytes) -> dict[str, bytes]:
    length = len(body)
    smuggled = body  # the second request hidden in the first one's body
    return {
        "content-length and chunked": head(
            gw, f"Content-Length: {length}", "Transfer-Encoding: chunked"
        )
        + chunked(body),
        "two content-lengths": head(gw, f"Content-Length: {length}", "Content-Length: 5") + body,
        "signed content-length": head(gw, f"Content-Length: +{length}") + body,
        "negative content-length": head(gw, "Content-Length: -1") + body,
        "unknown transfer coding": head(gw, "Transfer-Encoding: xchunked") + body,
        "chunked not last": head(gw, "Transfer-Encoding: chunked, identity") + chunked(body),
        "obsolete line folding": head(gw, "Content-Length:", f" {length}") + body,
        "space before colon": head(gw, f"Content-Length : {length}") + body,
        "transfer-encoding in HTTP/1.0": head(gw, "Transfer-Encoding: chunked").replace(
            b"HTTP/1.1", b"HTTP/1.0", 1
        )
        + chunked(body),
        "CL.TE smuggling": head(gw, "Content-Length: 5", "Transfer-Encoding: chunked")
        + b"0\r\n\r\n"
        + head(gw, f"Content-Length: {len(smuggled)}")
        + smuggled,
    }


@pytest.mark.parametrize(
    "attack",
    [
        "content-length and chunked",
        "two content-lengths",
        "signed content-length",
        "negative content-length",
        "unknown transfer coding",
        "chunked not last",
        "obsolete line folding",
        "space before colon",
        "transfer-encoding in HTTP/1.0",
        "CL.TE smuggling",
    ],
)
def test_conflicting_framing_is_refused_and_the_connection_closed(
    gw: RecordedGateway, no_forward: list[int], attack: str
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    request = _framing_attacks(gw, encoded(allowed_spend(call_id)))[attack]
    reply = gw.exchange(request, until_closed=True)
    assert reply.status == 400, reply.data[:300]
    assert reply.closed
    assert len(STATUS_LINE.findall(reply.data)) == 1, "a smuggled second request was answered"


def test_plain_chunked_body_is_accepted(gw: RecordedGateway) -> None:
    call_id = new_id()
    body = encoded({"jsonrpc": "2.0", "id": call_id, "method": "eth_blockNumber", "params": []})
    reply = gw.exchange(head(gw, "Transfer-Encoding: chunked") + chunked(body))
    assert reply.status == 200 and reply.json()["id"] == call_id


# -- slow clients --------------------------------------------------------------------------


def _trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(0.2):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def test_headers_that_never_finish_are_cut_off(gw: RecordedGateway) -> None:
    with gw.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: walletgate\r\n")
        reply = read_reply(sock, until_closed=True)
    assert reply.closed and reply.data == b""


def test_headers_trickled_byte_by_byte_are_cut_off(gw: RecordedGateway) -> None:
    """Data arriving does not reset the clock: a slowloris client cannot keep a
    connection by sending one more header byte now and then."""
    endless = b"X-Padding: " + b"a" * 10_000
    stop = threading.Event()
    with gw.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n")
        sender = threading.Thread(target=_trickle, args=(sock, endless, stop))
        sender.start()
        try:
            reply = read_reply(sock, until_closed=True)
        finally:
            stop.set()
            sender.join()
    assert reply.closed and reply.data == b""


def test_body_that_never_finishes_gets_408_and_is_not_forwarded(
    gw: RecordedGateway, no_forward: list[int]
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    body = encoded(allowed_spend(call_id))
    with gw.connect() as sock:
        sock.sendall(head(gw, f"Content-Length: {len(body)}") + body[:-1])
        reply = read_reply(sock, until_closed=False)
        assert reply.status == 408
        assert "Connection: close" in reply.head
        error = error_of(reply.body)
        assert error["code"] == -32600 and "not received within" in error["message"]
        assert read_reply(sock, until_closed=True).closed


def test_idle_keep_alive_connection_is_closed(gw: RecordedGateway) -> None:
    body = encoded({"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []})
    with gw.connect() as sock:
        sock.sendall(head(gw, f"Content-Length: {len(body)}") + body)
        assert read_reply(sock, until_closed=False).status == 200
        assert read_reply(sock, until_closed=True).closed


def test_slow_clients_do_not_stop_others_from_being_served(gw: RecordedGateway) -> None:
    held = [gw.connect() for _ in range(50)]
    try:
        for sock in held:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: walletgate\r\nContent-Le")
        status, reply = gw.post(
            encoded({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        )
        assert status == 200 and json.loads(reply)["result"] == "0x539"
        assert all(read_reply(sock, until_closed=True).closed for sock in held)
    finally:
        for sock in held:
            sock.close()


# -- invalid UTF-8 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("lone continuation byte", b"\x80"),
        ("invalid byte", b"\xff"),
        ("overlong slash", b"\xc0\xaf"),
        ("encoded surrogate", b"\xed\xa0\x80"),
        ("truncated sequence", b"\xe2\x82"),
        ("latin-1 text", "café".encode("latin-1")),
    ],
)
def test_invalid_utf8_in_a_string_is_a_parse_error(
    gw: RecordedGateway, no_forward: list[int], name: str, bad: bytes
) -> None:
    call_id = new_id()
    no_forward.append(call_id)
    body = encoded(allowed_spend(call_id)).replace(b'"0x1"', b'"0x1","data":"0x' + bad + b'"')
    status, reply = gw.post(body)
    assert status == 200
    error = error_of(reply)
    assert error["code"] == -32700 and "not valid UTF-8" in error["message"], name


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("utf-16 with a byte order mark", '{"jsonrpc":"2.0"}'.encode("utf-16")),
        ("utf-8 byte order mark", b"\xef\xbb\xbf" + b'{"jsonrpc":"2.0","id":1,"method":"x"}'),
        ("lone surrogate escape", b'{"jsonrpc":"2.0","id":1,"method":"eth_sign\\ud800"}'),
        ("nul bytes", b"\x00" * 16),
    ],
)
def test_other_encodings_are_parse_errors(gw: RecordedGateway, name: str, body: bytes) -> None:
    status, reply = gw.post(body)
    assert status == 200
    assert error_of(reply)["code"] == -32700, name


def test_invalid_utf8_in_the_token_header_or_path(gw: RecordedGateway) -> None:
    body = encoded({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = (
        b"POST / HTTP/1.1\r\nHost: walletgate\r\nAuthorization: Bearer wg_\xff\xfe"
        + b"a" * 40
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    reply = gw.exchange(request)
    assert reply.status == 401 and error_of(reply.body)["code"] == -32000
    path = b"/t/" + gw.tokens["alice"].encode() + b"\xff/"
    request = b"POST " + path + b" HTTP/1.1\r\nHost: walletgate\r\n\r\n"
    reply = gw.exchange(request, until_closed=True)
    assert reply.status == 400


# -- values walletgate parsed must survive the trip (found by fuzzing) -----------------------


def test_fractional_ids_and_numbers_are_echoed_and_forwarded_with_their_digits(
    gw: RecordedGateway,
) -> None:
    body = b'{"jsonrpc":"2.0","id":1.50,"method":"eth_getBalance","params":[0.10,"latest"]}'
    mark = gw.backend.mark()
    status, reply = gw.post(body)
    assert status == 200
    assert reply.startswith(b'{"jsonrpc":"2.0","id":1.50,')
    [forwarded] = gw.backend.since(mark)
    assert b'"params":[0.10,"latest"]' in forwarded.body


@pytest.mark.parametrize("allowed", [True, False])
async def test_nul_characters_are_audited_not_fatal(gw: RecordedGateway, allowed: bool) -> None:
    """PostgreSQL's jsonb cannot hold U+0000: the audit row stores U+FFFD instead, and
    neither this request nor others in the same group commit fail because of it."""
    spend = allowed_spend(0)
    spend["id"] = "nul\u0000id"
    if not allowed:
        spend["params"][0]["to"] = ALICE  # not a counterparty
    status, reply = gw.post(encoded(spend))
    answer = json.loads(reply)
    assert status == 200 and answer["id"] == "nul\u0000id"
    if allowed:
        assert "result" in answer, answer
    else:
        assert answer["error"]["data"]["reason"] == "destination_not_allowed"
    rows = await gw.rows(
        "SELECT decision FROM transactions WHERE request->>'id' = $1", "nul\ufffdid"
    )
    assert [row["decision"] for row in rows][-1:] == ["allow" if allowed else "deny"]


@pytest.mark.parametrize("number", ["1e9999999999999999999", "-1E-9999999999999999999", "1e101"])
def test_numbers_beyond_any_range_are_parse_errors(gw: RecordedGateway, number: str) -> None:
    """Found by atheris: decimal cannot hold 1e9999999999999999999, and raised (a 500)."""
    body = f'{{"jsonrpc":"2.0","id":{number},"method":"eth_chainId","params":[]}}'.encode()
    status, reply = gw.post(body)
    assert status == 200
    error = error_of(reply)
    assert error["code"] == -32700 and "number out of range" in error["message"]
