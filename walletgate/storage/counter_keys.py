"""What the counters are made of: counter keys, claims grouped by hash tag, the ADMIT
call's arguments, reservations and refusals, and claims as stored in audit rows.

Pure (no I/O): :mod:`walletgate.storage.counters` runs the scripts with them. Every
public name here is also importable from :mod:`walletgate.storage.counters`.

Lua numbers are doubles, exact only to 2**53, and wei amounts are far larger, so each
counter is kept in units of a power of ten, ``scale``, chosen so its limit stays below
2**50: amounts are rounded up to whole units, the limit down. Both the window and the
scale are part of the counter's key, so a policy change that alters either starts a
fresh counter, rebuilt from PostgreSQL.

Keys carry a hash tag per scope entity (``{wg:c:wallet:ID}``), so on a Redis Cluster
the keys of one group live in one slot. There a request whose claims span several
entities is reserved group by group in a fixed (sorted) order, and the groups already
reserved are refunded when a later one refuses, so no interleaving can overspend; it
can only refuse a request that would have fitted a moment later (and a request refused
by a later group's rate limit may have been counted by an earlier group: over-counted,
never under-counted). On a single server the whole request is one script, exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from walletgate.policies.decision import CounterClaim
from walletgate.storage.rebuild import scaled_up
from walletgate.storage.windows import WindowShape, bucketing, retry_after


class CountersUnavailable(RuntimeError):
    """Redis (or, to rebuild a counter, PostgreSQL) failed: spends must fail closed."""


_SCALED_LIMIT_MAX = 1 << 50
#: Reservation records outlive their longest window by this much (seconds).
RECORD_MARGIN = 3600


@dataclass(frozen=True, slots=True)
class CounterRefusal:
    """The claim that did not fit: what was already counted and when it would fit."""

    claim: CounterClaim
    already: int  # in the claim's units, over-counted by less than one scale step per spend
    retry_after: float | None
    #: The refusing ADMIT found the reservation's record already naming counters (a
    #: rebuild counted the spend's row, written before the reservation): the amounts
    #: there must be taken back, as the spend is not sent.
    recounted: bool = False
    #: The refusing counter was rebuilt moments ago: it may still count spends that are
    #: not reserved yet (and may be refused), so the refused spend may try again.
    rebuilt: bool = False


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


def merged_counters(claims: Sequence[CounterClaim]) -> list[Counter]:
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


def grouped_counters(claims: Sequence[CounterClaim]) -> list[tuple[str, list[Counter]]]:
    """Counters by hash tag, tags sorted (the fixed reservation order)."""
    groups: dict[str, list[Counter]] = {}
    for counter in merged_counters(claims):
        groups.setdefault(counter.group, []).append(counter)
    return [(tag, groups[tag]) for tag in sorted(groups)]


@dataclass(frozen=True, slots=True)
class AdmitCall:
    """One ADMIT call: request counters, then spend counters by group, then the hash
    fields to read once admitted."""

    requests: list[Counter]
    groups: list[tuple[str, list[Counter]]]
    reads: Sequence[tuple[str, str]] = ()

    @property
    def counters(self) -> list[Counter]:
        return self.requests + [c for _, counters in self.groups for c in counters]


def admit_calls(
    requests: list[Counter],
    groups: list[tuple[str, list[Counter]]],
    reads: Sequence[tuple[str, str]],
    *,
    cluster: bool,
) -> list[AdmitCall]:
    """One call for everything on a single server; one per hash tag, in tag order, on a
    cluster (a script may only touch keys of one slot there; the reads go apart)."""
    if not cluster:
        return [AdmitCall(requests, groups, reads)]
    spend = dict(groups)
    tags = sorted({c.group for c in requests} | spend.keys())
    return [
        AdmitCall(
            [c for c in requests if c.group == tag],
            [(tag, spend[tag])] if tag in spend else [],
        )
        for tag in tags
    ]


def reservation_of(reservation_id: str, claims: Sequence[CounterClaim]) -> Reservation:
    """The reservation ``reserve`` made for ``claims`` (to settle it from the audit log)."""
    return Reservation(
        reservation_id, tuple((tag, len(counters)) for tag, counters in grouped_counters(claims))
    )


def counter_args(counters: Sequence[Counter], now: float) -> tuple[int, list[Any]]:
    """The longest record ttl the counters need, and their ARGV: bucket, oldest bucket,
    amount, limit, ttl each."""
    args: list[Any] = []
    record_ttl = 0
    for counter in counters:
        window = bucketing(counter.shape, now)
        args += [window.bucket, window.oldest, counter.amount, counter.limit, window.ttl]
        record_ttl = max(record_ttl, window.ttl + RECORD_MARGIN)
    return record_ttl, args


def refusal_of(counter: Counter, live: Sequence[Any], now: float) -> CounterRefusal:
    buckets = {int(live[j]): int(live[j + 1]) for j in range(0, len(live), 2)}
    total = sum(buckets.values())
    wait = retry_after(counter.shape, buckets, counter.amount, counter.limit, now)
    return CounterRefusal(counter.claim, total * counter.scale, round(wait, 3))


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
