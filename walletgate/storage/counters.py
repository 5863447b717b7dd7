"""Spend and rate counters in Redis, under the reservation protocol of SPEC §5.

1. ``admit`` (``reserve`` when there is nothing else to do): one atomic Lua script
   counts the request against its request-rate limits, then checks every spend claim
   and adds the amounts, or adds nothing and says which claim did not fit. On one Redis
   server that is a single round trip, which can also prove the state version the
   request was decided on still current; on a cluster, one call per hash-tag group;
2. ``confirm``, once the audit row is durable: the reservation is still in Redis (it
   was not lost with a flush or restart in between), so it is safe to forward;
3. the caller forwards the request, then settles exactly once: ``commit`` (the amounts
   stay), ``refund`` (take them back) or nothing (unknown outcome: they keep counting
   until ``walletgate reconcile`` commits or refunds them).

Windows are bucketed by :mod:`walletgate.storage.windows`; checks are never looser
than the policy. Lua numbers are doubles, exact only to 2**53, and wei amounts are
far larger, so each counter is kept in units of a power of ten, ``scale``, chosen so its
limit stays below 2**50: amounts are rounded up to whole units, the limit down. Both
the window and the scale are part of the counter's key, so a policy change that alters
either starts a fresh counter, rebuilt from PostgreSQL.

Keys carry a hash tag per scope entity (``{wg:c:wallet:ID}``), so on a Redis Cluster
the keys of one group live in one slot. There a request whose claims span several
entities is reserved group by group in a fixed (sorted) order, and the groups already
reserved are refunded when a later one refuses, so no interleaving can overspend; it
can only refuse a request that would have fitted a moment later (and a request refused
by a later group's rate limit may have been counted by an earlier group: over-counted,
never under-counted). On a single server the whole request is one script, exactly.

A counter missing from Redis is rebuilt from the audit log (:mod:`.rebuild`) before the
reservation is retried; the script tells "missing" from "zero" by a marker field.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from walletgate.policies.claims import REQUESTS
from walletgate.policies.decision import CounterClaim
from walletgate.storage import counter_scripts
from walletgate.storage.auto_pipeline import AutoPipeline
from walletgate.storage.cache_entries import decode_version
from walletgate.storage.cache_keys import STATE_VERSION_KEY
from walletgate.storage.rebuild import ClaimHistory, rebuilt_counter, scaled_up
from walletgate.storage.redis_client import (
    REDIS_ERRORS,
    RedisClient,
    as_text,
    read_hash_fields,
)
from walletgate.storage.windows import WindowError, WindowShape, bucketing, retry_after

_log = logging.getLogger(__name__)

_SCALED_LIMIT_MAX = 1 << 50
#: Reservation records outlive their longest window by this much (seconds).
_RECORD_MARGIN = 3600
#: ADMIT's answer when the state version moved on.
_STALE = -2
#: How often one reservation may find a counter missing and rebuild it.
_REBUILD_ATTEMPTS = 3

# What reading the audit log for a rebuild may raise (ValueError: a malformed row).
_HISTORY_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    ValueError,
)


class CountersUnavailable(RuntimeError):
    """Redis (or, to rebuild a counter, PostgreSQL) failed: spends must fail closed."""


# Anything that stops a check: Redis, a rebuild, or a window that cannot be bucketed.
_CHECK_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, CountersUnavailable, WindowError)


@dataclass(frozen=True, slots=True)
class CounterRefusal:
    """The claim that did not fit: what was already counted and when it would fit."""

    claim: CounterClaim
    already: int  # in the claim's units, over-counted by less than one scale step per spend
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class StaleState:
    """The state version moved past the one the request was decided on (or is missing
    from Redis): nothing was counted, and the request must be decided again."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Amounts added for one request, to be settled exactly once.

    ``groups`` are the hash tags reserved, in order, each with the number of counters
    its record must name for the reservation to be intact.
    """

    id: str
    groups: tuple[tuple[str, int], ...]
    #: The hash fields ``admit`` was asked to read, in order (``None`` where absent).
    read: tuple[str | None, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(tag for tag, _ in self.groups)


@dataclass(frozen=True, slots=True)
class Counter:
    """Where a claim is counted: its Redis key, window shape and scale."""

    claim: CounterClaim
    shape: WindowShape
    exponent: int  # the counter holds amounts in units of 10**exponent
    # Worked out once: a request's counters are sorted, merged and grouped by them.
    group: str = dataclasses.field(init=False)
    key: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        group = group_of(self.claim)
        key = f"{group}:{self.claim.key}:{self.shape.name}:e{self.exponent}"
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "key", key)

    @property
    def scale(self) -> int:
        scale: int = 10**self.exponent
        return scale

    @property
    def amount(self) -> int:
        """The claim's amount in counter units, rounded up."""
        return scaled_up(self.claim.amount, self.scale)

    @property
    def limit(self) -> int:
        """The claim's limit in counter units, rounded down."""
        return self.claim.limit // self.scale


