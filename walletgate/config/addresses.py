"""Addresses as operators write them: any case, but a mixed-case address must carry a
valid EIP-55 checksum (a typo in a checksummed address is caught, not canonicalised)."""

from __future__ import annotations

from eth_utils.address import is_checksum_address

from walletgate.intents import InvalidAddress, canonical_address


def checked_address(text: str) -> str:
    """The canonical (lowercase) form of ``text``; raises :class:`InvalidAddress`.

    All-lowercase and all-uppercase hex carry no checksum and are accepted as is.
    """
    canonical = canonical_address(text)
    digits = text[2:]
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and not is_checksum_address(text):
        raise InvalidAddress(
            f"{text} has mixed case but a wrong EIP-55 checksum: check it for a typo, "
            "or write it in lowercase"
        )
    return canonical
