"""Admin keys: issue, list and revoke (``walletgate admin-keys``); authenticating a key
is the admin API's (:mod:`walletgate.admin.auth`)."""

from __future__ import annotations

from walletgate.storage.admin_keys import (
    AdminKeyRecord,
    IssuedAdminKey,
    issue_admin_key,
    list_admin_keys,
    revoke_admin_key,
)
from walletgate.storage.runtime import Stores


async def issue_key(stores: Stores, *, owner_id: str | None, actor: str) -> IssuedAdminKey:
    """A new operator key (``owner_id`` None) or owner-scoped key; the secret is in the
    answer only."""
    return await issue_admin_key(stores.pool, owner_id=owner_id, actor=actor)


async def list_keys(stores: Stores) -> list[AdminKeyRecord]:
    """Every admin key, oldest first, never a secret."""
    return await list_admin_keys(stores.pool)


async def revoke_key(stores: Stores, reference: str, *, actor: str) -> AdminKeyRecord:
    """Revoke the key named by id or prefix: refused from its next request on."""
    return await revoke_admin_key(stores.pool, reference, actor=actor)
