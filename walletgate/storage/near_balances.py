"""Cached balances kept in the gateway's own memory for a moment, in front of the
Redis balance cache, so that an agent polling ``eth_getBalance`` costs no round trip.

The Redis cache stays the shared one (SPEC §5: TTL 10 seconds, dropped when walletgate
forwards a spend from the wallet). An entry here is a copy of one Redis entry (or of a
backend answer just written there) and is used only while all of these hold:

- it is younger than ``ttl`` (one second by default);
- this process is subscribed to the drop announcements (``BALANCE_DROPS_CHANNEL``),
  without interruption since the entry was stored: every gateway publishes the key of
  a wallet whose balances it drops, in the same round trip as the drop, and every
  gateway forgets its copies on hearing it. A subscription that broke may have missed
  one, so entries from before the break are never used again;
- the caller says its state lease holds (Redis answered it within the lease term), so
  a gateway cut off from Redis stops using its copies within a lease term even if its
  subscription looks alive.

So a spend's drop reaches every gateway's copies as fast as Redis delivers the
announcement, and at the latest after ``ttl``. Pure bookkeeping: time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Wallets kept at most; all are forgotten beyond this (a flood of distinct wallets).
_MAX_WALLETS = 100_000


@dataclass(frozen=True, slots=True)
class _Entry:
    value: str
    stored_at: float
    epoch: int


class NearBalances:
    """One process's copies of cached balances, by ``(hash key, field)``."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, dict[str, _Entry]] = {}  # hash key -> field -> copy
        #: Incremented on every (re)subscription; None while not subscribed.
        self._epoch: int | None = None
        self._subscriptions = 0

    def subscribed(self) -> None:
        """The drop announcements are being received (again): copies from before are
        never used, since announcements may have been missed in between."""
        self._subscriptions += 1
        self._epoch = self._subscriptions
        self._entries.clear()

    def unsubscribed(self) -> None:
        """The subscription broke: no copy is used until it is back."""
        self._epoch = None
        self._entries.clear()

    def get(self, entries: Sequence[tuple[str, str]], now: float) -> list[str | None]:
        """The copies of ``entries`` still usable at ``now`` (``None`` where none is)."""
        epoch = self._epoch
        out: list[str | None] = []
        for key, field in entries:
            fields = self._entries.get(key) if epoch is not None else None
            found = fields.get(field) if fields is not None else None
            if found is None or found.epoch != epoch or now - found.stored_at >= self.ttl:
                out.append(None)
            else:
                out.append(found.value)
        return out

    def put(self, entry: tuple[str, str], value: str, now: float) -> None:
        """Keep a copy of what Redis (or the backend, just written to Redis) answered
        for ``entry``; ignored while not subscribed."""
        if self._epoch is None:
            return
        key, field = entry
        fields = self._entries.get(key)
        if fields is None:
            if len(self._entries) >= _MAX_WALLETS:
                self._entries.clear()
            fields = self._entries[key] = {}
        fields[field] = _Entry(value, now, self._epoch)

    def drop(self, key: str) -> None:
        """Forget every copy of the hash ``key`` (a wallet's balances were dropped)."""
        self._entries.pop(key, None)
