"""The read path: reads counted against request rates as one unit, answered from the
balance cache where it can, the rest forwarded to the backend in one batch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from walletgate.intents import MethodClass
from walletgate.policies.model import Wallet
from walletgate.proxy import errors
from walletgate.proxy.answers import call_json, with_id
from walletgate.proxy.backend import BackendClient, BackendReply, reply_of
from walletgate.proxy.backend import Outcome as ForwardOutcome
from walletgate.proxy.evm.reads import balance_query
from walletgate.proxy.gateway import Gateway, Response
from walletgate.proxy.jsonrpc import dumps
from walletgate.proxy.settle import forward
from walletgate.storage.balance_cache import balance_entry, get_balances, put_balance
from walletgate.storage.counters import Reservation
from walletgate.storage.leases import StateLease
from walletgate.storage.near_balances import NearBalances
from walletgate.storage.redis_client import REDIS_ERRORS
from walletgate.storage.redis_guard import CacheUnavailable

#: A balance cache that fails is treated as empty: the reads go to the backend.
_CACHE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, CacheUnavailable)


class ReadPath:
    """The reads of :class:`~walletgate.proxy.pipeline.CallHandler`, which provides the
    request-rate admission they share with every other call."""

    _gw: Gateway
    _backend: BackendClient
    _lease: StateLease | None

    async def _admit_request(
        self,
        call_id: Any,
        method_class: MethodClass,
        wallet: Wallet | None,
        *,
        calls: int = 1,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Response | Reservation | None:
        raise NotImplementedError  # CallHandler's

    async def handle_reads(self, calls: Sequence[tuple[Any, str, Any]]) -> list[Response]:
        """A run of read calls of one batch, decided as one unit: counted against the
        request-rate limits together (all of them, or none when they do not all fit),
        answered from the balance cache where it can, the rest forwarded to the backend
        in one batch. Returns their responses in order."""
        self._gw.metrics.requests.labels(method_class=str(MethodClass.READ)).inc(len(calls))
        return await self._reads(calls)

    async def _reads(self, calls: Sequence[tuple[Any, str, Any]]) -> list[Response]:
        chain_id = self._backend.backend.chain_id
        queries = [
            balance_query(params) if method == "eth_getBalance" else None
            for _, method, params in calls
        ]
        entries = [balance_entry(chain_id, *query) for query in queries if query is not None]
        near = self._near()
        now = time.monotonic()
        copies = near.get(entries, now) if near is not None else [None] * len(entries)
        # What memory does not hold is read from Redis, in the admission's trip.
        wanted = [entry for entry, copy in zip(entries, copies, strict=True) if copy is None]
        admitted = await self._admit_request(
            calls[0][0], MethodClass.READ, None, calls=len(calls), reads=wanted
        )
        if isinstance(admitted, dict):
            return [with_id(admitted, call_id) for call_id, _, _ in calls]
        if admitted is not None and wanted:
            fetched: Sequence[str | None] = admitted.read
        else:
            fetched = await self._cached_balances(wanted)
        if near is not None:
            for entry, value in zip(wanted, fetched, strict=True):
                if value is not None:
                    near.put(entry, value, now)
        from_redis = iter(fetched)
        found = [copy if copy is not None else next(from_redis) for copy in copies]
        self._note_cache_use(found)
        cached = iter(found)
        answers: list[Response | None] = [None] * len(calls)
        for i, query in enumerate(queries):
            balance = next(cached) if query is not None else None
            if balance is not None:
                answers[i] = {"jsonrpc": "2.0", "id": calls[i][0], "result": balance}
        missing = [i for i, answer in enumerate(answers) if answer is None]
        replies = await self._forward_together([call_json(*calls[i]) for i in missing])
        for i, reply in zip(missing, replies, strict=True):
            answers[i] = await self._answer_read(calls[i][0], queries[i], reply)
        return [answer for answer in answers if answer is not None]

    async def _answer_read(
        self, call_id: Any, query: tuple[str, str] | None, reply: BackendReply
    ) -> Response:
        """The backend's answer to one read, remembered in the balance cache if it is one."""
        if reply.body is None or reply.outcome is ForwardOutcome.UNKNOWN:
            # No answer, or one that is neither a result nor an error: not passed on.
            return errors.error_object(
                call_id, errors.RESOURCE_UNAVAILABLE, f"backend unavailable: {reply.detail}"
            )
        result = reply.body.get("result") if isinstance(reply.body, dict) else None
        if (
            query is not None
            and reply.outcome is ForwardOutcome.SUCCESS
            and isinstance(result, str)
        ):
            # On a Redis error the next read is a cache miss; this answer is still right.
            with contextlib.suppress(*_CACHE_ERRORS):
                chain_id = self._backend.backend.chain_id
                await put_balance(self._gw.redis, chain_id, *query, result, self._gw.balance_ttl)
                near = self._near()
                if near is not None:
                    near.put(balance_entry(chain_id, *query), result, time.monotonic())
        return with_id(reply.body, call_id)

    def _near(self) -> NearBalances | None:
        """The in-memory balance copies, when they may be used: only while the state
        lease holds (Redis answered this process within the lease term)."""
        return self._gw.near if self._lease is not None and self._lease.valid else None

    async def _cached_balances(self, entries: Sequence[tuple[str, str]]) -> Sequence[str | None]:
        """The balance cache's answers (one round trip), ``None`` where it has none or
        Redis fails (the reads then go to the backend)."""
        if not entries:
            return []
        try:
            return await get_balances(self._gw.redis, entries)
        except _CACHE_ERRORS:
            return [None] * len(entries)

    def _note_cache_use(self, found: Sequence[str | None]) -> None:
        for balance in found:
            result = "miss" if balance is None else "hit"
            self._gw.metrics.balance_cache.labels(result=result).inc()

    async def _forward_together(self, payloads: list[dict[str, Any]]) -> list[BackendReply]:
        """Forward calls in one backend request (a JSON-RPC batch when there are several);
        one by one when the backend's batch answer cannot be matched to them by id."""
        if len(payloads) <= 1:
            return [await self._forward(payload) for payload in payloads]
        ids = [dumps(payload["id"]) for payload in payloads]
        if len(set(ids)) == len(ids) and b"null" not in ids:
            reply = await self._forward(payloads)
            if isinstance(reply.body, list):
                by_id = {
                    dumps(answer.get("id")): answer
                    for answer in reply.body
                    if isinstance(answer, dict)
                }
                if all(key in by_id for key in ids):
                    return [reply_of(by_id[key], "no result in the batch answer") for key in ids]
        return [await self._forward(payload) for payload in payloads]

    async def _forward(self, payload: Any) -> BackendReply:
        return await forward(self._gw, self._backend, payload)
