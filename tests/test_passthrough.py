"""The backend's answer bytes passed through to the agent (walletgate.proxy.passthrough).

A single read whose answer is one well-formed JSON-RPC object with the agent's id goes
to the agent as the backend's own bytes; every other answer is decoded, given the
agent's id and encoded again, as before. These tests run a real ``walletgate serve`` in
front of a scripted backend that answers each call with bytes the test chooses, and
check that each agent gets the right answer: its own id, the backend's result or error,
never a mismatched or malformed answer passed as if it were valid.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.devnet import Devnet
from tests.support.gateway import GatewayProcess, free_port, running_gateway
from walletgate.proxy.answers import with_id
from walletgate.proxy.jsonrpc import dumps
from walletgate.proxy.passthrough import RawAnswer, decode_answer, encode

CHAIN_ID = 1337  # examples/policies.yaml
ADDRESS = "0x" + "ab" * 20

Script = Callable[[dict[str, Any]], bytes]


def echo(result: str = "0x2a") -> Script:
    """Answers every call with ``result`` and the call's own id, written compactly."""
    return lambda call: dumps({"jsonrpc": "2.0", "id": call.get("id"), "result": result})


class ScriptedBackend:
    """A JSON-RPC backend whose answer bytes each test chooses (``script``); it answers
    ``eth_chainId`` itself, which walletgate asks at start-up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.script: Script = echo()
        self.batch_script: Callable[[list[dict[str, Any]]], bytes] | None = None
        self.received: list[Any] = []
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        document = json.loads(await request.read())
        self.received.append(document)
        if isinstance(document, list):
            if self.batch_script is not None:
                body = self.batch_script(document)
            else:
                body = b"[" + b",".join(self.script(call) for call in document) + b"]"
        elif document.get("method") == "eth_chainId":
            body = dumps({"jsonrpc": "2.0", "id": document.get("id"), "result": hex(CHAIN_ID)})
        else:
            body = self.script(document)
        return web.Response(body=body, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class World:
    def __init__(self, gateway: GatewayProcess, backend: ScriptedBackend) -> None:
        self.gateway = gateway
        self.backend = backend

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST raw ``body`` as the trader; the status and the answer's bytes."""
        headers = {
            "Authorization": f"Bearer {self.gateway.tokens['trader']}",
            "Content-Type": "application/json",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.gateway.url, data=body, headers=headers) as response,
        ):
            return response.status, await response.read()


@pytest_asyncio.fixture(scope="module")
async def world(
    postgres_server_url: str, migrated_template: str, redis_server_url: str
) -> AsyncIterator[World]:
    backend = ScriptedBackend()
    await backend.start()
    # The gateway helpers take a devnet; this one is the scripted backend.
    scripted = Devnet(backend.url, CHAIN_ID, [], "0x" + "00" * 20, 6)
    try:
        async with running_gateway(
            postgres_server_url, migrated_template, redis_server_url, scripted
        ) as gateway:
            yield World(gateway, backend)
    finally:
        await backend.stop()


@pytest.fixture
def backend(world: World) -> ScriptedBackend:
    world.backend.script = echo()
    world.backend.batch_script = None
    return world.backend


def call(call_id: Any, method: str = "eth_blockNumber", params: Any = None) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or []})


# -- end to end -----------------------------------------------------------------------


async def test_a_string_id_gets_the_backends_own_bytes(
    world: World, backend: ScriptedBackend
) -> None:
    answer = b'{"result" : "0x2a", "id":"read-1",\n "jsonrpc":"2.0"}'
    backend.script = lambda _call: answer
    status, body = await world.post(call("read-1"))
    assert status == 200
    assert body == answer  # passed through: not re-encoded
    assert backend.received[-1]["id"] == "read-1"  # forwarded with the agent's id


async def test_an_id_with_many_digits_keeps_every_digit(
    world: World, backend: ScriptedBackend
) -> None:
    big = 123456789012345678901234567890123456789
    status, body = await world.post(call(big))
    assert status == 200
    assert body == b'{"jsonrpc":"2.0","id":%d,"result":"0x2a"}' % big
    assert json.loads(body)["id"] == big


async def test_a_null_id_is_answered_with_null(world: World, backend: ScriptedBackend) -> None:
    status, body = await world.post(call(None))
    assert status == 200
    assert json.loads(body) == {"jsonrpc": "2.0", "id": None, "result": "0x2a"}


async def test_a_backend_answer_with_id_null_is_not_the_answer_to_a_read(
    world: World, backend: ScriptedBackend
) -> None:
    # How a backend answers a request it could not read: never passed on as it is.
    backend.script = lambda _call: b'{"jsonrpc":"2.0","id":null,"result":"0x2a"}'
    status, body = await world.post(call(5))
    assert status == 200
    assert json.loads(body) == {"jsonrpc": "2.0", "id": 5, "result": "0x2a"}


