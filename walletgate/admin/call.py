"""What a handler gets (a checked :class:`Call`) and how it answers (JSON)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from walletgate.admin.auth import Caller
from walletgate.admin.problems import Problem
from walletgate.config.settings import Settings
from walletgate.policies.model import PolicySet
from walletgate.storage.cache import StateCache
from walletgate.storage.runtime import Stores


@dataclass(frozen=True)
class AdminContext:
    """What every handler may use: the stores, the settings and the policy snapshot."""

    stores: Stores
    settings: Settings
    state: StateCache

    async def policies(self) -> PolicySet:
        """The compiled policies in force (the gateways' own snapshot protocol)."""
        return (await self.state.snapshot()).policies


@dataclass(frozen=True)
class Call:
    """One checked request: who made it, its typed parameters and its body."""

    ctx: AdminContext
    caller: Caller
    params: dict[str, Any]
    body: Any

    @property
    def stores(self) -> Stores:
        return self.ctx.stores

    @property
    def cache_ttl(self) -> int:
        return self.ctx.settings.policy_cache_ttl


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def _default(value: Any) -> Any:
    # asyncpg's UUIDs subclass uuid.UUID, which orjson only takes exactly.
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON answer (times RFC 3339, UUIDs and decimals as strings)."""
    return web.Response(
        status=status, body=orjson.dumps(data, default=_default), content_type="application/json"
    )


def found(item: Any, what: str) -> Any:
    """``item``, or a 404 naming ``what`` when it is ``None``."""
    if item is None:
        raise Problem(404, f"there is no {what}")
    return item


def announced(data: dict[str, Any], error: str | None) -> dict[str, Any]:
    """``data`` with whether the gateways were told of the committed change."""
    data["announced"] = error is None
    if error is not None:
        data["warning"] = (
            f"the change is committed, but the gateways could not be told ({error}); they "
            "pick it up once Redis answers again, or repeat the request then"
        )
    return data
