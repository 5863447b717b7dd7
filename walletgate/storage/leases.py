"""State leases: when a gateway may trust the policies and tokens in its memory without
a Redis round trip per request.

The protocol (docs/architecture.md, "Leased state"):

- Each gateway process holds one lease in Redis, renewed every third of its term by
  :data:`RENEW_LUA`. A renewal extends the lease only when the version the gateway
  offers (the state it holds in memory) is the current version key, and records that
  version as the lease's acknowledgement. The gateway trusts its memory until
  ``sent + 0.9 * term - 50 ms`` on its own monotonic clock, where ``sent`` is when it
  sent the renewal: that always ends before Redis's expiry of the same lease
  (``executed + term``), with room for clocks that run at slightly different rates.
- A change (apply, revoke, freeze) commits in PostgreSQL, raises the version key, and
  then :func:`wait_for_leases` returns only once every live lease has acknowledged the
  new version or expired (:data:`WAIT_LUA`, on Redis's clock). A gateway acknowledges
  as soon as it hears the announcement and has installed the new state; a paused or
  dead one is waited out (at most one term). So once the change returns, no gateway
  serves a request from memory older than it.
- A renewal that offers an old version does not extend the lease (the gateway then
  refreshes and renews again): a lease acknowledging an old version can only run out.
- If Redis lost the registry (flush, restart without persistence), a waiter cannot know
  who held leases: the term key records when the registry was created, and a waiter
  waits until one full term has passed since then (or, with no registry at all, one full
  term of its own). When Redis cannot be reached, it waits one full term too: a gateway
  that cannot renew stops trusting its memory by then.

All keys share the ``{wg:state}`` hash tag with the version key (one Cluster slot).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis.commands.core import AsyncScript

from walletgate.storage.cache_keys import LEASE_TERM_KEY, LEASES_KEY, STATE_VERSION_KEY
from walletgate.storage.redis_client import REDIS_ERRORS, RedisClient

_log = logging.getLogger(__name__)

#: The shortest and longest lease terms (milliseconds) a gateway may be configured with.
MIN_TERM_MS = 200
MAX_TERM_MS = 60_000
#: The share of its term a gateway trusts a lease for, and a fixed margin (seconds):
#: local trust ends before Redis expires the lease even if the gateway's clock runs
#: 10% slow against Redis's.
_TRUSTED_SHARE = 0.9
_MARGIN = 0.05
#: How often a waiter looks again while some lease has not acknowledged yet (seconds).
_POLL = 0.005

# KEYS: version key, leases hash, term key. ARGV: lease id, offered version, term (ms).
# Answers {current version or -1 when there is none, 1 if extended else 0}.
RENEW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil then return {-1, 0} end
if current ~= tonumber(ARGV[2]) then return {current, 0} end
local term = tonumber(ARGV[3])
local registry = redis.call('GET', KEYS[3])
if registry == false then
  redis.call('SET', KEYS[3], term .. ' ' .. now)
else
  local known, created = string.match(registry, '^(%d+) (%d+)$')
  if known == nil then
    redis.call('SET', KEYS[3], term .. ' 0')
  elseif tonumber(known) < term then
    redis.call('SET', KEYS[3], term .. ' ' .. created)
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. (now + term))
return {current, 1}
"""

# KEYS: leases hash, term key. ARGV: the version every live lease must acknowledge.
# Answers {-1} when the registry is missing, else {leases not acknowledging yet, how many
# milliseconds a waiter must still wait at most}. Expired leases are removed on the way.
WAIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local registry = redis.call('GET', KEYS[2])
if registry == false then return {-1} end
local known, created = string.match(registry, '^(%d+) (%d+)$')
local wait = 0
if known == nil then return {-1} end
if tonumber(created) + tonumber(known) > now then
  wait = tonumber(created) + tonumber(known) - now
end
local version, pending = tonumber(ARGV[1]), 0
local entries = redis.call('HGETALL', KEYS[1])
for j = 1, #entries, 2 do
  local acked, expiry = string.match(entries[j + 1], '^(%d+) (%d+)$')
  if acked == nil or tonumber(expiry) <= now then
    redis.call('HDEL', KEYS[1], entries[j])
  elseif tonumber(acked) < version then
    pending = pending + 1
    if tonumber(expiry) - now > wait then wait = tonumber(expiry) - now end
  end
