"""Spend and rate counters in Redis, under the reservation protocol of SPEC §5.

1. ``reserve``: one Lua script per hash-tag group checks every claim of the request and
   adds the amounts, or adds nothing and says which claim failed;
2. the caller forwards the request;
3. ``settle``: commit (keep the amounts), refund (take them back), or keep as unknown.

Rolling windows are kept as buckets of ``window / BUCKETS`` seconds. A check sums every
bucket that overlaps the window, including the whole of the oldest, partly expired one:
that can only over-count, so the check is never looser than the policy (docs/policies.md).

Lua numbers are doubles, exact only to 2**53, and wei amounts are far larger. Each claim
is therefore scaled: amounts are divided by ``scale`` rounding up, limits rounding down,
with ``scale`` chosen so that the scaled limit stays below 2**50. The rounding is again on
the strict side: at most one scaled unit per spend.

Keys carry a hash tag per scope entity (``{wg:c:wallet:ID}``), so every key one script
touches lives in one Redis Cluster slot. A request whose claims span several scopes is
reserved group by group in a fixed (sorted) order, and the groups already reserved are
refunded when a later one fails, so no interleaving of requests can overspend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from walletgate.policies.decision import CounterClaim

BUCKETS = 60
_SCALED_LIMIT_MAX = 1 << 50
_RESERVATION_TTL = 7 * 86400


class CountersUnavailable(RuntimeError):
    """Redis could not be reached or answered in time: spends must fail closed."""


@dataclass(frozen=True, slots=True)
class CounterRefusal:
    """The claim that did not fit: what was already counted and what was asked."""

    claim: CounterClaim
    already: int  # in the claim's units (approximate to one scale step, on the strict side)
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """Amounts added for one request, to be settled exactly once."""

    id: str
    groups: tuple[str, ...]  # hash tags reserved, in order


def scale_for(limit: int) -> int:
    """A power of ten that brings ``limit`` under 2**50 (1 for ordinary limits)."""
    scale = 1
    while limit // scale >= _SCALED_LIMIT_MAX:
        scale *= 10
    return scale


def window_seconds(claim: CounterClaim) -> int:
    """The window a claim counts over; calendar windows are bounded by their longest span."""
    if claim.window_seconds is not None:
        return claim.window_seconds
    return {"day": 86400, "week": 7 * 86400, "month": 31 * 86400}.get(claim.calendar or "", 86400)


def group_of(claim: CounterClaim) -> str:
    """The hash tag of a claim: its scope entity (the key's prefix up to the policy id)."""
    scope = ":".join(claim.key.split(":")[:2])
    return "{wg:c:" + scope + "}"


# KEYS: counter hash per claim, then the reservation key.
# ARGV: now, reservation ttl, then per claim: amount, limit, bucket seconds, buckets.
_RESERVE = """
local now = tonumber(ARGV[1])
local n = #KEYS - 1
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local amount, limit = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local width, count = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local current = math.floor(now / width)
  local oldest = current - count
  local total = 0
  local fields = redis.call('HGETALL', KEYS[i])
  for j = 1, #fields, 2 do
    local bucket = tonumber(fields[j])
    if bucket <= oldest then
      redis.call('HDEL', KEYS[i], fields[j])
    else
      total = total + tonumber(fields[j + 1])
    end
  end
  if total + amount > limit then
    return {i, tostring(total)}
  end
end
local record = {}
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local amount = tonumber(ARGV[base + 1])
  local width, count = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local bucket = math.floor(now / width)
  redis.call('HINCRBY', KEYS[i], bucket, amount)
  redis.call('EXPIRE', KEYS[i], width * (count + 2))
  table.insert(record, KEYS[i])
  table.insert(record, bucket)
  table.insert(record, amount)
end
redis.call('SET', KEYS[n + 1], cjson.encode(record), 'EX', tonumber(ARGV[2]))
return {0, ''}
"""

# Peek: the reserve check without writing anything (simulate, dry runs).
_PEEK = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 4
  local amount, limit = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local width, count = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local oldest = math.floor(now / width) - count
  local total = 0
  local fields = redis.call('HGETALL', KEYS[i])
  for j = 1, #fields, 2 do
    if tonumber(fields[j]) > oldest then
      total = total + tonumber(fields[j + 1])
    end
  end
  if total + amount > limit then
    return {i, tostring(total)}
  end
end
return {0, ''}
"""

# Refund: take back exactly what the reservation added, once.
_REFUND = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
for i = 1, #record, 3 do
  if redis.call('HEXISTS', record[i], tostring(record[i + 1])) == 1 then
    redis.call('HINCRBY', record[i], tostring(record[i + 1]), -tonumber(record[i + 2]))
  end
end
redis.call('DEL', KEYS[1])
return 1
"""

# Commit: the amounts stay; forget the reservation so it cannot be refunded later.
_COMMIT = """
return redis.call('DEL', KEYS[1])
"""


def _script_input(
    tag: str, claims: Sequence[CounterClaim], now: float
) -> tuple[list[str], list[Any]]:
    """Keys and arguments of the check scripts: now, then amount, limit, width, buckets per
    claim, scaled so Lua's doubles stay exact (amount rounded up, limit down)."""
    keys: list[str] = []
    args: list[Any] = [int(now)]
    for claim in claims:
        scale = scale_for(claim.limit)
        keys.append(f"{tag}:{claim.key}:{claim.unit}")
        amount = -(-claim.amount // scale)  # ceiling: never under-count
        args += [amount, claim.limit // scale, _bucket_width(claim), BUCKETS]
    return keys, args


def _bucket_width(claim: CounterClaim) -> int:
    return max(1, window_seconds(claim) // BUCKETS)


def _refusal(claims: Sequence[CounterClaim], answer: Any, now: float) -> CounterRefusal | None:
    index, total = int(answer[0]), answer[1]
    if index == 0:
        return None
    claim = claims[index - 1]
    width = _bucket_width(claim)
    return CounterRefusal(
        claim=claim,
        already=int(total) * scale_for(claim.limit),
        retry_after=float(width - (int(now) % width)),
    )


class Counters:
    """The counters of one gateway process, on a shared Redis (or Redis Cluster)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)
        self._commit = redis.register_script(_COMMIT)
        self._peek = redis.register_script(_PEEK)

    async def reserve(
        self, reservation_id: str, claims: Sequence[CounterClaim], now: float
    ) -> Reservation | CounterRefusal:
        """Reserve every claim, or none: returns the reservation or the refusing claim."""
        groups: dict[str, list[CounterClaim]] = {}
        for claim in claims:
            groups.setdefault(group_of(claim), []).append(claim)
        done: list[str] = []
        try:
            for tag in sorted(groups):
                refusal = await self._reserve_group(reservation_id, tag, groups[tag], now)
                if refusal is not None:
                    await self._undo(reservation_id, done)
                    return refusal
                done.append(tag)
        except RedisError as exc:
            await self._undo_quietly(reservation_id, done)
            raise CountersUnavailable(f"counters unavailable: {exc}") from exc
        return Reservation(reservation_id, tuple(done))

    async def peek(self, claims: Sequence[CounterClaim], now: float) -> CounterRefusal | None:
        """What ``reserve`` would refuse right now, without counting anything."""
        groups: dict[str, list[CounterClaim]] = {}
        for claim in claims:
            groups.setdefault(group_of(claim), []).append(claim)
        try:
            for tag in sorted(groups):
                keys, args = _script_input(tag, groups[tag], now)
                refusal = _refusal(groups[tag], await self._peek(keys=keys, args=args), now)
                if refusal is not None:
                    return refusal
        except RedisError as exc:
            raise CountersUnavailable(f"counters unavailable: {exc}") from exc
        return None

    async def _reserve_group(
        self, reservation_id: str, tag: str, claims: list[CounterClaim], now: float
    ) -> CounterRefusal | None:
        keys, args = _script_input(tag, claims, now)
        keys.append(f"{tag}:res:{reservation_id}")
        return _refusal(
            claims,
            await self._reserve(keys=keys, args=[*args[:1], _RESERVATION_TTL, *args[1:]]),
            now,
        )

    async def _undo(self, reservation_id: str, tags: Sequence[str]) -> None:
        for tag in tags:
            await self._refund(keys=[f"{tag}:res:{reservation_id}"])

    async def _undo_quietly(self, reservation_id: str, tags: Sequence[str]) -> None:
        # The reservation record expires on its own; over-counting is the safe side.
        with contextlib.suppress(RedisError):
            await self._undo(reservation_id, tags)

    async def commit(self, reservation: Reservation) -> None:
        """The backend accepted the request: the amounts stay counted."""
        for tag in reservation.groups:
            await self._commit(keys=[f"{tag}:res:{reservation.id}"])

    async def refund(self, reservation: Reservation) -> None:
        """The backend definitely refused: take the amounts back (idempotent)."""
        await self._undo(reservation.id, reservation.groups)


def claims_to_json(claims: Sequence[CounterClaim]) -> list[dict[str, Any]]:
    """Claims as stored in the audit row, so counters can be rebuilt from PostgreSQL."""
    return [
        {
            "key": c.key,
            "amount": str(c.amount),
            "limit": str(c.limit),
            "unit": c.unit,
            "policy": c.policy,
            "rule": c.rule,
            "window_seconds": c.window_seconds,
            "calendar": c.calendar,
            "timezone": c.timezone,
        }
        for c in claims
    ]
