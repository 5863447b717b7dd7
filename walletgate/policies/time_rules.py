"""Time: the ``time_window`` rule, and counting windows and durations for humans."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from walletgate.policies.decision import Reason
from walletgate.policies.facts import RequestFacts
from walletgate.policies.model import Policy, TimeWindow, Window
from walletgate.policies.verdicts import Verdict, failed, passed

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def time_window(policy: Policy, rule: TimeWindow, facts: RequestFacts) -> Verdict:
    """``now``, in the rule's time zone, falls in the window on an allowed day."""
    window = describe_time_window(rule)
    try:
        zone = ZoneInfo(rule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        detail = f"unknown time zone {rule.timezone!r}, so no time is inside {window}"
        return Verdict(failed(policy, rule, Reason.OUTSIDE_TIME_WINDOW, detail, window))
    local = facts.now.astimezone(zone)
    at = f"{_DAY_NAMES[local.weekday()]} {local:%H:%M} {rule.timezone}"
    if not in_time_window(rule, local):
        detail = f"{at} is outside {window}"
        return Verdict(failed(policy, rule, Reason.OUTSIDE_TIME_WINDOW, detail, window, at))
    return Verdict(passed(policy, rule, f"{at} is inside {window}", window, at))


def in_time_window(rule: TimeWindow, local: datetime) -> bool:
    """True when local wall-clock ``local`` is inside the window.

    A window whose end is before its start crosses midnight, and the hours after
    midnight belong to the day it started: Fri 22:00–06:00 admits Saturday 05:00. A
    window whose start equals its end is empty.
    """
    clock, day = local.time(), local.weekday()
    if rule.start < rule.end:
        return day in rule.days and rule.start <= clock < rule.end
    if rule.end < rule.start:
        if clock >= rule.start:
            return day in rule.days
        return clock < rule.end and (day - 1) % 7 in rule.days
    return False


def describe_time_window(rule: TimeWindow) -> str:
    """The window for humans: ``"Mon, Tue 09:00–17:00 Europe/Berlin"``."""
    days = ", ".join(_DAY_NAMES[day] for day in sorted(rule.days)) or "no day"
    return f"{days} {rule.start:%H:%M}–{rule.end:%H:%M} {rule.timezone}"


def describe_window(window: Window) -> str:
    """A counting window for humans: ``"24h"`` or ``"calendar month (Europe/Berlin)"``."""
    if window.seconds is not None:
        return duration(window.seconds)
    return f"calendar {window.calendar} ({window.timezone})"


def duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