def scale_exponent(limit: int) -> int:
    """The smallest ``e`` with ``limit // 10**e < 2**50`` (0 for ordinary limits)."""
    exponent = 0
    while limit // 10**exponent >= _SCALED_LIMIT_MAX:
        exponent += 1
    return exponent


def group_of(claim: CounterClaim) -> str:
    """The hash tag of a claim: its scope entity (the key's first two parts)."""
    scope = ":".join(claim.key.split(":")[:2])
    return "{wg:c:" + scope + "}"


def counter_of(claim: CounterClaim) -> Counter:
    """The counter ``claim`` is checked against; raises WindowError for a bad window."""
    shape = WindowShape(claim.window_seconds, claim.calendar, claim.timezone)
    return Counter(claim, shape, scale_exponent(claim.limit))


def record_key(tag: str, reservation_id: str) -> str:
    """The reservation record of ``reservation_id`` in group ``tag``."""
    return f"{tag}:res:{reservation_id}"


def _merged(claims: Sequence[CounterClaim]) -> list[Counter]:
    """The counters of ``claims``, sorted by key. Claims on the same counter are merged,
    so one request can never check a counter twice without seeing its own first amount."""
    merged: dict[str, Counter] = {}
    for claim in claims:
        counter = counter_of(claim)
        if counter.key in merged:
            first = merged[counter.key].claim
            combined = dataclasses.replace(first, amount=first.amount + claim.amount)
            counter = dataclasses.replace(counter, claim=combined)
        merged[counter.key] = counter
    return sorted(merged.values(), key=lambda c: c.key)


def _grouped(claims: Sequence[CounterClaim]) -> list[tuple[str, list[Counter]]]:
    """Counters by hash tag, tags sorted (the fixed reservation order)."""
    groups: dict[str, list[Counter]] = {}
    for counter in _merged(claims):
        groups.setdefault(counter.group, []).append(counter)
    return [(tag, groups[tag]) for tag in sorted(groups)]


@dataclass(frozen=True, slots=True)
class _Call:
    """One ADMIT call: request counters, then spend counters by group, then the hash
    fields to read once admitted."""

    requests: list[Counter]
    groups: list[tuple[str, list[Counter]]]
    reads: Sequence[tuple[str, str]] = ()

    @property
    def counters(self) -> list[Counter]:
        return self.requests + [c for _, counters in self.groups for c in counters]


def _calls(
    requests: list[Counter],
    groups: list[tuple[str, list[Counter]]],
    reads: Sequence[tuple[str, str]],
    *,
    cluster: bool,
) -> list[_Call]:
    """One call for everything on a single server; one per hash tag, in tag order, on a
    cluster (a script may only touch keys of one slot there; the reads go apart)."""
    if not cluster:
        return [_Call(requests, groups, reads)]
    spend = dict(groups)
    tags = sorted({c.group for c in requests} | spend.keys())
    return [
        _Call(
            [c for c in requests if c.group == tag],
            [(tag, spend[tag])] if tag in spend else [],
        )
        for tag in tags
    ]


