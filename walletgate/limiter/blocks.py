"""Leased blocks of request-rate quota, kept by one process: pure bookkeeping, time
passed in, no I/O.

A gateway takes several units of an agent's request budget from Redis in one counted
step (they are counted there up front, in the counter's current bucket) and spends
them on later requests with no round trip. Never looser than the limit:

- every unit spent locally was counted in Redis before it was spent;
- a unit is only spent while the clock is still in the bucket it was counted in
  (counted in an older bucket, it would leave a rolling window too early);
- units left over when the bucket moves on are given back in the next trip for that
  counter (exactly what was counted and not used); if no trip comes, they stay
  counted until their bucket leaves the window: over-counted, never under-counted.

The block size adapts to the agent's rate in this process: it starts at one unit (a
slow agent is counted exactly, one trip per request), doubles each time a block is
used up quickly, halves when one outlived its bucket, and never exceeds a sixteenth
of the limit, so other processes are never starved by more than that much unused
quota per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: A block used up faster than this (seconds) makes the next one twice as large.
FAST_REFILL = 0.25
#: The largest block is this fraction of the limit (1/16).
MAX_SHARE = 16


@dataclass(slots=True)
class Block:
    """Units of one counter this process holds, counted in ``bucket``."""

    bucket: int
    left: int
    size: int
    granted_at: float


@dataclass(frozen=True, slots=True)
class Ask:
    """One counter's part of a lease request: the units to take from Redis now
    (``need``, the request's units less the ``held`` ones it uses from this process's
    block), the block wanted in all, and unused units of an older bucket to give back."""

    key: str
    bucket: int
    need: int
    want: int
    held: int
    give_back_bucket: int
    give_back: int


@dataclass(frozen=True, slots=True)
class Need:
    """One counter a request must count: its key, the bucket it counts in at ``now``,
    the units the request needs, and the counter's limit."""

    key: str
    bucket: int
    units: int
    limit: int


class BlockBook:
    """The blocks one process holds, by counter key."""

    def __init__(self) -> None:
        self._blocks: dict[str, Block] = {}
        #: Counts :meth:`clear` calls: a grant asked for before one is not kept.
        self.epoch = 0

    def clear(self) -> None:
        """Forget every block (the policies changed: a limit may now be lower). Their
        unused units stay counted in Redis until their buckets leave the window."""
        self._blocks.clear()
        self.epoch += 1

    def take_local(self, needs: Sequence[Need]) -> list[Need]:
        """Spend from held blocks what they cover (each need whole, or not at all);
        return the needs they could not cover, which must be leased. If the lease is
        refused, :meth:`put_back` the ones spent here."""
        missing = []
        for need in needs:
            block = self._blocks.get(need.key)
            if block is None or block.bucket != need.bucket or block.left < need.units:
                missing.append(need)
            else:
                block.left -= need.units
        return missing

    def put_back(self, spent: Sequence[Need]) -> None:
        """Undo :meth:`take_local` for ``spent`` (the request was refused after all)."""
        for need in spent:
            block = self._blocks.get(need.key)
            if block is not None and block.bucket == need.bucket:
                block.left += need.units

    def asks(self, needs: Sequence[Need], now: float) -> list[Ask]:
        """What to ask Redis for, for needs no held block covers. The units such a block
        still holds are set aside for this request (``Ask.held``), and stale units are
        handed over for giving back, so concurrent requests can use neither."""
        out = []
        for need in needs:
            block = self._blocks.get(need.key)
            size = self._next_size(block, need, now)  # before the block is emptied
            held = give_back = give_back_bucket = 0
            if block is not None and block.bucket == need.bucket:
                held, block.left = block.left, 0
            elif block is not None and block.left > 0:
                give_back, give_back_bucket, block.left = block.left, block.bucket, 0
            wanted = need.units - held
            out.append(
                Ask(
                    key=need.key,
                    bucket=need.bucket,
                    need=wanted,
                    want=max(wanted, size),
                    held=held,
                    give_back_bucket=give_back_bucket,
                    give_back=give_back,
                )
            )
        return out

    def granted(self, asks: Sequence[Ask], grants: Sequence[int], now: float) -> None:
        """Record what Redis granted for ``asks`` (each grant at least its need, spent at
        once with the held units); the rest is held for later requests in the bucket."""
        for ask, grant in zip(asks, grants, strict=True):
            block = self._blocks.get(ask.key)
            if block is not None and block.bucket == ask.bucket:
                block.left += grant - ask.need
                block.size, block.granted_at = ask.want, now
            else:
                self._blocks[ask.key] = Block(ask.bucket, grant - ask.need, ask.want, now)

    def refused(self, asks: Sequence[Ask]) -> None:
        """A lease was refused (or failed): the held units go back to their blocks.
        Units handed over for giving back stay gone: given back, or still counted in
        Redis (over-counted, never under-counted)."""
        for ask in asks:
            block = self._blocks.get(ask.key)
            if block is not None and block.bucket == ask.bucket:
                block.left += ask.held

    def _next_size(self, block: Block | None, need: Need, now: float) -> int:
        cap = max(1, need.limit // MAX_SHARE)
        if block is None:
            return 1
        if block.bucket != need.bucket:
            # A block that outlived its bucket was too large for this rate.
            size = block.size // 2 if block.left > 0 else block.size
        elif now - block.granted_at < FAST_REFILL:
            size = block.size * 2
        else:
            size = block.size
        return max(1, min(size, cap))
