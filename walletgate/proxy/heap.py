"""Keeping Python's cyclic garbage collector off the request path.

A gateway's heap is mostly long-lived: compiled policies (every wallet, rule and
list of a large policy set), the token map, the imported libraries. The collector's
full passes walk all of it, and a request that triggers one waits for the whole walk:
under load that was 10-15% of a read's CPU and most of its p99 (the bench's A/B in
docs/benchmarks.md). Two standard remedies (see the ``gc`` module's documentation):

- once the process has started (policies compiled, connections open), collect once
  and *freeze* what survives: the frozen objects are never walked again. They are
  still freed by reference counting when nothing refers to them any more (a policy
  set replaced by a later apply); only garbage in reference cycles among them stays
  until the process restarts;
- collect the youngest generation less often: a request allocates a few hundred
  objects, and the default threshold (700) ran a collection every few requests.
"""

from __future__ import annotations

import gc

#: Allocations (less deallocations) between two young-generation collections, and how
#: many young (middle) collections run before a middle (full) one.
_THRESHOLDS = (20_000, 50, 100)


def settle_heap() -> None:
    """Collect everything collectable, freeze the survivors and set the thresholds.

    Call once the process has started and before it takes traffic: the collection
    itself is a one-off pause of the whole heap's walk.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)