def reservation_of(reservation_id: str, claims: Sequence[CounterClaim]) -> Reservation:
    """The reservation ``reserve`` made for ``claims`` (to settle it from the audit log)."""
    return Reservation(
        reservation_id, tuple((tag, len(counters)) for tag, counters in _grouped(claims))
    )


def _counter_args(counters: Sequence[Counter], now: float) -> tuple[int, list[Any]]:
    """The longest record ttl the counters need, and their ARGV: bucket, oldest bucket,
    amount, limit, ttl each."""
    args: list[Any] = []
    record_ttl = 0
    for counter in counters:
        window = bucketing(counter.shape, now)
        args += [window.bucket, window.oldest, counter.amount, counter.limit, window.ttl]
        record_ttl = max(record_ttl, window.ttl + _RECORD_MARGIN)
    return record_ttl, args


class Counters:
    """The counters of one gateway process, on a shared Redis or Redis Cluster."""

    def __init__(self, redis: RedisClient, history: ClaimHistory) -> None:
        self._redis = redis
        self._history = history
        # On one server, the scripts and settlements of concurrent requests share
        # round trips (a cluster client splits pipelines by node on its own).
        self._auto = None if isinstance(redis, RedisCluster) else AutoPipeline(redis)
        self._cluster = self._auto is None
        self._admit: AsyncScript = redis.register_script(counter_scripts.ADMIT)
        self._peek: AsyncScript = redis.register_script(counter_scripts.PEEK)
        self._init: AsyncScript = redis.register_script(counter_scripts.INIT)
        self._refund: AsyncScript = redis.register_script(counter_scripts.REFUND)
        # Rebuilds in progress in this process, by counter key: one query per key.
        self._rebuilding: dict[str, asyncio.Future[None]] = {}

    async def reserve(
        self, reservation_id: str, claims: Sequence[CounterClaim], now: float
    ) -> Reservation | CounterRefusal:
        """Reserve every claim, or none: returns the reservation or the refusing claim.

        Raises :class:`CountersUnavailable` like :meth:`admit`.
        """
        admitted = await self.admit(reservation_id, spend=claims, now=now)
        assert not isinstance(admitted, StaleState)  # no version was given to check
        return admitted

    async def admit(
        self,
        reservation_id: str,
        *,
        requests: Sequence[CounterClaim] = (),
        spend: Sequence[CounterClaim] = (),
        now: float,
        version: int | None = None,
        reads: Sequence[tuple[str, str]] = (),
    ) -> Reservation | CounterRefusal | StaleState:
        """Count one request and reserve its spend, in one round trip on one server.

        With ``version`` (the state version the request was decided on), first proves
        that version still current: :class:`StaleState` when it is not, with nothing
        counted. Then ``requests`` (request-rate claims) are counted for good, or the
        refusing one is returned with nothing counted. Then ``spend`` is reserved, all
        or none: the reservation (empty without spend claims) or the refusing claim,
        with the request still counted. Once admitted, the ``(hash key, field)`` pairs of
        ``reads`` (what the request needs next, such as cached balances) are read, in
        the same round trip on one server, into ``Reservation.read``.

        Raises :class:`CountersUnavailable` when Redis fails (anything reserved so far
        is taken back if Redis still answers) or a missing counter cannot be rebuilt.
        """
        cluster = self._cluster
        done: list[tuple[str, int]] = []
        read: list[Any] = []
        try:
            if cluster and version is not None:
                # A cluster script cannot also read the version key (another slot).
                seen = decode_version(await self._redis.get(STATE_VERSION_KEY))
                if seen is None or seen > version:
                    return StaleState()
                version = None
            calls = _calls(_merged(requests), _grouped(spend), reads, cluster=cluster)
            for call in calls:
                answer = await self._admit_call(reservation_id, call, now, version)
                if not isinstance(answer, list):
                    await self.refund(Reservation(reservation_id, tuple(done)))
                    return answer
                done += [(tag, len(counters)) for tag, counters in call.groups]
                read += answer
            if cluster and reads:
                read = await read_hash_fields(self._redis, reads)
        except _CHECK_ERRORS as exc:
            with contextlib.suppress(CountersUnavailable):
                await self.refund(Reservation(reservation_id, tuple(done)))
            raise _unavailable(exc) from exc
        values = tuple(None if value is None else as_text(value) for value in read)
        return Reservation(reservation_id, tuple(done), values)

    async def _admit_call(
        self, reservation_id: str, call: _Call, now: float, version: int | None
    ) -> CounterRefusal | StaleState | list[Any]:
        """One ADMIT script: what it refused, or the values of ``call.reads``."""
        counters = call.counters
        if not counters and version is None and not call.reads:
            return []
        record_ttl, counter_args = _counter_args(counters, now)
        keys = [STATE_VERSION_KEY] if version is not None else []
        keys += [c.key for c in counters]
        keys += [record_key(tag, reservation_id) for tag, _ in call.groups]
        keys += [key for key, _ in call.reads]
        args: list[Any] = [
            "" if version is None else version,
            record_ttl,
            len(call.requests),
            len(call.groups),
            len(call.reads),
            *(len(group) for _, group in call.groups),
            *counter_args,
            *(field for _, field in call.reads),
        ]
        return await self._check(self._admit, keys, args, counters, now)

    async def peek(self, claims: Sequence[CounterClaim], now: float) -> CounterRefusal | None:
        """What ``reserve`` would refuse right now, without counting anything.

        A missing counter is rebuilt (that only restores what PostgreSQL says).
        """
        try:
            for _tag, counters in _grouped(claims):
                keys = [counter.key for counter in counters]
                _, args = _counter_args(counters, now)
                refusal = await self._check(self._peek, keys, args, counters, now)
                assert not isinstance(refusal, StaleState)  # PEEK reads no version
                if isinstance(refusal, CounterRefusal):
                    return refusal
        except _CHECK_ERRORS as exc:
            raise _unavailable(exc) from exc
        return None

    async def confirm(self, reservation: Reservation) -> bool:
        """True when every record of ``reservation`` is intact in Redis.

        Call after the audit row is durable and before forwarding. False means Redis
        lost the reservation in between (flush, restart): a counter rebuilt from
        PostgreSQL before the row was written may not count it, so it must not be sent.
        """
        records = [record_key(tag, reservation.id) for tag, _ in reservation.groups]
        try:
            if self._auto is not None:
                auto = self._auto
                entries = await asyncio.gather(*(auto.execute("HLEN", r) for r in records))
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for record in records:
                        pipe.hlen(record)
                    entries = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        expected = [count for _, count in reservation.groups]
        return [int(found) for found in entries] == expected

    async def commit(self, reservation: Reservation, *, also_delete: str | None = None) -> None:
        """The backend accepted the request: the amounts stay counted.

        ``also_delete`` names one more key to delete in the same round trip (a cache
        entry the request made stale); if it fails, the reservation is not committed.
        """
        keys = [record_key(tag, reservation.id) for tag in reservation.tags]
        if also_delete is not None:
            keys.append(also_delete)
        if not keys:
            return
        try:
            if self._auto is not None:
                await self._auto.execute("DEL", *keys)
            else:
                await self._redis.delete(*keys)  # a cluster client splits it by slot
        except REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def refund(self, reservation: Reservation) -> None:
        """The request was not sent or the backend definitely refused it: take the
        amounts back. Idempotent: each record is taken back at most once."""
        try:
            for tag in reservation.tags:
                await self._refund_record(record_key(tag, reservation.id))
        except REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def _refund_record(self, record: str) -> None:
        for _ in range(_REBUILD_ATTEMPTS):
            named = [as_text(key) for key in await self._redis.hkeys(record)]
            if not named:
                return
            if int(await self._refund(keys=[record, *named])) >= 0:
                return
        raise CountersUnavailable(f"reservation record {record} kept changing during a refund")

    async def _check(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        counters: list[Counter],
        now: float,
    ) -> CounterRefusal | StaleState | list[Any]:
        """Run ADMIT or PEEK, rebuilding missing counters and retrying. Returns what
        refused, or the rest of the script's answer (ADMIT's hash values) when nothing
        did."""
        for _ in range(_REBUILD_ATTEMPTS):
            answer = await self._run(script, keys, args)
            code = int(answer[0])
            if code == 0:
                return list(answer[1:])
            if code == _STALE:
                return StaleState()
            if code > 0:
                return _refusal(counters[code - 1], answer[1], now)
            await asyncio.gather(*(self._rebuild(counters[i - 1], now) for i in answer[1]))
        raise CountersUnavailable("counters vanished again right after being rebuilt")

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA ``script``, loading it again if Redis forgot it (a restart)."""
        if self._auto is None:
            return await script(keys=keys, args=args)
        try:
            return await self._auto.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = await self._redis.script_load(script.script)
            return await self._auto.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _rebuild(self, counter: Counter, now: float) -> None:
        """Recreate ``counter`` from the audit log, once per key at a time per process."""
        running = self._rebuilding.get(counter.key)
        if running is not None:
            await asyncio.shield(running)
            return
        task = asyncio.ensure_future(self._rebuild_now(counter, now))
        self._rebuilding[counter.key] = task
        task.add_done_callback(lambda _: self._rebuilding.pop(counter.key, None))
        await asyncio.shield(task)

    async def _rebuild_now(self, counter: Counter, now: float) -> None:
        window = bucketing(counter.shape, now)
        claims: Sequence[Any] = ()
        # Request counts have no audit rows (reads are not logged): they restart at zero.
        if counter.claim.unit != REQUESTS:
            since = datetime.fromtimestamp(window.counts_from, UTC)
            try:
                claims = await self._history.live_claims(counter.claim.key, since)
            except _HISTORY_ERRORS as exc:
                raise CountersUnavailable(
                    f"cannot rebuild counter {counter.claim.key} from PostgreSQL: {exc}"
                ) from exc
        rebuilt = rebuilt_counter(counter.shape, counter.scale, window, claims)
        record_ttl = window.ttl + _RECORD_MARGIN
        args: list[Any] = [window.ttl, len(rebuilt.buckets)]
        for bucket, total in sorted(rebuilt.buckets.items()):
            args += [bucket, total]
        records = sorted(rebuilt.records.items())
        for _reservation, entry in records:
            args += [entry, record_ttl]
        keys = [counter.key, *(record_key(counter.group, rid) for rid, _ in records)]
        created = await self._init(keys=keys, args=args)
        if int(created):
            _log.info("rebuilt counter %s from %d live claims", counter.claim.key, len(claims))


def _refusal(counter: Counter, live: Sequence[Any], now: float) -> CounterRefusal:
    buckets = {int(live[j]): int(live[j + 1]) for j in range(0, len(live), 2)}
    total = sum(buckets.values())
    wait = retry_after(counter.shape, buckets, counter.amount, counter.limit, now)
    return CounterRefusal(counter.claim, total * counter.scale, round(wait, 3))


def _unavailable(exc: BaseException) -> CountersUnavailable:
    if isinstance(exc, CountersUnavailable):
        return exc
    return CountersUnavailable(f"counters unavailable: {type(exc).__name__}: {exc}")


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


def claims_from_json(stored: Sequence[Any]) -> list[CounterClaim]:
    """Claims read back from an audit row (the inverse of :func:`claims_to_json`).

    Raises ValueError for a malformed entry.
    """
    out = []
    for item in stored:
        try:
            out.append(
                CounterClaim(
                    key=str(item["key"]),
                    amount=int(item["amount"]),
                    limit=int(item["limit"]),
                    policy=str(item["policy"]),
                    rule=str(item["rule"]),
                    unit=str(item["unit"]),
                    window_seconds=item.get("window_seconds"),
                    calendar=item.get("calendar"),
                    timezone=str(item.get("timezone") or "UTC"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed stored claim {item!r}: {exc}") from None
    return out