async def test_a_fractional_id_keeps_its_digits(world: World, backend: ScriptedBackend) -> None:
    status, body = await world.post(b'{"jsonrpc":"2.0","id":1.50,"method":"eth_blockNumber"}')
    assert status == 200
    assert body.startswith(b'{"jsonrpc":"2.0","id":1.50,')


async def test_an_answer_with_another_id_gets_the_agents_id(
    world: World, backend: ScriptedBackend
) -> None:
    backend.script = lambda _call: b'{"jsonrpc":"2.0","id":999,"result":"0x2a"}'
    status, body = await world.post(call(7))
    assert status == 200
    assert json.loads(body) == {"jsonrpc": "2.0", "id": 7, "result": "0x2a"}
    assert b"999" not in body


@pytest.mark.parametrize(
    "answer",
    [
        # The last of duplicate keys is the agent's id; a parser that keeps the first
        # would read 999.
        b'{"jsonrpc":"2.0","id":999,"result":"0xbad","id":7,"result":"0x2a"}',
        # The same, with the first key hidden behind an escape.
        b'{"jsonrpc":"2.0","\\u0069d":999,"result":"0x2a","id":7}',
        # -0 is 0, but not as the agent wrote it.
        b'{"jsonrpc":"2.0","id":-0,"result":"0x2a"}',
    ],
)
async def test_an_answer_that_could_read_as_another_id_is_re_encoded(
    world: World, backend: ScriptedBackend, answer: bytes
) -> None:
    backend.script = lambda _call: answer
    call_id = 0 if b"-0" in answer else 7
    status, body = await world.post(call(call_id))
    assert status == 200
    assert body != answer
    assert json.loads(body) == {"jsonrpc": "2.0", "id": call_id, "result": "0x2a"}


@pytest.mark.parametrize(
    "answer",
    [
        b'{"jsonrpc":"2.0","id":7,"result":"0x2a"',  # cut short
        b"<html>bad gateway</html>",
        b'{"jsonrpc":"2.0","id":7,"result":"\xff"}',  # not UTF-8
        b"",
        b'[{"jsonrpc":"2.0","id":7,"result":"0x2a"}]',  # a batch is no answer to one call
        b'{"jsonrpc":"2.0","id":7,"result":NaN}',  # not JSON, and no encoder writes it
        b'{"jsonrpc":"2.0","id":7,"result":"\xed\xa0\x80"}',  # UTF-8 for a lone surrogate
        b'{"jsonrpc":"2.0","id":7,"result":{"a":Infinity,"b":"' + b"ab" * 10_000 + b'"}}',
    ],
)
async def test_a_malformed_answer_is_an_error_for_the_agent(
    world: World, backend: ScriptedBackend, answer: bytes
) -> None:
    backend.script = lambda _call: answer
    status, body = await world.post(call(7))
    assert status == 200
    reply = json.loads(body)
    assert reply["id"] == 7
    assert "result" not in reply
    assert reply["error"]["code"] == -32002


@pytest.mark.parametrize(
    "answer",
    [
        # Written with spaces: re-encoded, they would be compact.
        b'{"jsonrpc": "2.0", "id": 7}',  # neither result nor error
        b'{"jsonrpc": "2.0", "id": 7, "error": "boom"}',  # an error that is no error object
        b'{"jsonrpc": "2.0", "id": 7, "result": "0x2a", "error": {"code": 1, "message": "x"}}',
        b'{"jsonrpc": "1.0", "id": 7, "result": "0x2a"}',
        b'{"jsonrpc": "2.0", "id": 7, "result": "0x2a", "extra": 1}',
        b'\xef\xbb\xbf{"jsonrpc": "2.0", "id": 7, "result": "0x2a"}',  # a byte order mark
        b'\xef\xbb\xbf{"jsonrpc": "2.0", "id": 7, "result": "' + b"ab" * 10_000 + b'"}',
    ],
)
async def test_an_answer_that_is_no_valid_json_rpc_answer_is_not_passed_through(
    world: World, backend: ScriptedBackend, answer: bytes
) -> None:
    backend.script = lambda _call: answer
    status, body = await world.post(call(7))
    assert status == 200
    assert body != answer
    assert json.loads(body)["id"] == 7


async def test_an_error_answer_passes_through(world: World, backend: ScriptedBackend) -> None:
    answer = (
        b'{"jsonrpc":"2.0","id":"x",'
        b'"error":{"code":3,"message":"execution reverted","data":"0x08c379a0"}}'
    )
    backend.script = lambda _call: answer
    status, body = await world.post(
        call("x", "eth_call", [{"to": ADDRESS, "data": "0x"}, "latest"])
    )
    assert status == 200
    assert body == answer


