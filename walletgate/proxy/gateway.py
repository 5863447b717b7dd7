"""What the request path works with: the authenticated caller, one spend on its way,
and the per-process dependencies (stores, metrics, clock)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from walletgate.intents import DecodedRequest
from walletgate.limiter.quota import RequestQuota
from walletgate.policies.model import Wallet
from walletgate.proxy.metrics import Metrics
from walletgate.storage.audit import AuditWriter
from walletgate.storage.counters import Counters
from walletgate.storage.near_balances import NearBalances
from walletgate.storage.redis_client import RedisClient

Response = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated agent behind a request."""

    agent_id: str
    owner_id: str
    token_id: str


@dataclass(frozen=True, slots=True)
class SpendCall:
    """One spending or signing call on its way through the pipeline: what its audit row
    and its refusals are built from."""

    tx_id: uuid.UUID
    now: datetime
    method: str
    request_json: dict[str, Any]
    started: float
    decoded: DecodedRequest | None = None
    wallet: Wallet | None = None


@dataclass
class Gateway:
    """The per-process dependencies of the request path."""

    counters: Counters
    audit: AuditWriter
    redis: RedisClient
    metrics: Metrics
    balance_ttl: int
    reads_fail_open: bool
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Leased request-rate quota (single Redis server); None: every call counted apart.
    quota: RequestQuota | None = None
    #: In-memory copies of cached balances (storage.near_balances); None: Redis only.
    near: NearBalances | None = None
    #: The database, for held spends (resends, ``walletgate_getApproval``); None: no
    #: approvals are looked up (a held spend is still held and answered).
    pool: asyncpg.Pool | None = None


class StateMoved(Exception):
    """The state the request was being decided on is not current any more (a policy,
    token or freeze changed): nothing was counted, forwarded or logged, and the request
    must be authenticated and decided again on fresh state."""
