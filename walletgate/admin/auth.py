"""Who is calling the admin API, and what their key may reach.

An operator key reaches everything. An owner key reaches its owner's objects only:
another owner's object is a 403 (the object's existence is not secret from an
authenticated caller, and a 403 tells a confused owner what is wrong), lists are
filtered to its owner, and operator-only operations are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from walletgate.admin.problems import Problem
from walletgate.storage.admin_keys import AdminKeyRecord, authenticate_admin_key
from walletgate.storage.runtime import Stores

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="walletgate-admin"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request was made with."""

    key: AdminKeyRecord

    @property
    def actor(self) -> str:
        """What changes are recorded under: ``admin-key:<prefix>``."""
        return self.key.actor

    @property
    def owner(self) -> str | None:
        """The owner an owner key is confined to; ``None`` for an operator key."""
        return self.key.owner_id

    def require_operator(self, what: str) -> None:
        """Raise 403 unless this is an operator key."""
        if self.owner is not None:
            raise Problem(403, f"{what} needs an operator key; this key is owner {self.owner}'s")

    def require_owner(self, owner_id: str | None, what: str) -> None:
        """Raise 403 when ``owner_id`` (the owner of ``what``) is out of this key's reach."""
        if self.owner is not None and owner_id != self.owner:
            raise Problem(403, f"{what} is not owner {self.owner}'s")

    def owner_filter(self, requested: str | None) -> str | None:
        """The owner a list is filtered to: the one asked for, and for an owner key its
        own (asking for another owner's is a 403)."""
        if self.owner is None:
            return requested
        if requested is not None and requested != self.owner:
            raise Problem(403, f"this key may only list owner {self.owner}'s objects")
        return self.owner


async def authenticate(request: web.Request, stores: Stores) -> Caller:
    """The caller of ``request`` by its bearer admin key; raises 401 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(401, "send an admin key: Authorization: Bearer wga_...", headers=_CHALLENGE)
    record = await authenticate_admin_key(stores.pool, key.strip())
    if record is None:
        raise Problem(401, "unknown or revoked admin key", headers=_CHALLENGE)
    return Caller(record)
