"""JSON-RPC 2.0 envelopes for the devnet: parse a body, answer a request or a batch.

Pure: the method calls are made through the ``call`` function passed in, which
returns a JSON-ready result or raises :class:`RpcError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from walletgate.proxy.jsonrpc import ErrorCode

JSONRPC_VERSION = "2.0"

# Error codes beyond the JSON-RPC 2.0 ones (walletgate.proxy.jsonrpc.ErrorCode), as geth
# answers them: -32000 for a call that failed, 3 for a reverted eth_call / eth_estimateGas.
SERVER_ERROR = ErrorCode.INVALID_INPUT
EXECUTION_REVERTED = 3

Call = Callable[[str, list[Any]], Any]
Response = dict[str, Any]


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of a response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def error_response(request_id: Any, error: RpcError) -> Response:
    """A response carrying ``error`` for the request with ``request_id``."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error.to_json()}


def parse_body(body: bytes) -> Any:
    """Decode a request body as JSON, or raise a parse error saying where it broke."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise RpcError(ErrorCode.PARSE_ERROR, "parse error: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RpcError(
            ErrorCode.PARSE_ERROR, f"parse error: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def answer(payload: Any, call: Call) -> Response | list[Response] | None:
    """Answer one request object or a batch.

    Returns the response object, the list of batch responses, or None when nothing is
    to be sent back (a notification, or a batch made only of notifications).
    """
    if isinstance(payload, list):
        if not payload:
            return error_response(
                None, RpcError(ErrorCode.INVALID_REQUEST, "invalid request: empty batch")
            )
        responses = [answer_request(item, call) for item in payload]
        batch = [response for response in responses if response is not None]
        return batch or None
    return answer_request(payload, call)


def _valid_id(message: dict[str, Any]) -> bool:
    request_id = message.get("id")
    return request_id is None or (
        isinstance(request_id, (int, str)) and not isinstance(request_id, bool)
    )


def _check_request(message: Any) -> tuple[str, list[Any]]:
    """The method and positional params of a well-formed request object."""
    if not isinstance(message, dict):
        raise RpcError(ErrorCode.INVALID_REQUEST, "invalid request: expected a JSON object")
    if message.get("jsonrpc") != JSONRPC_VERSION:
        raise RpcError(ErrorCode.INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"')
    if not _valid_id(message):
        raise RpcError(
            ErrorCode.INVALID_REQUEST, 'invalid request: "id" must be a string, number or null'
        )
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(
            ErrorCode.INVALID_REQUEST, 'invalid request: "method" must be a non-empty string'
        )
    params = message.get("params", [])
    if not isinstance(params, list):
        raise RpcError(
            ErrorCode.INVALID_PARAMS, f'invalid params for {method}: "params" must be an array'
        )
    return method, params


def answer_request(message: Any, call: Call) -> Response | None:
    """Answer one request object; None for a well-formed notification (no ``id``)."""
    request_id = message.get("id") if isinstance(message, dict) and _valid_id(message) else None
    try:
        method, params = _check_request(message)
    except RpcError as exc:
        return error_response(request_id, exc)
    try:
        result = call(method, params)
    except RpcError as exc:
        response = error_response(request_id, exc)
    else:
        response = {"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": result}
    return response if "id" in message else None
