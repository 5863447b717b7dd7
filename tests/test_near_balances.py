"""The in-memory balance copies (walletgate.storage.near_balances): pure bookkeeping."""

from __future__ import annotations

from walletgate.storage.near_balances import NearBalances

KEY = "wg:balance:{1337:0xabc}"
ENTRY = (KEY, "latest")


def test_copies_are_used_only_while_subscribed_and_young() -> None:
    near = NearBalances(ttl=1.0)
    near.put(ENTRY, "0x1", 0.0)
    assert near.get([ENTRY], 0.0) == [None]  # not subscribed: nothing is kept
    near.subscribed()
    near.put(ENTRY, "0x1", 10.0)
    assert near.get([ENTRY, (KEY, "pending")], 10.5) == ["0x1", None]
    assert near.get([ENTRY], 11.0) == [None]  # a second old: gone


def test_a_drop_forgets_every_tag_of_the_wallet() -> None:
    near = NearBalances()
    near.subscribed()
    near.put(ENTRY, "0x1", 0.0)
    near.put((KEY, "0x10"), "0x2", 0.0)
    near.put(("wg:balance:{1337:0xdef}", "latest"), "0x3", 0.0)
    near.drop(KEY)
    assert near.get([ENTRY, (KEY, "0x10")], 0.1) == [None, None]
    assert near.get([("wg:balance:{1337:0xdef}", "latest")], 0.1) == ["0x3"]


def test_a_broken_subscription_invalidates_every_copy_from_before() -> None:
    near = NearBalances()
    near.subscribed()
    near.put(ENTRY, "0x1", 0.0)
    near.unsubscribed()
    assert near.get([ENTRY], 0.1) == [None]
    near.put(ENTRY, "0x2", 0.1)  # ignored while not subscribed
    near.subscribed()  # announcements may have been missed in between
    assert near.get([ENTRY], 0.2) == [None]
