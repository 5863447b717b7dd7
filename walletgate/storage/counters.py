"""Spend and rate counters in Redis, under the reservation protocol of SPEC §5.

For an allowed spend, in this order:

0. the caller makes the spend's audit row durable first (status ``pending``, with its
   claims): from then on a counter rebuilt from PostgreSQL counts the spend;
1. ``admit``: one atomic Lua script counts the request against its request-rate
   limits, then checks every spend claim and adds the amounts, or adds nothing and says
   which claim did not fit. On one Redis server that is a single round trip, which can
   also prove the state version the request was decided on still current; on a
   cluster, one call per hash-tag group. It is **idempotent per reservation**: where a
   rebuild between steps 0 and 1 already counted the row (and re-created the
   reservation's record entry, see ``counter_scripts.INIT``), the amount is checked
   but not added again, so the spend is counted exactly once, never less;
2. the caller forwards the request, then settles exactly once: ``commit`` (the amounts
   stay; ``commit_soon`` lets the DEL of the records ride the next pipeline), ``refund``
   (take them back, at once) or nothing (unknown outcome: they keep counting until
   ``walletgate reconcile`` commits or refunds them).

No confirmation trip is needed between 1 and 2 (the protocol used to reserve first
and check the reservation had survived once the row was written): any counter the
admission finds or rebuilds counts the row, whose write came before. A refusal at step
1 takes back what a rebuild had counted, and the caller turns the row into a refusal.
Held spends still reserve first, log, then ``confirm``: their row carries an approval
that must never be approvable without a reservation.

Windows are bucketed by :mod:`walletgate.storage.windows`; checks are never looser
than the policy. Keys, scales and the cluster grouping are described in
:mod:`walletgate.storage.counter_keys`. A counter missing from Redis is rebuilt from
the audit log (:mod:`.rebuild`) before the reservation is retried; the script tells
"missing" from "zero" by a marker field. Step 2, settling, is in :mod:`.counter_settle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from walletgate.policies.decision import CounterClaim
from walletgate.storage import counter_scripts
from walletgate.storage.cache_entries import decode_version
from walletgate.storage.cache_keys import STATE_VERSION_KEY

# The keys, claims and arguments the counters are made of, re-exported: code imports
# them from here (``from walletgate.storage.counters import Reservation``).
from walletgate.storage.counter_keys import AdmitCall as _Call
from walletgate.storage.counter_keys import (
    Counter,
    CounterRefusal,
    CountersUnavailable,
    Reservation,
    StaleState,
    claims_from_json,
    claims_to_json,
    counter_of,
    group_of,
    merged_counters,
    record_key,
    reservation_of,
    scale_exponent,
)
from walletgate.storage.counter_keys import admit_calls as _calls
from walletgate.storage.counter_keys import counter_args as _counter_args
from walletgate.storage.counter_keys import grouped_counters as _grouped
from walletgate.storage.counter_keys import merged_counters as _merged
from walletgate.storage.counter_keys import refusal_of as _refusal
from walletgate.storage.counter_rebuild import CounterRebuilder
from walletgate.storage.counter_settle import REBUILD_ATTEMPTS, CounterSettlement, unavailable
from walletgate.storage.rebuild import ClaimHistory
from walletgate.storage.redis_client import (
    REDIS_ERRORS,
    RedisClient,
    as_text,
    read_hash_fields,
)
from walletgate.storage.windows import WindowError

__all__ = [
    "Counter",
    "CounterRefusal",
    "Counters",
    "CountersUnavailable",
    "Reservation",
    "StaleState",
    "claims_from_json",
    "claims_to_json",
    "counter_of",
    "group_of",
    "merged_counters",
    "record_key",
    "reservation_of",
    "scale_exponent",
]

_log = logging.getLogger(__name__)

#: ADMIT's answer when the state version moved on.
_STALE = -2
#: Pauses before a spend refused on a rebuilt counter tries again (seconds; see admit).
_RECOUNT_BACKOFF = (0.01, 0.03, 0.1)

# Anything that stops a check: Redis, a rebuild, or a window that cannot be bucketed.
_CHECK_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, CountersUnavailable, WindowError)


class Counters(CounterSettlement):
    """The counters of one gateway process, on a shared Redis or Redis Cluster.

    Admission (step 1) is here; settling (step 2: ``commit``, ``commit_soon``,
    ``refund``, ``confirm``) and the pipelined sends are inherited from
    :class:`~walletgate.storage.counter_settle.CounterSettlement`.
    """

    def __init__(self, redis: RedisClient, history: ClaimHistory) -> None:
        super().__init__(redis)
        self._cluster = self._auto is None
        self._admit: AsyncScript = redis.register_script(counter_scripts.ADMIT)
        self._peek: AsyncScript = redis.register_script(counter_scripts.PEEK)
        self._rebuilder = CounterRebuilder(redis, history)

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

        The spend part is idempotent per ``reservation_id`` (a spend's transaction id,
        whose audit row is written first): a counter its record already names (a rebuild
        counted the row) is checked with the amount already in it and not added to again.

        Raises :class:`CountersUnavailable` when Redis fails (anything reserved so far
        is taken back if Redis still answers) or a missing counter cannot be rebuilt.
        """
        answer = await self._admit_once(reservation_id, requests, spend, now, version, reads)
        if reads or not (
            isinstance(answer, CounterRefusal) and (answer.recounted or answer.rebuilt)
        ):
            return answer
        # A rebuild moments ago counted the rows of every spend then in flight: those
        # reserved, and those not reserved yet (their rows come first), some of which
        # will be refused and taken back (this one's too, if it was among them). So the
        # refused spend tries again on its own (its request is counted already), a few
        # times, while the others settle. Each try is a full check.
        for pause in _RECOUNT_BACKOFF:
            await asyncio.sleep(pause)
            answer = await self._admit_once(reservation_id, (), spend, now, None, ())
            if not isinstance(answer, CounterRefusal):
                return answer
        return answer

    async def _admit_once(
        self,
        reservation_id: str,
        requests: Sequence[CounterClaim],
        spend: Sequence[CounterClaim],
        now: float,
        version: int | None,
        reads: Sequence[tuple[str, str]],
    ) -> Reservation | CounterRefusal | StaleState:
        cluster = self._cluster
        done: list[tuple[str, int]] = []
        read: list[Any] = []
        groups: list[tuple[str, list[Counter]]] = []
        try:
            if cluster and version is not None:
                # A cluster script cannot also read the version key (another slot).
                seen = decode_version(await self._redis.get(STATE_VERSION_KEY))
                if seen is None or seen > version:
                    return StaleState()
                version = None
            groups = _grouped(spend)
            calls = _calls(_merged(requests), groups, reads, cluster=cluster)
            for call in calls:
                answer = await self._admit_call(reservation_id, call, now, version)
                if not isinstance(answer, list):
                    if isinstance(answer, CounterRefusal) and answer.recounted:
                        # A rebuild had counted this spend's row in the refusing call's
                        # groups (see ADMIT): taken back too, as it is not sent.
                        done += [(tag, len(counters)) for tag, counters in call.groups]
                    await self.refund(Reservation(reservation_id, tuple(done)))
                    return answer
                done += [(tag, len(counters)) for tag, counters in call.groups]
                read += answer
            if cluster and reads:
                read = await read_hash_fields(self._redis, reads)
        except _CHECK_ERRORS as exc:
            # Whatever this reservation may hold (the call that failed may have run, and
            # a rebuild may have counted the spend's row) is taken back, if Redis answers.
            everything = [(tag, len(counters)) for tag, counters in groups]
            with contextlib.suppress(CountersUnavailable):
                await self.refund(Reservation(reservation_id, tuple(everything)))
            raise unavailable(exc) from exc
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
            raise unavailable(exc) from exc
        return None

    async def run_checked(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        counters: list[Counter],
        now: float,
    ) -> CounterRefusal | StaleState | list[Any]:
        """Run a counter script that reports missing counters the way ADMIT does
        (``{-1, {i...}}``), rebuilding them and retrying; see :meth:`_check`."""
        return await self._check(script, keys, args, counters, now)

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
        for _ in range(REBUILD_ATTEMPTS):
            answer = await self._run(script, keys, args)
            code = int(answer[0])
            if code == 0:
                return list(answer[1:])
            if code == _STALE:
                return StaleState()
            if code > 0:
                refusal = _refusal(counters[code - 1], answer[1], now)
                if len(answer) > 2 and int(answer[2]):
                    refusal = dataclasses.replace(refusal, recounted=True)
                if len(answer) > 3 and int(answer[3]):
                    refusal = dataclasses.replace(refusal, rebuilt=True)
                return refusal
            await asyncio.gather(
                *(self._rebuilder.rebuild(counters[i - 1], now) for i in answer[1])
            )
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
