"""JSON-RPC error codes walletgate answers with (EIP-1474 where it has one)."""

from __future__ import annotations

from typing import Any

from walletgate.policies.decision import Reason

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32000  # walletgate: missing or unknown agent token
RESOURCE_UNAVAILABLE = -32002  # EIP-1474: fail closed, walletgate cannot decide
TRANSACTION_REJECTED = -32003  # EIP-1474: refused by policy
METHOD_NOT_SUPPORTED = -32004  # EIP-1474: method class denied
LIMIT_EXCEEDED = -32005  # EIP-1474: caps and rate limits

#: Reasons that are about limits, not about what the request is, answer -32005.
_LIMIT_REASONS = frozenset(
    {
        Reason.PER_TX_CAP,
        Reason.FEE_CAP,
        Reason.CUMULATIVE_CAP,
        Reason.RATE_LIMITED,
        Reason.APPROVAL_LIMIT,
    }
)


def code_for_reason(reason: Reason) -> int:
    """The JSON-RPC error code for a refusal with this reason."""
    if reason in _LIMIT_REASONS:
        return LIMIT_EXCEEDED
    if reason is Reason.UNAVAILABLE:
        return RESOURCE_UNAVAILABLE
    if reason is Reason.METHOD_NOT_ALLOWED:
        return METHOD_NOT_SUPPORTED
    if reason is Reason.MALFORMED:
        return INVALID_PARAMS
    return TRANSACTION_REJECTED


def error_object(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC 2.0 error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}
