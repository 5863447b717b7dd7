"""The delivery worker: each gateway process sends due webhook deliveries, at least once.

A batch of due deliveries is *claimed* in one short transaction (``FOR UPDATE SKIP
LOCKED``, so several processes never take the same row): its attempt count goes up and
its due time moves past the attempt's timeout, a lease. Then the POSTs go out, with no
transaction open, and each outcome is recorded. A process killed after a POST and before
recording leaves the row pending; when its lease runs out another process (or this one,
restarted) sends it again with the same event id: receivers dedupe by that id.

A 2xx answer is delivered. Anything else (an error status, a redirect, a timeout, a
refused connection, a missing secret) is retried with exponential backoff and jitter
until ``max_attempts``, then the delivery is failed (``walletgate webhooks retry``
puts it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg

from walletgate.config.settings import Settings
from walletgate.notify.signing import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)

_log = logging.getLogger(__name__)
_USER_AGENT = "walletgate-webhooks/1"
# Kept in last_error: enough to diagnose, bounded so a chatty receiver cannot bloat rows.
_MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How the worker polls, times out, and backs off (``webhook_*`` settings)."""

    poll_interval: float = 1.0
    timeout: float = 10.0
    max_attempts: int = 12
    backoff_base: float = 10.0
    backoff_max: float = 3600.0
    batch: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            poll_interval=settings.webhook_poll_interval,
            timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
            backoff_base=settings.webhook_backoff_base,
            backoff_max=settings.webhook_backoff_max,
        )

    @property
    def lease(self) -> float:
        """How long a claimed delivery is kept from other processes: past its timeout."""
        return self.timeout * 2 + 5


def backoff_delay(
    attempts: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt number ``attempts`` (1, 2, ...): ``base``
    doubled per attempt, at most ``cap``, with "equal jitter" (half fixed, half random)
    so that deliveries failing together do not come back together."""
    ceiling: float = min(cap, base * 2.0 ** min(attempts - 1, 62))
    return ceiling / 2 + ceiling / 2 * rand()


_CLAIM = """
WITH due AS (
    SELECT id FROM webhook_deliveries
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS d
   SET attempts = d.attempts + 1, last_attempt_at = now(),
       next_attempt_at = now() + make_interval(secs => $2)
  FROM due
 WHERE d.id = due.id
RETURNING d.id
"""

_CLAIMED = """
SELECT d.id, d.attempts, d.webhook_id, e.id AS event_id, e.owner_id, e.type, e.payload,
       e.created_at, w.url, w.secret_env
  FROM webhook_deliveries AS d
  JOIN outbox_events AS e ON e.id = d.event_id
  LEFT JOIN owner_webhooks AS w ON w.owner_id = d.owner_id AND w.id = d.webhook_id
 WHERE d.id = ANY ($1::uuid[])
"""

# Only the attempt that claimed the row records its outcome (attempts matches), so a
# slow attempt whose lease ran out cannot overwrite the next one's.
_DELIVERED = """
UPDATE webhook_deliveries
   SET status = 'delivered', delivered_at = now(), last_status = $3, last_error = NULL
 WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""

_FAILED_ATTEMPT = """
UPDATE webhook_deliveries
   SET status = CASE WHEN $5 THEN 'failed' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => $6),
       last_status = $3, last_error = $4
 WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(row: asyncpg.Record) -> bytes:
    """The JSON body of a delivery: ``{id, type, created_at, owner, data}``."""
    payload = row["payload"]
    data = json.loads(payload) if isinstance(payload, str) else payload
    body = {
        "id": str(row["event_id"]),
        "type": row["type"],
        "created_at": _iso(row["created_at"]),
        "owner": row["owner_id"],
        "data": data,
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    error: str | None
    final: bool = False  # no point retrying (the endpoint is gone)

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class WebhookWorker:
    """The background sender of one gateway process (``start`` / ``close``)."""

    def __init__(self, pool: asyncpg.Pool, config: DeliveryConfig) -> None:
        self._pool = pool
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start polling for due deliveries."""
        if self._task is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": _USER_AGENT})
            self._task = asyncio.create_task(self._run(), name="webhook-worker")

    async def close(self) -> None:
        """Stop. Attempts in flight are abandoned: their leases expire and they are sent
        again (at least once), never lost."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _log.warning("webhook delivery: database unavailable: %s", exc)
                sent = 0
            if sent < self._config.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._config.poll_interval)

    async def run_once(self) -> int:
        """Claim one batch of due deliveries and send them; returns how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            ids = [
                row["id"]
                for row in await conn.fetch(_CLAIM, self._config.batch, self._config.lease)
            ]
            rows = await conn.fetch(_CLAIMED, ids) if ids else []
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        outcome = await self._attempt(row)
        attempts: int = row["attempts"]
        if outcome.delivered:
            await self._pool.execute(_DELIVERED, row["id"], attempts, outcome.status)
            return
        final = outcome.final or attempts >= self._config.max_attempts
        delay = backoff_delay(attempts, self._config.backoff_base, self._config.backoff_max)
        error = outcome.error or f"the endpoint answered HTTP {outcome.status}"
        await self._pool.execute(
            _FAILED_ATTEMPT, row["id"], attempts, outcome.status, error[:_MAX_ERROR], final, delay
        )
        _log.info(
            "webhook %s/%s event %s attempt %d failed: %s",
            row["owner_id"],
            row["webhook_id"],
            row["event_id"],
            attempts,
            error,
        )

    async def _attempt(self, row: asyncpg.Record) -> _Outcome:
        if row["url"] is None:
            return _Outcome(None, "the endpoint was removed from the policy document", True)
        secret = os.environ.get(row["secret_env"], "")
        if not secret:
            return _Outcome(
                None, f"environment variable {row['secret_env']} is not set in the gateway"
            )
        body = event_body(row)
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(row["event_id"]),
            EVENT_TYPE_HEADER: row["type"],
            DELIVERY_ID_HEADER: str(row["id"]),
            SIGNATURE_HEADER: signature_header(secret.encode("utf-8"), int(time.time()), body),
        }
        assert self._session is not None, "start() the worker first"
        try:
            async with self._session.post(
                row["url"],
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout),
            ) as response:
                return _Outcome(response.status, None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return _Outcome(
                None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
