"""RFC 9457 problem documents: every error the admin API answers is one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid document",
    500: "Internal error",
    501: "Not implemented",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error answer: ``status``, a one-line ``detail`` and, for input errors, the
    individual ``errors`` (each a mapping with ``message`` and usually ``path``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def problem_body(status: int, detail: str, errors: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The problem document of ``status``, as JSON bytes."""
    title = _TITLES.get(status, "Error")
    body: dict[str, Any] = {
        # "about:blank": the status code says it all (RFC 9457 §4.2.1); detail and
        # errors say what exactly was wrong.
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [dict(error) for error in errors]
    return orjson.dumps(body)


def problem_response(problem: Problem) -> web.Response:
    """``problem`` as an HTTP answer with the problem+json content type."""
    return web.Response(
        status=problem.status,
        body=problem_body(problem.status, problem.detail, problem.errors),
        content_type=PROBLEM_TYPE,
        headers=problem.headers,
    )
