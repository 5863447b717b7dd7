"""Progress lines of a bench run, on stderr (stdout is the report's)."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """One progress line on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
