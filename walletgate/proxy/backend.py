"""Talking to wallet backends: one shared aiohttp session, credentials injected here.

The agent's request headers are never passed on: walletgate builds the backend request
itself (content type plus the backend's configured headers), so neither the agent's
token nor any hop-by-hop header can reach the backend, and the backend's credentials
(URL keys, headers) never reach the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from yarl import URL

from walletgate.config.settings import Backend, Settings
from walletgate.proxy.jsonrpc import dumps
from walletgate.proxy.passthrough import decode_answer


class Outcome(StrEnum):
    """What a forwarded request's fate is, as far as counters and the audit log care."""

    SUCCESS = "success"  # a JSON-RPC result: the backend accepted it
    REJECTED = "rejected"  # a JSON-RPC error: definite failure, nothing was sent
    UNKNOWN = "unknown"  # timeout, reset, garbage: it may have been broadcast


@dataclass(frozen=True, slots=True)
class BackendReply:
    outcome: Outcome
    body: Any  # the decoded JSON-RPC response (dict or list), or None when unknown
    detail: str = ""


class BackendError(RuntimeError):
    """The backend could not be reached or answered nonsense (the outcome is unknown)."""


def reply_of(answer: dict[str, Any], without_result: str) -> BackendReply:
    """One JSON-RPC answer judged: a result, an error, or neither (``without_result``
    says so: the outcome is unknown)."""
    if "result" in answer and "error" not in answer:
        return BackendReply(Outcome.SUCCESS, answer)
    if isinstance(answer.get("error"), dict):
        return BackendReply(Outcome.REJECTED, answer, str(answer["error"].get("message", "")))
    return BackendReply(Outcome.UNKNOWN, answer, without_result)


def new_session(settings: Settings) -> aiohttp.ClientSession:
    """The one ClientSession of a gateway process, with explicit pool limits and timeouts."""
    connector = aiohttp.TCPConnector(
        limit=settings.backend_pool_size,
        limit_per_host=settings.backend_pool_size,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.backend_timeout,
        connect=settings.backend_connect_timeout,
        sock_connect=settings.backend_connect_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=True,
        raise_for_status=False,
        # Redirects could send a request to a URL other than the configured backend.
        skip_auto_headers=("User-Agent",),
    )


class BackendClient:
    """Sends JSON-RPC payloads to one configured backend."""

    def __init__(self, backend: Backend, session: aiohttp.ClientSession) -> None:
        self.backend = backend
        self._session = session
        self._headers = {"Content-Type": "application/json", **backend.headers}

    async def post(self, payload: Any) -> BackendReply:
        """POST ``payload`` (a JSON-RPC object or batch) and classify the reply."""
        # dumps, not json.dumps: the params hold the numbers walletgate parsed (fractions
        # as Decimal) and must reach the backend with exactly the digits that were judged.
        data = dumps(payload)
        try:
            async with self._session.post(
                self.backend.url, data=data, headers=self._headers, allow_redirects=False
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            return BackendReply(Outcome.UNKNOWN, None, "backend timed out")
        except aiohttp.ClientError as exc:
            return BackendReply(
                Outcome.UNKNOWN, None, f"backend connection failed: {type(exc).__name__}"
            )
        try:
            # Decoded as json.loads would; an answer whose bytes may go to the agent as
            # they are comes back as a RawAnswer (walletgate.proxy.passthrough).
            body = decode_answer(raw)
        except (ValueError, UnicodeDecodeError):
            return BackendReply(
                Outcome.UNKNOWN, None, f"backend answered HTTP {status} with non-JSON"
            )
        if isinstance(body, dict):
            return reply_of(body, f"backend answered HTTP {status} without result")
        if isinstance(body, list):
            if not isinstance(payload, list):
                # A batch is no answer to one call: which element answers it, if any?
                return BackendReply(
                    Outcome.UNKNOWN, None, f"backend answered HTTP {status} with a batch"
                )
            return BackendReply(Outcome.SUCCESS, body)
        return BackendReply(Outcome.UNKNOWN, None, f"backend answered HTTP {status} with odd JSON")

    async def call(self, method: str, params: list[Any]) -> Any:
        """Make one JSON-RPC call and return its result, or raise BackendError."""
        reply = await self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        if reply.outcome is not Outcome.SUCCESS or not isinstance(reply.body, dict):
            raise BackendError(
                f"{self.backend.name}: {method} failed: {reply.detail or reply.body}"
            )
        return reply.body["result"]

    async def check_chain_id(self) -> None:
        """Refuse to start when the backend serves a chain other than the configured one."""
        result = await self.call("eth_chainId", [])
        try:
            served = int(str(result), 16)
        except ValueError:
            raise BackendError(
                f"backend {self.backend.name!r} answered eth_chainId with {result!r}"
            ) from None
        if served != self.backend.chain_id:
            raise BackendError(
                f"backend {self.backend.name!r} at {redact_url(self.backend.url)} serves chain "
                f"{served}, but walletgate is configured for chain {self.backend.chain_id}"
            )


def redact_url(url: str) -> str:
    """A backend URL fit for logs and errors: no userinfo, no path (keys often live there)."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<invalid url>"
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"
