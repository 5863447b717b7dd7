"""The eth_getBalance cache: a wallet's answers, briefly (SPEC §5).

Each wallet has one Redis hash, field = block tag, value = the backend's answer
(a hex quantity string, passed through untouched). One key per wallet lets a forwarded
spend drop every cached tag of that wallet with a single DEL.
"""

from __future__ import annotations

from collections.abc import Sequence

from walletgate.storage.cache_keys import balance_key
from walletgate.storage.redis_client import RedisClient, read_hash_fields
from walletgate.storage.redis_guard import redis_errors


def balance_entry(chain_id: int, address: str, block_tag: str) -> tuple[str, str]:
    """The Redis hash and field that cache one balance answer (for callers that read it
    in a round trip of their own, such as the request's admission)."""
    return balance_key(chain_id, address), _field(block_tag)


def _field(block_tag: str) -> str:
    # "0x1A" and "0x1a" are the same block; "Latest" is not a valid tag but harmless.
    return block_tag.lower()


async def get_balance(
    redis: RedisClient, chain_id: int, address: str, block_tag: str
) -> str | None:
    """The cached answer for this wallet and block tag, or ``None`` on a miss.

    Raises :class:`~walletgate.storage.redis_guard.CacheUnavailable` when Redis fails
    and :class:`~walletgate.intents.InvalidAddress` for a malformed address.
    """
    return (await get_balances(redis, [balance_entry(chain_id, address, block_tag)]))[0]


async def get_balances(redis: RedisClient, entries: Sequence[tuple[str, str]]) -> list[str | None]:
    """Cached answers of several :func:`balance_entry` entries, in one round trip (one
    per node on a cluster), ``None`` where there is none."""
    with redis_errors("reading the balance cache"):
        return await read_hash_fields(redis, entries)


async def put_balance(
    redis: RedisClient, chain_id: int, address: str, block_tag: str, balance: str, ttl: int
) -> None:
    """Cache the backend's answer for ``ttl`` seconds at most.

    The hash's expiry is set only when it has none (``EXPIRE … NX``): later tags must
    not extend the life of earlier ones, so no answer is ever older than ``ttl``.
    """
    key = balance_key(chain_id, address)
    with redis_errors("writing the balance cache"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, _field(block_tag), balance)
            pipe.expire(key, ttl, nx=True)
            await pipe.execute()


async def drop_balances(redis: RedisClient, chain_id: int, address: str) -> None:
    """Forget every cached balance of this wallet (a spend from it was forwarded)."""
    key = balance_key(chain_id, address)
    with redis_errors("dropping the balance cache"):
        await redis.delete(key)
