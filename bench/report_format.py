"""How the report writes numbers: the text of a cell, and a Markdown table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def rate_text(value: float) -> str:
    """Requests per second, or a dash when not measured."""
    return "–" if math.isnan(value) else f"{value:,.0f}/s"


def times_text(value: float) -> str:
    """A ratio as ``1.23×``, or a dash."""
    return "–" if math.isnan(value) else f"{value:.2f}×"


def ms_text(value: float) -> str:
    """Milliseconds to two decimals, or a dash."""
    return "–" if math.isnan(value) else f"{value:.2f}"


def pct_text(value: float) -> str:
    """A relative change as ``+1.2%``, or a dash."""
    return "–" if math.isnan(value) else f"{value:+.1%}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table, then a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]