end
return {pending, wait}
"""


@dataclass(frozen=True, slots=True)
class LeaseWait:
    """How a change's wait for the gateways ended."""

    waited: float  # seconds
    #: Leases that had not acknowledged when the wait began (paused, dead or slow).
    pending_at_start: int
    #: Why the wait fell back to a full term (registry missing, Redis failing), if it did.
    fallback: str | None = None


class StateLease:
    """One gateway process's lease (see the module docstring).

    ``trusts(version)`` is the only question the request path asks, with no I/O.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        term_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not MIN_TERM_MS <= term_ms <= MAX_TERM_MS:
            raise ValueError(f"state_lease_ms must be {MIN_TERM_MS}..{MAX_TERM_MS}, not {term_ms}")
        self._redis = redis
        self._term_ms = term_ms
        self._clock = clock
        self.lease_id = uuid.uuid4().hex
        self._acked: int | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()
        self._renew: AsyncScript = redis.register_script(RENEW_LUA)

    @property
    def term(self) -> float:
        """The lease term in seconds."""
        return self._term_ms / 1000

    def trusts(self, version: int) -> bool:
        """True when state of ``version`` held in memory may be used without proving it
        current: the lease is valid and acknowledged a version no newer than it."""
        acked = self._acked
        return acked is not None and version >= acked and self._clock() < self._valid_until

    @property
    def valid(self) -> bool:
        """True while the lease is valid on this process's clock."""
        return self._acked is not None and self._clock() < self._valid_until

    def distrust(self) -> None:
        """Stop trusting memory at once (a newer version was seen, or is suspected)."""
        self._valid_until = 0.0

    async def renew(self, version: int) -> int | None:
        """Offer ``version`` (the state held in memory): the lease is extended when it is
        the current one. Returns the current version in Redis (``None`` when Redis has
        none); when it differs from ``version``, the lease is not extended and memory is
        not trusted any more. Raises a Redis error when Redis cannot be reached (the
        lease then runs out on its own)."""
        async with self._lock:
            sent = self._clock()
            current, extended = await self._renew(
                keys=[STATE_VERSION_KEY, LEASES_KEY, LEASE_TERM_KEY],
                args=[self.lease_id, version, self._term_ms],
            )
            if int(extended):
                self._acked = version
                self._valid_until = sent + self.term * _TRUSTED_SHARE - _MARGIN
            else:
                self.distrust()
        found = int(current)
        return None if found < 0 else found

    async def release(self) -> None:
        """Give the lease up (shutdown): waiters need not wait for it."""
        self.distrust()
        try:
            await self._redis.hdel(LEASES_KEY, self.lease_id)
        except REDIS_ERRORS as exc:
            _log.warning("could not release state lease %s: %s", self.lease_id, exc)


async def wait_for_leases(
    redis: RedisClient,
    version: int,
    *,
    term_ms: int,
    clock: Callable[[], float] = time.monotonic,
) -> LeaseWait:
    """Return once every live lease acknowledged ``version`` or expired.

    ``term_ms`` is the longest lease term this deployment uses as the caller knows it
    (the registry records the longest any gateway used; the larger counts). When the
    registry is missing or Redis fails, waits one full term instead: a gateway that
    cannot renew stops trusting its memory within its term.
    """
    started = clock()
    script = redis.register_script(WAIT_LUA)
    pending_at_start: int | None = None
    deadline = started + 3 * max(term_ms, MAX_TERM_MS) / 1000
    fallback: str | None = None
    while True:
        try:
            answer = await script(keys=[LEASES_KEY, LEASE_TERM_KEY], args=[version])
        except REDIS_ERRORS as exc:
            fallback = f"Redis failed while waiting for the gateways: {type(exc).__name__}"
            break
        pending = int(answer[0])
        if pending < 0:
            fallback = "the lease registry is missing (Redis was flushed or restarted)"
            break
        if pending_at_start is None:
            pending_at_start = pending
        wait = int(answer[1]) / 1000
        if wait <= 0:
            return LeaseWait(clock() - started, pending_at_start)
        if clock() > deadline:
            _log.warning("gave up waiting for %d state lease(s) to acknowledge", pending)
            return LeaseWait(clock() - started, pending_at_start, "gave up")
        # Acknowledgements come within milliseconds; a young registry only needs time.
        await asyncio.sleep(_POLL if pending else min(wait, 0.25))
    remaining = started + term_ms / 1000 - clock()
    if remaining > 0:
        await asyncio.sleep(remaining)
    return LeaseWait(clock() - started, pending_at_start or 0, fallback)
