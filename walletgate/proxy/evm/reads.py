"""Helpers for read methods the proxy answers itself (the eth_getBalance cache)."""

from __future__ import annotations

from walletgate.intents import DecodeError
from walletgate.proxy.evm.hexvalues import read_address, read_quantity

_BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})


def balance_query(params: object) -> tuple[str, str] | None:
    """``(address, block_tag)`` of eth_getBalance params, both canonical (lowercase
    address; a tag name or a minimal hex block number; ``latest`` when omitted).

    Returns ``None`` when the params do not name a cacheable query (malformed, or an
    EIP-1898 block object): the read is then forwarded and the backend answers it.
    """
    if not isinstance(params, list) or len(params) not in (1, 2):
        return None
    tag = params[1] if len(params) == 2 else "latest"
    try:
        address = read_address(params[0], "params[0]")
        if not (isinstance(tag, str) and tag in _BLOCK_TAGS):
            tag = hex(read_quantity(tag, "params[1]", bits=64))
    except DecodeError:
        return None
    return address, tag
