"""Agent tokens: issue, revoke and list (``walletgate agents token`` and the admin API).

Token errors (unknown agent, unknown or ambiguous token, already revoked) are
``UserError`` subclasses from :mod:`walletgate.storage.tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

from walletgate.service.announce import Announcement, announce
from walletgate.storage.runtime import Stores
from walletgate.storage.tokens import (
    IssuedToken,
    TokenRecord,
    issue_token,
    list_tokens,
    revoke_token,
)


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    """A revoked token, the state version that revoked it, and the announcement."""

    record: TokenRecord
    state_version: int
    announcement: Announcement


async def issue_agent_token(stores: Stores, agent_id: str, *, actor: str) -> IssuedToken:
    """A new token for ``agent_id``; its plaintext is in the answer only."""
    return await issue_token(stores.pool, agent_id, actor=actor)


async def revoke_agent_token(
    stores: Stores, reference: str, *, actor: str, cache_ttl: int
) -> TokenRevoked:
    """Revoke the token named by id, display prefix or value; every gateway refuses it
    from its next request (raises ``TokenAlreadyRevoked`` when there is nothing to do)."""
    async with stores.pool.acquire() as conn:
        record, version = await revoke_token(conn, reference, actor=actor)
    return TokenRevoked(record, version, await announce(stores, cache_ttl=cache_ttl))


async def list_agent_tokens(stores: Stores, agent_id: str | None = None) -> list[TokenRecord]:
    """Every token (of ``agent_id`` if given), oldest first, never a secret."""
    return await list_tokens(stores.pool, agent_id)


async def token_owner(stores: Stores, token_id: str) -> str | None:
    """The owner of the agent whose token has id ``token_id`` (``None``: no such token)."""
    owner: str | None = await stores.pool.fetchval(
        "SELECT a.owner_id FROM agent_tokens t JOIN agents a ON a.id = t.agent_id"
        " WHERE t.id::text = $1",
        token_id,
    )
    return owner
