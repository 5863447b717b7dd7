"""Counting windows as Redis buckets: pure arithmetic on times, no I/O.

A counter is a Redis hash of buckets. Each spend is added to one bucket, and a check
sums the buckets that still count. Two shapes:

- **Rolling** windows of ``W`` seconds use buckets of ``g = ceil(W / 60)`` seconds
  (bucket ``floor(t / g)``). At ``now`` every bucket from ``floor((now - W) / g)`` on
  counts, which includes the whole of the oldest, partly expired bucket: a check counts
  every spend of the last ``W`` seconds and at most ``g`` seconds more, never less.
- **Calendar** windows (day, week from Monday, month) in an IANA time zone have one
  bucket per period, named by the period's first instant (epoch seconds). Periods
  follow local wall-clock dates, so a day is 23 or 25 hours long across a DST change.

Times are epoch seconds; rolling buckets use whole seconds, so a spend recorded at
``t`` and the same spend rebuilt from its ``created_at`` land in the same bucket.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: A rolling window is kept as this many buckets (plus the partly expired oldest one).
ROLLING_BUCKETS = 60
CALENDARS = ("day", "week", "month")


class WindowError(ValueError):
    """A claim's window cannot be counted (no length, unknown calendar or time zone)."""


@dataclass(frozen=True, slots=True)
class WindowShape:
    """How one counter is bucketed: ``seconds`` (rolling) or ``calendar`` in ``timezone``."""

    seconds: int | None = None
    calendar: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.seconds is not None:
            if self.seconds < 1:
                raise WindowError(f"a rolling window needs at least 1 second, not {self.seconds}")
            return
        if self.calendar not in CALENDARS:
            raise WindowError(
                f"unknown calendar window {self.calendar!r} (expected one of {CALENDARS})"
            )
        zone_of(self.timezone)

    @property
    def name(self) -> str:
        """A stable name for counter keys: ``r86400`` or ``cmonth@Europe/Berlin``."""
        if self.seconds is not None:
            return f"r{self.seconds}"
        return f"c{self.calendar}@{self.timezone}"

    @property
    def granularity(self) -> int:
        """Seconds per rolling bucket (a calendar window has one bucket per period)."""
        if self.seconds is None:
            return 0
        return max(1, math.ceil(self.seconds / ROLLING_BUCKETS))


@dataclass(frozen=True, slots=True)
class Bucketing:
    """Where a spend at one moment goes, and which buckets count at that moment."""

    bucket: int  # the bucket a spend at this moment is added to
    oldest: int  # buckets below this one no longer count
    counts_from: float  # epoch seconds: the first instant of the oldest counted bucket
    ttl: int  # seconds the counter must live after a write now


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar period: ``[start, end)`` as timezone-aware datetimes (UTC)."""

    start: datetime
    end: datetime


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises :class:`WindowError` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name!r}") from None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 maps a wall-clock time skipped by a DST gap to the instant the gap starts,
    # which is the first instant of that local date.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def calendar_period(now: datetime, calendar: str, timezone: str) -> Period:
    """The calendar ``day``, ``week`` (Monday first) or ``month`` that contains ``now`` in
    ``timezone``. ``now`` must be timezone-aware."""
    if now.utcoffset() is None:
        raise ValueError("calendar_period() needs a timezone-aware now")
    zone = zone_of(timezone)
    today = now.astimezone(zone).date()
    if calendar == "day":
        first, after = today, today + timedelta(days=1)
    elif calendar == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif calendar == "month":
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise WindowError(f"unknown calendar window {calendar!r} (expected one of {CALENDARS})")
    return Period(_local_midnight(first, zone), _local_midnight(after, zone))


def bucket_of(shape: WindowShape, at: float) -> int:
    """The bucket a spend made at ``at`` (epoch seconds) is counted in."""
    if shape.seconds is not None:
        return math.floor(at) // shape.granularity
    assert shape.calendar is not None  # checked at construction
    moment = datetime.fromtimestamp(at, UTC)
    return int(calendar_period(moment, shape.calendar, shape.timezone).start.timestamp())


def bucketing(shape: WindowShape, now: float) -> Bucketing:
    """The bucket of a spend at ``now`` and the buckets a check at ``now`` counts."""
    if shape.seconds is not None:
        width = shape.granularity
        oldest = (math.floor(now) - shape.seconds) // width
        # The bucket written now stops counting once ``now - W`` has passed its end.
        return Bucketing(
            bucket=math.floor(now) // width,
            oldest=oldest,
            counts_from=float(oldest * width),
            ttl=shape.seconds + width + 1,
        )
    assert shape.calendar is not None
    period = calendar_period(datetime.fromtimestamp(now, UTC), shape.calendar, shape.timezone)
    start = int(period.start.timestamp())
    return Bucketing(
        bucket=start,
        oldest=start,
        counts_from=float(start),
        ttl=max(1, math.ceil(period.end.timestamp() - now)) + 1,
    )


def retry_after(
    shape: WindowShape, buckets: Mapping[int, int], amount: int, limit: int, now: float
) -> float:
    """Seconds until ``amount`` more fits under ``limit``, as buckets leave the window.

    ``buckets`` are the counted buckets and their totals at ``now``. A calendar window
    frees everything when its period ends; a rolling one frees its oldest buckets first.
    """
    if shape.seconds is None:
        assert shape.calendar is not None
        moment = datetime.fromtimestamp(now, UTC)
        end = calendar_period(moment, shape.calendar, shape.timezone).end.timestamp()
        return max(0.0, end - now)
    width = shape.granularity
    remaining = sum(buckets.values())
    if remaining + amount <= limit:
        return 0.0
    for bucket in sorted(buckets):
        remaining -= buckets[bucket]
        if remaining + amount <= limit:
            # Bucket b stops counting once floor((t - W) / g) > b, at t = (b + 1)g + W.
            return max(0.0, float((bucket + 1) * width + shape.seconds) - now)
    return float(shape.seconds + width)
