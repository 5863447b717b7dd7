"""A call that fails in a way walletgate did not foresee gets a JSON-RPC error, never an
HTTP 500 (proxy/app.py ``_answer``).

CI once saw ``500 Internal Server Error`` from a gateway when uvloop raised RuntimeError
("the handler is closed") from a Redis connection a cluster failover had closed. That
error is now one of REDIS_ERRORS (counters unavailable, refused); these tests pin the
last line of defence: whatever escapes a call's handling becomes that call's JSON-RPC
error with the reason ``internal_error``, the other calls of a batch are still answered,
and StateMoved (decide again on the new state) is not swallowed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from walletgate.proxy import errors
from walletgate.proxy.app import _answer
from walletgate.proxy.gateway import StateMoved
from walletgate.storage.redis_client import REDIS_ERRORS


class FailingHandler:
    """Answers eth_chainId; raises ``failure`` for the methods named in ``failing``."""

    def __init__(self, failure: BaseException, failing: set[str]) -> None:
        self.failure = failure
        self.failing = failing

    async def handle(self, call_id: Any, method: str, params: Any) -> dict[str, Any]:
        if method in self.failing:
            raise self.failure
        return {"jsonrpc": "2.0", "id": call_id, "result": "0x539"}

    async def handle_reads(self, calls: list[tuple[Any, str, Any]]) -> list[dict[str, Any]]:
        if any(method in self.failing for _, method, _ in calls):
            raise self.failure
        return [{"jsonrpc": "2.0", "id": i, "result": "0x1"} for i, _, _ in calls]


def _body(*calls: tuple[int, str]) -> bytes:
    items = [{"jsonrpc": "2.0", "id": i, "method": m, "params": []} for i, m in calls]
    return json.dumps(items if len(items) > 1 else items[0]).encode()


async def _answered(handler: FailingHandler, body: bytes) -> tuple[int, Any]:
    response = await _answer(body, handler)  # type: ignore[arg-type]
    assert response.body is not None
    return response.status, json.loads(bytes(response.body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("unable to perform operation on <TCPTransport closed=True>"), KeyError("x")],
)
async def test_an_unforeseen_failure_is_the_calls_json_rpc_error(failure: Exception) -> None:
    status, answer = await _answered(
        FailingHandler(failure, {"eth_sendRawTransaction"}),
        _body((7, "eth_sendRawTransaction")),
    )
    assert status == 200
    assert answer["id"] == 7
    assert answer["error"]["code"] == errors.INTERNAL_ERROR
    assert answer["error"]["data"] == {"reason": "internal_error"}
    assert "eth_sendRawTransaction" in answer["error"]["message"]
    assert "not known" in answer["error"]["message"]


async def test_the_other_calls_of_a_batch_are_still_answered() -> None:
    handler = FailingHandler(ValueError("boom"), {"eth_sendTransaction"})
    status, answers = await _answered(
        handler,
        _body((1, "eth_chainId"), (2, "eth_sendTransaction"), (3, "eth_chainId")),
    )
    assert status == 200
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"] == "0x539" and answers[2]["result"] == "0x539"
    assert answers[1]["error"]["code"] == errors.INTERNAL_ERROR


async def test_a_failing_run_of_reads_answers_each_read_with_the_error() -> None:
    handler = FailingHandler(ValueError("boom"), {"eth_getBalance"})
    status, answers = await _answered(
        handler, _body((1, "eth_blockNumber"), (2, "eth_getBalance"), (3, "eth_call"))
    )
    assert status == 200
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert {a["error"]["code"] for a in answers} == {errors.INTERNAL_ERROR}


async def test_state_moved_still_reaches_the_caller_to_decide_again() -> None:
    with pytest.raises(StateMoved):
        await _answered(
            FailingHandler(StateMoved(), {"eth_sendRawTransaction"}),
            _body((1, "eth_sendRawTransaction")),
        )


def test_uvloops_closed_transport_error_counts_as_redis_failing() -> None:
    """uvloop raises RuntimeError where asyncio's loop raises OSError for a write on a
    closed connection: both must mean "Redis failed" (refuse, take back), not a bug."""
    assert issubclass(RuntimeError, REDIS_ERRORS)
    assert issubclass(ConnectionResetError, REDIS_ERRORS)