async def test_a_passed_through_balance_is_cached(world: World, backend: ScriptedBackend) -> None:
    address = "0x" + "cd" * 20
    backend.script = lambda c: b'{"jsonrpc":"2.0","id":%s,"result":"0x64"}' % dumps(c["id"])
    status, body = await world.post(call(11, "eth_getBalance", [address, "latest"]))
    assert (status, body) == (200, b'{"jsonrpc":"2.0","id":11,"result":"0x64"}')
    forwarded = len(backend.received)
    backend.script = lambda c: b'{"jsonrpc":"2.0","id":%s,"result":"0x0"}' % dumps(c["id"])
    status, body = await world.post(call("again", "eth_getBalance", [address, "latest"]))
    assert status == 200
    assert json.loads(body) == {"jsonrpc": "2.0", "id": "again", "result": "0x64"}
    assert len(backend.received) == forwarded  # answered from the cache


async def test_a_batch_gets_every_answer_with_its_own_id(
    world: World, backend: ScriptedBackend
) -> None:
    batch = b"[" + call("a") + b"," + call(2, "eth_gasPrice") + b"]"
    # The backend answers the batch out of order.
    backend.batch_script = lambda calls: b"[" + b",".join(echo()(c) for c in calls[::-1]) + b"]"
    status, body = await world.post(batch)
    assert status == 200
    assert json.loads(body) == [
        {"jsonrpc": "2.0", "id": "a", "result": "0x2a"},
        {"jsonrpc": "2.0", "id": 2, "result": "0x2a"},
    ]


async def test_a_batch_answer_with_wrong_ids_is_asked_again_call_by_call(
    world: World, backend: ScriptedBackend
) -> None:
    batch = b"[" + call("a") + b"," + call("b") + b"]"
    backend.batch_script = lambda calls: b'[{"jsonrpc":"2.0","id":"z","result":"0xbad"}]'
    forwarded = len(backend.received)
    status, body = await world.post(batch)
    assert status == 200
    assert json.loads(body) == [
        {"jsonrpc": "2.0", "id": "a", "result": "0x2a"},
        {"jsonrpc": "2.0", "id": "b", "result": "0x2a"},
    ]
    assert len(backend.received) == forwarded + 3  # the batch, then each call alone


async def test_a_batch_of_one_read_is_an_array(world: World, backend: ScriptedBackend) -> None:
    status, body = await world.post(b"[" + call(3) + b"]")
    assert status == 200
    assert body == b'[{"jsonrpc":"2.0","id":3,"result":"0x2a"}]'


# -- the decoder and encoder on their own ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jsonrpc":"2.0","id":1,"result":"0x10"}',
        b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":1.25}',
        b'{"jsonrpc":"2.0","id":1,"result":[1,2.5,{"a":18446744073709551616}]}',
        b'[{"jsonrpc":"2.0","id":1,"result":18446744073709551617}]',
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"result":"0x1"}',
        '{"jsonrpc":"2.0","id":1,"result":"0x1"}'.encode("utf-16"),
        b'{"jsonrpc":"2.0","id":1,"result":"' + b"ab" * 10_000 + b'"}',
        b'"just a string"',
    ],
)
def test_decoding_is_what_json_loads_gives(raw: bytes) -> None:
    # Compared as text: ints must stay ints (not equal floats), and NaN is not equal
    # to itself.
    assert json.dumps(decode_answer(raw)) == json.dumps(json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"",
        b'{"a":1} x',
        b'{"a":"\xff"}',
        b'{"a":NaN}',
        b"[-Infinity]",
        b"NaN" + b" " * 20_000,
        b'["\xed\xa0\x80"]',  # UTF-8 for a lone surrogate
        b'{"a":"\xed\xa0\x80","b":"' + b"ab" * 10_000 + b'"}',
    ],
)
def test_what_json_loads_refuses_is_refused_and_nan_too(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(raw)


@pytest.mark.parametrize(
    ("call_id", "passes"),
    [("1", False), (1, True), (True, False), (Decimal(1), False), (None, False), (2, False)],
)
def test_only_the_same_id_passes(call_id: Any, passes: bool) -> None:
    body = decode_answer(b'{"jsonrpc":"2.0","id":1,"result":"0x10"}')
    assert type(body) is RawAnswer
    answer = with_id(body, call_id)
    assert (answer is body) is passes
    assert json.loads(encode(answer))["id"] == json.loads(dumps(call_id))


def test_a_changed_answer_is_encoded_again() -> None:
    body = decode_answer(b'{"jsonrpc":"2.0","id":1,"result":"0x10"}')
    assert type(body) is RawAnswer
    body["result"] = "0x11"
    assert with_id(body, 1) is not body or body.raw is None
    assert json.loads(encode(with_id(body, 1))) == {"jsonrpc": "2.0", "id": 1, "result": "0x11"}


def test_a_batch_splices_passed_through_answers() -> None:
    body = decode_answer(b'{"jsonrpc":"2.0", "id":1, "result":"0x10"}')
    built = {"jsonrpc": "2.0", "id": Decimal("2.0"), "result": "0x1"}
    assert encode([body, built]) == (
        b'[{"jsonrpc":"2.0", "id":1, "result":"0x10"},{"jsonrpc":"2.0","id":2.0,"result":"0x1"}]'
    )
