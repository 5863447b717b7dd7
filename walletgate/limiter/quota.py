"""Request-rate admission from leased blocks: the I/O shell around
:mod:`walletgate.limiter.blocks`.

A read whose request-rate units this process already holds is admitted with no Redis
trip; otherwise one LEASE script (on one Redis server) gives back unused units of
finished buckets, checks every counter has room for what the request needs, and
counts a block for each (as much as it wants, at most what fits), reading the cached
balances the request needs in the same trip. Used only when a single Redis server
holds the counters: on a Cluster, reads are counted one by one (``Counters.admit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from walletgate.limiter.blocks import Ask, BlockBook, Need
from walletgate.policies.decision import CounterClaim
from walletgate.storage.counter_scripts import LIVE_BUCKETS
from walletgate.storage.counters import (
    Counter,
    CounterRefusal,
    Counters,
    CountersUnavailable,
    StaleState,
    merged_counters,
)
from walletgate.storage.redis_client import REDIS_ERRORS, RedisClient, as_text
from walletgate.storage.windows import WindowError, bucketing

#: Claim sets whose counters are remembered at most (a bound on memory).
_MAX_CLAIM_SETS = 65_536

_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, CountersUnavailable)

# KEYS: n counters, then h hashes. ARGV: n, h, then eight values per counter (bucket,
# oldest counted bucket, units needed, units wanted, limit, counter ttl, bucket to give
# back to, units to give back), then the h hash fields. Answers {-1, {i...}} when
# counters are missing (nothing done), {i, {bucket, total, ...}} when counter i has no
# room for its need (give-backs done, nothing counted), else {0, grant per counter,
# hash value or false per hash}. Buckets are summed (and the expired ones deleted) as
# the counters' own checks do: LIVE_BUCKETS.
LEASE_LUA = (
    LIVE_BUCKETS
    + """
local n, h = tonumber(ARGV[1]), tonumber(ARGV[2])
local absent = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then absent[#absent + 1] = i end
end
if #absent > 0 then return {-1, absent} end
for i = 1, n do
  local base = 2 + (i - 1) * 8
  local back = tonumber(ARGV[base + 8])
  if back > 0 then
    local had = tonumber(redis.call('HGET', KEYS[i], ARGV[base + 7]))
    if had ~= nil and had > 0 then
      redis.call('HINCRBY', KEYS[i], ARGV[base + 7], -math.min(back, had))
    end
  end
end
local grants = {}
for i = 1, n do
  local base = 2 + (i - 1) * 8
  local oldest = tonumber(ARGV[base + 2])
  local need, want = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local limit = tonumber(ARGV[base + 5])
  local total, live = live_buckets(KEYS[i], oldest, true)
  if total + need > limit then return {i, live} end
  grants[i] = math.min(want, limit - total)
end
local answer = {0}
for i = 1, n do
  local base = 2 + (i - 1) * 8
  redis.call('HINCRBY', KEYS[i], ARGV[base + 1], grants[i])
  redis.call('EXPIRE', KEYS[i], ARGV[base + 6])
  answer[#answer + 1] = grants[i]
end
local fo = 2 + n * 8
for j = 1, h do
  answer[#answer + 1] = redis.call('HGET', KEYS[n + j], ARGV[fo + j])
end
return answer
"""
)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request admitted against its rates; ``read`` holds the hash fields asked for
    (``None`` where absent), ``trip`` whether Redis was asked at all."""

    read: tuple[str | None, ...]
    trip: bool


class RequestQuota:
    """One process's leased request-rate quota (a single Redis server only)."""

    def __init__(self, redis: RedisClient, counters: Counters) -> None:
        self._redis = redis
        self._counters = counters
        self._book = BlockBook()
        self._plans: dict[tuple[CounterClaim, ...], list[Counter]] = {}
        self._lease: AsyncScript = redis.register_script(LEASE_LUA)

    def clear(self) -> None:
        """Drop every held block (the state version changed: limits may be lower)."""
        self._book.clear()
        self._plans.clear()

    def _counters_of(self, claims: Sequence[CounterClaim]) -> list[Counter]:
        """``merged_counters(claims)``, remembered: an agent's claims repeat on every
        call (kept for a bounded number of claim sets, until the state changes)."""
        key = tuple(claims)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= _MAX_CLAIM_SETS:
                self._plans.clear()
            found = self._plans[key] = merged_counters(claims)
        return found

    async def admit(
        self,
        claims: Sequence[CounterClaim],
        now: float,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Admitted | CounterRefusal:
        """Count ``claims`` (request-rate claims, ``amount`` = the calls) from held blocks
        or one LEASE trip, reading the ``(hash key, field)`` pairs of ``reads`` when a
        trip is made anyway (or needed for them). Raises
        :class:`~walletgate.storage.counters.CountersUnavailable` when Redis fails or a
        window cannot be bucketed; nothing is counted then."""
        try:
            counters = self._counters_of(claims)
            needs = [_need(counter, now) for counter in counters]
        except WindowError as exc:
            raise CountersUnavailable(f"counters unavailable: {exc}") from exc
        missing = self._book.take_local(needs)
        if not missing and not reads:
            return Admitted((), trip=False)
        asks = self._book.asks(missing, now)
        epoch = self._book.epoch
        by_key = {counter.key: counter for counter in counters}
        asked = [by_key[ask.key] for ask in asks]
        try:
            answer = await self._run(asks, asked, now, reads)
        except _ERRORS as exc:
            self._book.put_back([n for n in needs if n not in missing])
            self._book.refused(asks)
            if isinstance(exc, CountersUnavailable):
                raise
            raise CountersUnavailable(f"counters unavailable: {type(exc).__name__}: {exc}") from exc
        if isinstance(answer, CounterRefusal):
            self._book.put_back([n for n in needs if n not in missing])
            self._book.refused(asks)
            return answer
        grants = [int(value) for value in answer[: len(asks)]]
        if self._book.epoch == epoch:
            self._book.granted(asks, grants, now)
        # else the state changed during the trip: the surplus was leased under the old
        # limits and is not kept (it stays counted: over-counted, never under).
        values = tuple(None if v is None else as_text(v) for v in answer[len(asks) :])
        return Admitted(values, trip=True)

    async def _run(
        self,
        asks: Sequence[Ask],
        counters: list[Counter],
        now: float,
        reads: Sequence[tuple[str, str]],
    ) -> CounterRefusal | list[Any]:
        args: list[Any] = [len(asks), len(reads)]
        for ask, counter in zip(asks, counters, strict=True):
            window = bucketing(counter.shape, now)
            args += [
                ask.bucket,
                window.oldest,
                ask.need,
                ask.want,
                counter.limit,
                window.ttl,
                ask.give_back_bucket,
                ask.give_back,
            ]
        args += [field for _, field in reads]
        keys = [counter.key for counter in counters] + [key for key, _ in reads]
        answer = await self._counters.run_checked(self._lease, keys, args, counters, now)
        assert not isinstance(answer, StaleState)  # LEASE reads no version
        return answer


def _need(counter: Counter, now: float) -> Need:
    return Need(counter.key, bucketing(counter.shape, now).bucket, counter.amount, counter.limit)
