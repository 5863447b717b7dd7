"""Durations written as ``30s``, ``15m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

DURATION_RE = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
#: No window, rate period or price age needs more than a century; larger is a typo.
MAX_DURATION_SECONDS = 100 * 366 * 86_400


class DurationError(ValueError):
    """A duration is malformed or absurdly long."""


def parse_duration(text: str) -> int:
    """Seconds in a duration string: ``"15m"`` -> ``900``."""
    match = DURATION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise DurationError(
            f"{text!r} is not a duration: write a positive whole number and a unit "
            "(s, m, h or d), e.g. 30s, 15m, 1h, 7d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise DurationError(f"{text!r} is longer than 100 years")
    return seconds


def format_duration(seconds: int) -> str:
    """The canonical spelling: the largest unit that divides exactly (86400 -> ``"1d"``)."""
    if seconds <= 0:
        raise DurationError(f"durations are positive, not {seconds} seconds")
    for unit, size in _UNIT_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a multiple of 1")


def normalize_duration(text: str) -> str:
    """``"24h"`` -> ``"1d"``: one spelling per length, so diffs see no false changes."""
    return format_duration(parse_duration(text))
