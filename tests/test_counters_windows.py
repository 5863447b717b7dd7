"""Counting windows (pure): calendar periods across DST, rolling buckets never looser
than the policy, retry-after times, counter scaling."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletgate.policies.decision import CounterClaim
from walletgate.storage.counters import counter_of, group_of, scale_exponent
from walletgate.storage.windows import (
    CALENDARS,
    WindowError,
    WindowShape,
    bucket_of,
    bucketing,
    calendar_period,
    retry_after,
)

BERLIN = "Europe/Berlin"
ZONES = ("UTC", BERLIN, "America/New_York", "America/Havana", "Australia/Lord_Howe", "Asia/Tokyo")


def at(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def hours(period_start: datetime, period_end: datetime) -> float:
    return (period_end - period_start).total_seconds() / 3600


# -- calendar periods ---------------------------------------------------------------------


def test_a_day_in_berlin_starts_at_local_midnight() -> None:
    period = calendar_period(at(BERLIN, 2026, 7, 14, 23, 59), "day", BERLIN)
    assert period.start == at(BERLIN, 2026, 7, 14)
    assert period.end == at(BERLIN, 2026, 7, 15)
    assert period.start.astimezone(UTC) == datetime(2026, 7, 13, 22, tzinfo=UTC)


def test_the_spring_forward_day_has_23_hours_and_the_fall_back_day_25() -> None:
    spring = calendar_period(at(BERLIN, 2026, 3, 29, 12), "day", BERLIN)
    autumn = calendar_period(at(BERLIN, 2026, 10, 25, 12), "day", BERLIN)
    assert hours(spring.start, spring.end) == 23
    assert hours(autumn.start, autumn.end) == 25


def test_the_hour_repeated_at_fall_back_belongs_to_the_same_day() -> None:
    zone = ZoneInfo(BERLIN)
    first = datetime(2026, 10, 25, 2, 30, tzinfo=zone, fold=0)
    second = datetime(2026, 10, 25, 2, 30, tzinfo=zone, fold=1)
    assert first.astimezone(UTC) != second.astimezone(UTC)
    assert calendar_period(first, "day", BERLIN) == calendar_period(second, "day", BERLIN)


def test_a_day_whose_midnight_does_not_exist_starts_when_the_gap_ends() -> None:
    # Cuba moved its clocks from 00:00 to 01:00 on 2024-03-10: that date began at 01:00
    # local, which is 05:00 UTC, the end of the previous day.
    period = calendar_period(datetime(2024, 3, 10, 12, tzinfo=UTC), "day", "America/Havana")
    previous = calendar_period(datetime(2024, 3, 9, 12, tzinfo=UTC), "day", "America/Havana")
    assert period.start == datetime(2024, 3, 10, 5, tzinfo=UTC)
    assert previous.end == period.start
    assert hours(period.start, period.end) == 23


def test_weeks_start_on_monday_and_span_the_dst_change() -> None:
    period = calendar_period(at(BERLIN, 2026, 3, 29, 20), "week", BERLIN)  # a Sunday
    assert period.start == at(BERLIN, 2026, 3, 23)
    assert period.start.astimezone(ZoneInfo(BERLIN)).weekday() == 0
    assert period.end == at(BERLIN, 2026, 3, 30)
    assert hours(period.start, period.end) == 7 * 24 - 1


def test_months_roll_over_the_year() -> None:
    zone = "America/New_York"
    period = calendar_period(at(zone, 2026, 12, 31, 23, 59), "month", zone)
    assert period.start == at(zone, 2026, 12, 1)
    assert period.end == at(zone, 2027, 1, 1)


def test_the_zone_decides_which_day_an_instant_is_in() -> None:
    instant = datetime(2026, 7, 14, 23, 30, tzinfo=UTC)
    assert calendar_period(instant, "day", "UTC").start.day == 14
    assert calendar_period(instant, "day", "Asia/Tokyo").start == at("Asia/Tokyo", 2026, 7, 15)


def test_bad_windows_are_refused_with_a_clear_error() -> None:
    with pytest.raises(WindowError, match="unknown time zone 'Mars/Olympus'"):
        WindowShape(calendar="day", timezone="Mars/Olympus")
    with pytest.raises(WindowError, match="unknown calendar window 'fortnight'"):
        WindowShape(calendar="fortnight")
    with pytest.raises(WindowError, match="at least 1 second"):
        WindowShape(seconds=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_period(datetime(2026, 1, 1), "day", "UTC")


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(now=instants, calendar=st.sampled_from(CALENDARS), zone=st.sampled_from(ZONES))
def test_calendar_periods_contain_now_and_tile_time(
    now: datetime, calendar: str, zone: str
) -> None:
    period = calendar_period(now, calendar, zone)
    assert period.start <= now < period.end
    following = calendar_period(period.end, calendar, zone)
    assert following.start == period.end
    local_start = period.start.astimezone(ZoneInfo(zone))
    if calendar == "week":
        assert local_start.weekday() == 0
    if calendar == "month":
        assert local_start.day == 1


# -- rolling buckets --------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    window=st.integers(1, 90 * 86400),
    now=st.floats(1e9, 4e9, allow_nan=False),
    age=st.floats(0, 100 * 86400, allow_nan=False),
)
def test_a_rolling_check_counts_every_spend_of_the_window_and_little_more(
    window: int, now: float, age: float
) -> None:
    shape = WindowShape(seconds=window)
    spent_at = now - age
    counted = bucket_of(shape, spent_at) >= bucketing(shape, now).oldest
    if age < window:
        assert counted, "a spend inside the window must count (never looser than the policy)"
    if age > window + shape.granularity + 1:
        assert not counted, "older spends leave the check after one bucket at most"


def test_rolling_granularity_is_a_sixtieth_of_the_window() -> None:
    assert WindowShape(seconds=86400).granularity == 1440
    assert WindowShape(seconds=3600).granularity == 60
    assert WindowShape(seconds=60).granularity == 1
    assert WindowShape(seconds=30).granularity == 1
    assert WindowShape(seconds=7 * 86400 + 1).granularity == 10081


@given(now=st.floats(1e9, 4e9, allow_nan=False), window=st.integers(1, 90 * 86400))
def test_a_rolling_counter_expires_only_once_its_newest_bucket_stops_counting(
    now: float, window: int
) -> None:
    shape = WindowShape(seconds=window)
    written = bucketing(shape, now)
    assert written.bucket < bucketing(shape, now + written.ttl).oldest
    assert written.ttl <= window + shape.granularity + 1


def test_a_calendar_counter_lives_until_its_period_ends() -> None:
    shape = WindowShape(calendar="day", timezone=BERLIN)
    now = at(BERLIN, 2026, 3, 28, 22).timestamp()
    window = bucketing(shape, now)
    assert window.bucket == window.oldest == int(at(BERLIN, 2026, 3, 28).timestamp())
    assert window.ttl == 2 * 3600 + 1
    tomorrow = bucketing(shape, now + window.ttl)
    assert tomorrow.oldest > window.bucket


# -- retry-after ---------------------------------------------------------------------------


def test_retry_after_waits_for_enough_old_buckets_to_leave() -> None:
    shape = WindowShape(seconds=600)  # 10 s buckets
    now = 10_000.0
    buckets = {940: 5, 960: 3, 999: 2}  # spends at 9400 s, 9600 s, 9990 s
    # 5 more against 12: bucket 940 must go (at 9410 + 600), then 5 + 5 <= 12.
    assert retry_after(shape, buckets, 5, 12, now) == 9410 + 600 - now
    # 9 more: buckets 940 and 960 must go.
    assert retry_after(shape, buckets, 9, 12, now) == 9610 + 600 - now


def test_retry_after_a_calendar_window_is_the_end_of_the_period() -> None:
    shape = WindowShape(calendar="month", timezone="UTC")
    now = datetime(2026, 2, 27, tzinfo=UTC).timestamp()
    assert retry_after(shape, {0: 1}, 1, 1, now) == 2 * 86400


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 59), st.integers(1, 20)), min_size=1, max_size=10),
    amount=st.integers(1, 20),
    limit=st.integers(20, 100),
)
def test_after_retry_after_the_amount_fits(
    data: list[tuple[int, int]], amount: int, limit: int
) -> None:
    shape = WindowShape(seconds=60)  # 1 s buckets
    now = 1_000_059.0
    base = bucket_of(shape, now) - 59
    buckets: dict[int, int] = {}
    for offset, value in data:
        buckets[base + offset] = buckets.get(base + offset, 0) + value
    wait = retry_after(shape, buckets, amount, limit, now)
    later = bucketing(shape, now + wait).oldest
    assert sum(v for b, v in buckets.items() if b >= later) + amount <= limit
    if wait > 0:
        sooner = bucketing(shape, now + wait - 1).oldest
        assert sum(v for b, v in buckets.items() if b >= sooner) + amount > limit


# -- scaling and keys ----------------------------------------------------------------------


def claim(limit: int, amount: int = 1, **window: object) -> CounterClaim:
    return CounterClaim(
        key="wallet:w1:p:cap:eth",
        amount=amount,
        limit=limit,
        policy="p",
        rule="cap",
        unit="eth",
        **({"window_seconds": 86400} | window),  # type: ignore[arg-type]
    )


@given(st.integers(1, 2**256))
def test_scaled_limits_stay_exact_in_lua_doubles(limit: int) -> None:
    exponent = scale_exponent(limit)
    assert limit // 10**exponent < 2**50
    if exponent:
        assert limit // 10 ** (exponent - 1) >= 2**50  # the finest scale that fits


def test_ordinary_limits_are_not_scaled_and_wei_limits_are() -> None:
    assert scale_exponent(10**15) == 0
    assert counter_of(claim(10**24)).scale == 10**9
    assert counter_of(claim(10**24, amount=10**24 - 1)).amount == 10**15  # rounded up
    assert counter_of(claim(10**24, amount=1)).amount == 1
    assert counter_of(claim(10**24 + 10**9 - 1)).limit == 10**15  # rounded down


def test_the_key_names_the_window_and_scale_and_is_tagged_by_scope() -> None:
    daily = counter_of(claim(10**24))
    monthly = counter_of(claim(10**24, window_seconds=None, calendar="month", timezone=BERLIN))
    assert daily.key == "{wg:c:wallet:w1}:wallet:w1:p:cap:eth:r86400:e9"
    assert monthly.key == "{wg:c:wallet:w1}:wallet:w1:p:cap:eth:cmonth@Europe/Berlin:e9"
    assert group_of(daily.claim) == "{wg:c:wallet:w1}"
    assert counter_of(claim(10**10)).key != daily.key
